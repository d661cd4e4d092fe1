"""Joint Fabric Administrator cluster 0x0753 (numbering of home-assistant-chip-clusters 2025.7.0)."""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import UINT16, Enum, Octets, Struct, UInt, field, struct

CLUSTER_ID = 0x0753


class ICACResponseStatus(enum.IntEnum):
    OK = 0
    INVALID_PUBLIC_KEY = 1
    INVALID_ICAC = 2


class TransferAnchorResponseStatus(enum.IntEnum):
    OK = 0
    DATASTORE_BUSY = 1
    NO_USER_CONSENT = 2


class StatusCode(enum.IntEnum):
    """Cluster-specific status codes (the older variant the 2025.7.0 objects carry)."""

    VID_NOT_VERIFIED = 2
    INVALID_ADMINISTRATOR_FABRIC_INDEX = 3


@struct
class ICACCSRRequest(Struct):
    pass


@struct
class ICACCSRResponse(Struct):
    icaccsr: bytes = field(0, Octets(max_length=600))


@struct
class AddICAC(Struct):
    icac_value: bytes = field(0, Octets(max_length=400))


@struct
class ICACResponse(Struct):
    status_code: ICACResponseStatus = field(0, Enum(ICACResponseStatus))


@struct
class OpenJointCommissioningWindow(Struct):
    commissioning_timeout: int = field(0, UINT16)
    pake_passcode_verifier: bytes = field(1, Octets(min_length=97, max_length=97))
    discriminator: int = field(2, UInt(16, 0, 4095))
    iterations: int = field(3, UInt(32, 1000, 100000))
    salt: bytes = field(4, Octets(min_length=16, max_length=32))


@struct
class TransferAnchorRequest(Struct):
    pass


@struct
class TransferAnchorResponse(Struct):
    status_code: TransferAnchorResponseStatus = field(0, Enum(TransferAnchorResponseStatus))


@struct
class TransferAnchorComplete(Struct):
    pass


@struct
class AnnounceJointFabricAdministrator(Struct):
    endpoint_id: int = field(0, UINT16)


CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="JointFabricAdministrator",
    revision=1,
    attributes=(
        AttributeDef(
            0x0000, "AdministratorFabricIndex", UInt(8, 1, 254), nullable=True,
            read_privilege=Privilege.ADMINISTER,
        ),
    ),
    commands=(
        CommandDef(0x00, "ICACCSRRequest", ICACCSRRequest, 0x01, ICACCSRResponse, Privilege.ADMINISTER),
        CommandDef(0x02, "AddICAC", AddICAC, 0x03, ICACResponse, Privilege.ADMINISTER),
        CommandDef(0x04, "OpenJointCommissioningWindow", OpenJointCommissioningWindow,
                   privilege=Privilege.ADMINISTER),
        CommandDef(0x05, "TransferAnchorRequest", TransferAnchorRequest, 0x06, TransferAnchorResponse,
                   Privilege.ADMINISTER),
        CommandDef(0x07, "TransferAnchorComplete", TransferAnchorComplete, privilege=Privilege.ADMINISTER),
        CommandDef(0x08, "AnnounceJointFabricAdministrator", AnnounceJointFabricAdministrator,
                   privilege=Privilege.ADMINISTER),
    ),
)

