"""The live view (``reconciler/live.py``) wired into the runner, on virtual time (``ManualClock``) with the fake
peer plus a fake subscription: reports trigger verify passes, liveness is reachability, the limits come from the
subscription's cache, and the periodic verify is only a slow safety sweep."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from clusters.access_control import schema as ac
from clusters.basic_information import schema as basic
from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.clock import ManualClock
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.errors import InteractionError, MatterError
from jfds_device.im.client_messages import AttributePath, AttributeStatus, ReadResult
from jfds_device.im.provider import Status
from jfds_device.reconciler import ReconcilerConfig, RetryPolicy
from jfds_device.reconciler.live import LiveWatch, watched_paths
from jfds_device.reconciler.peer import Capacities
from tests.reconciler.fakes import VIEW, FakePeer, ace, admin_entries, jace
from tests.reconciler.test_runner import NODE, C, Rig

CONFIG = ReconcilerConfig(sweep_interval=0.2, settle_delay=0.0, retry=RetryPolicy(initial=0.05, maximum=0.2),
                          verify_interval=3600.0, live_max_interval=10)


class FakeSubscription:
    def __init__(self, peer: LivePeer, paths: list[Any], on_report: Callable[[ReadResult], None],
                 on_lost: Callable[[MatterError], None] | None, priming: ReadResult) -> None:
        self.peer, self.paths, self.on_report, self.on_lost = peer, paths, on_report, on_lost
        self.priming, self.max_interval, self.active = priming, 10, True

    def cancel(self) -> None:
        self.active = False


class LivePeer(FakePeer):
    """The fake peer, plus subscriptions: ``report(paths)`` sends what the paths hold now to every live one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.software_version = 1
        self.subscriptions: list[FakeSubscription] = []

    def _attribute(self, ep: int, cluster: int, attribute: int) -> Any:
        if (cluster, attribute) == (basic.CLUSTER_ID, basic.SOFTWARE_VERSION):
            return self.software_version
        return super()._attribute(ep, cluster, attribute)

    def _snapshot(self, paths: list[Any]) -> ReadResult:
        result = ReadResult()
        for endpoint, cluster, attribute in paths:
            result.attributes[AttributePath(endpoint, cluster, attribute)] = copy.deepcopy(
                self._attribute(endpoint, cluster, attribute))
        return result

    async def subscribe(self, session: Any, paths: Any, min_interval: int, max_interval: int,
                        on_report: Callable[[ReadResult], None], *,
                        on_lost: Callable[[MatterError], None] | None = None) -> FakeSubscription:
        assert session is self.session and max_interval == 10
        self.log.append(("subscribe", tuple(paths)))
        if not self.reachable:
            raise InteractionError("timeout", "no answer")
        sub = FakeSubscription(self, list(paths), on_report, on_lost, self._snapshot(list(paths)))
        self.subscriptions.append(sub)
        return sub

    def live(self) -> list[FakeSubscription]:
        return [s for s in self.subscriptions if s.active]

    def report(self, *paths: tuple[int, int, int]) -> None:
        for sub in self.live():
            sub.on_report(self._snapshot(list(paths)))

    def drop(self) -> None:
        """The peer goes away: no report within MaxInterval, so every subscription is lost."""
        self.reachable = False
        for sub in self.live():
            sub.active = False
            assert sub.on_lost is not None
            sub.on_lost(InteractionError("timeout", "no report within 10 s"))


ACL_PATH = (0, ac.CLUSTER_ID, ac.ACL)


@pytest.fixture
async def rig(store: JfdsStore) -> AsyncIterator[Rig]:
    r = Rig(store, LivePeer(), CONFIG)
    r.reconciler.start()
    try:
        yield r
    finally:
        await r.reconciler.stop()


def reads(peer: FakePeer) -> int:
    return len(peer.ops("read"))


async def committed_acl(rig: Rig) -> Any:
    ref = rig.store.add_acl(NODE, jace(VIEW, [0x55]))
    await rig.until(lambda: rig.state(ref) == (C, 0) and rig.reconciler.reachable(NODE) is True)
    await rig.idle()
    return ref


def test_watched_paths_cover_what_the_reconciler_manages() -> None:
    paths = watched_paths([1, 1, 2])
    assert ACL_PATH in paths and (0, basic.CLUSTER_ID, basic.SOFTWARE_VERSION) in paths
    assert (1, 0x001E, 0) in paths and (2, 0x001E, 0) in paths and paths.count((1, 0x001E, 0)) == 1
    assert all((e, a.cluster_id, a.attribute_id) in paths for e, a in Capacities.PATHS)


async def test_one_subscription_per_peer_with_entries(rig: Rig) -> None:
    await committed_acl(rig)
    assert len(rig.peer.live()) == 1  # type: ignore[attr-defined]
    await rig.clock.advance(5)  # sweeps come and go: still one
    assert len(rig.peer.live()) == 1 and len(rig.peer.ops("subscribe")) == 1  # type: ignore[attr-defined]
    assert rig.reconciler.stats.live_subscribes == 1


async def test_a_reported_deletion_is_repaired_at_once(rig: Rig) -> None:
    peer: LivePeer = rig.peer  # type: ignore[assignment]
    await committed_acl(rig)
    peer.acl = admin_entries()  # another administrator removed our entry
    peer.report(ACL_PATH)
    took = await rig.clock.run_until(lambda: len(peer.acl) == 3, within=1.0)
    assert took < 0.5 and rig.reconciler.stats.drift_repairs == 1 and rig.reconciler.stats.live_reports >= 1


async def test_drift_budget_still_bounds_report_triggered_repairs(rig: Rig) -> None:
    peer: LivePeer = rig.peer  # type: ignore[assignment]
    ref = await committed_acl(rig)
    for _ in range(3):
        peer.acl = admin_entries()
        peer.report(ACL_PATH)
        await rig.until(lambda: len(peer.acl) == 3)
    peer.acl = admin_entries()
    peer.report(ACL_PATH)
    await rig.clock.advance(1)
    await rig.idle()
    assert peer.acl == admin_entries() and rig.reconciler.stats.drift_exhausted == 1
    assert rig.state(ref) == (C, 0)


async def test_idle_peers_are_not_polled(rig: Rig) -> None:
    await committed_acl(rig)
    before = reads(rig.peer)
    await rig.clock.advance(600)  # ten minutes of virtual time, nothing changes on the peer
    assert reads(rig.peer) == before and not rig.peer.ops("write:acl")[1:]


async def test_slow_safety_sweep_still_verifies(rig: Rig) -> None:
    await committed_acl(rig)
    before = reads(rig.peer)
    await rig.clock.advance(3601)
    assert reads(rig.peer) > before


async def test_lost_subscription_marks_unreachable_and_resubscribes_then_converges(rig: Rig) -> None:
    peer: LivePeer = rig.peer  # type: ignore[assignment]
    await committed_acl(rig)
    peer.drop()
    await rig.clock.settle()
    assert rig.reconciler.reachable(NODE) is False and rig.reconciler.stats.live_lost == 1
    subscribes = rig.reconciler.stats.live_subscribes
    ref = rig.store.add_acl(NODE, jace(VIEW, [0x66]))  # added while the peer is away: waits
    await rig.clock.advance(10)
    # Resubscribed with the backoff (here 0.05 s doubling to 0.2 s, +-25 % jitter), not in a busy loop.
    assert 10 / 0.25 <= rig.reconciler.stats.live_subscribes - subscribes <= 10 / 0.15 + 3
    assert rig.state(ref)[0] is not C and rig.reconciler.reachable(NODE) is False  # type: ignore[index]
    peer.reachable = True
    took = await rig.clock.run_until(lambda: rig.state(ref) == (C, 0) and rig.reconciler.reachable(NODE), within=5.0)
    assert took <= 0.3  # within one (capped) backoff step
    assert len(peer.live()) == 1


class EvictedSession:
    """What the IM client's subscription holds: a session our outbound budget evicted (``SecureSession.evicted``)."""

    evicted = True


async def test_a_subscription_evicted_by_our_own_budget_is_no_reachability_change(rig: Rig) -> None:
    """More peers watched than the outbound budget holds: the eviction is ours, the peer did not go away. No
    on_down, and no resubscribe at once (it would evict another watch, which would do the same): one after about
    the sweep interval (0.2 s here, jittered 0.5x to 1.5x), whose priming report brings a verify pass."""
    peer: LivePeer = rig.peer  # type: ignore[assignment]
    await committed_acl(rig)
    [sub] = peer.live()
    sub.session = EvictedSession()  # type: ignore[attr-defined]
    sub.active = False
    subscribes, before = rig.reconciler.stats.live_subscribes, reads(peer)
    assert sub.on_lost is not None
    sub.on_lost(InteractionError("session_closed", "the subscription's session closed"))
    await rig.clock.advance(0.09)
    assert rig.reconciler.reachable(NODE) is True and rig.reconciler.stats.live_lost == 0
    assert rig.reconciler.stats.live_subscribes == subscribes and peer.live() == []
    await rig.clock.advance(0.3)
    await rig.idle()
    assert rig.reconciler.stats.live_subscribes == subscribes + 1 and len(peer.live()) == 1
    assert reads(peer) > before  # the verify pass of the new priming report


async def test_software_version_change_triggers_a_full_verify(rig: Rig) -> None:
    peer: LivePeer = rig.peer  # type: ignore[assignment]
    await committed_acl(rig)
    before = reads(peer)
    peer.software_version = 2
    peer.report((0, basic.CLUSTER_ID, basic.SOFTWARE_VERSION))
    await rig.clock.advance(0.5)
    await rig.idle()
    assert reads(peer) > before  # verified (and the limits read again)
    before = reads(peer)
    peer.report((0, basic.CLUSTER_ID, basic.SOFTWARE_VERSION))  # same version again: nothing to do
    await rig.clock.advance(0.5)
    assert reads(peer) == before


async def test_limits_come_from_the_subscription_cache(rig: Rig) -> None:
    await committed_acl(rig)
    capacity_reads = [op for op in rig.peer.ops("read") if (0, ac.CLUSTER_ID, ac.ACCESS_CONTROL_ENTRIES_PER_FABRIC)
                      in op[1]]
    rig.store.add_acl(NODE, jace(VIEW, [0x67]))
    await rig.clock.advance(1)
    await rig.idle()
    after = [op for op in rig.peer.ops("read") if (0, ac.CLUSTER_ID, ac.ACCESS_CONTROL_ENTRIES_PER_FABRIC) in op[1]]
    assert after == capacity_reads  # the second pass took the limits from the subscription


async def test_removed_node_is_unwatched(rig: Rig) -> None:
    await committed_acl(rig)
    rig.store.remove_node(NODE)
    await rig.clock.advance(1)
    assert not rig.peer.live()  # type: ignore[attr-defined]


async def test_resubscribe_backoff_is_capped_whatever_the_retry_policy(store: JfdsStore) -> None:
    config = ReconcilerConfig(sweep_interval=0.2, settle_delay=0.0, verify_interval=3600.0, live_resubscribe_max=2.0)
    rig = Rig(store, LivePeer(), config)  # the default retry policy: up to 300 s
    rig.reconciler.start()
    try:
        peer: LivePeer = rig.peer  # type: ignore[assignment]
        await committed_acl(rig)
        peer.drop()
        await rig.clock.advance(600)  # ten minutes away: the node's own backoff grew long
        peer.reachable = True
        took = await rig.clock.run_until(lambda: rig.reconciler.reachable(NODE), within=10.0)
        assert took <= 2.0 * 1.25  # the capped resubscribe, with its jitter
    finally:
        await rig.reconciler.stop()


async def test_an_entry_that_cannot_fit_is_refused_from_the_cache_without_a_write(store: JfdsStore) -> None:
    rig = Rig(store, LivePeer(acl_limit=3), CONFIG)  # the two admin entries, and room for one
    rig.reconciler.start()
    try:
        await committed_acl(rig)
        writes = len(rig.peer.ops("write:acl"))
        ref = store.add_acl(NODE, jace(VIEW, [0x99]))
        await rig.until(lambda: rig.state(ref) is not None and rig.state(ref)[0] is DatastoreState.COMMIT_FAILED)
        assert rig.state(ref) == (DatastoreState.COMMIT_FAILED, Status.RESOURCE_EXHAUSTED)
        assert len(rig.peer.ops("write:acl")) == writes and len(rig.peer.acl) == 3
    finally:
        await rig.reconciler.stop()


async def test_reports_the_schema_does_not_expect_do_no_harm(rig: Rig) -> None:
    peer: LivePeer = rig.peer  # type: ignore[assignment]
    await committed_acl(rig)
    [sub] = peer.live()
    odd = ReadResult()
    odd.attributes[AttributePath(0, basic.CLUSTER_ID, basic.SOFTWARE_VERSION)] = "not a number"
    odd.attributes[AttributePath(0, ac.CLUSTER_ID, ac.ACCESS_CONTROL_ENTRIES_PER_FABRIC)] = [1, 2]
    odd.statuses[AttributePath(0, ac.CLUSTER_ID, ac.ACL)] = AttributeStatus(
        AttributePath(0, ac.CLUSTER_ID, ac.ACL), Status.UNSUPPORTED_ACCESS)
    sub.on_report(odd)
    await rig.clock.advance(1)
    await rig.idle()
    assert rig.reconciler.reachable(NODE) is True and len(peer.live()) == 1
    assert rig.reconciler.live is not None and rig.reconciler.live.capacities(NODE) == Capacities(
        None, 4, 4, 20, 22, 1)


async def test_a_report_that_still_holds_every_committed_entry_costs_no_read(rig: Rig) -> None:
    peer: LivePeer = rig.peer  # type: ignore[assignment]
    await committed_acl(rig)
    before = reads(peer)
    peer.acl.append(ace(VIEW, [0x4242]))  # another administrator adds an entry of its own: ours are all there
    peer.report(ACL_PATH)
    await rig.clock.advance(1)
    await rig.idle()
    assert reads(peer) == before and rig.reconciler.stats.live_reports >= 1
    peer.acl = [e for e in peer.acl if e[3] != [0x55]]  # now ours is gone: verified and repaired
    peer.report(ACL_PATH)
    await rig.until(lambda: any(e[3] == [0x55] for e in peer.acl))
    assert reads(peer) > before and rig.reconciler.stats.drift_repairs == 1


async def full_peer(store: JfdsStore, acl: list[Any] | None = None) -> Rig:
    """A rig whose peer holds the two admin entries (plus ``acl``) and two of ours, with room for nothing more; the
    second of ours was written while subscribed, and the fake peer reports only when told: its echo is pending."""
    entries = [*admin_entries(), *(acl or [])]
    rig = Rig(store, LivePeer(acl=entries, acl_limit=len(entries) + 2), CONFIG)
    rig.reconciler.start()
    await committed_acl(rig)
    second = store.add_acl(NODE, jace(VIEW, [0x56]))
    await rig.until(lambda: rig.state(second) == (C, 0))
    return rig


def acl_traffic(rig: Rig) -> tuple[int, int, int]:
    """(IM interactions of the reconciler, reads of the ACL, writes of the ACL) so far."""
    acl_reads = [op for op in rig.peer.ops("read") if ACL_PATH in op[1]]
    return rig.reconciler.stats.interactions, len(acl_reads), len(rig.peer.ops("write:acl"))


async def test_a_full_acl_is_refused_from_the_subscription_without_a_read(store: JfdsStore) -> None:
    rig = await full_peer(store)
    try:
        peer: LivePeer = rig.peer  # type: ignore[assignment]
        peer.report(ACL_PATH)  # the echo of our write: the subscription's ACL is current again
        await rig.idle()
        before = acl_traffic(rig)
        ref = store.add_acl(NODE, jace(VIEW, [0x99]))
        await rig.until(lambda: rig.state(ref) is not None and rig.state(ref)[0] is DatastoreState.COMMIT_FAILED)
        assert rig.state(ref) == (DatastoreState.COMMIT_FAILED, Status.RESOURCE_EXHAUSTED)
        assert acl_traffic(rig) == before  # not one interaction: no read, no write
        assert len(peer.acl) == 4
    finally:
        await rig.reconciler.stop()


async def test_the_acl_is_read_while_our_last_write_is_unreported(store: JfdsStore) -> None:
    rig = await full_peer(store)
    try:
        peer: LivePeer = rig.peer  # type: ignore[assignment]
        peer.report(ACL_PATH)
        await rig.idle()  # the subscription's ACL: full
        found = store.find_acl(NODE, jace(VIEW, [0x56]))
        assert found is not None
        ours = found.ref
        store.request_removal(ours)  # our removal frees a slot; its echo has not come
        await rig.until(lambda: rig.state(ours) is None)
        _, reads_before, writes = acl_traffic(rig)
        ref = store.add_acl(NODE, jace(VIEW, [0x99]))
        await rig.until(lambda: rig.state(ref) == (C, 0))  # not refused from the list as last reported
        assert acl_traffic(rig)[1:] == (reads_before + 1, writes + 1)  # read afresh, then written
        assert any(e[3] == [0x99] for e in peer.acl) and len(peer.acl) == 4
    finally:
        await rig.reconciler.stop()


async def test_a_reported_free_slot_is_used_after_a_fresh_read(store: JfdsStore) -> None:
    foreign = ace(VIEW, [0x4242])  # another administrator's entry
    rig = await full_peer(store, [foreign])
    try:
        peer: LivePeer = rig.peer  # type: ignore[assignment]
        peer.report(ACL_PATH)
        await rig.idle()
        peer.acl.remove(foreign)  # the other administrator frees a slot; the subscription says so
        peer.report(ACL_PATH)
        await rig.idle()
        _, reads_before, writes = acl_traffic(rig)
        ref = store.add_acl(NODE, jace(VIEW, [0x99]))
        await rig.until(lambda: rig.state(ref) == (C, 0))
        _, reads_after, writes_after = acl_traffic(rig)
        assert (reads_after, writes_after) == (reads_before + 1, writes + 1)  # never a write from the cache
        assert any(e[3] == [0x99] for e in peer.acl) and len(peer.acl) == 5
    finally:
        await rig.reconciler.stop()


def test_the_ceiling_grows_with_the_watched_peers_to_bound_idle_keep_alives(store: JfdsStore) -> None:
    """Issue 13: 1024 idle peers at the 10 s ceiling would send 102 keep-alive reports a second; past 400 watched
    peers (10 s x 40/s) new subscriptions ask for a longer ceiling instead, the peers' reports staying at 40/s."""
    peers = FakePeer()
    live = LiveWatch(peers, peers, ManualClock(), on_drift=lambda *_: None, on_up=lambda *_: None,  # type: ignore[arg-type]
                     on_down=lambda *_: None, max_interval=10, keepalives_per_second=40.0)
    assert live.ceiling == 10
    for node_id in range(1, 401):
        live._watches[node_id] = object()  # type: ignore[assignment]
    assert live.ceiling == 10
    for node_id in range(401, 1025):
        live._watches[node_id] = object()  # type: ignore[assignment]
    assert live.ceiling == 26 and 1024 / live.ceiling <= 40.0
