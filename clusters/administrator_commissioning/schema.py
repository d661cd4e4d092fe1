"""Administrator Commissioning cluster 0x003C (Core spec 11.19): every id, enum, command and attribute.

Revision 1 (spec 1.4). The Basic feature (FeatureMap bit 0) is implemented, so OpenBasicCommissioningWindow is
accepted. Every command needs Administer and a timed invoke (11.19.8: access "A T"); the SDK objects mark all
three ``must_use_timed_invoke``.

The command fields are declared without their spec constraints on purpose: an out-of-range Iterations or
Salt must answer the cluster status PAKEParameterError, and an out-of-range CommissioningTimeout or
Discriminator INVALID_COMMAND (as the CHIP SDK's AdministratorCommissioningLogic does), not the
CONSTRAINT_ERROR the schema layer would give. The server checks the ranges below.
"""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import UINT16, UINT32, Enum, Octets, Struct, UInt, field, struct

CLUSTER_ID = 0x003C

# Core spec 5.4.2 (Announcement Duration) as 11.19.8.1 applies it: a window opened by an Administrator
# lasts 3 to 15 minutes (the SDK's MinCommissioningTimeout / MaxCommissioningTimeout).
MIN_COMMISSIONING_TIMEOUT_S = 180
MAX_COMMISSIONING_TIMEOUT_S = 900
MAX_DISCRIMINATOR = 0x0FFF  # 12 bits (Core spec 5.1.1)
PAKE_PASSCODE_VERIFIER_LENGTH = 97  # w0 (32) || L (65), Core spec 3.10


class Feature(enum.IntFlag):
    BASIC = 0x1  # Basic Commissioning Method: OpenBasicCommissioningWindow


class CommissioningWindowStatusEnum(enum.IntEnum):
    """11.19.5.1."""

    WINDOW_NOT_OPEN = 0
    ENHANCED_WINDOW_OPEN = 1
    BASIC_WINDOW_OPEN = 2


class StatusCode(enum.IntEnum):
    """Cluster-specific status codes (11.19.5.2), carried as ClusterStatus with IM status FAILURE."""

    BUSY = 2
    PAKE_PARAMETER_ERROR = 3
    WINDOW_NOT_OPEN = 4


@struct
class OpenCommissioningWindow(Struct):
    """11.19.8.1; ranges checked by the server (see the module docstring)."""

    commissioning_timeout: int = field(0, UINT16)
    pake_passcode_verifier: bytes = field(1, Octets())
    discriminator: int = field(2, UINT16)
    iterations: int = field(3, UINT32)
    salt: bytes = field(4, Octets())


@struct
class OpenBasicCommissioningWindow(Struct):
    """11.19.8.2."""

    commissioning_timeout: int = field(0, UINT16)


@struct
class RevokeCommissioning(Struct):
    """11.19.8.3: no fields."""


WINDOW_STATUS = 0x0000
ADMIN_FABRIC_INDEX = 0x0001
ADMIN_VENDOR_ID = 0x0002

OPEN_COMMISSIONING_WINDOW = 0x00
OPEN_BASIC_COMMISSIONING_WINDOW = 0x01
REVOKE_COMMISSIONING = 0x02

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="AdministratorCommissioning",
    revision=1,
    attributes=(
        AttributeDef(WINDOW_STATUS, "WindowStatus", Enum(CommissioningWindowStatusEnum)),
        AttributeDef(ADMIN_FABRIC_INDEX, "AdminFabricIndex", UInt(8, 1, 254), nullable=True),  # fabric-idx
        AttributeDef(ADMIN_VENDOR_ID, "AdminVendorId", UINT16, nullable=True),  # vendor-id
    ),
    commands=(
        CommandDef(
            OPEN_COMMISSIONING_WINDOW, "OpenCommissioningWindow", OpenCommissioningWindow,
            privilege=Privilege.ADMINISTER, timed=True,
        ),
        CommandDef(
            OPEN_BASIC_COMMISSIONING_WINDOW, "OpenBasicCommissioningWindow", OpenBasicCommissioningWindow,
            privilege=Privilege.ADMINISTER, timed=True,
        ),
        CommandDef(
            REVOKE_COMMISSIONING, "RevokeCommissioning", RevokeCommissioning,
            privilege=Privilege.ADMINISTER, timed=True,
        ),
    ),
    feature_map=Feature.BASIC,
)  # fmt: skip
