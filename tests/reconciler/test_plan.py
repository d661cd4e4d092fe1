"""The sans-IO planner (jfds_device/reconciler/plan.py): decision table, ordering, dependencies, status
transitions, retry classes and backoff, the drift budget, and revision races against a real datastore."""

from __future__ import annotations

import math
from typing import Any

import pytest

from clusters.joint_fabric_datastore.schema import DatastoreState, StatusEntry
from jfds_device.datastore.drift_repairs import DriftRepairStore
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.errors import LocalProtocolError
from jfds_device.im.provider import Status
from jfds_device.reconciler.plan import (
    BAND_ACL,
    BAND_BINDING,
    BAND_GROUP_KEY_MAP,
    BAND_KEY_SET,
    BAND_MEMBERSHIP,
    Action,
    DriftBook,
    DriftLedger,
    MemoryDriftLedger,
    Mode,
    Op,
    Outcome,
    RetryClass,
    RetryPolicy,
    RetryState,
    Write,
    plan_node,
    retry_class,
    status_write,
)
from tests.reconciler.fakes import jace, new_store

P, C, D, F = DatastoreState.PENDING, DatastoreState.COMMITTED, DatastoreState.DELETE_PENDING, \
    DatastoreState.COMMIT_FAILED
NODE = 2
TIMEOUT, BUSY, FAILURE = Status.TIMEOUT, Status.BUSY, Status.FAILURE
CONSTRAINT, EXHAUSTED, UNSUPPORTED = Status.CONSTRAINT_ERROR, Status.RESOURCE_EXHAUSTED, Status.UNSUPPORTED_ACCESS


def entry(ref: EntryRef, state: DatastoreState = P, *, removal: bool | None = None, code: int = 0,
          revision: int = 1) -> Entry:
    if removal is None:
        removal = state is D
    return Entry(ref, None, StatusEntry(state=state, update_timestamp=0, failure_code=code), removal, revision)


ACL = EntryRef.acl(NODE, 7)


def ops(plan: Any) -> list[tuple[Op, EntryRef]]:
    return [(a.op, a.ref) for a in plan.actions]


# ---------------------------------------------------------------------------------------------- decision table

TABLE = [
    # state, removal, code, mode, observed, expected op (None: nothing)
    (P, False, 0, Mode.NORMAL, None, Op.APPLY),
    (D, True, 0, Mode.NORMAL, None, Op.REMOVE),
    (C, False, 0, Mode.NORMAL, None, None),
    (C, False, 0, Mode.NORMAL, False, None),  # observations only count on a verify pass
    (C, False, 0, Mode.VERIFY, False, Op.APPLY),  # drift
    (C, False, 0, Mode.VERIFY, True, None),
    (C, False, 0, Mode.VERIFY, None, None),  # could not tell: no action
    (F, False, TIMEOUT, Mode.NORMAL, None, Op.APPLY),
    (F, False, BUSY, Mode.NORMAL, None, Op.APPLY),
    (F, False, FAILURE, Mode.NORMAL, None, Op.APPLY),
    (F, False, CONSTRAINT, Mode.NORMAL, None, None),  # rejected: for the operator
    (F, False, EXHAUSTED, Mode.VERIFY, None, None),
    (F, False, UNSUPPORTED, Mode.NORMAL, None, None),  # permanent: for the operator
    (F, False, CONSTRAINT, Mode.REFRESH, None, Op.DROP),  # RefreshNode drops rejected adds
    (F, False, EXHAUSTED, Mode.REFRESH, None, Op.DROP),
    (F, False, UNSUPPORTED, Mode.REFRESH, None, Op.APPLY),  # ... and retries the rest
    (F, True, TIMEOUT, Mode.NORMAL, None, Op.REMOVE),
    (F, True, CONSTRAINT, Mode.NORMAL, None, None),
    (F, True, CONSTRAINT, Mode.REFRESH, None, Op.REMOVE),  # a removal is never dropped (no resurrection)
    (P, False, 0, Mode.REFRESH, None, Op.APPLY),
    (D, True, 0, Mode.VERIFY, None, Op.REMOVE),
]


@pytest.mark.parametrize(("state", "removal", "code", "mode", "observed", "expected"), TABLE,
                         ids=[f"{s.name}-{'rm' if r else 'add'}-0x{c:02X}-{m.value}-{o}" for s, r, c, m, o, _ in TABLE])
def test_decision_table(state: DatastoreState, removal: bool, code: int, mode: Mode, observed: bool | None,
                        expected: Op | None) -> None:
    e = entry(ACL, state, removal=removal, code=code)
    plan = plan_node(NODE, [e], mode=mode, observed=None if observed is None else {ACL: observed})
    assert ops(plan) == ([] if expected is None else [(expected, ACL)])
    if expected is Op.APPLY and state is C:
        assert plan.actions[0].reason == "drift"


def test_nodes_endpoints_and_other_nodes_are_never_pushed() -> None:
    entries = [entry(EntryRef.node(NODE)), entry(EntryRef.endpoint(NODE, 1)), entry(EntryRef.acl(NODE + 1, 9))]
    assert plan_node(NODE, entries).empty


@pytest.mark.parametrize(("code", "klass"), [
    (TIMEOUT, RetryClass.TRANSIENT), (BUSY, RetryClass.TRANSIENT), (FAILURE, RetryClass.TRANSIENT),
    (Status.DATA_VERSION_MISMATCH, RetryClass.TRANSIENT),  # a list another administrator kept changing
    (CONSTRAINT, RetryClass.REJECTED), (EXHAUSTED, RetryClass.REJECTED),
    (UNSUPPORTED, RetryClass.PERMANENT), (Status.INVALID_COMMAND, RetryClass.PERMANENT),
    (Status.NOT_FOUND, RetryClass.PERMANENT), (Status.UNSUPPORTED_CLUSTER, RetryClass.PERMANENT),
])
def test_retry_classes(code: int, klass: RetryClass) -> None:
    assert retry_class(code) is klass


# ---------------------------------------------------------------------------------------------- ordering


def test_applies_ascend_by_band_then_revision_removals_descend() -> None:
    ks, grp, bnd = EntryRef.node_key_set(NODE, 5), EntryRef.endpoint_group(NODE, 1, 0x101), \
        EntryRef.binding(NODE, 1, 3)
    acl_a, acl_b = EntryRef.acl(NODE, 1), EntryRef.acl(NODE, 2)
    old_ks, old_grp, old_acl = EntryRef.node_key_set(NODE, 6), EntryRef.endpoint_group(NODE, 1, 0x102), \
        EntryRef.acl(NODE, 4)
    entries = [  # deliberately out of order, revisions scattered
        entry(bnd, revision=1), entry(acl_b, revision=2), entry(grp, revision=3), entry(acl_a, revision=4),
        entry(ks, revision=5), entry(old_ks, D, revision=6), entry(old_acl, D, revision=7),
        entry(old_grp, D, revision=8),
    ]
    plan = plan_node(NODE, entries, key_set_of_group={0x101: 5, 0x102: 6})
    assert ops(plan) == [
        (Op.APPLY, ks), (Op.APPLY, grp), (Op.APPLY, acl_b), (Op.APPLY, acl_a), (Op.APPLY, bnd),
        (Op.REMOVE, old_acl), (Op.REMOVE, old_grp), (Op.REMOVE, old_ks),
    ]
    by_ref = {a.ref: a for a in plan.actions}
    assert by_ref[grp].bands == (BAND_GROUP_KEY_MAP, BAND_MEMBERSHIP)
    assert by_ref[old_grp].bands == (BAND_MEMBERSHIP, BAND_GROUP_KEY_MAP)  # removal runs the bands in reverse
    assert by_ref[grp].requires == (ks,)  # the group waits for its key set in the same pass
    assert by_ref[old_ks].requires == (old_grp,)  # the key set goes after the groups using it
    assert (by_ref[ks].bands, by_ref[acl_a].bands, by_ref[bnd].bands) == ((BAND_KEY_SET,), (BAND_ACL,),
                                                                        (BAND_BINDING,))


# ---------------------------------------------------------------------------------------------- dependencies

GROUP, KS = EntryRef.endpoint_group(NODE, 1, 0x101), EntryRef.node_key_set(NODE, 5)


@pytest.mark.parametrize(("key_set", "expected", "requires"), [
    (None, Op.APPLY, ()),  # no key set entry for the node: nothing to wait for
    (entry(KS, C), Op.APPLY, ()),
    (entry(KS, P), Op.APPLY, (KS,)),
    (entry(KS, F, code=TIMEOUT), Op.APPLY, (KS,)),  # retried in the same pass, first
    (entry(KS, F, code=CONSTRAINT), Op.HOLD, ()),  # the reference holds the group back while its key set failed
    (entry(KS, F, code=UNSUPPORTED), Op.HOLD, ()),
    (entry(KS, D), Op.HOLD, ()),
])
def test_group_add_waits_for_its_key_set(key_set: Entry | None, expected: Op, requires: tuple[EntryRef, ...]) -> None:
    entries = [entry(GROUP, revision=9)] + ([key_set] if key_set else [])
    action = next(a for a in plan_node(NODE, entries, key_set_of_group={0x101: 5}).actions if a.ref == GROUP)
    assert (action.op, action.requires) == (expected, requires)


def test_key_set_removal_is_held_while_a_live_group_uses_it() -> None:
    entries = [entry(KS, D), entry(GROUP, C)]
    [held, ] = [a for a in plan_node(NODE, entries, key_set_of_group={0x101: 5}).actions if a.ref == KS]
    assert held.op is Op.HOLD
    # After UpdateGroup moved the group to another key set, the old one can go.
    [free] = plan_node(NODE, entries, key_set_of_group={0x101: 6}).actions
    assert (free.op, free.requires) == (Op.REMOVE, ())


# ---------------------------------------------------------------------------------------------- status writes

STATUS_CASES = [
    (Op.APPLY, Outcome(), Write.COMMITTED, 0),
    (Op.APPLY, Outcome(CONSTRAINT), Write.COMMIT_FAILED, CONSTRAINT),
    (Op.APPLY, Outcome(TIMEOUT, transport=True), Write.COMMIT_FAILED, TIMEOUT),
    (Op.APPLY, Outcome(held=True), Write.NONE, 0),
    (Op.REMOVE, Outcome(), Write.ERASE, 0),
    (Op.REMOVE, Outcome(BUSY), Write.COMMIT_FAILED, BUSY),
    (Op.DROP, Outcome(), Write.DROP, 0),
    (Op.HOLD, Outcome(), Write.NONE, 0),
]


@pytest.mark.parametrize(("op", "outcome", "write", "code"), STATUS_CASES)
def test_status_transitions(op: Op, outcome: Outcome, write: Write, code: int) -> None:
    action = Action(op, entry(ACL, revision=42), "test")
    result = status_write(action, outcome)
    assert (result.write, result.ref, result.revision, result.failure_code) == (write, ACL, 42, code)


def test_outcome_classes() -> None:
    assert Outcome().ok and not Outcome().transient
    assert Outcome(TIMEOUT, transport=True).transient and Outcome(BUSY).transient
    assert not Outcome(CONSTRAINT).transient and not Outcome(held=True).transient


# ---------------------------------------------------------------------------------------------- retries, drift


def test_retry_policy_grows_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.25)
    assert [policy.delay(n, 0.5) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(3, 0.0) == 3.0 and policy.delay(3, 1.0) == 5.0
    with pytest.raises(LocalProtocolError):
        policy.delay(0, 0.5)
    with pytest.raises(LocalProtocolError):
        RetryPolicy(initial=2, maximum=1)
    state = RetryState(policy)
    assert state.wait(100.0) == 0.0 and state.retry_at == -math.inf
    assert state.failed(100.0, 0.5) == 1.0 and state.wait(100.5) == 0.5
    state.failed(101.0, 0.5)
    assert state.failures == 2 and state.retry_at == 103.0
    state.succeeded()
    assert state.failures == 0 and state.wait(0.0) == 0.0


def test_drift_budget_stops_the_fight_and_renews_with_the_revision() -> None:
    book = DriftBook(budget=2)
    committed, now = entry(ACL, C, revision=5), 1000.0
    for left in (1, 0):
        assert ops(plan_node(NODE, [committed], mode=Mode.VERIFY, observed={ACL: False}, drift=book, now=now)) == [
            (Op.APPLY, ACL)]
        assert book.spend(ACL, 5, now) == left
    assert plan_node(NODE, [committed], mode=Mode.VERIFY, observed={ACL: False}, drift=book, now=now).empty
    renewed = entry(ACL, C, revision=6)  # the intent changed: a new budget
    assert not plan_node(NODE, [renewed], mode=Mode.VERIFY, observed={ACL: False}, drift=book, now=now).empty
    book.forget(NODE, [(ACL, 6)], now)
    assert isinstance(book.ledger, MemoryDriftLedger) and book.ledger.rows == {}
    with pytest.raises(LocalProtocolError):  # a budget means nothing without the time it is checked at
        plan_node(NODE, [committed], mode=Mode.VERIFY, observed={ACL: False}, drift=book)


def _ledger(kind: str) -> DriftLedger:
    return MemoryDriftLedger() if kind == "memory" else DriftRepairStore(new_store().database)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_drift_budget_is_a_sliding_window(kind: str) -> None:
    book = DriftBook(budget=2, window=100.0, ledger=_ledger(kind))
    book.spend(ACL, 5, 0.0)
    book.spend(ACL, 5, 60.0)
    assert not book.allows(ACL, 5, 99.9) and book.renewed_at(ACL, 5, 99.9) == 100.0  # two within the window
    assert book.allows(ACL, 5, 100.0) and book.renewed_at(ACL, 5, 100.0) == 100.0  # the first one left it
    assert book.spend(ACL, 5, 100.0) == 0
    assert not book.allows(ACL, 5, 159.0) and book.renewed_at(ACL, 5, 159.0) == 160.0
    assert book.allows(ACL, 5, 160.0)
    assert book.allows(EntryRef.acl(NODE, 8), 5, 159.0) and book.allows(ACL, 6, 159.0)  # per entry, per revision


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_drift_books_are_pruned(kind: str) -> None:
    ledger = _ledger(kind)
    book = DriftBook(budget=3, window=100.0, ledger=ledger)
    other_node, gone = EntryRef.acl(NODE + 1, 9), EntryRef.acl(NODE, 8)
    for ref, revision, at in [(ACL, 4, 10.0), (ACL, 5, 20.0), (gone, 2, 30.0), (other_node, 1, 40.0),
                              (other_node, 1, 90.0)]:
        book.spend(ref, revision, at)
    book.forget(NODE, [(ACL, 5)], 100.0)  # revision 4 and the erased entry go; nothing left the window yet
    assert ledger.repairs(ACL, 4) == [] and ledger.repairs(gone, 2) == [] and ledger.repairs(ACL, 5) == [20.0]
    assert ledger.repairs(other_node, 1) == [40.0, 90.0]  # another node's books are its own...
    book.forget(NODE, [(ACL, 5)], 145.0)
    assert ledger.repairs(ACL, 5) == [] and ledger.repairs(other_node, 1) == [90.0]  # ...until they leave the window
    book.spend(ACL, 5, 500.0)
    book.forget(NODE, [(ACL, 5)], 300.0)  # the clock went back 200 s: the repair counts, for one window from now
    assert not DriftBook(budget=1, window=100.0, ledger=ledger).allows(ACL, 5, 399.0)
    assert DriftBook(budget=1, window=100.0, ledger=ledger).allows(ACL, 5, 400.0)


# ---------------------------------------------------------------------------------------------- revision races


@pytest.fixture
def store() -> Any:
    s = new_store()
    s.add_node(NODE, "peer")
    return s


def _record(store: Any, action: Action, outcome: Outcome) -> bool:
    write = status_write(action, outcome)
    if write.write is Write.COMMITTED:
        return bool(store.set_status(write.ref, C, revision=write.revision))
    if write.write is Write.COMMIT_FAILED:
        return bool(store.set_status(write.ref, F, write.failure_code, revision=write.revision))
    if write.write is Write.ERASE:
        return bool(store.confirm_removed(write.ref, revision=write.revision))
    raise AssertionError(write)


def test_removal_requested_during_an_apply_is_not_lost_or_undone(store: Any) -> None:
    ref = store.add_acl(NODE, jace(5, [0x77]))
    [action] = plan_node(NODE, store.entries_for_node(NODE)).of(Op.APPLY)
    store.request_removal(ref)  # RemoveACLFromNode while the write is in flight
    assert not _record(store, action, Outcome())  # the stale Committed is ignored...
    assert store.entry(ref).state is D  # ...and the removal stays: the next pass removes it
    [again] = plan_node(NODE, store.entries_for_node(NODE)).actions
    assert (again.op, again.ref) == (Op.REMOVE, ref)


def test_re_add_during_a_removal_is_not_erased(store: Any) -> None:
    ref = store.add_acl(NODE, jace(5, [0x77]))
    store.set_status(ref, C)
    store.request_removal(ref)
    [action] = plan_node(NODE, store.entries_for_node(NODE)).of(Op.REMOVE)
    assert store.add_acl(NODE, jace(5, [0x77])) == ref  # AddACLToNode again cancels the removal
    assert not _record(store, action, Outcome())  # the stale erase is ignored
    assert store.entry(ref).state is P


def test_outcome_for_an_erased_entry_resurrects_nothing(store: Any) -> None:
    ref = store.add_acl(NODE, jace(5, [0x77]))
    [action] = plan_node(NODE, store.entries_for_node(NODE)).of(Op.APPLY)
    store.remove_node(NODE)  # RemoveNode while the write is in flight
    assert not _record(store, action, Outcome())
    assert not _record(store, action, Outcome(TIMEOUT, transport=True))
    assert store.entry(ref) is None and store.entries_for_node(NODE) == []


def test_failed_removal_keeps_its_intent_and_is_retried(store: Any) -> None:
    ref = store.add_acl(NODE, jace(5, [0x77]))
    store.set_status(ref, C)
    store.request_removal(ref)
    [action] = plan_node(NODE, store.entries_for_node(NODE)).of(Op.REMOVE)
    assert _record(store, action, Outcome(TIMEOUT, transport=True))
    failed = store.entry(ref)
    assert (failed.state, failed.removal, failed.status.failure_code) == (F, True, TIMEOUT)
    assert ops(plan_node(NODE, store.entries_for_node(NODE))) == [(Op.REMOVE, ref)]
    assert _record(store, plan_node(NODE, store.entries_for_node(NODE)).actions[0], Outcome())
    assert store.entry(ref) is None


def test_entry_kinds_cover_every_pushed_list() -> None:
    from jfds_device.reconciler.plan import BANDS

    assert set(BANDS) == {EntryKind.NODE_KEY_SET, EntryKind.ENDPOINT_GROUP, EntryKind.ACL, EntryKind.BINDING}
