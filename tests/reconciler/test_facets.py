"""Item kinds and the executor against a fake matter.js-like peer (tests/reconciler/fakes.py): merge by value,
foreign entries preserved, capacity limits as RESOURCE_EXHAUSTED without a refused write, read-back and restore
after a failed list write, per-entry attribution, push order KeySetWrite → GroupKeyMap → AddGroup (and back),
key set 0 never touched, our admin entry never removed."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.joint_fabric_datastore.schema import BindingTarget, DatastoreState
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.errors import InteractionError
from jfds_device.im.provider import Status
from jfds_device.reconciler.execute import Execution, execute
from jfds_device.reconciler.facet_registry import default_facets
from jfds_device.reconciler.lists import ListOp, merge_list
from jfds_device.reconciler.peer import Capacities, OwnIdentity, PeerContext, PeerIO
from jfds_device.reconciler.plan import Mode, Op, Plan, plan_node
from tests.reconciler.fakes import (
    ADMINISTER,
    COMMISSIONER,
    GROUP,
    OPERATE,
    US,
    VIEW,
    FakePeer,
    ace,
    admin_entries,
    group,
    jace,
    key_set,
)

NODE = 2
P, C, D, F = DatastoreState.PENDING, DatastoreState.COMMITTED, DatastoreState.DELETE_PENDING, \
    DatastoreState.COMMIT_FAILED
OK, CONSTRAINT, EXHAUSTED = Status.SUCCESS, Status.CONSTRAINT_ERROR, Status.RESOURCE_EXHAUSTED


async def run(store: JfdsStore, peer: FakePeer, mode: Mode = Mode.NORMAL) -> tuple[Plan, Execution]:
    """One pass without the runner: plan, execute, record the statuses (revision-checked)."""
    entries = store.entries_for_node(NODE)
    groups = {e.ref.key: store.group(e.ref.key).group_key_set_id for e in entries  # type: ignore[arg-type,union-attr]
              if e.ref.kind.value == "endpoint_group" and store.group(e.ref.key) is not None}  # type: ignore[arg-type]
    plan = plan_node(NODE, entries, mode=mode, key_set_of_group=groups)
    io = PeerIO(peer, peer.session)
    ctx = PeerContext(io, NODE, store, entries, await Capacities.read(io), OwnIdentity(US))
    execution = await execute(plan, ctx, default_facets())
    for action in plan.actions:
        outcome = execution.outcomes[action.ref]
        if outcome.held:
            continue
        if not outcome.ok:
            store.set_status(action.ref, F, outcome.status, revision=action.revision)
        elif action.op is Op.REMOVE:
            store.confirm_removed(action.ref, revision=action.revision)
        else:
            store.set_status(action.ref, C, revision=action.revision)
    return plan, execution


def state(store: JfdsStore, ref: EntryRef) -> tuple[DatastoreState, int] | None:
    found = store.entry(ref)
    return None if found is None else (found.state, found.status.failure_code)


# ---------------------------------------------------------------------------------------------- merge_list (pure)

R1, R2, R3 = EntryRef.acl(NODE, 1), EntryRef.acl(NODE, 2), EntryRef.acl(NODE, 3)


def key(element: Any) -> Any:
    return element[1]


def el(k: str, v: int = 0) -> dict[int, Any]:
    return {1: k, 2: v}


MERGE_CASES = [
    # current, ops, limit, protected keys, expected keys (and values), codes
    ("append keeps foreign order", [el("f1"), el("f2")], [ListOp(R1, key="a", raw=el("a"))], None, (),
     [el("f1"), el("f2"), el("a")], {R1: OK}),
    ("add present is a no-op", [el("a"), el("f")], [ListOp(R1, key="a", raw=el("a"))], None, (),
     [el("a"), el("f")], {R1: OK}),
    ("upsert by key in place", [el("g1", 1), el("g2", 2)], [ListOp(R1, key="g1", raw=el("g1", 9))], None, (),
     [el("g1", 9), el("g2", 2)], {R1: OK}),
    ("removal takes every equal element", [el("a"), el("f"), el("a")], [ListOp(R1, drop=frozenset({"a"}))], None,
     (), [el("f")], {R1: OK}),
    ("edit replaces the superseded value in place", [el("f"), el("old"), el("g")],
     [ListOp(R1, drop=frozenset({"old"}), key="new", raw=el("new"))], None, (), [el("f"), el("new"), el("g")],
     {R1: OK}),
    ("full list refuses the add", [el("f1"), el("f2")], [ListOp(R1, key="a", raw=el("a"))], 2, (),
     [el("f1"), el("f2")], {R1: EXHAUSTED}),
    ("a removal frees room first", [el("f1"), el("x")],
     [ListOp(R1, key="a", raw=el("a")), ListOp(R2, drop=frozenset({"x"}))], 2, (), [el("f1"), el("a")],
     {R1: OK, R2: OK}),
    ("only what fits", [el("f1")], [ListOp(R1, key="a", raw=el("a")), ListOp(R2, key="b", raw=el("b")),
                                    ListOp(R3, key="c", raw=el("c"))], 2, (), [el("f1"), el("a")],
     {R1: OK, R2: EXHAUSTED, R3: EXHAUSTED}),
    ("the last protected element stays", [el("us"), el("f")], [ListOp(R1, drop=frozenset({"us"}))], None, ("us",),
     [el("us"), el("f")], {R1: CONSTRAINT}),
    ("a second protected element lets one go", [el("us"), el("us2")], [ListOp(R1, drop=frozenset({"us"}))], None,
     ("us", "us2"), [el("us2")], {R1: OK}),
    ("an edit may not drop the protected value", [el("us")],
     [ListOp(R1, drop=frozenset({"us"}), key="other", raw=el("other"))], None, ("us",), [el("us")],
     {R1: CONSTRAINT}),
]


@pytest.mark.parametrize(("name", "current", "ops", "limit", "protected", "expected", "codes"), MERGE_CASES,
                         ids=[c[0] for c in MERGE_CASES])
def test_merge_list(name: str, current: list[Any], ops: list[ListOp], limit: int | None, protected: tuple[str, ...],
                    expected: list[Any], codes: dict[EntryRef, int]) -> None:
    guard = (lambda e: e[1] in protected) if protected else None
    assert merge_list(current, ops, key, limit=limit, protected=guard) == (expected, codes)


# ---------------------------------------------------------------------------------------------- ACL


async def test_acl_add_keeps_foreign_entries_and_their_order(store: JfdsStore) -> None:
    foreign = ace(OPERATE, [0x1122], [{0: 6, 1: 1, 2: None}])
    peer = FakePeer(acl=[*admin_entries(), foreign])
    ref = store.add_acl(NODE, jace(VIEW, [0x55], [(None, 1, None)]))
    await run(store, peer)
    assert state(store, ref) == (C, 0)
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0x1122], [0x55]]
    assert peer.acl[2] == foreign and peer.acl[3][4] == [{0: None, 1: 1, 2: None}]
    assert len(peer.ops("write:acl")) == 1
    # Adding it again is a no-op on the node (matched by value, no write).
    store.set_status(ref, P)
    await run(store, peer)
    assert len(peer.ops("write:acl")) == 1 and state(store, ref) == (C, 0)


async def test_acl_capacity_is_resource_exhausted_without_a_refused_write(store: JfdsStore) -> None:
    peer = FakePeer(acl=[*admin_entries(), ace(OPERATE, [0x1122])])  # 3 of 4
    first = store.add_acl(NODE, jace(VIEW, [0x55]))
    second = store.add_acl(NODE, jace(VIEW, [0x56]))
    wide = store.add_acl(NODE, jace(VIEW, [1, 2, 3, 4, 5]))  # 5 subjects > SubjectsPerAccessControlEntry 4
    await run(store, peer)
    assert (state(store, first), state(store, second), state(store, wide)) == ((C, 0), (F, EXHAUSTED), (F, EXHAUSTED))
    assert [len(w[2]) for w in peer.ops("write:acl")] == [4]  # one write, within the limit
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0x1122], [0x55]]


async def test_foreign_entries_our_schema_cannot_read_go_back_exactly_as_read(store: JfdsStore) -> None:
    """Read-merge-write keeps the peer's elements in their TLV form: an ACL entry with a privilege our schema does
    not know (a newer spec's, say) and one with an unknown extra field are written back byte for byte, never
    matched to an entry of ours, and never removed by a removal of ours."""
    unknown_privilege = {1: 9, 2: 2, 3: [0x1122], 4: None, 0xFE: 1}
    extra_field = {1: OPERATE, 2: 2, 3: [0x3344], 4: None, 7: b"vendor", 0xFE: 1}
    peer = FakePeer(acl=[*admin_entries(), unknown_privilege, extra_field], acl_limit=8)
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    await run(store, peer)
    assert state(store, ref) == (C, 0)
    [write] = peer.ops("write:acl")
    assert write[2][2:4] == [unknown_privilege, extra_field]  # as read, the unknown tag 7 included
    assert peer.acl[2:4] == [unknown_privilege, extra_field] and peer.acl_subjects()[4] == [0x55]
    store.request_removal(ref)
    await run(store, peer)
    assert peer.acl[2:] == [unknown_privilege, extra_field]  # our removal took ours only


async def test_a_peer_limit_below_the_spec_minimum_is_still_its_limit(store: JfdsStore) -> None:
    """SubjectsPerAccessControlEntry 2 is below the spec's minimum of 4 (our own schema would not accept it for our
    server), yet it is what the peer enforces: an entry with 3 subjects is RESOURCE_EXHAUSTED without a write."""
    peer = FakePeer(subjects_limit=2)
    wide = store.add_acl(NODE, jace(VIEW, [1, 2, 3]))
    narrow = store.add_acl(NODE, jace(VIEW, [0x55, 0x56]))
    await run(store, peer)
    assert (state(store, wide), state(store, narrow)) == ((F, EXHAUSTED), (C, 0))
    assert [len(w[2]) for w in peer.ops("write:acl")] == [3]  # the admin entries and the narrow one, in one write


async def test_acl_removal_frees_room_for_an_add_in_the_same_write(store: JfdsStore) -> None:
    peer = FakePeer(acl=[*admin_entries(), ace(OPERATE, [0x1122]), ace(VIEW, [0x55])])  # full
    old = store.add_acl(NODE, jace(VIEW, [0x55]), committed=True)
    store.request_removal(old)
    new = store.add_acl(NODE, jace(VIEW, [0x66]))
    await run(store, peer)
    assert state(store, old) is None and state(store, new) == (C, 0)
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0x1122], [0x66]]
    assert len(peer.ops("write:acl")) == 1


async def test_acl_edit_replaces_the_superseded_value_in_place(store: JfdsStore) -> None:
    peer = FakePeer(acl=[*admin_entries(), ace(VIEW, [0x55]), ace(OPERATE, [0x1122])])
    ref = store.add_acl(NODE, jace(VIEW, [0x55]), committed=True)
    store.edit_acl(ref, jace(OPERATE, [0x55]))  # e.g. UpdateGroup changed the group's permission
    await run(store, peer)
    assert state(store, ref) == (C, 0) and store.entry(ref).superseded == ()
    assert [(e[1], e[3]) for e in peer.acl] == [(ADMINISTER, [COMMISSIONER]), (ADMINISTER, [US]),
                                                (OPERATE, [0x55]), (OPERATE, [0x1122])]


async def test_our_admin_entry_is_never_removed(store: JfdsStore) -> None:
    peer = FakePeer()
    ours = store.add_acl(NODE, jace(ADMINISTER, [US]), committed=True)  # adopted by a RefreshNode
    store.request_removal(ours)
    await run(store, peer)
    assert state(store, ours) == (F, CONSTRAINT) and store.entry(ours).removal
    assert peer.acl == admin_entries() and peer.ops("write:acl") == []
    # With another entry granting us Administer (a CAT we hold), the first may go.
    cat_subject = 0xFFFF_FFFD_0001_0001
    peer.acl.append(ace(ADMINISTER, [cat_subject]))
    store.set_status(ours, P)
    entries = store.entries_for_node(NODE)
    io = PeerIO(peer, peer.session)
    ctx = PeerContext(io, NODE, store, entries, await Capacities.read(io), OwnIdentity(US, (0x0001_0002,)))
    execution = await execute(plan_node(NODE, entries), ctx, default_facets())
    assert execution.outcomes[ours].ok
    assert peer.acl_subjects() == [[COMMISSIONER], [cat_subject]]


async def test_a_refused_batch_is_attributed_per_entry(store: JfdsStore) -> None:
    peer = FakePeer(acl_limit=8)
    good = store.add_acl(NODE, jace(VIEW, [0x55]))
    bad = store.add_acl(NODE, jace(ADMINISTER, [0x0101], auth=GROUP))  # the node refuses Group + Administer
    later = store.add_acl(NODE, jace(OPERATE, [0x56]))
    await run(store, peer)
    assert (state(store, good), state(store, bad), state(store, later)) == ((C, 0), (F, CONSTRAINT), (C, 0))
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0x55], [0x56]]


async def test_transport_failure_stops_the_pass_with_timeout(store: JfdsStore) -> None:
    peer = FakePeer()
    store.add_key_set(key_set(5))
    store.add_group(group(0x101, 5))
    ks = store.add_node_key_set(NODE, 5)
    grp = store.add_endpoint_group(NODE, 1, 0x101)
    acl = store.add_acl(NODE, jace(VIEW, [0x55]))
    peer.fail("write:map", InteractionError("timeout"))
    _, execution = await run(store, peer)
    assert execution.transport_error is not None
    assert execution.outcomes[grp].transport and execution.outcomes[acl].transport
    assert (state(store, ks), state(store, grp), state(store, acl)) == ((C, 0), (F, Status.TIMEOUT),
                                                                        (F, Status.TIMEOUT))
    assert peer.ops("AddGroup", "write:acl") == []  # nothing after the failure


# ---------------------------------------------------------------------------------------------- bindings

TARGET = BindingTarget(node=0x3344, endpoint=1, cluster=6)
FOREIGN_BINDING = {1: 0x9999, 3: 2, 0xFE: 1}


async def test_binding_merge_by_value_per_endpoint(store: JfdsStore) -> None:
    peer = FakePeer()
    peer.bindings[1] = [dict(FOREIGN_BINDING)]
    ref = store.add_binding(NODE, 1, TARGET)
    group_target = store.add_binding(NODE, 1, BindingTarget(group=0x101))
    await run(store, peer)
    assert (state(store, ref), state(store, group_target)) == ((C, 0), (C, 0))
    assert peer.bindings[1] == [FOREIGN_BINDING, {1: 0x3344, 3: 1, 4: 6, 0xFE: 1}, {2: 0x101, 0xFE: 1}]
    store.request_removal(ref)
    await run(store, peer)
    assert state(store, ref) is None
    assert peer.bindings[1] == [FOREIGN_BINDING, {2: 0x101, 0xFE: 1}]


@pytest.mark.parametrize("mode", [True, "clear"])
async def test_binding_list_is_read_back_and_restored_after_a_failed_write(store: JfdsStore, mode: Any) -> None:
    peer = FakePeer(partial_writes=mode)
    peer.bindings[1] = [dict(FOREIGN_BINDING)]
    good = store.add_binding(NODE, 1, TARGET)
    bad = store.add_binding(NODE, 1, BindingTarget(node=0x3344, group=0x101))  # node + group: refused
    await run(store, peer)
    assert (state(store, good), state(store, bad)) == ((C, 0), (F, CONSTRAINT))
    assert peer.bindings[1] == [FOREIGN_BINDING, {1: 0x3344, 3: 1, 4: 6, 0xFE: 1}]  # nothing foreign lost
    reads = [op for op in peer.ops("read") if op[1] == ((1, 0x1E, 0),)]
    assert len(reads) >= 2  # the initial read and the read back after the failure


async def test_binding_on_an_endpoint_without_the_cluster_fails_that_entry_only(store: JfdsStore) -> None:
    peer = FakePeer()
    store.sync_endpoints(NODE, [0, 1, 2])
    on_one = store.add_binding(NODE, 1, TARGET)
    on_two = store.add_binding(NODE, 2, TARGET)
    await run(store, peer)
    assert (state(store, on_one), state(store, on_two)) == ((C, 0), (F, Status.UNSUPPORTED_ENDPOINT))


# ---------------------------------------------------------------------------------------------- groups and key sets


def group_setup(store: JfdsStore) -> tuple[EntryRef, EntryRef]:
    store.add_key_set(key_set(5))
    store.add_group(group(0x101, 5, "A kitchen with a long name"))
    return store.add_node_key_set(NODE, 5), store.add_endpoint_group(NODE, 1, 0x101)


async def test_group_push_order_and_removal_in_reverse(store: JfdsStore) -> None:
    peer = FakePeer()
    peer.group_map = [{1: 0x200, 2: 9, 0xFE: 1}]  # another group's mapping: kept
    ks, grp = group_setup(store)
    await run(store, peer)
    assert (state(store, ks), state(store, grp)) == ((C, 0), (C, 0))
    assert [op[0] for op in peer.ops("KeySetWrite", "write:map", "AddGroup")] == ["KeySetWrite", "write:map",
                                                                                 "AddGroup"]
    assert peer.group_map == [{1: 0x200, 2: 9, 0xFE: 1}, {1: 0x101, 2: 5, 0xFE: 1}]
    assert peer.memberships[1] == {0x101: "A kitchen with a"}  # cut to the 16-byte GroupName
    written = peer.ops("KeySetWrite")[0][2][0]
    assert written[0] == 5 and written[2] == b"\xa0" * 16 and 8 not in written  # PerGroupID is the default
    # RemoveGroupIDFromEndpointForNode: the group, then its key set.
    store.request_removal(grp)
    store.request_removal(ks)
    peer.log.clear()
    await run(store, peer)
    assert state(store, grp) is None and state(store, ks) is None
    assert [op[0] for op in peer.ops("RemoveGroup", "write:map", "KeySetRemove")] == [
        "RemoveGroup", "write:map", "KeySetRemove"]
    assert peer.group_map == [{1: 0x200, 2: 9, 0xFE: 1}] and 5 not in peer.key_sets and peer.memberships[1] == {}


async def test_group_is_held_while_its_key_set_fails(store: JfdsStore) -> None:
    peer = FakePeer(max_group_keys=2)  # the IPK and one more
    peer.key_sets[9] = {0: 9, 2: b"k" * 16, 3: 1}
    ks, grp = group_setup(store)
    _, execution = await run(store, peer)
    assert state(store, ks) == (F, EXHAUSTED)  # refused by our pre-check, no KeySetWrite sent
    assert peer.ops("KeySetWrite", "write:map", "AddGroup") == []
    assert execution.outcomes[grp].held and state(store, grp) == (P, 0)
    _, execution = await run(store, peer)  # next pass: the key set is left to the operator, the group waits
    assert execution.outcomes[grp].held and peer.ops("AddGroup") == []


async def test_key_set_zero_is_never_written_or_removed(store: JfdsStore) -> None:
    peer = FakePeer()
    ipk = store.add_node_key_set(NODE, 0)
    await run(store, peer)
    assert state(store, ipk) == (F, CONSTRAINT) and peer.ops("KeySetWrite") == []
    store.request_removal(ipk)
    await run(store, peer)
    assert state(store, ipk) == (F, CONSTRAINT) and peer.ops("KeySetRemove") == [] and 0 in peer.key_sets


async def test_map_entry_stays_while_another_endpoint_uses_the_group(store: JfdsStore) -> None:
    peer = FakePeer(endpoints={0: [0x1D, 0x1F, 0x3F], 1: [0x1D, 0x04], 2: [0x1D, 0x04]})
    store.sync_endpoints(NODE, [0, 1, 2])
    ks, grp1 = group_setup(store)
    grp2 = store.add_endpoint_group(NODE, 2, 0x101)
    await run(store, peer)
    assert [state(store, r) for r in (ks, grp1, grp2)] == [(C, 0)] * 3
    assert peer.memberships == {1: {0x101: "A kitchen with a"}, 2: {0x101: "A kitchen with a"}}
    store.request_removal(grp1)
    await run(store, peer)
    assert state(store, grp1) is None and peer.memberships[1] == {}
    assert peer.memberships[2] == {0x101: "A kitchen with a"}
    assert peer.group_map == [{1: 0x101, 2: 5, 0xFE: 1}]  # endpoint 2 still needs the mapping


async def test_group_without_key_set_in_group_list_is_rejected(store: JfdsStore) -> None:
    peer = FakePeer()
    grp = store.add_endpoint_group(NODE, 1, 0x777)  # not in GroupList (e.g. copied from a node)
    await run(store, peer)
    assert state(store, grp) == (F, CONSTRAINT) and peer.ops("write:map", "AddGroup") == []


async def test_verify_observes_what_the_node_holds(store: JfdsStore) -> None:
    peer = FakePeer()
    ks, grp = group_setup(store)
    acl = store.add_acl(NODE, jace(VIEW, [0x55]))
    bnd = store.add_binding(NODE, 1, TARGET)
    await run(store, peer)
    entries = store.entries_for_node(NODE)
    io = PeerIO(peer, peer.session)
    ctx = PeerContext(io, NODE, store, entries, await Capacities.read(io), OwnIdentity(US))
    facets = default_facets()
    for facet in facets.values():
        await facet.observe(ctx)

    def present(ref: EntryRef) -> list[bool | None]:
        found = store.entry(ref)
        assert found is not None
        return [f.present(ctx, found) for f in facets.values() if f.kind is ref.kind]

    assert [present(r) for r in (ks, grp, acl, bnd)] == [[True], [True, True], [True], [True]]
    peer.acl = admin_entries()
    peer.memberships[1].clear()
    peer.bindings[1].clear()
    peer.key_sets.pop(5)
    for facet in facets.values():
        await facet.observe(ctx)
    assert [present(r) for r in (ks, grp, acl, bnd)] == [[False], [True, False], [False], [False]]


async def test_a_refused_read_fails_the_batch_with_the_nodes_status(store: JfdsStore) -> None:
    from jfds_device.errors import IMStatusError

    peer = FakePeer()
    acl = store.add_acl(NODE, jace(VIEW, [0x55]))
    peer.fail("read", IMStatusError(Status.UNSUPPORTED_ACCESS))  # the capacities: unknown, fail-open
    peer.fail("read", IMStatusError(Status.UNSUPPORTED_ACCESS))  # the ACL: we lost Administer on the node
    _, execution = await run(store, peer)
    assert execution.transport_error is None
    assert state(store, acl) == (F, Status.UNSUPPORTED_ACCESS) and peer.ops("write:acl") == []
