"""Group facets: key sets (band 10), the GroupKeyMap (band 20) and Groups membership (band 30).

Order on the peer: KeySetWrite → GroupKeyMap → Groups.AddGroup (AddGroup needs the group's GroupKeyMap entry:
Application Cluster spec 1.3.7.1, matter.js packages/node/src/behaviors/groups/GroupsServer.ts), removal in
reverse. Key set 0 is the fabric's IPK: it is never written or removed (matter.js accepts KeySetWrite with id 0
and would overwrite every administrator's CASE key). KeySetRemove also drops the set's map entries on the node.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from clusters.group_key_management import schema as gkm
from clusters.groups import schema as groups
from clusters.joint_fabric_datastore.schema import DatastoreState, GroupKeyMulticastPolicy, GroupKeySet
from jfds_device.codec.schema import NULL
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.errors import IMStatusError
from jfds_device.im.provider import Status
from jfds_device.reconciler.facets import ABSENT, Facet, ok_all
from jfds_device.reconciler.lists import ListOp, ListPath, write_merged
from jfds_device.reconciler.peer import PeerContext
from jfds_device.reconciler.plan import BAND_GROUP_KEY_MAP, BAND_KEY_SET, BAND_MEMBERSHIP
from jfds_device.reconciler.rotation import start_times

__all__ = ["GroupKeyMapFacet", "KeySetFacet", "MembershipFacet", "group_name", "key_set_write_request"]

ROOT = 0
GROUP_KEY_MAP = ListPath(ROOT, gkm.CLUSTER.attribute(gkm.GROUP_KEY_MAP))
GROUP_TABLE = gkm.CLUSTER.attribute(gkm.GROUP_TABLE)
IPK = gkm.IPK_KEY_SET_ID
_INDICES, _MAP, _TABLE, _START_TIMES = "key_set_indices", "group_key_map", "group_table", "key_set_start_times"


def key_set_write_request(key_set: GroupKeySet) -> gkm.KeySetWrite:
    """KeySetWrite's request (11.2.7.1) from a GroupKeySetList entry. The provisional GroupKeyMulticastPolicy
    (tag 8) goes only when it is not the default PerGroupID: peers that predate it ignore or default it."""
    fields = {
        "group_key_set_id": key_set.group_key_set_id,
        "group_key_security_policy": gkm.GroupKeySecurityPolicyEnum(int(key_set.group_key_security_policy)),
        "epoch_key0": key_set.epoch_key0,
        "epoch_start_time0": key_set.epoch_start_time0,
        "epoch_key1": key_set.epoch_key1,
        "epoch_start_time1": key_set.epoch_start_time1,
        "epoch_key2": key_set.epoch_key2,
        "epoch_start_time2": key_set.epoch_start_time2,
    }
    if key_set.group_key_multicast_policy == GroupKeyMulticastPolicy.PER_GROUP_ID:
        return gkm.KeySetWrite(group_key_set=gkm.GroupKeySetStruct(**fields))
    policy = gkm.GroupKeyMulticastPolicyEnum(int(key_set.group_key_multicast_policy))
    extended = gkm.GroupKeySetWithMulticastPolicy(**fields, group_key_multicast_policy=policy)
    return gkm.KeySetWrite(group_key_set=extended)


def group_name(name: str) -> str:
    """A GroupList FriendlyName (32 bytes) cut to a Groups GroupName (16 bytes) on a character boundary."""
    raw = name.encode()[: groups.GROUP_NAME_MAX]
    return raw.decode(errors="ignore")


async def _indices(ctx: PeerContext) -> set[int]:
    if _INDICES not in ctx.cache:
        response = await ctx.io.invoke(ROOT, gkm.KeySetReadAllIndices())
        ctx.cache[_INDICES] = set(response.group_key_set_ids if response is not None else ())
    indices: set[int] = ctx.cache[_INDICES]
    return indices


class KeySetFacet(Facet):
    band = BAND_KEY_SET
    kind = EntryKind.NODE_KEY_SET
    name = "key_set"

    async def apply(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        codes: dict[EntryRef, int] = {}
        for entry in entries:
            codes[entry.ref] = await self._write(ctx, entry.ref.key)  # type: ignore[arg-type]
        return codes

    async def _write(self, ctx: PeerContext, key_set_id: int) -> int:
        if key_set_id == IPK:
            return Status.CONSTRAINT_ERROR  # never overwrite the IPK
        key_set = ctx.key_set(key_set_id)
        if key_set is None or key_set.epoch_key0 is NULL:
            # Not in GroupKeySetList, or copied from a node by RefreshNode (KeySetRead returns no keys).
            return Status.CONSTRAINT_ERROR
        indices = await _indices(ctx)
        limit = ctx.capacities.max_group_keys
        if key_set_id not in indices and limit is not None and len(indices | {IPK}) >= limit:
            return Status.RESOURCE_EXHAUSTED  # MaxGroupKeysPerFabric counts the IPK (11.2.6.4)
        try:
            await ctx.io.invoke(ROOT, key_set_write_request(key_set))
        except IMStatusError as exc:
            return exc.status
        indices.add(key_set_id)
        return Status.SUCCESS

    async def remove(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        codes: dict[EntryRef, int] = {}
        for entry in entries:
            key_set_id: int = entry.ref.key  # type: ignore[assignment]
            if key_set_id == IPK:
                codes[entry.ref] = Status.CONSTRAINT_ERROR
                continue
            try:
                await ctx.io.invoke(ROOT, gkm.KeySetRemove(group_key_set_id=key_set_id))
                codes[entry.ref] = Status.SUCCESS
            except IMStatusError as exc:  # NOT_FOUND: the node does not hold it, which is what we want
                codes[entry.ref] = Status.SUCCESS if exc.status == Status.NOT_FOUND else exc.status
            ctx.cache.get(_INDICES, set()).discard(key_set_id)
            ctx.cache.pop(_MAP, None)  # the node dropped the set's map entries too
        return codes

    async def observe(self, ctx: PeerContext) -> None:
        """The node's key set ids, and the epoch start times of each Committed set it holds: what KeySetRead
        shows (it never returns keys, 11.2.7.2), and what tells one epoch schedule (a rotation's phase) from
        another (as the Node Manager's groupKey kind verifies)."""
        ctx.cache.pop(_INDICES, None)
        indices = await _indices(ctx)
        held: dict[int, tuple[Any, ...]] = {}
        for entry in ctx.entries:
            key_set_id = entry.ref.key
            if entry.ref.kind is EntryKind.NODE_KEY_SET and key_set_id != IPK and key_set_id in indices and \
                    entry.state is DatastoreState.COMMITTED and not entry.removal:
                try:
                    response = await ctx.io.invoke(ROOT, gkm.KeySetRead(group_key_set_id=key_set_id))
                except IMStatusError as exc:
                    if exc.status != Status.NOT_FOUND:
                        raise
                    indices.discard(key_set_id)  # gone since the indices were read
                    continue
                if response is not None:
                    held[key_set_id] = start_times(response.group_key_set)  # type: ignore[index]
        ctx.cache[_START_TIMES] = held

    def present(self, ctx: PeerContext, entry: Entry) -> bool | None:
        indices = ctx.cache.get(_INDICES)
        if indices is None:
            return None
        if entry.ref.key not in indices:
            return False
        held = ctx.cache.get(_START_TIMES, {}).get(entry.ref.key)
        wanted = ctx.key_set(entry.ref.key)  # type: ignore[arg-type]
        if held is None or wanted is None or wanted.epoch_key0 is NULL:
            return True  # the id is there; the datastore has no keys to compare (copied by RefreshNode)
        return held == start_times(wanted)


def _map_entry(element: Any) -> gkm.GroupKeyMapStruct | None:
    entry: gkm.GroupKeyMapStruct | None = GROUP_KEY_MAP.attribute.decode_item(element)
    return entry


def _map_key(element: Any) -> Hashable | None:
    """A GroupKeyMap element's identity: its group id (None for an element the schema cannot read)."""
    entry = _map_entry(element)
    return None if entry is None else entry.group_id


def _desired_key_set(ctx: PeerContext, group_id: int) -> int | None:
    group = ctx.store.group(group_id)
    if group is None or group.group_key_set_id is NULL or group.group_key_set_id == IPK:
        return None
    key_set: int = group.group_key_set_id  # type: ignore[assignment]
    return key_set


class GroupKeyMapFacet(Facet):
    """The node-wide GroupKeyMap: one entry per group (not per endpoint), upserted by group id."""

    band = BAND_GROUP_KEY_MAP
    kind = EntryKind.ENDPOINT_GROUP
    name = "group_key_map"

    def _element(self, ctx: PeerContext, group_id: int, key_set_id: int) -> dict[int, Any]:
        """Our map entry in the list's TLV form; FabricIndex as the peer numbers our fabric when known."""
        return gkm.GroupKeyMapStruct(group_id=group_id, group_key_set_id=key_set_id,
                                     fabric_index=ctx.capacities.fabric_index).to_tlv()

    async def apply(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        codes: dict[EntryRef, int] = {}
        ops = []
        for entry in entries:
            group_id: int = entry.ref.key  # type: ignore[assignment]
            key_set = _desired_key_set(ctx, group_id)
            if key_set is None:
                # The group is not in GroupList or has no key set: mapping it would fail on every node.
                codes[entry.ref] = Status.CONSTRAINT_ERROR
                continue
            ops.append(ListOp(entry.ref, key=group_id, raw=self._element(ctx, group_id, key_set)))
        if ops:
            written, ctx.cache[_MAP] = await write_merged(ctx.io, GROUP_KEY_MAP, ops, _map_key,
                                                          limit=ctx.capacities.max_groups,
                                                          attempts=ctx.list_write_attempts)
            codes.update(written)
        return codes

    async def remove(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        leaving = {e.ref for e in entries}
        still_used = {
            e.ref.key for e in ctx.entries
            if e.ref.kind is EntryKind.ENDPOINT_GROUP and not e.removal and e.ref not in leaving
        }
        codes = ok_all([e for e in entries if e.ref.key in still_used])  # another endpoint keeps the group
        ops = [ListOp(e.ref, drop=frozenset({e.ref.key})) for e in entries if e.ref.key not in still_used]
        if ops:
            written, ctx.cache[_MAP] = await write_merged(ctx.io, GROUP_KEY_MAP, ops, _map_key,
                                                          attempts=ctx.list_write_attempts)
            codes.update(written)
        return codes

    async def observe(self, ctx: PeerContext) -> None:
        ctx.cache[_MAP] = await ctx.io.read_list_value(ROOT, GROUP_KEY_MAP.attribute)

    def present(self, ctx: PeerContext, entry: Entry) -> bool | None:
        mapped = ctx.cache.get(_MAP)
        if mapped is None:
            return None
        found = {e.group_id: e.group_key_set_id for e in map(_map_entry, mapped) if e is not None}
        if entry.ref.key not in found:
            return False
        desired = _desired_key_set(ctx, entry.ref.key)  # type: ignore[arg-type]
        return desired is None or found[entry.ref.key] == desired


class MembershipFacet(Facet):
    """Groups.AddGroup / RemoveGroup on the entry's endpoint; the response's Status field is the outcome."""

    band = BAND_MEMBERSHIP
    kind = EntryKind.ENDPOINT_GROUP
    name = "membership"

    async def _command(self, ctx: PeerContext, entry: Entry, request: groups.AddGroup | groups.RemoveGroup) -> int:
        try:
            response = await ctx.io.invoke(entry.ref.endpoint_id, request)  # type: ignore[arg-type]
        except IMStatusError as exc:  # e.g. UNSUPPORTED_CLUSTER: the endpoint has no Groups server
            return exc.status
        return Status.SUCCESS if response is None else int(response.status)

    async def apply(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        codes: dict[EntryRef, int] = {}
        for entry in entries:
            group = ctx.store.group(entry.ref.key)  # type: ignore[arg-type]
            name = group_name(group.friendly_name) if group is not None else ""
            request = groups.AddGroup(group_id=entry.ref.key, group_name=name)  # type: ignore[arg-type]
            codes[entry.ref] = await self._command(ctx, entry, request)
        ctx.cache.pop(_TABLE, None)
        return codes

    async def remove(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        codes: dict[EntryRef, int] = {}
        for entry in entries:
            status = await self._command(ctx, entry, groups.RemoveGroup(group_id=entry.ref.key))  # type: ignore[arg-type]
            codes[entry.ref] = Status.SUCCESS if status in ABSENT else status  # gone is what we want
        ctx.cache.pop(_TABLE, None)
        return codes

    async def observe(self, ctx: PeerContext) -> None:
        table: list[gkm.GroupInfoMapStruct] = await ctx.io.read_items(ROOT, GROUP_TABLE)
        ctx.cache[_TABLE] = {e.group_id: set(e.endpoints) for e in table}

    def present(self, ctx: PeerContext, entry: Entry) -> bool | None:
        table = ctx.cache.get(_TABLE)
        return None if table is None else entry.ref.endpoint_id in table.get(entry.ref.key, set())

