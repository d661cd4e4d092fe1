"""Groups server (Application Cluster spec 1.3) on one endpoint, its membership kept in Group Key Management's
GroupTable (Core spec 11.2.6.2), which is where a node records which of its endpoints are in which group.

Served by the fleet simulator's peers (``jfds_device/fleet``), whose endpoint 1 the reconciler pushes group
membership to. What a peer answers, as the CHIP SDK's groups-server.cpp and matter.js GroupsServer.ts do:

* AddGroup: UNSUPPORTED_ACCESS in the response when the accessing fabric has no GroupKeyMap entry for the group
  (1.3.7.1: "the group has no key set"); RESOURCE_EXHAUSTED when the fabric's GroupTable already holds
  MaxGroupsPerFabric groups; CONSTRAINT_ERROR for a name over 16 bytes or group id 0 (the schema refuses both);
  adding a group the endpoint is in again updates its name (SUCCESS).
* RemoveGroup / ViewGroup: NOT_FOUND when the endpoint is not in the group.
* GetGroupMembership: the endpoint's groups of the accessing fabric, filtered by the request's list when it is
  not empty; Capacity null (unknown: the table is shared by every endpoint and fabric).
* RemoveAllGroups: this endpoint leaves every group of the accessing fabric.
* AddGroupIfIdentifying: there is no Identify cluster here, so the endpoint is never identifying and nothing is
  added (SUCCESS, 1.3.7.6).
"""

from __future__ import annotations

import dataclasses

from clusters.group_key_management import schema as gkm
from clusters.group_key_management.server import GroupKeyManagementServer
from clusters.groups import schema
from clusters.groups.schema import (
    AddGroup,
    AddGroupIfIdentifying,
    AddGroupResponse,
    GetGroupMembership,
    GetGroupMembershipResponse,
    NameSupportBitmap,
    RemoveAllGroups,
    RemoveGroup,
    RemoveGroupResponse,
    ViewGroup,
    ViewGroupResponse,
)
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.errors import ActionError
from jfds_device.im.provider import RequestContext, Status

__all__ = ["GroupsServer"]


class GroupsServer(ClusterServer):
    """Cluster 0x0004 on one endpoint; ``group_keys`` is the node's Group Key Management server."""

    CLUSTER = schema.CLUSTER

    def __init__(self, group_keys: GroupKeyManagementServer) -> None:
        super().__init__()
        self._group_keys = group_keys
        self.set(schema.NAME_SUPPORT, NameSupportBitmap.GROUP_NAMES)

    @property
    def feature_map(self) -> int:
        return int(schema.Feature.GROUP_NAMES)

    def _endpoint(self) -> int:
        if self.endpoint is None:
            raise ActionError(Status.FAILURE, message="the Groups server is not mounted")
        return self.endpoint

    def _table(self, fabric_index: int) -> list[gkm.GroupInfoMapStruct]:
        return list(self._group_keys.fabric_entries(gkm.GROUP_TABLE, fabric_index))

    def memberships(self, fabric_index: int) -> dict[int, str]:
        """This endpoint's groups on ``fabric_index``: group id -> name."""
        endpoint = self._endpoint()
        return {e.group_id: e.group_name or "" for e in self._table(fabric_index) if endpoint in e.endpoints}

    def _has_key(self, fabric_index: int, group_id: int) -> bool:
        return any(e.group_id == group_id for e in self._group_keys.fabric_entries(gkm.GROUP_KEY_MAP, fabric_index))

    def _add(self, fabric_index: int, group_id: int, name: str) -> Status:
        if not self._has_key(fabric_index, group_id):
            return Status.UNSUPPORTED_ACCESS
        endpoint = self._endpoint()
        table = self._table(fabric_index)
        for i, entry in enumerate(table):
            if entry.group_id == group_id:
                endpoints = entry.endpoints if endpoint in entry.endpoints else [*entry.endpoints, endpoint]
                table[i] = dataclasses.replace(entry, endpoints=endpoints, group_name=name)
                break
        else:
            table.append(gkm.GroupInfoMapStruct(group_id=group_id, endpoints=[endpoint], group_name=name))
        try:
            self._group_keys.set_group_table(fabric_index, table)
        except ActionError as exc:  # MaxGroupsPerFabric reached: RESOURCE_EXHAUSTED
            return Status(exc.status)
        return Status.SUCCESS

    def _leave(self, fabric_index: int, group_ids: set[int] | None) -> bool:
        """This endpoint leaves ``group_ids`` (None: all of the fabric's); whether it was in any of them."""
        endpoint, left = self._endpoint(), False
        table = []
        for entry in self._table(fabric_index):
            if endpoint in entry.endpoints and (group_ids is None or entry.group_id in group_ids):
                left = True
                remaining = [e for e in entry.endpoints if e != endpoint]
                if remaining:  # other endpoints stay in the group
                    table.append(dataclasses.replace(entry, endpoints=remaining))
                continue
            table.append(entry)
        if left:
            self._group_keys.set_group_table(fabric_index, table)
        return left

    # ------------------------------------------------------------------------------------------ commands

    def on_add_group(self, ctx: RequestContext, request: AddGroup) -> AddGroupResponse:
        status = self._add(ctx.subject.fabric_index, request.group_id, request.group_name)
        return AddGroupResponse(status=int(status), group_id=request.group_id)

    def on_view_group(self, ctx: RequestContext, request: ViewGroup) -> ViewGroupResponse:
        name = self.memberships(ctx.subject.fabric_index).get(request.group_id)
        if name is None:
            return ViewGroupResponse(status=int(Status.NOT_FOUND), group_id=request.group_id, group_name="")
        return ViewGroupResponse(status=int(Status.SUCCESS), group_id=request.group_id, group_name=name)

    def on_get_group_membership(self, ctx: RequestContext, request: GetGroupMembership) -> GetGroupMembershipResponse:
        mine = sorted(self.memberships(ctx.subject.fabric_index))
        wanted = set(request.group_list)
        listed = [g for g in mine if not wanted or g in wanted]
        return GetGroupMembershipResponse(capacity=NULL, group_list=listed)

    def on_remove_group(self, ctx: RequestContext, request: RemoveGroup) -> RemoveGroupResponse:
        found = self._leave(ctx.subject.fabric_index, {request.group_id})
        status = Status.SUCCESS if found else Status.NOT_FOUND
        return RemoveGroupResponse(status=int(status), group_id=request.group_id)

    def on_remove_all_groups(self, ctx: RequestContext, request: RemoveAllGroups) -> None:
        self._leave(ctx.subject.fabric_index, None)

    def on_add_group_if_identifying(self, ctx: RequestContext, request: AddGroupIfIdentifying) -> None:
        return None  # no Identify cluster: never identifying, so nothing is added (1.3.7.6)
