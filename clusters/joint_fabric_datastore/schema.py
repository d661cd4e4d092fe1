"""Joint Fabric Datastore cluster 0x0752: every id, enum, struct, attribute and command.

Numbering follows the CHIP SDK's generated objects (home-assistant-chip-clusters 2025.7.0 =
jfa-app.matter f63557fc): the spec 1.5 numbering except AddAdmin's fields, which are 0..3. Widths and
bounds come from the upstream ZAP XML (connectedhomeip src/app/zap-templates/zcl/data-model/chip/
joint-fabric-datastore-cluster.xml @ e12702842d0f) and the IDL (examples/jf-admin-app/jfa-common/jfa-app.matter
@ f63557fc9d0c).
"""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, AuthMode, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import (
    NULL,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Enum,
    List,
    Octets,
    Str,
    Struct,
    StructType,
    UInt,
    field,
    struct,
)

CLUSTER_ID = 0x0752
ADMIN_CAT_ID = 0xFFFF  # Administrator CAT identifier (JFA cluster §11.25)
ANCHOR_CAT_ID = 0xFFFE  # Anchor CAT identifier
IPK_KEY_SET_ID = 0
MAX_CERT_LENGTH = 400  # AnchorRootCA / ICAC octet strings
MAX_FRIENDLY_NAME_LENGTH = 32
EPOCH_KEY_LENGTH = 16  # an epoch key is a 128-bit symmetric key, exactly 16 bytes (GroupKeySetStruct)
INITIAL_CAT_VERSION = 1  # the Administrator and Anchor CATs start at version 1 (0xFFFF0001, 0xFFFE0001)
# GroupList entries the anchor bootstrap creates for the Administrator and Anchor CATs (TC-JFDS-2.3 step 1). The
# reference app uses group ids 0 and 1; 0 is not a valid group id (Core spec 2.5.4), so we take the top of the
# application group range, where TC groups (0x000A, 0x0101) and typical admin choices do not collide.
ADMIN_CAT_GROUP_ID = 0xFEFF
ANCHOR_CAT_GROUP_ID = 0xFEFE

# Attribute ids (11.24.6).
ANCHOR_ROOT_CA = 0x0000
ANCHOR_NODE_ID = 0x0001
ANCHOR_VENDOR_ID = 0x0002
FRIENDLY_NAME_ATTRIBUTE = 0x0003
GROUP_KEY_SET_LIST = 0x0004
GROUP_LIST = 0x0005
NODE_LIST = 0x0006
ADMIN_LIST = 0x0007
STATUS = 0x0008
ENDPOINT_GROUP_ID_LIST = 0x0009
ENDPOINT_BINDING_LIST = 0x000A
NODE_KEY_SET_LIST = 0x000B
NODE_ACL_LIST = 0x000C
NODE_ENDPOINT_LIST = 0x000D

# Spec maxima (11.24.6 / the 1.6 XML constraints).
MAX_NODES = 1024
MAX_ADMINS = 32
MAX_KEY_SETS = 254
MAX_GROUPS = 254
MAX_PER_NODE_ENTRIES = 8192

NODE_ID = UINT64
ENDPOINT_NO = UINT16
GROUP_ID = UINT16
VENDOR_ID = UINT16
CLUSTER_ID_T = UINT32
DEVTYPE_ID = UINT32
EPOCH_US = UINT64
EPOCH_S = UINT32
FRIENDLY_NAME = Str(max_length=MAX_FRIENDLY_NAME_LENGTH)
ICAC = Octets(max_length=MAX_CERT_LENGTH)
EPOCH_KEY = Octets(min_length=16, max_length=16)
KEY_SET_ID = UINT16
# AddGroup's GroupKeySetID / GroupCATVersion are 1..65534; UpdateGroup's are 1..65535 (ZAP XML).
KEY_SET_ID_ADD = UInt(16, 1, 0xFFFE)
KEY_SET_ID_UPDATE = UInt(16, 1, 0xFFFF)
CAT_VERSION_ADD = UInt(16, 1, 0xFFFE)
CAT_VERSION_UPDATE = UInt(16, 1, 0xFFFF)


class DatastoreState(enum.IntEnum):
    PENDING = 0
    COMMITTED = 1
    DELETE_PENDING = 2
    COMMIT_FAILED = 3


# The SDK's names (JointFabricDatastore.Enums) for the stack's one Privilege and AuthMode (codec.model).
AccessControlEntryPrivilege = Privilege
AccessControlEntryAuthMode = AuthMode


class GroupKeySecurityPolicy(enum.IntEnum):
    TRUST_FIRST = 0


class GroupKeyMulticastPolicy(enum.IntEnum):
    PER_GROUP_ID = 0
    ALL_NODES = 1


PRIVILEGE = Enum(AccessControlEntryPrivilege)


@struct
class StatusEntry(Struct):
    state: DatastoreState = field(0, Enum(DatastoreState))
    update_timestamp: int = field(1, EPOCH_S)
    failure_code: int = field(2, UINT8, default=0)


@struct
class GroupKeySet(Struct):
    group_key_set_id: int = field(0, KEY_SET_ID)
    group_key_security_policy: GroupKeySecurityPolicy = field(1, Enum(GroupKeySecurityPolicy))
    epoch_key0: object = field(2, EPOCH_KEY, nullable=True)
    epoch_start_time0: object = field(3, EPOCH_US, nullable=True)
    epoch_key1: object = field(4, EPOCH_KEY, nullable=True)
    epoch_start_time1: object = field(5, EPOCH_US, nullable=True)
    epoch_key2: object = field(6, EPOCH_KEY, nullable=True)
    epoch_start_time2: object = field(7, EPOCH_US, nullable=True)
    group_key_multicast_policy: GroupKeyMulticastPolicy = field(8, Enum(GroupKeyMulticastPolicy))

    def __repr__(self) -> str:
        # Epoch keys are secrets: never in logs, tracebacks or test output (only whether each key is set).
        def key(value: object) -> str:
            return "NULL" if value is NULL else "<redacted>"

        return (
            f"GroupKeySet(group_key_set_id={self.group_key_set_id}, "
            f"group_key_security_policy={self.group_key_security_policy!r}, "
            f"epoch_key0={key(self.epoch_key0)}, epoch_start_time0={self.epoch_start_time0!r}, "
            f"epoch_key1={key(self.epoch_key1)}, epoch_start_time1={self.epoch_start_time1!r}, "
            f"epoch_key2={key(self.epoch_key2)}, epoch_start_time2={self.epoch_start_time2!r}, "
            f"group_key_multicast_policy={self.group_key_multicast_policy!r})"
        )


@struct
class GroupInformationEntry(Struct):
    group_id: int = field(0, UINT64)
    friendly_name: str = field(1, FRIENDLY_NAME)
    group_key_set_id: object = field(2, KEY_SET_ID_ADD, nullable=True)
    group_cat: object = field(3, UINT16, nullable=True)
    group_cat_version: object = field(4, CAT_VERSION_ADD, nullable=True)
    group_permission: AccessControlEntryPrivilege = field(5, PRIVILEGE)


@struct
class NodeInformationEntry(Struct):
    node_id: int = field(1, NODE_ID)
    friendly_name: str = field(2, FRIENDLY_NAME)
    commissioning_status_entry: StatusEntry = field(3, StructType(StatusEntry))


@struct
class AdministratorInformationEntry(Struct):
    node_id: int = field(1, NODE_ID)
    friendly_name: str = field(2, FRIENDLY_NAME)
    vendor_id: int = field(3, VENDOR_ID)
    icac: bytes = field(4, ICAC)


@struct
class EndpointEntry(Struct):
    endpoint_id: int = field(0, ENDPOINT_NO)
    node_id: int = field(1, NODE_ID)
    friendly_name: str = field(2, FRIENDLY_NAME)
    status_entry: StatusEntry = field(3, StructType(StatusEntry))


@struct
class EndpointGroupIDEntry(Struct):
    node_id: int = field(0, NODE_ID)
    endpoint_id: int = field(1, ENDPOINT_NO)
    group_id: int = field(2, GROUP_ID)
    status_entry: StatusEntry = field(3, StructType(StatusEntry))


@struct
class BindingTarget(Struct):
    """Presence rules (Node with Endpoint; Group xor Endpoint) are checked by the cluster logic."""

    node: int | None = field(1, NODE_ID, optional=True)
    group: int | None = field(2, UInt(16, 1), optional=True)
    endpoint: int | None = field(3, ENDPOINT_NO, optional=True)
    cluster: int | None = field(4, CLUSTER_ID_T, optional=True)


@struct
class EndpointBindingEntry(Struct):
    node_id: int = field(0, NODE_ID)
    endpoint_id: int = field(1, ENDPOINT_NO)
    list_id: int = field(2, UINT16)
    binding: BindingTarget = field(3, StructType(BindingTarget))
    status_entry: StatusEntry = field(4, StructType(StatusEntry))


@struct
class NodeKeySetEntry(Struct):
    node_id: int = field(0, NODE_ID)
    group_key_set_id: int = field(1, KEY_SET_ID)
    status_entry: StatusEntry = field(2, StructType(StatusEntry))


@struct
class AccessControlTarget(Struct):
    cluster: object = field(0, CLUSTER_ID_T, nullable=True)
    endpoint: object = field(1, ENDPOINT_NO, nullable=True)
    device_type: object = field(2, DEVTYPE_ID, nullable=True)


@struct
class AccessControlEntry(Struct):
    privilege: AccessControlEntryPrivilege = field(1, PRIVILEGE)
    auth_mode: AccessControlEntryAuthMode = field(2, Enum(AccessControlEntryAuthMode))
    subjects: object = field(3, List(UINT64), nullable=True)
    targets: object = field(4, List(StructType(AccessControlTarget)), nullable=True)


@struct
class ACLEntry(Struct):
    node_id: int = field(0, NODE_ID)
    list_id: int = field(1, UINT16)
    acl_entry: AccessControlEntry = field(2, StructType(AccessControlEntry))
    status_entry: StatusEntry = field(3, StructType(StatusEntry))


# ---------------------------------------------------------------------------------------------------- commands


@struct
class AddKeySet(Struct):
    group_key_set: GroupKeySet = field(0, StructType(GroupKeySet))


@struct
class UpdateKeySet(Struct):
    group_key_set: GroupKeySet = field(0, StructType(GroupKeySet))


@struct
class RemoveKeySet(Struct):
    group_key_set_id: int = field(0, KEY_SET_ID)


@struct
class AddGroup(Struct):
    group_id: int = field(0, GROUP_ID)
    friendly_name: str = field(1, FRIENDLY_NAME)
    group_key_set_id: object = field(2, KEY_SET_ID_ADD, nullable=True)
    group_cat: object = field(3, UINT16, nullable=True)
    group_cat_version: object = field(4, CAT_VERSION_ADD, nullable=True)
    group_permission: AccessControlEntryPrivilege = field(5, PRIVILEGE)


@struct
class UpdateGroup(Struct):
    """A null field means: leave that property unchanged."""

    group_id: int = field(0, GROUP_ID)
    friendly_name: object = field(1, FRIENDLY_NAME, nullable=True)
    group_key_set_id: object = field(2, KEY_SET_ID_UPDATE, nullable=True)
    group_cat: object = field(3, UINT16, nullable=True)
    group_cat_version: object = field(4, CAT_VERSION_UPDATE, nullable=True)
    group_permission: AccessControlEntryPrivilege = field(5, PRIVILEGE)


@struct
class RemoveGroup(Struct):
    group_id: int = field(0, GROUP_ID)


@struct
class AddAdmin(Struct):
    node_id: int = field(0, NODE_ID)
    friendly_name: str = field(1, FRIENDLY_NAME)
    vendor_id: int = field(2, VENDOR_ID)
    icac: bytes = field(3, ICAC)


@struct
class UpdateAdmin(Struct):
    node_id: object = field(0, NODE_ID, nullable=True)
    friendly_name: object = field(1, FRIENDLY_NAME, nullable=True)
    icac: object = field(2, ICAC, nullable=True)


@struct
class RemoveAdmin(Struct):
    node_id: int = field(0, NODE_ID)


@struct
class AddPendingNode(Struct):
    node_id: int = field(0, NODE_ID)
    friendly_name: str = field(1, FRIENDLY_NAME)


@struct
class RefreshNode(Struct):
    node_id: int = field(0, NODE_ID)


@struct
class UpdateNode(Struct):
    node_id: int = field(0, NODE_ID)
    friendly_name: str = field(1, FRIENDLY_NAME)


@struct
class RemoveNode(Struct):
    node_id: int = field(0, NODE_ID)


@struct
class UpdateEndpointForNode(Struct):
    endpoint_id: int = field(0, ENDPOINT_NO)
    node_id: int = field(1, NODE_ID)
    friendly_name: str = field(2, FRIENDLY_NAME)


@struct
class AddGroupIDToEndpointForNode(Struct):
    node_id: int = field(0, NODE_ID)
    endpoint_id: int = field(1, ENDPOINT_NO)
    group_id: int = field(2, GROUP_ID)


@struct
class RemoveGroupIDFromEndpointForNode(Struct):
    node_id: int = field(0, NODE_ID)
    endpoint_id: int = field(1, ENDPOINT_NO)
    group_id: int = field(2, GROUP_ID)


@struct
class AddBindingToEndpointForNode(Struct):
    node_id: int = field(0, NODE_ID)
    endpoint_id: int = field(1, ENDPOINT_NO)
    binding: BindingTarget = field(2, StructType(BindingTarget))


@struct
class RemoveBindingFromEndpointForNode(Struct):
    list_id: int = field(0, UINT16)
    endpoint_id: int = field(1, ENDPOINT_NO)
    node_id: int = field(2, NODE_ID)


@struct
class AddACLToNode(Struct):
    node_id: int = field(0, NODE_ID)
    acl_entry: AccessControlEntry = field(1, StructType(AccessControlEntry))


@struct
class RemoveACLFromNode(Struct):
    list_id: int = field(0, UINT16)
    node_id: int = field(1, NODE_ID)


def _command(command_id: int, request: type[Struct]) -> CommandDef:
    return CommandDef(command_id, request.__name__, request, privilege=Privilege.ADMINISTER)


def _attribute(attribute_id: int, name: str, ftype: object) -> AttributeDef:
    return AttributeDef(attribute_id, name, ftype, read_privilege=Privilege.ADMINISTER, persistent=True)  # type: ignore[arg-type]


CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="JointFabricDatastore",
    revision=1,
    attributes=(
        _attribute(ANCHOR_ROOT_CA, "AnchorRootCA", Octets(max_length=MAX_CERT_LENGTH)),
        _attribute(ANCHOR_NODE_ID, "AnchorNodeID", NODE_ID),
        _attribute(ANCHOR_VENDOR_ID, "AnchorVendorID", VENDOR_ID),
        _attribute(FRIENDLY_NAME_ATTRIBUTE, "FriendlyName", FRIENDLY_NAME),
        _attribute(GROUP_KEY_SET_LIST, "GroupKeySetList", List(StructType(GroupKeySet), MAX_KEY_SETS)),
        _attribute(GROUP_LIST, "GroupList", List(StructType(GroupInformationEntry), MAX_GROUPS)),
        _attribute(NODE_LIST, "NodeList", List(StructType(NodeInformationEntry), MAX_NODES)),
        _attribute(ADMIN_LIST, "AdminList", List(StructType(AdministratorInformationEntry), MAX_ADMINS)),
        _attribute(STATUS, "Status", StructType(StatusEntry)),
        _attribute(
            ENDPOINT_GROUP_ID_LIST, "EndpointGroupIDList", List(StructType(EndpointGroupIDEntry), MAX_PER_NODE_ENTRIES)
        ),
        _attribute(
            ENDPOINT_BINDING_LIST, "EndpointBindingList", List(StructType(EndpointBindingEntry), MAX_PER_NODE_ENTRIES)
        ),
        _attribute(NODE_KEY_SET_LIST, "NodeKeySetList", List(StructType(NodeKeySetEntry), MAX_PER_NODE_ENTRIES)),
        _attribute(NODE_ACL_LIST, "NodeACLList", List(StructType(ACLEntry), MAX_PER_NODE_ENTRIES)),
        _attribute(NODE_ENDPOINT_LIST, "NodeEndpointList", List(StructType(EndpointEntry), MAX_PER_NODE_ENTRIES)),
    ),
    commands=(
        _command(0x00, AddKeySet),
        _command(0x01, UpdateKeySet),
        _command(0x02, RemoveKeySet),
        _command(0x03, AddGroup),
        _command(0x04, UpdateGroup),
        _command(0x05, RemoveGroup),
        _command(0x06, AddAdmin),
        _command(0x07, UpdateAdmin),
        _command(0x08, RemoveAdmin),
        _command(0x09, AddPendingNode),
        _command(0x0A, RefreshNode),
        _command(0x0B, UpdateNode),
        _command(0x0C, RemoveNode),
        _command(0x0D, UpdateEndpointForNode),
        _command(0x0E, AddGroupIDToEndpointForNode),
        _command(0x0F, RemoveGroupIDFromEndpointForNode),
        _command(0x10, AddBindingToEndpointForNode),
        _command(0x11, RemoveBindingFromEndpointForNode),
        _command(0x12, AddACLToNode),
        _command(0x13, RemoveACLFromNode),
    ),
)
