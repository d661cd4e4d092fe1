"""The reconciler's asyncio runner against the fake peer: the datastore triggers it (no explicit calls), statuses
are written back, unreachable peers are retried with backoff, reachability triggers a verify pass that repairs
drift within its budget, RefreshNode mirrors the node 1:1, races with datastore changes, restart safety,
coalescing, stats and log lines. Everything runs on virtual time (``ManualClock``): waiting is jumping from one of the
reconciler's timers to the next, never the wall clock."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from clusters.joint_fabric_datastore.schema import BindingTarget, DatastoreState
from jfds_device.clock import ManualClock
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryKind, EntryRef
from jfds_device.errors import IMStatusError
from jfds_device.im.provider import Status
from jfds_device.reconciler import OwnIdentity, Reconciler, ReconcilerConfig, RetryPolicy
from jfds_device.reconciler.ports import PeerId
from tests.reconciler.fakes import (
    ADMINISTER,
    COMMISSIONER,
    OPERATE,
    US,
    VIEW,
    FakePeer,
    ace,
    admin_entries,
    group,
    jace,
    key_set,
    new_store,
)

NODE = 2
P, C, D, F = DatastoreState.PENDING, DatastoreState.COMMITTED, DatastoreState.DELETE_PENDING, \
    DatastoreState.COMMIT_FAILED
CONFIG = ReconcilerConfig(sweep_interval=0.2, settle_delay=0.0, retry=RetryPolicy(initial=0.05, maximum=0.2),
                          verify_interval=None)  # periodic verification has its own test


class Rig:
    def __init__(self, store: JfdsStore, peer: FakePeer, config: ReconcilerConfig = CONFIG,
                 rng: random.Random | None = None) -> None:
        self.store, self.peer, self.clock = store, peer, ManualClock()
        self.fabric: int | None = 1
        self.reconciler = Reconciler(store, peer, peer, fabric_index=lambda: self.fabric,
                                     own_identity=lambda _: OwnIdentity(US), clock=self.clock, config=config, rng=rng)

    def state(self, ref: EntryRef) -> tuple[DatastoreState, int] | None:
        found = self.store.entry(ref)
        return None if found is None else (found.state, found.status.failure_code)

    async def until(self, predicate: Callable[[], Any], within: float = 5.0) -> None:
        """Virtual time runs until ``predicate`` holds (TimeoutError after ``within`` virtual seconds), then until
        no pass runs."""
        await self.clock.run_until(predicate, within)
        await self.idle(within)

    async def idle(self, within: float = 5.0) -> None:
        idle = asyncio.ensure_future(self.reconciler.wait_idle())
        try:
            await self.clock.run_until(idle.done, within)
        finally:
            idle.cancel()


@pytest.fixture
async def rig(store: JfdsStore) -> AsyncIterator[Rig]:
    r = Rig(store, FakePeer())
    r.reconciler.start()
    try:
        yield r
    finally:
        await r.reconciler.stop()


# ---------------------------------------------------------------------------------------------- lifecycle


async def test_pending_becomes_committed_and_delete_pending_is_erased(rig: Rig, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="jfds_device.reconciler")
    ref = rig.store.add_acl(NODE, jace(OPERATE, [0x55]))  # AddACLToNode: nothing else triggers the push
    await rig.until(lambda: rig.state(ref) == (C, 0))
    assert rig.peer.acl_subjects() == [[COMMISSIONER], [US], [0x55]]
    rig.store.request_removal(ref)  # RemoveACLFromNode
    await rig.until(lambda: rig.state(ref) is None)
    assert rig.peer.acl == admin_entries()
    stats = rig.reconciler.stats
    assert (stats.applied, stats.removed, stats.failures, stats.queue_depth) == (1, 1, 0, 0)
    assert stats.passes >= 2 and stats.interactions >= 4
    assert any("reconcile node=0x0000000000000002 mode=normal applied=1 removed=0 dropped=0 held=0 failed=0 "
               "transport=ok" in r.message
               for r in caplog.records)


async def test_every_kind_reaches_the_node_in_order(rig: Rig) -> None:
    store, peer = rig.store, rig.peer
    with store.transaction():  # AddKeySet + AddGroup + AddGroupIDToEndpointForNode + AddBinding
        store.add_key_set(key_set(0x42))
        store.add_group(group(0x101, 0x42))
        ks = store.add_node_key_set(NODE, 0x42)
        grp = store.add_endpoint_group(NODE, 1, 0x101)
        bnd = store.add_binding(NODE, 1, BindingTarget(node=NODE, endpoint=1))
    await rig.until(lambda: all(rig.state(r) == (C, 0) for r in (ks, grp, bnd)))
    assert [op[0] for op in peer.ops("KeySetWrite", "write:map", "AddGroup", "write:binding")] == [
        "KeySetWrite", "write:map", "AddGroup", "write:binding"]
    with store.transaction():  # RemoveGroupIDFromEndpointForNode: group, then key set
        store.request_removal(grp)
        store.request_removal(ks)
    await rig.until(lambda: rig.state(grp) is None and rig.state(ks) is None)
    assert 0x42 not in peer.key_sets and peer.memberships[1] == {} and peer.group_map == []


async def test_not_bootstrapped_does_nothing(store: JfdsStore) -> None:
    rig = Rig(store, FakePeer())
    rig.fabric = None
    rig.reconciler.start()
    try:
        ref = store.add_acl(NODE, jace(VIEW, [0x55]))
        await rig.clock.advance(1.0)  # five sweeps
        await rig.idle()
        assert rig.state(ref) == (P, 0) and rig.peer.connects == 0
    finally:
        await rig.reconciler.stop()


# ---------------------------------------------------------------------------------------------- failures, retries


async def test_unreachable_node_is_commit_failed_timeout_then_retried_with_backoff(rig: Rig) -> None:
    rig.peer.reachable = False
    ref = rig.store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.until(lambda: rig.state(ref) == (F, Status.TIMEOUT))
    attempts = rig.peer.connects
    await rig.clock.advance(0.3)
    assert rig.peer.connects > attempts  # the backoff timer / sweep retried by itself
    rig.peer.reachable = True
    await rig.until(lambda: rig.state(ref) == (C, 0), within=3)
    assert rig.reconciler.stats.transport_failures >= 2


async def test_busy_is_retried_and_constraint_error_left_for_the_operator(rig: Rig) -> None:
    rig.peer.fail("write:acl", IMStatusError(Status.BUSY))
    busy = rig.store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.until(lambda: rig.state(busy) == (C, 0))
    writes = len(rig.peer.ops("write:acl"))
    refused = rig.store.add_acl(NODE, jace(ADMINISTER, [0x0101], auth=3))  # Group + Administer: CONSTRAINT_ERROR
    await rig.until(lambda: rig.state(refused) == (F, Status.CONSTRAINT_ERROR))
    await rig.clock.advance(0.4)  # sweeps and retries come and go: the rejected entry is not retried
    assert len(rig.peer.ops("write:acl")) == writes + 1


async def test_session_is_dropped_after_a_timeout(rig: Rig) -> None:
    from jfds_device.errors import InteractionError

    rig.peer.fail("write:acl", InteractionError("timeout"))
    ref = rig.store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.until(lambda: rig.state(ref) == (C, 0))
    assert rig.peer.failed_sessions == [PeerId(1, NODE)]


# ---------------------------------------------------------------------------------------------- races


async def test_removal_during_an_apply_wins_and_nothing_is_resurrected(rig: Rig) -> None:
    store, peer = rig.store, rig.peer
    ref: list[EntryRef] = []

    async def remove_meanwhile() -> None:
        store.request_removal(ref[0])  # RemoveACLFromNode while our write is on its way

    peer.hooks["write:acl"] = remove_meanwhile
    ref.append(store.add_acl(NODE, jace(VIEW, [0x55])))
    await rig.until(lambda: rig.state(ref[0]) is None)
    assert peer.acl == admin_entries()  # the follow-up pass removed what the first one wrote
    assert rig.reconciler.stats.stale_outcomes >= 1


async def test_re_add_during_a_removal_keeps_the_entry(rig: Rig) -> None:
    store, peer = rig.store, rig.peer
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.until(lambda: rig.state(ref) == (C, 0))

    async def re_add() -> None:
        store.add_acl(NODE, jace(VIEW, [0x55]))  # AddACLToNode again cancels the removal

    peer.hooks["write:acl"] = re_add
    store.request_removal(ref)
    await rig.until(lambda: rig.state(ref) == (C, 0) and not peer.hooks)
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0x55]]


async def test_node_removed_during_a_pass(rig: Rig) -> None:
    async def remove_node() -> None:
        rig.store.remove_node(NODE)

    rig.peer.hooks["write:acl"] = remove_node
    ref = rig.store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.until(lambda: not rig.peer.hooks)
    assert rig.state(ref) is None and rig.store.node(NODE) is None
    assert rig.reconciler.last_pass(NODE) is None  # the node's queue state is gone too
    assert rig.reconciler.stats.stale_outcomes >= 1


# ---------------------------------------------------------------------------------------------- triggers


async def test_a_burst_of_changes_coalesces_into_few_writes(store: JfdsStore) -> None:
    rig = Rig(store, FakePeer(acl_limit=40), ReconcilerConfig(settle_delay=0.05, sweep_interval=10))
    rig.reconciler.start()
    try:
        refs = [store.add_acl(NODE, jace(VIEW, [0x100 + i])) for i in range(20)]  # 20 separate commands
        await rig.until(lambda: all(rig.state(r) == (C, 0) for r in refs))
        assert len(rig.peer.ops("write:acl")) == 1 and rig.reconciler.stats.passes <= 2
    finally:
        await rig.reconciler.stop()


async def test_restart_schedules_every_node_with_work(tmp_path: Path) -> None:
    path = tmp_path / "jfds.sqlite3"
    store = new_store(path)
    store.add_node(NODE, "peer")
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))  # written while no reconciler ran (or it crashed)
    store._db.close()
    store = new_store(path)
    rig = Rig(store, FakePeer())
    rig.reconciler.start()
    try:
        await rig.until(lambda: rig.state(ref) == (C, 0))
    finally:
        await rig.reconciler.stop()


async def test_reconnect_verifies_and_repairs_drift_within_budget(rig: Rig) -> None:
    store, peer = rig.store, rig.peer
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.until(lambda: rig.state(ref) == (C, 0))
    for repaired in (1, 2, 3):
        peer.acl = admin_entries()  # another administrator removed it
        peer.announce()  # reachable again
        await rig.until(lambda: len(peer.acl) == 3)
        assert rig.reconciler.stats.drift_repairs == repaired
    peer.acl = admin_entries()
    peer.announce()
    await rig.clock.advance(0.05)
    await rig.idle()
    assert peer.acl == admin_entries() and rig.reconciler.stats.drift_exhausted == 1  # budget spent: no fight
    assert rig.state(ref) == (C, 0)
    connects = peer.connects
    peer.announce(node_id=0x77)  # not a node of the datastore: ignored
    await rig.idle()
    assert peer.connects == connects


async def test_periodic_verify_repairs_drift_while_the_session_stays_up(store: JfdsStore) -> None:
    rig = Rig(store, FakePeer(), ReconcilerConfig(sweep_interval=0.05, settle_delay=0.0, verify_interval=0.2))
    rig.reconciler.start()
    try:
        ref = store.add_acl(NODE, jace(VIEW, [0x55]))
        await rig.until(lambda: rig.state(ref) == (C, 0))
        writes = len(rig.peer.ops("write:acl"))
        await rig.clock.advance(0.5)  # verify passes come and go: reads only, no write while nothing drifted
        assert len(rig.peer.ops("write:acl")) == writes and rig.peer.connects >= 2  # verified, nothing written
        rig.peer.acl = admin_entries()  # another administrator removed it; our session stays up
        await rig.until(lambda: len(rig.peer.acl) == 3, within=3)
        assert rig.reconciler.stats.drift_repairs == 1 and rig.state(ref) == (C, 0)
        empty = 3
        store.add_node(empty, "nothing to verify")
        await rig.clock.advance(0.3)
        assert empty not in rig.peer.contacted  # a node without Committed entries is not contacted
    finally:
        await rig.reconciler.stop()


async def test_wipe_stops_everything(rig: Rig) -> None:
    rig.peer.reachable = False
    rig.store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.clock.advance(0.05)
    rig.store.wipe()
    await rig.clock.advance(0.05)
    await rig.idle()
    assert rig.reconciler.stats.queue_depth == 0


# ---------------------------------------------------------------------------------------------- RefreshNode


async def test_refresh_mirrors_the_node_and_commits_it(rig: Rig) -> None:
    store, peer = rig.store, rig.peer
    foreign = ace(OPERATE, [0x1122], [{0: 6, 1: 1, 2: None}])
    peer.acl.append(foreign)
    peer.key_sets[0x42] = {0: 0x42, 2: b"k" * 16, 3: 1}
    peer.group_map = [{1: 0x101, 2: 0x42, 0xFE: 1}]
    peer.memberships[1][0x101] = "Kitchen"
    peer.bindings[1] = [{1: 0x3344, 3: 1, 0xFE: 1}]
    stale = store.add_acl(NODE, jace(VIEW, [0x99]), committed=True)  # the node lost it behind our back
    refused = store.add_acl(NODE, jace(VIEW, [0x98]))
    store.set_status(refused, F, Status.CONSTRAINT_ERROR)  # rejected earlier: RefreshNode drops it
    pending = store.add_acl(NODE, jace(VIEW, [0x97]))  # not pushed yet: RefreshNode pushes it
    store.set_status(pending, F, Status.UNSUPPORTED_ACCESS)
    store.request_refresh(NODE)  # RefreshNode
    node = EntryRef.node(NODE)
    assert rig.state(node) == (P, 0)
    await rig.until(lambda: rig.state(node) == (C, 0))
    acl = [e.value.acl_entry for e in store.entries(EntryKind.ACL, node_id=NODE)]
    assert sorted(tuple(a.subjects) for a in acl) == sorted([(0x97,), (0x1122,), (COMMISSIONER,), (US,)])
    assert rig.state(stale) is None and rig.state(refused) is None
    assert rig.state(pending) == (C, 0) and [0x97] in peer.acl_subjects()
    assert len(peer.acl) == 4  # 1:1: every node entry is in NodeACLList and vice versa
    assert [(e.ref.endpoint_id, e.state) for e in store.entries(EntryKind.ENDPOINT, node_id=NODE)] == [(0, C), (1, C)]
    assert [(e.ref.endpoint_id, e.ref.key, e.state) for e in store.entries(EntryKind.ENDPOINT_GROUP, node_id=NODE)
            ] == [(1, 0x101, C)]
    assert [(e.ref.key, e.state) for e in store.entries(EntryKind.NODE_KEY_SET, node_id=NODE)] == [(0x42, C)]
    assert [(e.value.binding, e.state) for e in store.entries(EntryKind.BINDING, node_id=NODE)] == [
        (BindingTarget(node=0x3344, endpoint=1), C)]
    assert store.key_set(0x42) is None  # keyless copies are not made (KeySetRead returns no keys)
    assert rig.reconciler.stats.refreshes == 1


async def test_refresh_of_an_unreachable_node_is_commit_failed_and_retried(store: JfdsStore) -> None:
    rig = Rig(store, FakePeer(), ReconcilerConfig(sweep_interval=60, settle_delay=0.0,
                                                  retry=RetryPolicy(initial=0.05, maximum=0.1)))
    rig.reconciler.start()  # no sweep during the test: the retry timer alone must re-run the refresh
    try:
        rig.peer.reachable = False
        rig.store.request_refresh(NODE)
        node = EntryRef.node(NODE)
        await rig.until(lambda: rig.state(node) == (F, Status.TIMEOUT))
        rig.peer.reachable = True
        await rig.until(lambda: rig.state(node) == (C, 0), within=3)
        assert rig.reconciler.stats.refreshes >= 2
    finally:
        await rig.reconciler.stop()


async def test_refresh_refused_by_the_node_is_commit_failed_with_its_status(rig: Rig) -> None:
    rig.peer.fail("read", IMStatusError(Status.UNSUPPORTED_ACCESS))  # the capacities
    rig.peer.fail("read", IMStatusError(Status.UNSUPPORTED_ACCESS))  # RefreshNode's read
    rig.store.request_refresh(NODE)
    await rig.until(lambda: rig.state(EntryRef.node(NODE)) == (F, Status.UNSUPPORTED_ACCESS))
    assert rig.reconciler.stats.transport_failures == 0


# ---------------------------------------------------------------------------------------------- virtual time


async def test_an_hour_of_backoff_passes_on_virtual_time(store: JfdsStore) -> None:
    """Backoff and sweep on the reconciler's clock: retries come at the policy's delays (jitter drawn from a seeded
    rng), none before, and an hour of them takes no wall-clock time."""
    config = ReconcilerConfig(sweep_interval=3600.0, settle_delay=0.0, verify_interval=None,
                              retry=RetryPolicy(initial=60.0, maximum=600.0))
    rig = Rig(store, FakePeer(), config, rng=random.Random(1))
    rig.peer.reachable = False
    started = time.monotonic()
    rig.reconciler.start()
    try:
        ref = store.add_acl(NODE, jace(VIEW, [0x55]))
        await rig.until(lambda: rig.state(ref) == (F, Status.TIMEOUT))
        first = rig.clock.now()
        attempts = rig.peer.connects
        await rig.clock.advance(30.0)  # within the first backoff (60 s with +-25 % jitter)
        assert rig.peer.connects == attempts
        await rig.until(lambda: rig.peer.connects > attempts, within=120.0)
        assert 45.0 <= rig.clock.now() - first <= 75.0
        await rig.clock.advance(3600.0)  # retries back off up to 600 s: a handful in an hour, not thousands
        assert 4 <= rig.peer.connects - attempts <= 14
        rig.peer.reachable = True
        await rig.until(lambda: rig.state(ref) == (C, 0), within=700.0)
    finally:
        await rig.reconciler.stop()
    assert time.monotonic() - started < 10


async def test_sweeps_come_every_sweep_interval_of_virtual_time(store: JfdsStore) -> None:
    rig = Rig(store, FakePeer(), ReconcilerConfig(sweep_interval=600.0, settle_delay=0.0, verify_interval=None))
    rig.fabric = None  # not bootstrapped yet: the sweeps find nothing to do
    rig.reconciler.start()
    try:
        ref = store.add_acl(NODE, jace(VIEW, [0x55]))
        await rig.clock.advance(1.0)
        assert rig.state(ref) == (P, 0) and rig.peer.connects == 0
        rig.fabric = 1  # bootstrapped meanwhile; the datastore change was missed, the next sweep finds the work
        await rig.clock.advance(598.0)
        assert rig.peer.connects == 0  # the first sweep was at start, the next is due at 600 s
        await rig.until(lambda: rig.state(ref) == (C, 0), within=2.0)
        assert rig.peer.connects == 1
    finally:
        await rig.reconciler.stop()
