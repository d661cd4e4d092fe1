"""Live view of the managed peers: one subscription per peer (Core spec 8.5) over what the reconciler manages, so
drift and reachability are reported by the peer instead of found by polling.

* Paths: AccessControl ACL and the capacity attributes, GroupKeyManagement GroupKeyMap / GroupTable and their
  limits, OperationalCredentials CurrentFabricIndex, Binding on the endpoints the node's entries use,
  BasicInformation SoftwareVersion. One subscription per peer stays well inside the 3 per fabric every node must
  support (Core spec 8.5.1, "at least 3 subscriptions per fabric").
* A report of a managed list is a possible contradiction of a Committed entry: ``on_drift(node_id, False, report)``
  (the runner checks what it can from the report and verifies, within its drift budget, what the report
  contradicts or cannot tell). A SoftwareVersion change is ``on_drift(node_id, True, report)``
  (new firmware: read the limits again and verify everything).
* The ACL and the limits are cached from the reports (``capacities``, ``acl_view``): the capacity admission before
  an ACL write refuses an entry that cannot fit without reading the list. The cached ACL is current only while
  the subscription lives and no write of ours to the list is unreported (``ListView.wrote``).
* Liveness is reachability (Core spec 8.5.4, the subscriber's liveness check): the priming report makes the peer
  reachable (``on_up(node_id, capacities)``, the limits read from it); a lost subscription (no report within
  MaxInterval + margin, or the session closed) makes it unreachable (``on_down``) and resubscribes with the
  reconciler's backoff (``RetryState``), on the ``Clock`` so tests run it on virtual time.
* A subscription whose session our own outbound session budget evicted (``SecureSession.evicted``: more peers are
  watched than the budget holds) is no reachability change, as ``PeerConnections`` treats an eviction: no
  ``on_down``, and the watch resubscribes only after ``evicted_resubscribe`` seconds (jittered, 0.5x to 1.5x).
  Resubscribing at once would evict another watch's session, which would resubscribe at once in turn: with 64
  peers and a budget of 16 that loop ran at ~30 evictions per second, killing the reconciler's own passes
  mid-read. The priming report of the new subscription triggers the verify pass that catches what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from clusters.access_control import schema as ac
from clusters.basic_information import schema as basic
from clusters.binding import schema as binding
from clusters.group_key_management import schema as gkm
from jfds_device.clock import Clock, TimerHandle
from jfds_device.datastore.jfds_records import Entry, EntryKind
from jfds_device.errors import MatterError
from jfds_device.im.client_messages import ReadResult
from jfds_device.reconciler.facets_lists import list_holds
from jfds_device.reconciler.peer import Capacities, ListView
from jfds_device.reconciler.plan import RetryPolicy, RetryState
from jfds_device.reconciler.ports import PeerId, PeerSessions

__all__ = ["LiveWatch", "Subscriber", "contradicts", "watched_paths"]

log = logging.getLogger(__name__)

Path = tuple[int, int, int]

SOFTWARE_VERSION: Path = (0, basic.CLUSTER_ID, basic.SOFTWARE_VERSION)
ACL: Path = (0, ac.CLUSTER_ID, ac.ACL)
MANAGED_LISTS = {(ac.CLUSTER_ID, ac.ACL), (binding.CLUSTER_ID, binding.BINDING),
                 (gkm.CLUSTER_ID, gkm.GROUP_KEY_MAP), (gkm.CLUSTER_ID, gkm.GROUP_TABLE)}


class Subscriber(Protocol):
    """The part of ``im.client.InteractionClient`` the live view uses (a fake in tests)."""

    async def subscribe(self, session: Any, paths: Sequence[Any], min_interval: int, max_interval: int,
                        on_report: Callable[[ReadResult], None], *,
                        on_lost: Callable[[MatterError], None] | None = None) -> Any: ...


def watched_paths(binding_endpoints: Sequence[int]) -> list[Path]:
    """Everything the reconciler manages on a peer (endpoint 0 for the node-wide clusters)."""
    paths: list[Path] = [ACL, (0, gkm.CLUSTER_ID, gkm.GROUP_KEY_MAP),
                         (0, gkm.CLUSTER_ID, gkm.GROUP_TABLE), SOFTWARE_VERSION]
    paths += [(endpoint, attribute.cluster_id, attribute.attribute_id) for endpoint, attribute in Capacities.PATHS]
    paths += [(endpoint, binding.CLUSTER_ID, binding.BINDING) for endpoint in sorted(set(binding_endpoints))]
    return paths


@dataclass(slots=True)
class _Watch:
    peer: PeerId
    endpoints: tuple[int, ...]
    retry: RetryState
    subscription: Any = None
    task: asyncio.Task[None] | None = None
    timer: TimerHandle | None = None
    software_version: int | None = None
    reachable: bool | None = None
    capacities: Capacities | None = None
    acl: list[Any] | None = None  # our fabric's ACL entries as last reported (TLV); None: unknown
    acl_unreported_write: bool = False  # we wrote the ACL since that report
    generation: int = 0


class _AclView:
    """``peer.ListView`` of one watch's cached ACL."""

    def __init__(self, watch: _Watch) -> None:
        self._watch = watch

    def current(self) -> list[Any] | None:
        watch = self._watch
        if watch.subscription is None or watch.reachable is not True or watch.acl_unreported_write:
            return None
        return None if watch.acl is None else list(watch.acl)

    def wrote(self) -> None:
        self._watch.acl_unreported_write = True


class LiveWatch:
    """See the module docstring. ``min_interval`` / ``max_interval``: the subscription's floor and our requested
    ceiling (seconds; the peer may raise the ceiling, Core spec 8.5.1). ``keepalives_per_second`` bounds what idle
    peers cost: with more watched peers than ``max_interval`` times it, the ceiling asked for grows so that their
    keep-alive reports together stay at that rate (``ceiling``): 1024 peers at 40/s ask for 26 s, and a peer gone
    quiet is noticed that much later."""

    def __init__(self, client: Subscriber, peers: PeerSessions, clock: Clock, *,
                 on_drift: Callable[[int, bool, ReadResult], None], on_up: Callable[[int, Capacities], None],
                 on_down: Callable[[int], None], retry: RetryPolicy | None = None, min_interval: int = 0,
                 max_interval: int = 10, keepalives_per_second: float = 40.0, rng: random.Random | None = None,
                 evicted_resubscribe: float = 10.0) -> None:
        self._client, self._peers, self._clock = client, peers, clock
        self._on_drift, self._on_up, self._on_down = on_drift, on_up, on_down
        self._retry, self._rng = retry or RetryPolicy(), rng or random.Random()
        self.min_interval, self.max_interval = min_interval, max_interval
        self.keepalives_per_second = keepalives_per_second
        self._watches: dict[int, _Watch] = {}
        self.reports = 0  # reports with data (keep-alives are not delivered by the client)
        self.subscribes = 0  # subscription attempts (connect + SubscribeRequest)
        self.lost = 0  # times a watched peer went from reachable (or unknown) to unreachable
        self.evicted_resubscribe = evicted_resubscribe
        self.evicted = 0  # subscriptions (or attempts) whose session our outbound budget evicted

    @property
    def ceiling(self) -> int:
        """The MaxIntervalCeiling a new subscription asks for (see the class docstring)."""
        return max(self.max_interval, math.ceil(len(self._watches) / self.keepalives_per_second))

    def reachable(self, node_id: int) -> bool | None:
        """The subscription's liveness: True (reports arrive), False (lost), None (not watched or not yet up)."""
        watch = self._watches.get(node_id)
        return None if watch is None else watch.reachable

    def capacities(self, node_id: int) -> Capacities | None:
        watch = self._watches.get(node_id)
        return None if watch is None else watch.capacities

    def acl_view(self, node_id: int) -> ListView | None:
        """The peer's ACL as its subscription reports it (None: not watched)."""
        watch = self._watches.get(node_id)
        return None if watch is None else _AclView(watch)

    def watching(self) -> set[int]:
        return set(self._watches)

    def watch(self, peer: PeerId, binding_endpoints: Sequence[int]) -> None:
        """Keep one subscription to ``peer`` covering ``binding_endpoints``; a new endpoint set resubscribes."""
        endpoints = tuple(sorted(set(binding_endpoints)))
        watch = self._watches.get(peer.node_id)
        if watch is not None and watch.peer == peer and watch.endpoints == endpoints:
            return
        if watch is not None:
            self._end(watch)
        watch = self._watches[peer.node_id] = _Watch(peer, endpoints, RetryState(self._retry))
        self._start(watch)

    def unwatch(self, node_id: int) -> None:
        watch = self._watches.pop(node_id, None)
        if watch is not None:
            self._end(watch)

    async def stop(self) -> None:
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        for node_id in list(self._watches):
            self.unwatch(node_id)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- internals ---------------------------------------------------------------------------------------

    def _end(self, watch: _Watch) -> None:
        watch.generation += 1
        if watch.timer is not None:
            watch.timer.cancel()
            watch.timer = None
        if watch.task is not None:
            watch.task.cancel()
            watch.task = None
        if watch.subscription is not None:
            watch.subscription.cancel()
            watch.subscription = None

    def _start(self, watch: _Watch) -> None:
        watch.timer = None
        watch.task = asyncio.get_running_loop().create_task(self._subscribe(watch, watch.generation),
                                                            name=f"live-{watch.peer}")

    async def _subscribe(self, watch: _Watch, generation: int) -> None:
        peer = watch.peer
        self.subscribes += 1
        session: Any = None
        try:
            session = await self._peers.connect(peer, ignore_backoff=True)
            subscription = await self._client.subscribe(
                session, watched_paths(watch.endpoints), self.min_interval, self.ceiling,
                lambda result: self._report(watch, generation, result),
                on_lost=lambda error: self._lost(watch, generation, error))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unreachable, refused, timed out: all mean "try again later"
            if generation == watch.generation:
                watch.task = None
                if _evicted(session):
                    self._evicted(watch)
                else:
                    self._failed(watch, f"subscribe failed: {exc}")
            return
        if generation != watch.generation:  # unwatched or rewatched meanwhile
            subscription.cancel()
            return
        watch.task, watch.subscription = None, subscription
        watch.retry.succeeded()
        priming: ReadResult = subscription.priming
        watch.capacities = Capacities.from_result(priming)
        watch.acl, watch.acl_unreported_write = None, False
        _take_acl(watch, priming)
        known, watch.software_version = watch.software_version, _int(priming, SOFTWARE_VERSION)
        watch.reachable = True
        log.info("live: node 0x%016X subscribed (max interval %d s)", peer.node_id, subscription.max_interval)
        if known is not None and watch.software_version != known:  # restarted on new firmware (an OTA update)
            log.info("live: node 0x%016X software version changed (%s -> %s): full verify", peer.node_id, known,
                     watch.software_version)
        self._on_up(peer.node_id, watch.capacities)  # a verify pass with the limits of this priming report

    def _report(self, watch: _Watch, generation: int, result: ReadResult) -> None:
        if generation != watch.generation:
            return
        self.reports += 1
        reported = {(p.endpoint, p.cluster, p.attribute) for p in (*result.attributes, *result.statuses)}
        _take_acl(watch, result)
        if SOFTWARE_VERSION in reported:
            version = _int(result, SOFTWARE_VERSION)
            if version is None:  # a status, or not a uint32: nothing to compare (Core spec 11.1.5.10)
                log.info("live: node 0x%016X reported an unreadable SoftwareVersion; ignored", watch.peer.node_id)
            elif version != watch.software_version:
                log.info("live: node 0x%016X software version changed (%s -> %s): full verify", watch.peer.node_id,
                         watch.software_version, version)
                watch.software_version = version
                watch.capacities = Capacities.from_result(result)  # new firmware: only what this report says
                self._on_drift(watch.peer.node_id, True, result)
                return
        if reported & set(_capacity_paths()):
            watch.capacities = Capacities.from_result(result, watch.capacities)
        if {(c, a) for _, c, a in reported} & MANAGED_LISTS:
            self._on_drift(watch.peer.node_id, False, result)

    def _lost(self, watch: _Watch, generation: int, error: MatterError) -> None:
        if generation != watch.generation:
            return
        session = getattr(watch.subscription, "session", None)
        watch.subscription = None
        if _evicted(session):
            self._evicted(watch)
            return
        self._peers.session_failed(watch.peer)  # the session is as dead as the subscription
        self._failed(watch, f"subscription lost: {error}")

    def _evicted(self, watch: _Watch) -> None:
        """See the module docstring: no reachability change; resubscribe later, not at once."""
        self.evicted += 1
        delay = self.evicted_resubscribe * (0.5 + self._rng.random())
        log.info("live: node 0x%016X: our outbound session budget evicted the subscription's session; "
                 "resubscribing in %.1f s", watch.peer.node_id, delay)
        watch.timer = self._clock.call_at(self._clock.now() + delay, self._start, watch)

    def _failed(self, watch: _Watch, why: str) -> None:
        now = self._clock.now()
        delay = watch.retry.failed(now, self._rng.random())
        was = watch.reachable
        watch.reachable = False
        log.info("live: node 0x%016X %s; resubscribing in %.1f s", watch.peer.node_id, why, delay)
        watch.timer = self._clock.call_at(watch.retry.retry_at, self._start, watch)
        if was is not False:
            self.lost += 1
            self._on_down(watch.peer.node_id)


def contradicts(report: ReadResult, committed: Sequence[Entry]) -> bool:
    """Whether ``report`` may contradict one of the node's ``committed`` entries: an ACL or Binding list lacking
    one, a status, or a list not checked here (GroupKeyMap, GroupTable: the verify pass reads what it needs)."""
    if report.statuses:
        return True
    for path, value in report.attributes.items():
        if (path.cluster, path.attribute) in ((ac.CLUSTER_ID, ac.ACL), (binding.CLUSTER_ID, binding.BINDING)):
            kind = EntryKind.ACL if path.cluster == ac.CLUSTER_ID else EntryKind.BINDING
            covered = [e for e in committed if e.ref.kind is kind and (
                kind is EntryKind.ACL or e.ref.endpoint_id == path.endpoint)]
            if type(value) is not list or not all(list_holds(e, value) for e in covered):
                return True
        elif path.cluster == gkm.CLUSTER_ID and path.attribute in (gkm.GROUP_KEY_MAP, gkm.GROUP_TABLE):
            return True
    return False


def _evicted(session: Any) -> bool:
    """Whether our session table evicted ``session`` to make room (``transport.sessions.SecureSession.evicted``)."""
    return getattr(session, "evicted", False) is True


def _take_acl(watch: _Watch, result: ReadResult) -> None:
    """Cache the ACL a report carries (a status for it, or a value that is not a list: unknown)."""
    try:
        value = result.value(*ACL)
    except KeyError:
        return  # not in this report: the cache stays as it was
    except MatterError:
        value = None
    watch.acl = list(value) if type(value) is list else None
    watch.acl_unreported_write = False


def _capacity_paths() -> list[Path]:
    return [(e, a.cluster_id, a.attribute_id) for e, a in Capacities.PATHS]


def _int(result: ReadResult, path: Path) -> int | None:
    try:
        value = result.value(*path)
    except (MatterError, KeyError):
        return None
    return value if type(value) is int else None
