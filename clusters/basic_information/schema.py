"""Basic Information cluster 0x0028 (Core spec 11.1): every id, enum, struct and attribute.

Version facts this node reports, in one place (the IM's session parameters need them too):
we implement Matter 1.4.2, the first version with the Joint Fabric Datastore's attributes 0x09-0x0D and the
Joint Fabric Administrator's commands 5-8, so SpecificationVersion is 0x01040200 (11.1.5.22) and every cluster
carries its 1.4.2 revision (connectedhomeip data_model/1.4.2, which the SDK's conformance tests read for that
version). DataModelRevision stays 18 (Core spec 7.1.1; 17 was 1.3), as the CHIP SDK of the 2025.7 controller
reports it (SpecificationDefinedRevisions.h: kDataModelRevision = 18). Cluster revision 5 is the 1.4.2 one
(it adds the optional ConfigurationVersion, not served). DeviceLocation (0x17, spec 1.5) is not in the 2025.7
SDK objects and not declared.
"""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, ClusterDef, EventDef, EventPriority, Privilege
from jfds_device.codec.schema import BOOL, UINT16, UINT32, Enum, Str, Struct, StructType, UInt, field, struct

CLUSTER_ID = 0x0028

DATA_MODEL_REVISION = 18
SPECIFICATION_VERSION = 0x0104_0200
# Minimum capabilities the node guarantees (11.1.5.20): at least 3 CASE sessions and 3 subscriptions.
MIN_CASE_SESSIONS_PER_FABRIC = 3
MIN_SUBSCRIPTIONS_PER_FABRIC = 3

# Event ids (11.1.6).
EVENT_START_UP = 0x00
EVENT_SHUT_DOWN = 0x01
EVENT_LEAVE = 0x02
EVENT_REACHABLE_CHANGED = 0x03


class ProductFinishEnum(enum.IntEnum):
    OTHER = 0
    MATTE = 1
    SATIN = 2
    POLISHED = 3
    RUGGED = 4
    FABRIC = 5


class ColorEnum(enum.IntEnum):
    BLACK = 0
    NAVY = 1
    GREEN = 2
    TEAL = 3
    MAROON = 4
    PURPLE = 5
    OLIVE = 6
    GRAY = 7
    BLUE = 8
    LIME = 9
    AQUA = 10
    RED = 11
    FUCHSIA = 12
    YELLOW = 13
    WHITE = 14
    NICKEL = 15
    CHROME = 16
    BRASS = 17
    COPPER = 18
    SILVER = 19
    GOLD = 20


@struct
class CapabilityMinimaStruct(Struct):
    case_sessions_per_fabric: int = field(0, UInt(16, MIN_CASE_SESSIONS_PER_FABRIC))
    subscriptions_per_fabric: int = field(1, UInt(16, MIN_SUBSCRIPTIONS_PER_FABRIC))


@struct
class ProductAppearanceStruct(Struct):
    finish: ProductFinishEnum = field(0, Enum(ProductFinishEnum))
    primary_color: object = field(1, Enum(ColorEnum), nullable=True)


def _ro(attribute_id: int, name: str, ftype: object, *, persistent: bool = False) -> AttributeDef:
    return AttributeDef(attribute_id, name, ftype, persistent=persistent)  # type: ignore[arg-type]


DATA_MODEL_REVISION_ID = 0x0000
VENDOR_NAME = 0x0001
VENDOR_ID = 0x0002
PRODUCT_NAME = 0x0003
PRODUCT_ID = 0x0004
NODE_LABEL = 0x0005
LOCATION = 0x0006
HARDWARE_VERSION = 0x0007
HARDWARE_VERSION_STRING = 0x0008
SOFTWARE_VERSION = 0x0009
SOFTWARE_VERSION_STRING = 0x000A
MANUFACTURING_DATE = 0x000B
PART_NUMBER = 0x000C
PRODUCT_URL = 0x000D
PRODUCT_LABEL = 0x000E
SERIAL_NUMBER = 0x000F
LOCAL_CONFIG_DISABLED = 0x0010
REACHABLE = 0x0011
UNIQUE_ID = 0x0012
CAPABILITY_MINIMA = 0x0013
PRODUCT_APPEARANCE = 0x0014
SPECIFICATION_VERSION_ID = 0x0015
MAX_PATHS_PER_INVOKE = 0x0016
CONFIGURATION_VERSION = 0x0018

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="BasicInformation",
    revision=5,
    attributes=(
        _ro(DATA_MODEL_REVISION_ID, "DataModelRevision", UINT16),
        _ro(VENDOR_NAME, "VendorName", Str(max_length=32)),
        _ro(VENDOR_ID, "VendorID", UINT16),
        _ro(PRODUCT_NAME, "ProductName", Str(max_length=32)),
        _ro(PRODUCT_ID, "ProductID", UINT16),
        AttributeDef(
            NODE_LABEL,
            "NodeLabel",
            Str(max_length=32),
            writable=True,
            write_privilege=Privilege.MANAGE,
            persistent=True,
            default="",
        ),
        AttributeDef(
            LOCATION,
            "Location",
            Str(min_length=2, max_length=2),
            writable=True,
            write_privilege=Privilege.ADMINISTER,
            persistent=True,
            default="XX",
        ),
        _ro(HARDWARE_VERSION, "HardwareVersion", UINT16),
        _ro(HARDWARE_VERSION_STRING, "HardwareVersionString", Str(min_length=1, max_length=64)),
        _ro(SOFTWARE_VERSION, "SoftwareVersion", UINT32),
        _ro(SOFTWARE_VERSION_STRING, "SoftwareVersionString", Str(min_length=1, max_length=64)),
        _ro(MANUFACTURING_DATE, "ManufacturingDate", Str(min_length=8, max_length=16)),
        _ro(PART_NUMBER, "PartNumber", Str(max_length=32)),
        _ro(PRODUCT_URL, "ProductURL", Str(max_length=256)),
        _ro(PRODUCT_LABEL, "ProductLabel", Str(max_length=64)),
        _ro(SERIAL_NUMBER, "SerialNumber", Str(max_length=32)),
        AttributeDef(
            LOCAL_CONFIG_DISABLED,
            "LocalConfigDisabled",
            BOOL,
            writable=True,
            write_privilege=Privilege.MANAGE,
            persistent=True,
            default=False,
        ),
        _ro(REACHABLE, "Reachable", BOOL),
        _ro(UNIQUE_ID, "UniqueID", Str(max_length=32), persistent=True),
        _ro(CAPABILITY_MINIMA, "CapabilityMinima", StructType(CapabilityMinimaStruct)),
        _ro(PRODUCT_APPEARANCE, "ProductAppearance", StructType(ProductAppearanceStruct)),
        _ro(SPECIFICATION_VERSION_ID, "SpecificationVersion", UINT32),
        _ro(MAX_PATHS_PER_INVOKE, "MaxPathsPerInvoke", UInt(16, 1)),
        _ro(CONFIGURATION_VERSION, "ConfigurationVersion", UInt(32, 1), persistent=True),
    ),
    events=(
        EventDef(EVENT_START_UP, "StartUp", EventPriority.CRITICAL),
        EventDef(EVENT_SHUT_DOWN, "ShutDown", EventPriority.CRITICAL),
        EventDef(EVENT_LEAVE, "Leave", EventPriority.INFO),
    ),
)
