"""Fair admission of Interaction Model work: what one session, one fabric and the node may hold at once.

Two kinds of held state, each with its own table of limits below:

* **Pending interactions** (``InteractionLimits``): what the server keeps between two messages of a request it
  answers: a TimedRequest's window, a chunked read or invoke response waiting for the next StatusResponse, a
  chunked write waiting for its next chunk. Bounded per session and per fabric, so one controller (or one
  unprivileged node holding TimedRequests open for 65 s) cannot take what the others need. The fabric caps
  partition the node: no fabric can use another fabric's budget, so no eviction is needed between fabrics.
* **Subscriptions** (``SubscriptionLimits``): bounded per session and per fabric, and shared between fabrics
  through one pool. The pool is sized so that every fabric the node can hold gets its guaranteed share; a fabric
  may borrow beyond its share while the pool has room, and gives it back by eviction when a fabric within its
  share needs it (Core spec 8.5.1, as the CHIP SDK's ``InteractionModelEngine::EnsureResourceForSubscription``
  and ``TrimFabricForSubscriptions`` do: subscriptions beyond the per-subscription path minimum go first, then
  the oldest). The share is the per-session cap plus the spec's per-fabric minimum, so a fabric whose most
  demanding controller holds all it may still has the spec's minimum left for its other controllers.

Both functions are pure: they take what is held (in creation order) and the request, and return a decision.
PASE sessions have no fabric: they count as fabric index 0, one more bucket beside the fabrics.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from jfds_device.im.provider import Status

__all__ = [
    "MAX_ATTRIBUTE_PATHS",
    "MAX_EVENT_PATHS",
    "MIN_PATHS_PER_READ",
    "MIN_PATHS_PER_SUBSCRIPTION",
    "MIN_READS_PER_FABRIC",
    "MIN_SUBSCRIPTIONS_PER_FABRIC",
    "MIN_SUPPORTED_FABRICS",
    "Admission",
    "Footprint",
    "HeldInteraction",
    "HeldSubscription",
    "InteractionKind",
    "InteractionLimits",
    "Limits",
    "SubscriptionLimits",
    "admit_interaction",
    "admit_subscription",
]

# ------------------------------------------------------------------------------------------ the spec's minimums

# Paths in one Read or Subscribe request; above them the request is refused with PATHS_EXHAUSTED (Core spec 8.10).
# Far above the guaranteed minimums below.
MAX_ATTRIBUTE_PATHS: Final = 64
MAX_EVENT_PATHS: Final = 64

# Core spec 8.5.1 (Subscribe Transaction): a publisher SHALL ensure that every fabric the node is commissioned into
# can create at least three subscriptions, each supporting at least 3 attribute/event paths (the CHIP SDK's
# kMinSupportedSubscriptionsPerFabric / kMinSupportedPathsPerSubscription; it counts attribute and event paths
# separately, and so do we).
MIN_SUBSCRIPTIONS_PER_FABRIC: Final = 3
MIN_PATHS_PER_SUBSCRIPTION: Final = 3
# Core spec 8.4 (Read Interaction) minimums: one read per fabric with 9 paths at a time (the SDK's
# kMinSupportedReadRequestsPerFabric / kMinSupportedPathsPerReadRequest).
MIN_READS_PER_FABRIC: Final = 1
MIN_PATHS_PER_READ: Final = 9
# Core spec 11.18.5.3: SupportedFabrics is at least 5 (the fabric table's default).
MIN_SUPPORTED_FABRICS: Final = 5
# Core spec 4.14.2.8 (Minimal Number of CASE Sessions): at least 3 CASE sessions per fabric; a fabric's budget of
# pending interactions is sized for that many busy sessions.
_MIN_CASE_SESSIONS_PER_FABRIC: Final = 3


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a subscription, or a group of them, holds: subscriptions and paths of each kind."""

    subscriptions: int = 0
    attribute_paths: int = 0
    event_paths: int = 0

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(
            self.subscriptions + other.subscriptions,
            self.attribute_paths + other.attribute_paths,
            self.event_paths + other.event_paths,
        )

    def __sub__(self, other: Footprint) -> Footprint:
        return self + Footprint(-other.subscriptions, -other.attribute_paths, -other.event_paths)

    def within(self, cap: Footprint) -> bool:
        return (
            self.subscriptions <= cap.subscriptions
            and self.attribute_paths <= cap.attribute_paths
            and self.event_paths <= cap.event_paths
        )

    def refusal(self, cap: Footprint) -> Status:
        """The status for going over ``cap``: too many subscriptions, or too many paths (Core spec 8.10)."""
        return Status.RESOURCE_EXHAUSTED if self.subscriptions > cap.subscriptions else Status.PATHS_EXHAUSTED

    def scaled(self, factor: int) -> Footprint:
        return Footprint(self.subscriptions * factor, self.attribute_paths * factor, self.event_paths * factor)


# ------------------------------------------------------------------------------------------ limit tables


# One session: room for a controller's normal concurrency, far below what would crowd out the others.
_PENDING_PER_SESSION: Final = 8
# TimedRequest windows live up to 65.5 s (Core spec 8.2.2.5, a uint16 of milliseconds) and need no privilege (the
# access check comes with the Write/Invoke that follows), so they get a tighter cap than the rest.
_TIMED_PER_SESSION: Final = 4


@dataclass(frozen=True, slots=True)
class InteractionLimits:
    """Pending interactions (timed windows, chunked reads/invokes/writes in progress)."""

    per_session: int = _PENDING_PER_SESSION
    timed_per_session: int = _TIMED_PER_SESSION
    # One fabric: the guaranteed CASE sessions (Core spec 4.14.2.8) each at its cap.
    per_fabric: int = _PENDING_PER_SESSION * _MIN_CASE_SESSIONS_PER_FABRIC
    timed_per_fabric: int = _TIMED_PER_SESSION * _MIN_CASE_SESSIONS_PER_FABRIC
    # A fabric with no read in progress always gets one read of up to this many paths of each kind, even when
    # its other sessions hold the whole fabric budget (Core spec 8.4 minimums).
    guaranteed_reads_per_fabric: int = MIN_READS_PER_FABRIC
    guaranteed_read_paths: int = MIN_PATHS_PER_READ


# One session's subscriptions: a few, with one maximal request's worth of paths of each kind.
_SESSION_SUBSCRIPTIONS: Final = Footprint(5, MAX_ATTRIBUTE_PATHS, MAX_EVENT_PATHS)
# What every fabric is guaranteed however busy the others are: one session's cap plus the spec's minimum (3
# subscriptions of 3 paths, Core spec 8.5.1) for the fabric's other controllers.
_FABRIC_SHARE: Final = _SESSION_SUBSCRIPTIONS + Footprint(
    MIN_SUBSCRIPTIONS_PER_FABRIC,
    MIN_SUBSCRIPTIONS_PER_FABRIC * MIN_PATHS_PER_SUBSCRIPTION,
    MIN_SUBSCRIPTIONS_PER_FABRIC * MIN_PATHS_PER_SUBSCRIPTION,
)


# A fabric may borrow up to twice its share from the pool while other fabrics leave it unused.
_FABRIC_SUBSCRIPTIONS: Final = _FABRIC_SHARE.scaled(2)


def _pool(supported_fabrics: int) -> Footprint:
    """Every fabric's share, plus one for PASE sessions (fabric index 0)."""
    return _FABRIC_SHARE.scaled(max(supported_fabrics, 1) + 1)


_DEFAULT_POOL: Final = _pool(MIN_SUPPORTED_FABRICS)


@dataclass(frozen=True, slots=True)
class SubscriptionLimits:
    """Subscriptions and their paths. ``pool`` is shared by every fabric; see the module docstring."""

    per_session: Footprint = _SESSION_SUBSCRIPTIONS
    fabric_share: Footprint = _FABRIC_SHARE
    per_fabric: Footprint = _FABRIC_SUBSCRIPTIONS
    pool: Footprint = _DEFAULT_POOL
    # Subscriptions with more paths than this of either kind are beyond the spec's guarantee: evicted first.
    guaranteed_paths: int = MIN_PATHS_PER_SUBSCRIPTION


@dataclass(frozen=True, slots=True)
class Limits:
    interactions: InteractionLimits = InteractionLimits()
    subscriptions: SubscriptionLimits = SubscriptionLimits()

    @classmethod
    def for_fabrics(cls, supported_fabrics: int) -> Limits:
        """The default tables with the subscription pool sized for ``supported_fabrics`` (SupportedFabrics)."""
        return cls(InteractionLimits(), SubscriptionLimits(pool=_pool(supported_fabrics)))


# ------------------------------------------------------------------------------------------ decisions


@dataclass(frozen=True, slots=True)
class Admission:
    """``status`` SUCCESS admits (after ending ``evict``, oldest first); anything else refuses with that status."""

    status: Status
    reason: str = ""
    evict: tuple[Hashable, ...] = ()

    @property
    def admitted(self) -> bool:
        return self.status == Status.SUCCESS


_ADMIT: Final = Admission(Status.SUCCESS)


class InteractionKind(enum.Enum):
    TIMED = "timed"
    READ = "read"
    WRITE = "write"
    INVOKE = "invoke"


@dataclass(frozen=True, slots=True)
class HeldInteraction:
    session_id: int
    fabric_index: int
    kind: InteractionKind


@dataclass(frozen=True, slots=True)
class HeldSubscription:
    key: Hashable
    session_id: int
    fabric_index: int
    footprint: Footprint


def admit_interaction(
    limits: InteractionLimits,
    held: Iterable[HeldInteraction],
    request: HeldInteraction,
    read_paths: tuple[int, int] = (0, 0),
) -> Admission:
    """May ``request`` start while ``held`` are in progress? ``read_paths``: a read's attribute and event paths."""
    held = list(held)
    session = [h for h in held if h.session_id == request.session_id]
    fabric = [h for h in held if h.fabric_index == request.fabric_index]
    timed = request.kind is InteractionKind.TIMED
    if len(session) >= limits.per_session:
        reason = f"session already has {len(session)} interactions in progress (session {request.session_id})"
        return Admission(Status.RESOURCE_EXHAUSTED, reason)
    if timed and _count(session, InteractionKind.TIMED) >= limits.timed_per_session:
        reason = f"session already holds its timed-request windows (session {request.session_id})"
        return Admission(Status.RESOURCE_EXHAUSTED, reason)
    if timed and _count(fabric, InteractionKind.TIMED) >= limits.timed_per_fabric:
        return Admission(Status.RESOURCE_EXHAUSTED, f"fabric {request.fabric_index} holds its timed-request windows")
    if len(fabric) < limits.per_fabric:
        return _ADMIT
    guaranteed_read = (
        request.kind is InteractionKind.READ
        and max(read_paths) <= limits.guaranteed_read_paths
        and _count(fabric, InteractionKind.READ) < limits.guaranteed_reads_per_fabric
    )
    if guaranteed_read:
        return _ADMIT  # the fabric's guaranteed read (Core spec 8.4), even with its budget in use
    reason = f"fabric {request.fabric_index} has {len(fabric)} interactions in progress"
    return Admission(Status.RESOURCE_EXHAUSTED, reason)


def admit_subscription(
    limits: SubscriptionLimits, held: Sequence[HeldSubscription], request: HeldSubscription
) -> Admission:
    """May ``request`` be established? ``held`` are the live subscriptions, oldest first.

    Within the session's and the fabric's caps, a request that fits the pool is served best-effort. When the pool
    is full, a fabric that stays within its guaranteed share evicts subscriptions of fabrics over theirs (Core spec
    8.5.1): beyond-minimum subscriptions first, then the oldest. A fabric already at its share is refused.
    """
    cost = request.footprint
    session = _total(h for h in held if h.session_id == request.session_id) + cost
    if not session.within(limits.per_session):
        return Admission(session.refusal(limits.per_session), f"session {request.session_id} holds its subscriptions")
    fabric = _total(h for h in held if h.fabric_index == request.fabric_index) + cost
    if not fabric.within(limits.per_fabric):
        return Admission(fabric.refusal(limits.per_fabric), f"fabric {request.fabric_index} holds its subscriptions")
    total = _total(held) + cost
    if total.within(limits.pool):
        return _ADMIT
    if not fabric.within(limits.fabric_share):
        reason = f"pool full and fabric {request.fabric_index} is beyond its guaranteed share"
        return Admission(fabric.refusal(limits.fabric_share), reason)
    remaining = list(held)
    evicted: list[Hashable] = []
    while not total.within(limits.pool):
        victim = _eviction_candidate(limits, remaining, request.fabric_index)
        if victim is None:  # only if the pool is smaller than the shares it must honour
            return Admission(total.refusal(limits.pool), "pool full and no fabric beyond its share")
        remaining.remove(victim)
        evicted.append(victim.key)
        total = total - victim.footprint
    reason = f"fabric {request.fabric_index} is within its guaranteed share and the pool is full (Core spec 8.5.1)"
    return Admission(Status.SUCCESS, reason, tuple(evicted))


def _eviction_candidate(
    limits: SubscriptionLimits, held: Sequence[HeldSubscription], requester: int
) -> HeldSubscription | None:
    usage: dict[int, Footprint] = {}
    for h in held:
        usage[h.fabric_index] = usage.get(h.fabric_index, Footprint()) + h.footprint
    over = {f for f, used in usage.items() if f != requester and not used.within(limits.fabric_share)}
    candidates = [(order, h) for order, h in enumerate(held) if h.fabric_index in over]
    if not candidates:
        return None

    def rank(item: tuple[int, HeldSubscription]) -> tuple[bool, int]:
        order, h = item
        oversized = max(h.footprint.attribute_paths, h.footprint.event_paths) > limits.guaranteed_paths
        return (not oversized, order)

    return min(candidates, key=rank)[1]


def _count(held: Iterable[HeldInteraction], kind: InteractionKind) -> int:
    return sum(1 for h in held if h.kind is kind)


def _total(held: Iterable[HeldSubscription]) -> Footprint:
    total = Footprint()
    for h in held:
        total = total + h.footprint
    return total
