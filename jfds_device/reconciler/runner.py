"""The embedded reconciler: converges the fabric's peer nodes to the Joint Fabric Datastore (Core spec 11.24.4.3,
11.24.7.11) and writes each entry's status back. The asyncio shell around the sans-IO planner (``plan.py``).

* One serialized work queue per node: requests coalesce into one pending pass (verify / refresh OR-merged); a
  request during a pass becomes one follow-up pass. Nodes run in parallel up to ``max_parallel_nodes``.
* Triggers: a datastore change (``JfdsStore.observe``; the callback only schedules, because it can arrive before
  the node's own transaction commits, and the pass re-reads); RefreshNode (``DatastoreChange.refresh``); a peer
  becoming reachable (``PeerSessions`` listener: verify pass, retry schedule reset); the live view (``live.py``:
  one subscription per node with pushed entries; a report of a managed list is a verify pass, a SoftwareVersion
  change a full one, the priming report converges the node, a lost subscription marks it unreachable); a periodic
  sweep of Pending / DeletePending / transient CommitFailed entries (11.24.4.3 "periodically review"); retries.
* Recoverable failures back a node off exponentially with jitter (``RetryState``); datastore changes honour the
  backoff (the entries stay Pending), RefreshNode and reachability do not.
* Verify pass (when a peer becomes reachable or reports a change, and every ``verify_interval``, a slow safety
  sweep, while it stays up): Committed entries
  the peer no longer holds are re-applied, within a per-entry budget per time window (``DriftBook``, kept in the
  node's database), so we never fight another administrator forever, nor give up on an entry for ever.
* Restart safety: all state is in the datastore; ``start()`` sweeps at once, which schedules every node with work.
  No peer list survives a pass: every read-merge-write reads the list (and its DataVersion) afresh and writes
  conditioned on it (``lists.py``), so nothing read before a crash or restart is ever written back.
* Observability: one structured log line per pass that did something, counters in ``stats``.
* Seams (``ports.py``): peer sessions come from a ``PeerSessions`` the node adapts to, time from a ``Clock``
  (``LoopClock`` by default; tests run the runner on ``ManualClock``'s virtual time).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clusters.joint_fabric_datastore.schema import DatastoreState, GroupKeySet
from jfds_device.clock import Clock, LoopClock, TimerHandle
from jfds_device.codec.schema import NULL
from jfds_device.datastore.drift_repairs import DriftRepairStore
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import DatastoreChange, Entry, EntryKind, EntryRef
from jfds_device.errors import IMStatusError, MatterError, TransportError
from jfds_device.im.client_messages import ReadResult
from jfds_device.im.provider import Status
from jfds_device.reconciler.config import PassReport, ReconcilerConfig, ReconcilerStats
from jfds_device.reconciler.execute import Execution, execute
from jfds_device.reconciler.facet_registry import default_facets
from jfds_device.reconciler.facets import Facet
from jfds_device.reconciler.live import LiveWatch, Subscriber, contradicts
from jfds_device.reconciler.peer import Capacities, ListWriteHook, OwnIdentity, PeerClient, PeerContext, PeerIO
from jfds_device.reconciler.plan import (
    DriftBook,
    DriftLedger,
    Mode,
    Op,
    Outcome,
    Plan,
    RetryClass,
    RetryPolicy,
    RetryState,
    Write,
    plan_node,
    retry_class,
    status_write,
)
from jfds_device.reconciler.ports import PeerId, PeerSessions, PeerState, PeerUnreachableError
from jfds_device.reconciler.refresh import RefreshReport, adopt, read_node

__all__ = ["PassReport", "Reconciler", "ReconcilerConfig", "ReconcilerStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Node:
    node_id: int
    retry: RetryState
    drift: DriftBook
    wanted: bool = False
    verify: bool = False
    refresh: bool = False
    force: bool = False
    task: asyncio.Task[None] | None = None
    timer: TimerHandle | None = None
    capacities: Capacities | None = None
    last: PassReport | None = None
    verified_at: float = -math.inf  # clock time of the last verify (or refresh) that reached the node



def _capped(policy: RetryPolicy, maximum: float) -> RetryPolicy:
    return dataclasses.replace(policy, maximum=max(policy.initial, min(policy.maximum, maximum)))


def _pushed(entry: Entry) -> bool:
    return entry.ref.kind in (EntryKind.NODE_KEY_SET, EntryKind.ENDPOINT_GROUP, EntryKind.ACL, EntryKind.BINDING)


class Reconciler:
    """See the module docstring. ``peers`` gives CASE sessions and reachability events (``ports.PeerSessions``);
    ``fabric_index()`` the anchor fabric (None: not bootstrapped, nothing to do); ``own_identity(index)`` who we
    are there (protects the ACL entry that lets us manage nodes); ``clock`` defaults to the running loop's;
    ``drift_ledger`` (where the drift budget is kept) to a ``DriftRepairStore`` in the store's database."""

    def __init__(self, store: JfdsStore, client: PeerClient, peers: PeerSessions, *,
                 fabric_index: Callable[[], int | None],
                 own_identity: Callable[[int], OwnIdentity | None] | None = None,
                 clock: Clock | None = None, config: ReconcilerConfig | None = None,
                 facets: dict[int, Facet] | None = None, rng: random.Random | None = None,
                 drift_ledger: DriftLedger | None = None) -> None:
        self.store, self.client, self.peers = store, client, peers
        self._fabric_index, self._own = fabric_index, own_identity or (lambda _: None)
        self._clock = clock
        self.config = config or ReconcilerConfig()
        self.facets = facets or default_facets()
        self._rng = rng or random.Random()
        self._drift_ledger = DriftRepairStore(store.database) if drift_ledger is None else drift_ledger
        self._nodes: dict[int, _Node] = {}
        self._stats = ReconcilerStats()
        self._logged_work = 0  # stats.case_n + read_n + write_n when the stats line was last logged
        self._cleanup: list[Callable[[], None]] = []
        self._sweeper: TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self.live: LiveWatch | None = None
        """The subscriptions to the managed peers (``config.live`` and a client that can subscribe)."""
        self.before_list_write: ListWriteHook | None = None
        """Test seam (``peer.ListWriteHook``): awaited just before each conditional write of a peer's list."""
        self.key_sets: Callable[[int], GroupKeySet | None] | None = None
        """What a key set is pushed as (the task engine's rotation phases); None: its GroupKeySetList value."""
        self._reachability: list[Callable[[int, bool], None]] = []
        self._watch_all = True  # the next sweep watches every node with pushed entries (start, after a wipe)

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = LoopClock()
        return self._clock

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to the triggers and sweep at once (restart safety). Call from the running loop."""
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.config.max_parallel_nodes)
        self._cleanup.append(self.store.observe(self._on_change))
        self._cleanup.append(self.peers.add_listener(self._on_peer))
        if self.config.live and callable(getattr(self.client, "subscribe", None)):
            subscriber: Subscriber = self.client  # type: ignore[assignment]
            self.live = LiveWatch(subscriber, self.peers, self.clock, on_drift=self._live_drift, on_up=self._live_up,
                                  on_down=self._live_down, retry=_capped(self.config.retry,
                                                                         self.config.live_resubscribe_max),
                                  min_interval=self.config.live_min_interval,
                                  max_interval=self.config.live_max_interval,
                                  keepalives_per_second=self.config.live_keepalives_per_second, rng=self._rng,
                                  evicted_resubscribe=self.config.sweep_interval)
        self._sweeper = self.clock.call_at(self.clock.now(), self._sweep)

    async def stop(self) -> None:
        for undo in self._cleanup:
            undo()
        self._cleanup.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [n.task for n in self._nodes.values() if n.task is not None]
        for node in self._nodes.values():
            if node.timer is not None:
                node.timer.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.live is not None:
            await self.live.stop()
        self._log_stats(force=True)

    @property
    def stats(self) -> ReconcilerStats:
        self._stats.queue_depth = sum(1 for n in self._nodes.values() if n.wanted or n.task is not None)
        if self.live is not None:
            self._stats.live_subscribes, self._stats.live_reports = self.live.subscribes, self.live.reports
            self._stats.live_lost = self.live.lost
        return self._stats

    def add_reachability_listener(self, listener: Callable[[int, bool], None]) -> Callable[[], None]:
        """``listener(node_id, reachable)`` on every reachability change the reconciler sees (a subscription
        established or lost, a CASE session to the node); returns the function that removes it."""
        self._reachability.append(listener)
        return lambda: self._reachability.remove(listener) if listener in self._reachability else None

    def _tell_reachability(self, node_id: int, reachable: bool) -> None:
        for listener in list(self._reachability):
            try:
                listener(node_id, reachable)
            except Exception:  # a listener's failure must not stop the reconciler
                log.exception("reachability listener %r failed", listener)

    def reachable(self, node_id: int) -> bool | None:
        """The node's reachability as its subscription's liveness says (None: not watched, or not yet known)."""
        return None if self.live is None else self.live.reachable(node_id)

    def _log_stats(self, *, force: bool = False) -> None:
        """One INFO line with the counters and phase timers, when peer work (or a live event: a subscription
        attempt, a report, a loss) happened since the last one."""
        stats = self.stats
        work = stats.case_n + stats.read_n + stats.write_n + stats.live_subscribes + stats.live_reports + \
            stats.live_lost
        if work != self._logged_work or force:
            self._logged_work = work
            log.info("reconciler stats: %s", stats.line())

    def last_pass(self, node_id: int) -> PassReport | None:
        node = self._nodes.get(node_id)
        return None if node is None else node.last

    # --- requests ----------------------------------------------------------------------------------------

    def request(self, node_id: int, *, verify: bool = False, refresh: bool = False, force: bool = False) -> None:
        """Ask for a pass on ``node_id`` (coalesced). ``force`` ignores the node's retry backoff."""
        if self._loop is None:
            return
        node = self._nodes.get(node_id)
        if node is None:
            node = self._nodes[node_id] = _Node(node_id, RetryState(self.config.retry),
                                                DriftBook(self.config.drift_budget, self.config.drift_window,
                                                          self._drift_ledger))
        node.wanted = True
        node.verify |= verify
        node.refresh |= refresh
        node.force |= force
        if node.task is None:
            node.task = self._loop.create_task(self._drain(node), name=f"reconcile-{node_id:016X}")

    async def reconcile(self, node_id: int, *, verify: bool = False, refresh: bool = False) -> PassReport | None:
        """Run a pass now (after any in progress) and return its report."""
        self.request(node_id, verify=verify, refresh=refresh, force=True)
        await self.wait_idle(node_id)
        return self.last_pass(node_id)

    async def wait_idle(self, node_id: int | None = None) -> None:
        """Until the node (every node) has no pass running or queued (retry timers not counted)."""
        while True:
            tasks = [n.task for i, n in self._nodes.items() if n.task is not None and node_id in (None, i)]
            if not tasks:
                return
            await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)

    def _on_change(self, change: DatastoreChange) -> None:
        # Called inside the writer's transaction: only schedule (the pass re-reads what it acts on).
        if self._loop is not None:
            self._loop.call_soon(self._handle_change, change)

    def _handle_change(self, change: DatastoreChange) -> None:
        if change.wiped:
            for node in self._nodes.values():
                if node.timer is not None:
                    node.timer.cancel()
                if node.task is not None:
                    node.task.cancel()
            self._nodes.clear()
            if self.live is not None:
                for node_id in self.live.watching():
                    self.live.unwatch(node_id)
            self._watch_all = True
            return
        for ref in change.erased:  # RemoveNode: forget the node (a pass in flight finds its entries gone)
            if ref.kind is EntryKind.NODE and (node := self._nodes.get(ref.node_id)) is not None:
                node.wanted = False
                if node.timer is not None:
                    node.timer.cancel()
                if node.task is None:
                    del self._nodes[ref.node_id]
            if ref.kind is EntryKind.NODE and self.live is not None:
                self.live.unwatch(ref.node_id)
        for node_id in change.refresh:
            self.request(node_id, refresh=True, force=True)
        for node_id in dict.fromkeys(r.node_id for r in change.intent if r.kind is not EntryKind.NODE):
            if self.store.node(node_id) is not None:
                self.request(node_id)

    def _on_peer(self, peer: PeerId, state: PeerState) -> None:
        if state is PeerState.REACHABLE and self._loop is not None:
            self._loop.call_soon(self._reachable, peer)

    def _reachable(self, peer: PeerId) -> None:
        if peer.fabric_index != self._fabric_index() or self.store.node(peer.node_id) is None:
            return
        node = self._nodes.get(peer.node_id)
        if node is not None:
            node.retry.succeeded()
            node.capacities = None  # a new session may be a new firmware: read the limits again
        self.request(peer.node_id, verify=True, force=True)
        self._tell_reachability(peer.node_id, True)

    # --- live subscriptions (live.py) -----------------------------------------------------------------------

    def _live_drift(self, node_id: int, full: bool, report: ReadResult) -> None:
        """A managed list changed on the node (or its firmware did): verify it, within the drift budget, unless
        the report shows every Committed entry it covers still held (e.g. the echo of our own write)."""
        if self.store.node(node_id) is None or (not full and not contradicts(report, [
                e for e in self.store.entries_for_node(node_id)
                if e.state is DatastoreState.COMMITTED and not e.removal])):
            return
        node = self._nodes.get(node_id)
        if full and node is not None:
            node.capacities = None
        self._log_stats()  # before the pass: the line shows what the idle time before the report cost
        self.request(node_id, verify=True, force=True)

    def _live_up(self, node_id: int, capacities: Capacities) -> None:
        """Subscribed (again): the node is reachable; converge it (its entries may have waited while it was down)."""
        if self.store.node(node_id) is None:
            return
        node = self._nodes.get(node_id)
        if node is not None:
            node.retry.succeeded()
            node.capacities = capacities
        self._log_stats()
        self.request(node_id, verify=True, force=True)
        self._tell_reachability(node_id, True)

    def _live_down(self, node_id: int) -> None:
        self._log_stats()
        log.info("reconciler: node 0x%016X unreachable (its subscription is lost); entries stay as they are",
                 node_id)
        self._tell_reachability(node_id, False)

    def _watch_live(self, fabric_index: int, node_id: int, entries: list[Entry]) -> None:
        """Keep a subscription to every node with entries pushed to it (Binding on the endpoints they use)."""
        if self.live is None:
            return
        if any(_pushed(e) for e in entries):
            endpoints = [e.ref.endpoint_id for e in entries if e.ref.kind is EntryKind.BINDING
                         and e.ref.endpoint_id is not None]
            self.live.watch(PeerId(fabric_index, node_id), endpoints)
        else:
            self.live.unwatch(node_id)

    def _sweep(self) -> None:
        """11.24.4.3: review the entries that still need work and schedule their nodes (honouring backoff)."""
        self._sweeper = self.clock.call_later(self.config.sweep_interval, self._sweep)
        if self._fabric_index() is None:
            return
        try:
            work: dict[int, list[Entry]] = {}
            for entry in self.store.pending_entries():
                work.setdefault(entry.ref.node_id, []).append(entry)
            fabric_index = self._fabric_index()
            assert fabric_index is not None
            if self.live is not None and self._watch_all:  # once: after that a pass's end keeps its node's watch
                self._watch_all = False
                for node_info in self.store.nodes():
                    self._watch_live(fabric_index, node_info.node_id,
                                     self.store.entries_for_node(node_info.node_id))
            for node_id, entries in work.items():
                node_entry = next((e for e in entries if e.ref.kind is EntryKind.NODE), None)
                if node_entry is not None and node_entry.state is DatastoreState.COMMIT_FAILED and \
                        retry_class(node_entry.status.failure_code) is RetryClass.TRANSIENT:
                    self.request(node_id, refresh=True)  # a RefreshNode that could not reach the node
                elif not plan_node(node_id, entries, key_set_of_group=self._groups(entries)).empty:
                    self.request(node_id)
            interval = self.config.verify_interval
            if interval is not None:
                now = self.clock.now()
                for node_info in self.store.nodes():
                    node = self._nodes.get(node_info.node_id)
                    if node is None or now - node.verified_at >= interval:
                        self.request(node_info.node_id, verify=True)  # drift detection, honouring backoff
        except Exception:  # the sweep must keep running (e.g. the database was closed under us)
            log.exception("reconciler sweep failed")

    # --- the per-node queue ------------------------------------------------------------------------------

    async def _drain(self, node: _Node) -> None:
        assert self._loop is not None and self._slots is not None
        try:
            await self.clock.sleep(self.config.settle_delay)
            while node.wanted:
                if not node.force and node.retry.wait(self.clock.now()) > 0:
                    self._arm_retry(node)
                    return
                verify, refresh = node.verify, node.refresh
                node.wanted = node.verify = node.refresh = node.force = False
                async with self._slots:
                    try:
                        node.last = await self._pass(node, verify=verify, refresh=refresh)
                    except Exception:
                        log.exception("reconcile node=0x%016X failed", node.node_id)
                        self._failed(node)
        finally:
            node.task = None
            if not node.wanted and node.timer is None and self._nodes.get(node.node_id) is node:
                with contextlib.suppress(Exception):  # cleanup only; the database may be closing
                    if self.store.node(node.node_id) is None:
                        del self._nodes[node.node_id]  # RemoveNode during the pass: forget the node
            if all(n.task is None for n in self._nodes.values()):
                self._log_stats()  # idle after work

    def _arm_retry(self, node: _Node) -> None:
        if node.timer is not None:
            node.timer.cancel()
        node.timer = self.clock.call_at(node.retry.retry_at, self._retry_due, node.node_id)

    def _retry_due(self, node_id: int) -> None:
        node = self._nodes.get(node_id)
        if node is not None:
            node.timer = None
            self.request(node_id, force=True)

    def _failed(self, node: _Node) -> None:
        node.retry.failed(self.clock.now(), self._rng.random())
        node.wanted = True
        self._arm_retry(node)

    # --- one pass ----------------------------------------------------------------------------------------

    def _groups(self, entries: list[Entry]) -> dict[int, int | None]:
        found: dict[int, int | None] = {}
        for entry in entries:
            if entry.ref.kind is EntryKind.ENDPOINT_GROUP and entry.ref.key not in found:
                group = self.store.group(entry.ref.key)  # type: ignore[arg-type]
                key_set = None if group is None or group.group_key_set_id is NULL else group.group_key_set_id
                found[entry.ref.key] = key_set  # type: ignore[index,assignment]
        return found

    def _plan(self, node: _Node, entries: list[Entry], mode: Mode,
              observed: dict[EntryRef, bool] | None = None) -> Plan:
        return plan_node(node.node_id, entries, mode=mode, key_set_of_group=self._groups(entries),
                         observed=observed, drift=node.drift, now=self.clock.wall())

    async def _pass(self, node: _Node, *, verify: bool, refresh: bool) -> PassReport | None:
        fabric_index = self._fabric_index()
        node_entry = self.store.entry(EntryRef.node(node.node_id))
        if fabric_index is None or node_entry is None:
            return None
        for _ in range(100):  # never act inside someone else's transaction (see _on_change)
            if not self.store.in_transaction:
                break
            await asyncio.sleep(0)
        clock = self.clock
        started = clock.now()
        mode = Mode.REFRESH if refresh else Mode.VERIFY if verify else Mode.NORMAL
        entries = self.store.entries_for_node(node.node_id)
        plan = self._plan(node, entries, mode)
        if mode is Mode.VERIFY and not any(_pushed(e) and e.state is DatastoreState.COMMITTED for e in entries):
            mode = Mode.NORMAL  # nothing on the node to verify: no need to reach it for that
            node.verified_at = clock.now()
            plan = self._plan(node, entries, mode)
        if mode is Mode.NORMAL and not plan.needs_peer:
            execution = Execution({a.ref: Outcome(held=a.op is Op.HOLD) for a in plan.actions})
            return self._finish(node, plan, execution, started, None, node_entry)
        peer = PeerId(fabric_index, node.node_id)
        report: RefreshReport | None = RefreshReport() if refresh else None
        connecting = clock.now()
        try:
            session = await self.peers.connect(peer, ignore_backoff=True)  # the reconciler has its own backoff
        except (PeerUnreachableError, TransportError) as exc:
            return self._unreachable(node, plan, str(exc), started, report, node_entry)
        finally:
            self._stats.case_s += clock.now() - connecting
            self._stats.case_n += 1
        io = PeerIO(self.client, session, timeout=self.config.interaction_timeout, node_id=node.node_id,
                    before_list_write=self.before_list_write)
        try:
            cached = None if self.live is None else self.live.capacities(node.node_id)
            if cached is not None:
                node.capacities = cached  # the subscription keeps the limits current
            elif node.capacities is None or mode is not Mode.NORMAL:
                node.capacities = await Capacities.read(io)
            ctx = PeerContext(io, node.node_id, self.store, entries, node.capacities, self._own(fabric_index),
                              list_write_attempts=self.config.list_write_attempts, key_sets=self.key_sets,
                              acl_view=None if self.live is None else self.live.acl_view(node.node_id))
            if report is not None:
                adopt(self.store, node.node_id, await read_node(io, report), report)
                ctx.entries = entries = self.store.entries_for_node(node.node_id)
                plan = self._plan(node, entries, mode)
            elif mode is Mode.VERIFY:
                node.drift.forget(node.node_id, ((e.ref, e.revision) for e in entries), self.clock.wall())
                plan = self._plan(node, entries, mode, await self._observe(node, ctx, entries))
            execution = await execute(plan, ctx, self.facets)
        except TransportError as exc:
            return self._unreachable(node, plan, str(exc), started, report, node_entry)
        except IMStatusError as exc:  # a whole read refused (RefreshNode's, e.g. UNSUPPORTED_ACCESS)
            return self._unreachable(node, plan, str(exc), started, report, node_entry, exc.status)
        finally:
            stats = self._stats
            stats.interactions += io.interactions
            stats.version_mismatches += io.version_mismatches
            stats.read_s, stats.read_n = stats.read_s + io.read_s, stats.read_n + io.read_n
            stats.write_s, stats.write_n = stats.write_s + io.write_s, stats.write_n + io.write_n
        if execution.transport_error is not None:
            self.peers.session_failed(peer)
        elif mode is not Mode.NORMAL:
            node.verified_at = clock.now()
        self._watch_live(fabric_index, node.node_id, self.store.entries_for_node(node.node_id))
        return self._finish(node, plan, execution, started, report, node_entry)

    async def _observe(self, node: _Node, ctx: PeerContext, entries: list[Entry]) -> dict[EntryRef, bool]:
        """Read what the peer holds for the kinds the node has Committed entries of; which of those it lacks."""
        committed = [e for e in entries if e.state is DatastoreState.COMMITTED and not e.removal]
        kinds = {e.ref.kind for e in committed}
        facets = [f for f in self.facets.values() if f.kind in kinds]
        for facet in list(facets):
            try:
                await facet.observe(ctx)
            except IMStatusError as exc:  # cannot tell what the node holds of this kind: no drift repair for it
                log.info("node 0x%016X: verify of %s refused: %s", node.node_id, facet.name, exc)
                facets.remove(facet)
        observed: dict[EntryRef, bool] = {}
        for entry in committed:
            seen = [facet.present(ctx, entry) for facet in facets if facet.kind is entry.ref.kind]
            if any(s is False for s in seen):
                observed[entry.ref] = False
                if not node.drift.allows(entry.ref, entry.revision, now := self.clock.wall()):
                    self._stats.drift_exhausted += 1
                    log.warning("node 0x%016X: %s keeps disappearing from the node; drift budget spent, left as it is "
                                "for %.0f s", node.node_id, entry.ref,
                                node.drift.renewed_at(entry.ref, entry.revision, now) - now)
            elif seen:
                observed[entry.ref] = True
        ctx.cache.clear()  # the applies that follow must read fresh
        return observed

    def _unreachable(self, node: _Node, plan: Plan, why: str, started: float, report: RefreshReport | None,
                     node_entry: Entry, refused: int | None = None) -> PassReport:
        """11.24.4: a sync that could not reach the node is CommitFailed(TIMEOUT); one the node refused as a whole
        gets the node's status (``refused``); drops need no node."""
        status = Status.TIMEOUT if refused is None else refused
        outcomes = {a.ref: Outcome(status, transport=refused is None) if a.op in (Op.APPLY, Op.REMOVE)
                    else Outcome(held=a.op is Op.HOLD) for a in plan.actions}
        if report is not None:
            report.failures.append(("connect" if refused is None else "read", status))
        error = TransportError(why) if refused is None else None
        return self._finish(node, plan, Execution(outcomes, error), started, report, node_entry)

    def _finish(self, node: _Node, plan: Plan, execution: Execution, started: float,
                report: RefreshReport | None, node_entry: Entry) -> PassReport:
        stats, counts = self._stats, {op: 0 for op in Op}
        failed: dict[EntryRef, int] = {}
        transient = execution.transport_error is not None
        with self.store.transaction():
            for action in plan.actions:
                outcome = execution.outcomes.get(action.ref, Outcome(held=True))
                if not self._record(action, outcome):
                    stats.stale_outcomes += 1
                if outcome.held or action.op is Op.HOLD:
                    counts[Op.HOLD] += 1
                elif not outcome.ok:
                    failed[action.ref] = outcome.status
                    transient |= outcome.transient
                else:
                    counts[action.op] += 1
                    if action.reason == "drift":
                        stats.drift_repairs += 1
                        node.drift.spend(action.ref, action.revision, self.clock.wall())
            node_state = self._node_status(node_entry, report, failed) if report is not None else None
        stats.passes += 1
        stats.refreshes += report is not None
        stats.applied += counts[Op.APPLY]
        stats.removed += counts[Op.REMOVE]
        stats.dropped += counts[Op.DROP]
        stats.held += counts[Op.HOLD]
        stats.failures += len(failed)
        stats.transport_failures += execution.transport_error is not None
        if transient:
            delay = node.retry.failed(self.clock.now(), self._rng.random())
            node.wanted = node.wanted or any(a.op is not Op.HOLD for a in plan.actions) or report is not None
            node.refresh |= report is not None  # a RefreshNode that could not finish is run again, not just a push
            self._arm_retry(node)
        elif plan.needs_peer or report is not None:
            node.retry.succeeded()
            delay = 0.0
        else:
            delay = 0.0
        result = PassReport(node.node_id, plan.mode, self.clock.now() - started, counts[Op.APPLY], counts[Op.REMOVE],
                            counts[Op.DROP], counts[Op.HOLD], failed,
                            None if execution.transport_error is None else str(execution.transport_error),
                            report, node_state)
        level = logging.INFO if plan.actions or report is not None else logging.DEBUG
        log.log(level, "reconcile node=0x%016X mode=%s applied=%d removed=%d dropped=%d held=%d failed=%d "
                "transport=%s retry_in=%.1fs took=%.3fs%s", node.node_id, plan.mode.value, result.applied,
                result.removed, result.dropped, result.held, len(failed), result.transport or "ok", delay,
                result.duration, "" if report is None else
                f" refresh_adopted={report.adopted} refresh_dropped={report.dropped} node={node_state}")
        return result

    def _record(self, action: Any, outcome: Outcome) -> bool:
        """Write one outcome, revision-checked; False if the entry changed meanwhile (its new intent wins)."""
        write = status_write(action, outcome)
        store, ref, revision = self.store, write.ref, write.revision
        if write.write is Write.NONE:
            return True
        if write.write is Write.COMMITTED:
            return store.set_status(ref, DatastoreState.COMMITTED, revision=revision)
        if write.write is Write.COMMIT_FAILED:
            return store.set_status(ref, DatastoreState.COMMIT_FAILED, write.failure_code, revision=revision)
        if write.write is Write.ERASE:
            return store.confirm_removed(ref, revision=revision)
        entry = store.entry(ref)  # Write.DROP: erase without touching the node
        if entry is None or entry.revision != revision:
            return False
        store.request_removal(ref)
        return store.confirm_removed(ref)

    def _node_status(self, node_entry: Entry, report: RefreshReport, failed: dict[EntryRef, int]) -> DatastoreState:
        """RefreshNode's end: the node is Committed when every stage and push succeeded, else CommitFailed with the
        first failure (the reference leaves it Pending; CommitFailed tells the operator why)."""
        codes = [code for _, code in report.failures] + list(failed.values())
        state = DatastoreState.COMMIT_FAILED if codes else DatastoreState.COMMITTED
        with contextlib.suppress(MatterError):
            self.store.set_status(node_entry.ref, state, codes[0] if codes else 0, revision=node_entry.revision)
        return state
