"""Groups cluster 0x0004 (Application Cluster spec 1.3): ids, structs and commands.

jfds-device itself does not serve Groups (the fleet simulator's peers do, ``server.py``); the reconciler
invokes AddGroup / RemoveGroup on peer endpoints to push EndpointGroupIDList entries (Core spec 11.24.7.15/16).
Tags cross-checked with ``chip.clusters.Objects.Groups`` (home-assistant-chip-clusters 2025.7.0) in
tests/reconciler/test_schemas.py.

A peer answers AddGroup with UNSUPPORTED_ACCESS in the response's Status field when the group has no
GroupKeyMap entry for the caller's fabric (1.3.7.1; matter.js packages/node/src/behaviors/groups/GroupsServer.ts),
so the key set and the map entry must be on the node first.
"""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import UINT8, UINT16, Bitmap, List, Str, Struct, UInt, field, struct

CLUSTER_ID = 0x0004
GROUP_NAME_MAX = 16  # 1.3.7.1: GroupName is at most 16 bytes
GROUP_ID = UInt(16, 1)  # 0 is not a group (Core spec 4.17.3.1)


class NameSupportBitmap(enum.IntFlag):
    GROUP_NAMES = 0x80


class Feature(enum.IntFlag):
    GROUP_NAMES = 0x1


# Attribute ids (1.3.6).
NAME_SUPPORT = 0x0000

# Command ids (1.3.7); responses share their request's id.
ADD_GROUP = 0x00
VIEW_GROUP = 0x01
GET_GROUP_MEMBERSHIP = 0x02
REMOVE_GROUP = 0x03
REMOVE_ALL_GROUPS = 0x04
ADD_GROUP_IF_IDENTIFYING = 0x05


@struct
class AddGroup(Struct):
    group_id: int = field(0, GROUP_ID)
    group_name: str = field(1, Str(max_length=GROUP_NAME_MAX))


@struct
class AddGroupResponse(Struct):
    status: int = field(0, UINT8)  # an IM status code (1.3.7.7)
    group_id: int = field(1, UINT16)


@struct
class ViewGroup(Struct):
    group_id: int = field(0, GROUP_ID)


@struct
class ViewGroupResponse(Struct):
    status: int = field(0, UINT8)
    group_id: int = field(1, UINT16)
    group_name: str = field(2, Str(max_length=GROUP_NAME_MAX))


@struct
class GetGroupMembership(Struct):
    group_list: list[int] = field(0, List(UINT16))


@struct
class GetGroupMembershipResponse(Struct):
    capacity: object = field(0, UINT8, nullable=True)
    group_list: list[int] = field(1, List(UINT16))


@struct
class RemoveGroup(Struct):
    group_id: int = field(0, GROUP_ID)


@struct
class RemoveGroupResponse(Struct):
    status: int = field(0, UINT8)
    group_id: int = field(1, UINT16)


@struct
class RemoveAllGroups(Struct):
    pass


@struct
class AddGroupIfIdentifying(Struct):
    group_id: int = field(0, GROUP_ID)
    group_name: str = field(1, Str(max_length=GROUP_NAME_MAX))


_M, _O = Privilege.MANAGE, Privilege.OPERATE

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="Groups",
    revision=4,
    attributes=(AttributeDef(NAME_SUPPORT, "NameSupport", Bitmap(NameSupportBitmap)),),
    commands=(
        # 1.3.7: every command is fabric-scoped; the changing ones need Manage, the queries Operate.
        CommandDef(ADD_GROUP, "AddGroup", AddGroup, ADD_GROUP, AddGroupResponse, privilege=_M, fabric_scoped=True),
        CommandDef(VIEW_GROUP, "ViewGroup", ViewGroup, VIEW_GROUP, ViewGroupResponse, privilege=_O,
                   fabric_scoped=True),
        CommandDef(GET_GROUP_MEMBERSHIP, "GetGroupMembership", GetGroupMembership, GET_GROUP_MEMBERSHIP,
                   GetGroupMembershipResponse, privilege=_O, fabric_scoped=True),
        CommandDef(REMOVE_GROUP, "RemoveGroup", RemoveGroup, REMOVE_GROUP, RemoveGroupResponse, privilege=_M,
                   fabric_scoped=True),
        CommandDef(REMOVE_ALL_GROUPS, "RemoveAllGroups", RemoveAllGroups, privilege=_M, fabric_scoped=True),
        CommandDef(ADD_GROUP_IF_IDENTIFYING, "AddGroupIfIdentifying", AddGroupIfIdentifying, privilege=_M,
                   fabric_scoped=True),
    ),
)
