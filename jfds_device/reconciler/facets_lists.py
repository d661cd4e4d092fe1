"""Whole-list facets: the ACL (band 40) and bindings (band 45), both read-merge-write matched by value.

Node entries carry no ListID, so they are matched by value: an ACL entry by privilege, auth mode and its
subjects and targets as multisets (``acl_value_key``, the reference's ApplyAclEdit rule; issue #74377), a
binding by its target. Entries the datastore does not name (another administrator's, the commissioner's admin
entry) are never removed or reordered. An ACL edit (UpdateGroup) replaces the superseded value in place. The
entry that grants us Administer is never removed (we would lose the node). Capacity (9.10.6.3-5): an entry with
more subjects or targets than the node supports, or that does not fit AccessControlEntriesPerFabric (which
counts the admin entry), is RESOURCE_EXHAUSTED without a write that the node would refuse whole; when the live
subscription has a current ACL (``PeerContext.acl_view``) and it shows that none of the pass's adds fits, they are
refused from it, without reading the list either (9.10.6.5 counts the accessing fabric's entries: the fabric-filtered
list the subscription reports).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from clusters.access_control import schema as ac
from clusters.binding import schema as binding
from clusters.joint_fabric_datastore.schema import (
    AccessControlEntry,
    AccessControlTarget,
    BindingTarget,
)
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL
from jfds_device.datastore.jfds import acl_value_key
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.errors import IMStatusError, MatterError
from jfds_device.im.provider import Status
from jfds_device.reconciler.facets import ABSENT, Facet
from jfds_device.reconciler.lists import ListOp, ListPath, merge_list, write_merged
from jfds_device.reconciler.peer import OwnIdentity, PeerContext
from jfds_device.reconciler.plan import BAND_ACL, BAND_BINDING

__all__ = ["AclFacet", "BindingFacet", "ace_from_raw", "ace_to_raw", "binding_key", "binding_to_raw", "list_holds"]

ACL = ListPath(0, ac.CLUSTER.attribute(ac.ACL))
BINDING = binding.CLUSTER.attribute(binding.BINDING)
_ACL, _BINDINGS = "acl", "bindings"

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- ACL values


def ace_from_raw(raw: Any) -> AccessControlEntry | None:
    """A peer's AccessControlEntryStruct (TLV, decoded by the AccessControl schema) as the datastore's value;
    None if it is not one we can read (such an entry is foreign to us and only ever kept)."""
    struct: ac.AccessControlEntryStruct | None = ACL.attribute.decode_item(raw)
    if struct is None:
        return None
    try:
        return AccessControlEntry(
            privilege=struct.privilege,
            auth_mode=struct.auth_mode,
            subjects=struct.subjects if struct.subjects is NULL else list(struct.subjects),  # type: ignore[call-overload]
            targets=struct.targets if struct.targets is NULL else [
                AccessControlTarget(cluster=t.cluster, endpoint=t.endpoint, device_type=t.device_type)
                for t in struct.targets  # type: ignore[attr-defined]
            ],
        )
    except MatterError:
        return None


def ace_to_raw(ace: AccessControlEntry, fabric_index: int | None) -> dict[int, Any]:
    """The datastore's value as the peer's AccessControlEntryStruct (TLV); FabricIndex as the peer numbers our
    fabric when known (the server stamps it anyway, Core spec 7.13.6)."""
    struct = ac.AccessControlEntryStruct(
        privilege=ace.privilege,
        auth_mode=ace.auth_mode,
        subjects=ace.subjects if ace.subjects is NULL else list(ace.subjects),  # type: ignore[call-overload]
        targets=ace.targets if ace.targets is NULL else [
            ac.AccessControlTargetStruct(cluster=t.cluster, endpoint=t.endpoint, device_type=t.device_type)
            for t in ace.targets  # type: ignore[attr-defined]
        ],
        fabric_index=fabric_index,
    )
    return struct.to_tlv()


def _acl_key(raw: Any) -> Hashable | None:
    ace = ace_from_raw(raw)
    return None if ace is None else acl_value_key(ace)


def list_holds(entry: Entry, elements: Sequence[Any]) -> bool:
    """Whether a peer's ACL or Binding list (its TLV elements, as a read or a subscription report gives them)
    holds ``entry`` (an ACL or Binding entry), by the same keys the facets' ``present`` use."""
    if entry.ref.kind is EntryKind.ACL:
        return acl_value_key(entry.value.acl_entry) in {_acl_key(raw) for raw in elements}
    return binding_key(binding_to_raw(entry.value.binding, None)) in {binding_key(r) for r in elements}


def grants_us(own: OwnIdentity | None, raw: Any) -> bool:
    """Whether a peer ACL entry grants us Administer over CASE on the whole node (what lets us manage it)."""
    if own is None:
        return False
    entry: ac.AccessControlEntryStruct | None = ACL.attribute.decode_item(raw)
    if entry is None or entry.privilege != Privilege.ADMINISTER or entry.auth_mode != AuthMode.CASE:
        return False
    subjects = () if entry.subjects is NULL else entry.subjects
    return entry.targets is NULL and any(own.matches(int(s)) for s in subjects)  # type: ignore[attr-defined]


def _count(value: Any) -> int:
    return 0 if value is NULL or value is None else len(value)


def _refused_by_view(ctx: PeerContext, ops: Sequence[ListOp]) -> dict[EntryRef, int] | None:
    """RESOURCE_EXHAUSTED for every op, when ``ops`` are all adds and the subscription's current ACL shows that
    none of them fits AccessControlEntriesPerFabric (no read, no write); None when the list must be read."""
    limit = ctx.capacities.acl_entries
    if not ops or limit is None or ctx.acl_view is None or any(not op.is_add for op in ops):
        return None
    held = ctx.acl_view.current()
    if held is None:
        return None
    _, codes = merge_list(held, ops, _acl_key, limit=limit)
    if any(codes.get(op.ref) != Status.RESOURCE_EXHAUSTED for op in ops):
        return None  # something fits (or is there already): the read-merge-write decides, on a fresh read
    log.info("node 0x%016X: ACL full (%d of %d entries, as the subscription reports it): %d entr%s refused",
             ctx.node_id, len(held), limit, len(ops), "y" if len(ops) == 1 else "ies")
    return codes


class AclFacet(Facet):
    band = BAND_ACL
    kind = EntryKind.ACL
    name = "acl"
    combined = True

    def _live_keys(self, ctx: PeerContext, leaving: set[EntryRef]) -> set[bytes]:
        """Value keys of the node's other entries the datastore wants on the node (not to be dropped as
        someone's superseded value)."""
        return {
            acl_value_key(e.value.acl_entry) for e in ctx.entries
            if e.ref.kind is EntryKind.ACL and not e.removal and e.ref not in leaving
        }

    async def apply_and_remove(
        self, ctx: PeerContext, applies: Sequence[Entry], removes: Sequence[Entry]
    ) -> dict[EntryRef, int]:
        caps = ctx.capacities
        codes: dict[EntryRef, int] = {}
        ops: list[ListOp] = []
        for entry in removes:
            others = self._live_keys(ctx, {entry.ref})
            values = [entry.value.acl_entry, *entry.superseded]
            ops.append(ListOp(entry.ref, drop=frozenset(k for k in map(acl_value_key, values) if k not in others)))
        for entry in applies:
            ace: AccessControlEntry = entry.value.acl_entry
            if (caps.subjects is not None and _count(ace.subjects) > caps.subjects) or (
                    caps.targets is not None and _count(ace.targets) > caps.targets):
                codes[entry.ref] = Status.RESOURCE_EXHAUSTED
                continue
            others = self._live_keys(ctx, {entry.ref})
            superseded = frozenset(k for k in map(acl_value_key, entry.superseded) if k not in others)
            ops.append(ListOp(entry.ref, drop=superseded, key=acl_value_key(ace),
                              raw=ace_to_raw(ace, caps.fabric_index)))
        full = _refused_by_view(ctx, ops)
        if full is not None:
            codes.update(full)
        elif ops:
            writes = ctx.io.write_n
            try:
                written, ctx.cache[_ACL] = await write_merged(
                    ctx.io, ACL, ops, _acl_key, limit=caps.acl_entries,
                    protected=lambda raw: grants_us(ctx.own, raw), attempts=ctx.list_write_attempts)
            finally:
                if ctx.acl_view is not None and ctx.io.write_n != writes:
                    ctx.acl_view.wrote()  # the cached ACL is behind until the subscription reports our write
            codes.update(written)
        return codes

    async def apply(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        return await self.apply_and_remove(ctx, entries, ())

    async def remove(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        return await self.apply_and_remove(ctx, (), entries)

    async def observe(self, ctx: PeerContext) -> None:
        ctx.cache[_ACL] = await ctx.io.read_list_value(ACL.endpoint, ACL.attribute)

    def present(self, ctx: PeerContext, entry: Entry) -> bool | None:
        held = ctx.cache.get(_ACL)
        if held is None:
            return None
        return acl_value_key(entry.value.acl_entry) in {_acl_key(raw) for raw in held}


# ---------------------------------------------------------------------------------------------- bindings


def binding_key(raw: Any) -> Hashable | None:
    """A binding target's identity: (node, group, endpoint, cluster), absent fields None; None for an element
    the Binding schema cannot read."""
    target: binding.TargetStruct | None = BINDING.decode_item(raw)
    return None if target is None else (target.node, target.group, target.endpoint, target.cluster)


def binding_to_raw(target: BindingTarget, fabric_index: int | None) -> dict[int, Any]:
    return binding.TargetStruct(node=target.node, group=target.group, endpoint=target.endpoint,
                                cluster=target.cluster, fabric_index=fabric_index).to_tlv()


def _path(endpoint: int) -> ListPath:
    return ListPath(endpoint, BINDING)


class BindingFacet(Facet):
    """Per endpoint: the endpoint's whole Binding list is read, merged and written once per pass."""

    band = BAND_BINDING
    kind = EntryKind.BINDING
    name = "binding"
    combined = True

    async def apply_and_remove(
        self, ctx: PeerContext, applies: Sequence[Entry], removes: Sequence[Entry]
    ) -> dict[EntryRef, int]:
        fabric_index = ctx.capacities.fabric_index
        per_endpoint: dict[int, list[ListOp]] = defaultdict(list)
        for entry in removes:
            key = binding_key(binding_to_raw(entry.value.binding, None))
            per_endpoint[entry.ref.endpoint_id].append(ListOp(entry.ref, drop=frozenset({key})))  # type: ignore[index]
        for entry in applies:
            raw = binding_to_raw(entry.value.binding, fabric_index)
            per_endpoint[entry.ref.endpoint_id].append(ListOp(entry.ref, key=binding_key(raw), raw=raw))  # type: ignore[index]
        codes: dict[EntryRef, int] = {}
        held = ctx.cache.setdefault(_BINDINGS, {})
        for endpoint, ops in sorted(per_endpoint.items()):
            try:
                written, held[endpoint] = await write_merged(ctx.io, _path(endpoint), ops, binding_key,
                                                             attempts=ctx.list_write_attempts)
            except IMStatusError as exc:  # the read failed: e.g. no Binding cluster on that endpoint
                gone = exc.status in ABSENT  # then a removal is done: the endpoint cannot hold the binding
                written = {op.ref: Status.SUCCESS if gone and not op.is_add else exc.status for op in ops}
            codes.update(written)
        return codes

    async def apply(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        return await self.apply_and_remove(ctx, entries, ())

    async def remove(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        return await self.apply_and_remove(ctx, (), entries)

    async def observe(self, ctx: PeerContext) -> None:
        endpoints = sorted({e.ref.endpoint_id for e in ctx.entries if e.ref.kind is EntryKind.BINDING})
        held: dict[int, list[Any]] = {}
        for endpoint in endpoints:
            try:
                held[endpoint] = await ctx.io.read_list_value(endpoint, BINDING)  # type: ignore[arg-type]
            except IMStatusError:
                continue
        ctx.cache[_BINDINGS] = held

    def present(self, ctx: PeerContext, entry: Entry) -> bool | None:
        held = ctx.cache.get(_BINDINGS, {}).get(entry.ref.endpoint_id)
        if held is None:
            return None
        return binding_key(binding_to_raw(entry.value.binding, None)) in {binding_key(r) for r in held}
