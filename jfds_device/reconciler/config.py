"""The reconciler's configuration, counters and per-pass report (kept apart from the runner for size)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.reconciler.plan import Mode, RetryPolicy
from jfds_device.reconciler.refresh import RefreshReport

__all__ = ["PassReport", "ReconcilerConfig", "ReconcilerStats"]


@dataclass(frozen=True, slots=True)
class ReconcilerConfig:
    sweep_interval: float = 10.0
    """Seconds between sweeps of entries that still need work (11.24.4.3) and of nodes due for verification."""
    verify_interval: float | None = 3600.0
    """Seconds between verify passes of a node: a slow safety sweep, since the live subscriptions (``live.py``)
    report drift as it happens; None: verify only when a peer becomes reachable or reports a change. A verify
    pass reads the node's lists, it writes only to repair drift."""
    live: bool = True
    """Subscribe to every managed peer (``live.py``): reports trigger verify passes, liveness is reachability.
    Needs a client that can subscribe (``im.client.InteractionClient``)."""
    live_min_interval: int = 0
    """The subscriptions' MinIntervalFloor (seconds): 0, so drift is reported at once (Core spec 8.5.1)."""
    live_max_interval: int = 10
    """The MaxIntervalCeiling we ask for (seconds): a peer gone quiet is unreachable after this plus the exchange
    layer's response margin (Core spec 8.5.4); the peer may choose a longer interval."""
    live_keepalives_per_second: float = 40.0
    """What idle peers may cost together: past ``live_max_interval`` x this many watched peers, new subscriptions ask
    for a longer MaxIntervalCeiling so their keep-alive reports stay at this rate (``LiveWatch.ceiling``)."""
    live_resubscribe_max: float = 2.0
    """Ceiling (seconds) of the resubscribe backoff (``retry`` otherwise): a restarted peer is back in a few
    seconds, and an attempt to an absent peer costs one CASE attempt (Core spec 4.14.2)."""
    settle_delay: float = 0.02
    """Seconds a node's first request waits, so a burst of datastore changes makes one pass."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Backoff of a node after recoverable failures (timeouts, busy, unreachable)."""
    drift_budget: int = 3
    """Re-applies of one entry revision verify passes may make within ``drift_window``; then the drift is left as
    it is (logged, ``drift_exhausted``) until the oldest of them leaves the window. A new revision starts afresh."""
    drift_window: float = 3600.0
    """The sliding window (seconds, wall clock) of ``drift_budget``. The spent budget is kept in the node's
    database (``datastore.drift_repairs``), so a restart does not renew it."""
    interaction_timeout: float = 30.0
    """Upper bound of one IM interaction, over the exchange layer's own MRP timeouts."""
    max_parallel_nodes: int = 4
    """Nodes reconciled at the same time."""
    list_write_attempts: int = 3
    """Writes one read-merge-write of a peer's list may make while the peer answers DATA_VERSION_MISMATCH (the list
    changed since our read); then its entries are CommitFailed(DATA_VERSION_MISMATCH), retried with backoff."""


@dataclass(slots=True)
class ReconcilerStats:
    """Counters since start (``Reconciler.stats``); ``queue_depth``: nodes with a pass running or queued; and
    cumulative phase timers (seconds and counts): CASE session establishment (``connect``, failed attempts
    included), peer reads, peer writes and invokes."""

    passes: int = 0
    refreshes: int = 0
    applied: int = 0
    removed: int = 0
    dropped: int = 0
    held: int = 0
    failures: int = 0
    transport_failures: int = 0
    drift_repairs: int = 0
    drift_exhausted: int = 0
    stale_outcomes: int = 0
    version_mismatches: int = 0  # conditional list writes a peer refused: the list changed since our read
    interactions: int = 0
    queue_depth: int = 0
    live_subscribes: int = 0  # subscription attempts (connect + SubscribeRequest), failed ones included
    live_reports: int = 0  # subscription reports with data (keep-alives not counted)
    live_lost: int = 0  # peers that became unreachable because their subscription was lost or refused
    case_s: float = 0.0
    case_n: int = 0
    read_s: float = 0.0
    read_n: int = 0
    write_s: float = 0.0
    write_n: int = 0

    def line(self) -> str:
        """``passes=.. applied=.. ... case_s=.. case_n=.. read_s=.. read_n=.. write_s=.. write_n=..``"""
        return " ".join(f"{f.name}={getattr(self, f.name):.3f}" if isinstance(getattr(self, f.name), float)
                        else f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass on one node did (``Reconciler.last_pass``); ``failed``: IM status per failed entry."""

    node_id: int
    mode: Mode
    duration: float
    applied: int = 0
    removed: int = 0
    dropped: int = 0
    held: int = 0
    failed: dict[EntryRef, int] = field(default_factory=dict)
    transport: str | None = None
    refresh: RefreshReport | None = None
    node_state: DatastoreState | None = None  # RefreshNode only: the node's commissioning status afterwards
