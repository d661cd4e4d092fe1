"""The runner's drift budget (``plan.DriftBook`` over ``datastore.drift_repairs``) on virtual time: at most
``drift_budget`` repairs of one entry revision per ``drift_window``; the window passing gives the entry a new
chance; the spent budget survives a restart on the same database file; the books of older revisions and erased
entries are pruned by the verify passes."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from jfds_device.clock import ManualClock
from jfds_device.datastore.drift_repairs import DriftRepairStore
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.reconciler import OwnIdentity, Reconciler, ReconcilerConfig, RetryPolicy
from tests.reconciler.fakes import US, VIEW, FakePeer, admin_entries, jace, new_store
from tests.reconciler.test_runner import NODE, C, Rig

WINDOW = 600.0
CONFIG = ReconcilerConfig(sweep_interval=5.0, settle_delay=0.0, retry=RetryPolicy(initial=0.05, maximum=0.2),
                          verify_interval=None, drift_budget=2, drift_window=WINDOW)
WALL = 1_700_000_000.0


class DriftRig(Rig):
    """``Rig`` with the wall clock starting where the test says (a restart happens later than the first run)."""

    def __init__(self, store: JfdsStore, peer: FakePeer, *, wall: float = WALL) -> None:
        self.store, self.peer, self.clock = store, peer, ManualClock(wall_start=wall)
        self.fabric: int | None = 1
        self.reconciler = Reconciler(store, peer, peer, fabric_index=lambda: self.fabric,
                                     own_identity=lambda _: OwnIdentity(US), clock=self.clock, config=CONFIG)


def peer_store(path: Path | str = ":memory:") -> JfdsStore:
    store = new_store(path)
    store.add_node(NODE, "peer")
    store.sync_endpoints(NODE, [0, 1])
    return store


async def drift_and_verify(rig: Rig) -> bool:
    """Another administrator removes our entries from the node; the node becomes reachable again (a verify pass).
    Whether the pass restored them."""
    rig.peer.acl = admin_entries()
    rig.peer.announce()
    await rig.clock.advance(0.05)
    await rig.idle()
    return rig.peer.acl != admin_entries()


async def test_a_spent_budget_stops_repairs_until_the_window_passes(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="jfds_device.reconciler")
    rig = DriftRig(peer_store(), FakePeer())
    rig.reconciler.start()
    try:
        ref = rig.store.add_acl(NODE, jace(VIEW, [0x55]))
        await rig.until(lambda: rig.state(ref) == (C, 0))
        first = rig.clock.now()
        assert await drift_and_verify(rig)
        await rig.clock.advance(100)
        assert await drift_and_verify(rig)
        assert not await drift_and_verify(rig)  # two repairs within the window: the third drift stays
        assert rig.reconciler.stats.drift_exhausted == 1 and rig.reconciler.stats.drift_repairs == 2
        waits = [float(m.group(1)) for r in caplog.records
                 if (m := re.search(r"drift budget spent, left as it is for (\d+) s", r.getMessage()))]
        assert waits and WINDOW - 102 <= waits[0] <= WINDOW - 100  # it says when the next repair may come
        await rig.clock.advance(first + WINDOW - 1 - rig.clock.now())
        assert not await drift_and_verify(rig)  # still within the window of the first repair
        await rig.clock.advance(2)
        assert await drift_and_verify(rig)  # the first repair left the window: one new chance
        assert rig.reconciler.stats.drift_repairs == 3 and rig.state(ref) == (C, 0)
        assert not await drift_and_verify(rig)  # and only one: the second repair is still in the window
    finally:
        await rig.reconciler.stop()


async def test_a_restart_keeps_the_spent_budget(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = DriftRig(peer_store(path), FakePeer())
    first.reconciler.start()
    try:
        ref = first.store.add_acl(NODE, jace(VIEW, [0x55]))
        await first.until(lambda: first.state(ref) == (C, 0))
        assert await drift_and_verify(first) and await drift_and_verify(first)
    finally:
        await first.reconciler.stop()
    # The process dies (nothing closed); a minute later the node starts again on the same file, and the peer has
    # lost our entry once more meanwhile.
    again = DriftRig(new_store(path), FakePeer(), wall=first.clock.wall() + 60)
    again.reconciler.start()
    try:
        await again.idle()
        assert not await drift_and_verify(again)  # the budget spent before the restart still counts
        assert again.reconciler.stats.drift_exhausted == 1 and again.reconciler.stats.drift_repairs == 0
        await again.clock.advance(WINDOW)
        assert await drift_and_verify(again)
        assert again.reconciler.stats.drift_repairs == 1 and again.state(ref) == (C, 0)
    finally:
        await again.reconciler.stop()


async def test_verify_passes_prune_the_books_of_old_revisions_and_erased_entries() -> None:
    rig = DriftRig(peer_store(), FakePeer())
    books = DriftRepairStore(rig.store.database)
    rig.reconciler.start()
    try:
        keep = rig.store.add_acl(NODE, jace(VIEW, [0x44]))
        ref = rig.store.add_acl(NODE, jace(VIEW, [0x55]))
        await rig.until(lambda: rig.state(ref) == (C, 0) and rig.state(keep) == (C, 0))
        assert await drift_and_verify(rig)
        assert books.count(NODE) == 2  # both entries were repaired once
        rig.store.renew(ref)  # pushed again: a new revision, a new budget
        await rig.until(lambda: rig.state(ref) == (C, 0))
        rig.peer.announce()
        await rig.clock.advance(0.05)
        await rig.idle()
        old = rig.store.entry(ref)
        assert old is not None and books.count(NODE) == 1  # the old revision's book went; keep's stays
        assert books.repairs(ref, old.revision) == []
        rig.store.request_removal(ref)
        await rig.until(lambda: rig.state(ref) is None)
        rig.peer.announce()
        await rig.clock.advance(WINDOW)
        await rig.idle()
        rig.peer.announce()  # a verify pass after the window: keep's repair left it too
        await rig.clock.advance(0.05)
        await rig.idle()
        assert books.count() == 0
    finally:
        await rig.reconciler.stop()
