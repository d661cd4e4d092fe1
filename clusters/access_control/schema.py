"""Access Control cluster 0x001F (Core spec 9.10): every id, enum, struct and attribute.

Revision 2 (spec 1.4). Neither the Extension (bit 0) nor the ManagedDevice (bit 1) feature is
implemented: FeatureMap is 0, the Extension/ARL attributes are declared but absent, and the MNGD-only
ReviewFabricRestrictions command is not declared.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from jfds_device.codec.model import AttributeDef, AuthMode, ClusterDef, EventDef, EventPriority, Privilege
from jfds_device.codec.schema import (
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Enum,
    List,
    Octets,
    Struct,
    StructType,
    UInt,
    field,
    struct,
)

CLUSTER_ID = 0x001F

# Capacities we guarantee; the spec minima (9.10.5.5..7) are 4 subjects, 3 targets, 4 entries per fabric. A Joint
# Fabric Administrator holds entries for several ecosystems' admins and CAT groups, so it keeps 16 per fabric; an
# ACL that large no longer fits one message and is written in chunks (Core spec 8.7.3.3).
SUBJECTS_PER_ENTRY = 4
TARGETS_PER_ENTRY = 3
ENTRIES_PER_FABRIC = 16

# Event ids (9.10.7). AccessControlExtensionChanged needs the Extension attribute and FabricRestrictionReviewUpdate
# the ARL feature: we serve neither, so only AccessControlEntryChanged exists.
EVENT_ACCESS_CONTROL_ENTRY_CHANGED = 0x00
EVENT_ACCESS_CONTROL_EXTENSION_CHANGED = 0x01
EVENT_FABRIC_RESTRICTION_REVIEW_UPDATE = 0x02


# The SDK's names for the stack's one Privilege and AuthMode (codec.model): same values, same class.
AccessControlEntryPrivilegeEnum = Privilege
AccessControlEntryAuthModeEnum = AuthMode


class AccessRestrictionTypeEnum(enum.IntEnum):
    ATTRIBUTE_ACCESS_FORBIDDEN = 0
    ATTRIBUTE_WRITE_FORBIDDEN = 1
    COMMAND_FORBIDDEN = 2
    EVENT_FORBIDDEN = 3


class ChangeTypeEnum(enum.IntEnum):
    CHANGED = 0
    ADDED = 1
    REMOVED = 2


FABRIC_INDEX = UINT8  # any value is accepted on write: the server stamps the accessing fabric


@struct
class AccessControlTargetStruct(Struct):
    cluster: object = field(0, UINT32, nullable=True)
    endpoint: object = field(1, UINT16, nullable=True)
    device_type: object = field(2, UINT32, nullable=True)


@struct
class AccessControlEntryStruct(Struct):
    # Every field but FabricIndex is fabric-sensitive (9.10.4.5): omitted from other fabrics' reads.
    FABRIC_SENSITIVE: ClassVar[frozenset[int]] = frozenset({1, 2, 3, 4})

    privilege: AccessControlEntryPrivilegeEnum = field(1, Enum(AccessControlEntryPrivilegeEnum))
    auth_mode: AccessControlEntryAuthModeEnum = field(2, Enum(AccessControlEntryAuthModeEnum))
    subjects: object = field(3, List(UINT64), nullable=True)
    targets: object = field(4, List(StructType(AccessControlTargetStruct)), nullable=True)
    fabric_index: int | None = field(0xFE, FABRIC_INDEX, optional=True)


@struct
class AccessControlExtensionStruct(Struct):
    FABRIC_SENSITIVE: ClassVar[frozenset[int]] = frozenset({1})

    data: bytes = field(1, Octets(max_length=128))
    fabric_index: int | None = field(0xFE, FABRIC_INDEX, optional=True)


@struct
class AccessRestrictionStruct(Struct):
    type: AccessRestrictionTypeEnum = field(0, Enum(AccessRestrictionTypeEnum))
    id: object = field(1, UINT32, nullable=True)


@struct
class CommissioningAccessRestrictionEntryStruct(Struct):
    endpoint: int = field(0, UINT16)
    cluster: int = field(1, UINT32)
    restrictions: list[AccessRestrictionStruct] = field(2, List(StructType(AccessRestrictionStruct), min_length=1))


@struct
class AccessRestrictionEntryStruct(Struct):
    endpoint: int = field(0, UINT16)
    cluster: int = field(1, UINT32)
    restrictions: list[AccessRestrictionStruct] = field(2, List(StructType(AccessRestrictionStruct), min_length=1))
    fabric_index: int | None = field(0xFE, FABRIC_INDEX, optional=True)


ACL = 0x0000
EXTENSION = 0x0001
SUBJECTS_PER_ACCESS_CONTROL_ENTRY = 0x0002
TARGETS_PER_ACCESS_CONTROL_ENTRY = 0x0003
ACCESS_CONTROL_ENTRIES_PER_FABRIC = 0x0004

_A = Privilege.ADMINISTER

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="AccessControl",
    revision=2,
    attributes=(
        AttributeDef(
            ACL,
            "Acl",
            List(StructType(AccessControlEntryStruct)),
            writable=True,
            read_privilege=_A,
            write_privilege=_A,
            fabric_scoped=True,
            fabric_sensitive=True,
            persistent=True,
            default=[],
        ),
        AttributeDef(
            EXTENSION,
            "Extension",
            List(StructType(AccessControlExtensionStruct)),
            writable=True,
            read_privilege=_A,
            write_privilege=_A,
            fabric_scoped=True,
            fabric_sensitive=True,
            persistent=True,
        ),
        AttributeDef(SUBJECTS_PER_ACCESS_CONTROL_ENTRY, "SubjectsPerAccessControlEntry", UInt(16, 4)),
        AttributeDef(TARGETS_PER_ACCESS_CONTROL_ENTRY, "TargetsPerAccessControlEntry", UInt(16, 3)),
        AttributeDef(ACCESS_CONTROL_ENTRIES_PER_FABRIC, "AccessControlEntriesPerFabric", UInt(16, 4)),
        AttributeDef(0x0005, "CommissioningARL", List(StructType(CommissioningAccessRestrictionEntryStruct))),
        AttributeDef(0x0006, "Arl", List(StructType(AccessRestrictionEntryStruct)), fabric_scoped=True),
    ),
    events=(
        EventDef(
            EVENT_ACCESS_CONTROL_ENTRY_CHANGED,
            "AccessControlEntryChanged",
            EventPriority.INFO,
            read_privilege=Privilege.ADMINISTER,
            fabric_sensitive=True,
        ),
    ),
)
