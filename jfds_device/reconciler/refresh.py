"""RefreshNode (Core spec 11.24.7.11): mirror what a node holds into the datastore, 1:1.

Stages (those of connectedhomeip src/app/server/JointFabricDatastore.cpp, RefreshState), all read in one
ReadRequest plus one KeySetReadAllIndices:

1. endpoints: Descriptor PartsList of endpoint 0, plus endpoint 0 itself (``sync_endpoints``);
2. group memberships: GroupKeyManagement.GroupTable (one fabric-filtered read covers every endpoint);
3. bindings: Binding of every endpoint that has the cluster (a wildcard read);
4. key sets: KeySetReadAllIndices, without key set 0 (the IPK is the fabric's, never a node entry);
5. ACL: AccessControl.ACL, matched by value.

Per list: what the node holds and the datastore lacks is adopted as Committed (foreign entries included: the
commissioner's admin entry, ours); a Committed entry the node no longer holds is dropped; an entry being removed
that the node no longer holds is erased (the removal is done). Pending and failed entries stay: the push that
follows RefreshNode (``Mode.REFRESH``) writes them. An ACL value that is an entry's superseded value is not
adopted (the push replaces it).

Differences from the reference, on purpose: key sets found on the node are not copied into GroupKeySetList,
because KeySetRead returns no epoch keys (Core spec 11.2.7.2): a keyless copy would block AddKeySet of the real
set.
All adoption happens in one datastore transaction, so readers never see half a refresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from clusters.access_control import schema as ac
from clusters.binding import schema as binding
from clusters.descriptor import schema as descriptor
from clusters.group_key_management import schema as gkm
from clusters.joint_fabric_datastore.schema import BindingTarget, DatastoreState
from jfds_device.codec.model import AttributeRef
from jfds_device.datastore.jfds import JfdsStore, acl_value_key
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.errors import CapacityError, DatastoreError, IMStatusError
from jfds_device.im.client_messages import ReadResult
from jfds_device.im.provider import Status
from jfds_device.reconciler.facets_lists import ace_from_raw, binding_key, binding_to_raw
from jfds_device.reconciler.peer import PeerIO, decode_items

__all__ = ["NodeImage", "RefreshReport", "adopt", "read_node"]

log = logging.getLogger(__name__)

ROOT = 0
PARTS = descriptor.CLUSTER.attribute(descriptor.PARTS_LIST)
TABLE = gkm.CLUSTER.attribute(gkm.GROUP_TABLE)
ACL = ac.CLUSTER.attribute(ac.ACL)
BINDING = binding.CLUSTER.attribute(binding.BINDING)


@dataclass(slots=True)
class NodeImage:
    """What the node holds (None: that stage could not be read)."""

    endpoints: set[int] | None = None
    groups: set[tuple[int, int]] | None = None  # (endpoint, group id)
    bindings: dict[int, list[Any]] | None = None  # endpoint -> Binding list (TLV)
    key_sets: set[int] | None = None
    acl: list[Any] | None = None


@dataclass(slots=True)
class RefreshReport:
    failures: list[tuple[str, int]] = field(default_factory=list)  # (stage, IM status)
    adopted: int = 0
    dropped: int = 0
    erased: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def _value(result: ReadResult, attribute: AttributeRef, report: RefreshReport, stage: str) -> Any:
    """The attribute's value on the root endpoint as the peer sent it (TLV); None (a failed stage) if the peer
    reported a status, left it out, or sent a list attribute that is not a list."""
    try:
        value = result.value(ROOT, attribute.cluster_id, attribute.attribute_id)
    except IMStatusError as exc:
        report.failures.append((stage, exc.status))
        return None
    except KeyError:
        report.failures.append((stage, Status.FAILURE))
        return None
    if value is not None and type(value) is not list:
        report.failures.append((stage, Status.FAILURE))
        return None
    return value


async def read_node(io: PeerIO, report: RefreshReport) -> NodeImage:
    """Read stages 1-5. ``TransportError`` propagates; a refused path fails its stage only."""
    result = await io.read([(ROOT, PARTS), (ROOT, TABLE), (ROOT, ACL), (None, BINDING)])
    image = NodeImage()
    parts = _value(result, PARTS, report, "endpoints")
    if parts is not None:
        image.endpoints = {ROOT, *decode_items(PARTS, parts, io.node_id)}
    table = _value(result, TABLE, report, "groups")
    if table is not None:
        groups: list[gkm.GroupInfoMapStruct] = decode_items(TABLE, table, io.node_id)
        image.groups = {(endpoint, e.group_id) for e in groups for endpoint in e.endpoints}
    image.bindings = {
        path.endpoint: list(value) if type(value) is list else [] for path, value in result.attributes.items()
        if path.cluster == BINDING.cluster_id and path.attribute == BINDING.attribute_id
    }
    acl = _value(result, ACL, report, "acl")
    if acl is not None:
        image.acl = list(acl)
    try:
        indices = await io.invoke(ROOT, gkm.KeySetReadAllIndices())
        held = set(indices.group_key_set_ids) if indices is not None else set()
        image.key_sets = held - {gkm.IPK_KEY_SET_ID}
    except IMStatusError as exc:
        report.failures.append(("key_sets", exc.status))
    return image


def _settle(store: JfdsStore, entry: Entry, report: RefreshReport) -> None:
    """The node does not hold ``entry``: a finished removal is erased; a Committed entry is dropped (the node
    changed behind our back); anything else waits for the push."""
    if entry.removal:
        store.confirm_removed(entry.ref)
        report.erased += 1
    elif entry.state is DatastoreState.COMMITTED:
        store.request_removal(entry.ref)
        store.confirm_removed(entry.ref)
        report.dropped += 1


def adopt(store: JfdsStore, node_id: int, image: NodeImage, report: RefreshReport) -> None:
    """Mirror ``image`` into the datastore, in one transaction (see the module docstring)."""
    with store.transaction():
        if image.endpoints is not None:
            store.sync_endpoints(node_id, image.endpoints)
        endpoints = {e.ref.endpoint_id for e in store.entries(EntryKind.ENDPOINT, node_id=node_id)}
        if image.groups is not None:
            _adopt_groups(store, node_id, image.groups, endpoints, report)
        if image.bindings is not None:
            _adopt_bindings(store, node_id, image.bindings, endpoints, report)
        if image.key_sets is not None:
            have = {e.ref.key: e for e in store.entries(EntryKind.NODE_KEY_SET, node_id=node_id)}
            for key_set_id in sorted(image.key_sets - set(have)):
                store.add_node_key_set(node_id, key_set_id, committed=True)
                report.adopted += 1
            for key_set_id, entry in have.items():
                if key_set_id not in image.key_sets:
                    _settle(store, entry, report)
        if image.acl is not None:
            _adopt_acl(store, node_id, image.acl, report)


def _adopt_groups(store: JfdsStore, node_id: int, held: set[tuple[int, int]], endpoints: set[int | None],
                  report: RefreshReport) -> None:
    have = {(e.ref.endpoint_id, e.ref.key): e for e in store.entries(EntryKind.ENDPOINT_GROUP, node_id=node_id)}
    for endpoint, group_id in sorted(held - set(have)):
        if endpoint in endpoints:
            store.add_endpoint_group(node_id, endpoint, group_id, committed=True)
            report.adopted += 1
    for key, entry in have.items():
        if key not in held:
            _settle(store, entry, report)


def _adopt_bindings(store: JfdsStore, node_id: int, held: dict[int, list[Any]], endpoints: set[int | None],
                    report: RefreshReport) -> None:
    for endpoint, targets in sorted(held.items()):
        if endpoint not in endpoints:
            continue
        for raw in targets:
            try:
                held_target: binding.TargetStruct | None = BINDING.decode_item(raw)
                if held_target is None:
                    log.warning("node 0x%016X: binding %r on endpoint %d does not fit the Binding schema; not "
                                "adopted", node_id, raw, endpoint)
                    continue
                target = BindingTarget(node=held_target.node, group=held_target.group, endpoint=held_target.endpoint,
                                       cluster=held_target.cluster)
                if store.find_binding(node_id, endpoint, target) is None:
                    store.add_binding(node_id, endpoint, target, committed=True)
                    report.adopted += 1
            except CapacityError:
                report.failures.append(("bindings", Status.RESOURCE_EXHAUSTED))
                return
            except (DatastoreError, AttributeError, TypeError) as exc:
                log.warning("node 0x%016X: binding %r on endpoint %d not adopted: %s", node_id, raw, endpoint, exc)
    for entry in store.entries(EntryKind.BINDING, node_id=node_id):
        keys = {binding_key(r) for r in held.get(entry.ref.endpoint_id, [])}  # type: ignore[arg-type]
        if binding_key(binding_to_raw(entry.value.binding, None)) not in keys:
            _settle(store, entry, report)


def _adopt_acl(store: JfdsStore, node_id: int, held: list[Any], report: RefreshReport) -> None:
    entries = store.entries(EntryKind.ACL, node_id=node_id)
    superseded = {acl_value_key(s) for e in entries for s in e.superseded}
    held_keys = set()
    for raw in held:
        ace = ace_from_raw(raw)
        if ace is None:
            log.warning("node 0x%016X: ACL entry %r cannot be represented; not adopted", node_id, raw)
            continue
        key = acl_value_key(ace)
        held_keys.add(key)
        if key in superseded or store.find_acl(node_id, ace) is not None:
            continue
        try:
            store.add_acl(node_id, ace, committed=True)
            report.adopted += 1
        except CapacityError:
            report.failures.append(("acl", Status.RESOURCE_EXHAUSTED))
            return
    for entry in entries:
        if acl_value_key(entry.value.acl_entry) not in held_keys:
            _settle(store, entry, report)


def node_ref(node_id: int) -> EntryRef:
    return EntryRef.node(node_id)
