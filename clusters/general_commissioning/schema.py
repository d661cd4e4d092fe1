"""General Commissioning cluster 0x0030 (Core spec 11.10): every id, enum, struct and command.

Revision 2 (spec 1.4). The Terms-and-Conditions (TC) and NetworkRecovery features are not implemented,
so FeatureMap is 0; their attributes and SetTCAcknowledgements are declared for completeness only.
"""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import (
    BOOL,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Enum,
    Octets,
    Str,
    Struct,
    StructType,
    field,
    struct,
)

CLUSTER_ID = 0x0030

# BasicCommissioningInfo values (11.10.5.2): the commissioner's default fail-safe length, and the cap
# on the total time one fail-safe context may stay armed (>= FailSafeExpiryLengthSeconds, <= 900 s).
FAIL_SAFE_EXPIRY_LENGTH_S = 60
MAX_CUMULATIVE_FAILSAFE_S = 900


class CommissioningErrorEnum(enum.IntEnum):
    OK = 0
    VALUE_OUTSIDE_RANGE = 1
    INVALID_AUTHENTICATION = 2
    NO_FAIL_SAFE = 3
    BUSY_WITH_OTHER_ADMIN = 4
    REQUIRED_TC_NOT_ACCEPTED = 5
    TC_ACKNOWLEDGEMENTS_NOT_RECEIVED = 6
    TC_MIN_VERSION_NOT_MET = 7


class RegulatoryLocationTypeEnum(enum.IntEnum):
    INDOOR = 0
    OUTDOOR = 1
    INDOOR_OUTDOOR = 2


class NetworkRecoveryReasonEnum(enum.IntEnum):
    UNSPECIFIED = 0
    AUTH = 1
    VISIBILITY = 2


REGULATORY_LOCATION = Enum(RegulatoryLocationTypeEnum)
ERROR_CODE = Enum(CommissioningErrorEnum)
DEBUG_TEXT = Str(max_length=128)


@struct
class BasicCommissioningInfo(Struct):
    fail_safe_expiry_length_seconds: int = field(0, UINT16)
    max_cumulative_failsafe_seconds: int = field(1, UINT16)


@struct
class ArmFailSafe(Struct):
    expiry_length_seconds: int = field(0, UINT16)
    breadcrumb: int = field(1, UINT64)


@struct
class ArmFailSafeResponse(Struct):
    error_code: CommissioningErrorEnum = field(0, ERROR_CODE)
    debug_text: str = field(1, DEBUG_TEXT, default="")


@struct
class SetRegulatoryConfig(Struct):
    # A plain uint8, not the enum type: an unknown location answers ValueOutsideRange in the response
    # (11.10.7.4), as the SDK does, rather than a CONSTRAINT_ERROR status.
    new_regulatory_config: int = field(0, UINT8)
    country_code: str = field(1, Str(min_length=2, max_length=2))
    breadcrumb: int = field(2, UINT64)


@struct
class SetRegulatoryConfigResponse(Struct):
    error_code: CommissioningErrorEnum = field(0, ERROR_CODE)
    debug_text: str = field(1, DEBUG_TEXT, default="")


@struct
class CommissioningComplete(Struct):
    pass


@struct
class CommissioningCompleteResponse(Struct):
    error_code: CommissioningErrorEnum = field(0, ERROR_CODE)
    debug_text: str = field(1, DEBUG_TEXT, default="")


@struct
class SetTCAcknowledgements(Struct):
    tc_version: int = field(0, UINT16)
    tc_user_response: int = field(1, UINT16)


@struct
class SetTCAcknowledgementsResponse(Struct):
    error_code: CommissioningErrorEnum = field(0, ERROR_CODE)


BREADCRUMB = 0x0000
BASIC_COMMISSIONING_INFO = 0x0001
REGULATORY_CONFIG = 0x0002
LOCATION_CAPABILITY = 0x0003
SUPPORTS_CONCURRENT_CONNECTION = 0x0004

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="GeneralCommissioning",
    revision=2,
    attributes=(
        AttributeDef(BREADCRUMB, "Breadcrumb", UINT64, writable=True, write_privilege=Privilege.ADMINISTER, default=0),
        AttributeDef(BASIC_COMMISSIONING_INFO, "BasicCommissioningInfo", StructType(BasicCommissioningInfo)),
        AttributeDef(REGULATORY_CONFIG, "RegulatoryConfig", REGULATORY_LOCATION, persistent=True),
        AttributeDef(LOCATION_CAPABILITY, "LocationCapability", REGULATORY_LOCATION),
        AttributeDef(SUPPORTS_CONCURRENT_CONNECTION, "SupportsConcurrentConnection", BOOL),
        AttributeDef(0x0005, "TCAcceptedVersion", UINT16),
        AttributeDef(0x0006, "TCMinRequiredVersion", UINT16),
        AttributeDef(0x0007, "TCAcknowledgements", UINT16),
        AttributeDef(0x0008, "TCAcknowledgementsRequired", BOOL),
        AttributeDef(0x0009, "TCUpdateDeadline", UINT32, nullable=True),
        AttributeDef(0x000A, "RecoveryIdentifier", Octets(min_length=8, max_length=8)),
        AttributeDef(0x000B, "NetworkRecoveryReason", Enum(NetworkRecoveryReasonEnum), nullable=True),
    ),
    commands=(
        CommandDef(0x00, "ArmFailSafe", ArmFailSafe, 0x01, ArmFailSafeResponse, Privilege.ADMINISTER),
        CommandDef(
            0x02, "SetRegulatoryConfig", SetRegulatoryConfig, 0x03, SetRegulatoryConfigResponse, Privilege.ADMINISTER
        ),
        CommandDef(
            0x04,
            "CommissioningComplete",
            CommissioningComplete,
            0x05,
            CommissioningCompleteResponse,
            Privilege.ADMINISTER,
            fabric_scoped=True,
        ),
        CommandDef(
            0x06,
            "SetTCAcknowledgements",
            SetTCAcknowledgements,
            0x07,
            SetTCAcknowledgementsResponse,
            Privilege.ADMINISTER,
        ),
    ),
)
