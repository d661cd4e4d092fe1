"""Subscription bookkeeping (Core spec 8.5): interval negotiation, dirty paths and when each report is due.

``server.py`` asks ``SubscriptionTable.due(now)`` which subscriptions must report, builds each report with
``change_report`` and sends it. Times are seconds on the caller's monotonic clock.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from jfds_device.im.event_read import readable, visible_events
from jfds_device.im.events import EventRecord, EventStore, event_path_matches
from jfds_device.im.messages import AttributePathIB, EventPathIB
from jfds_device.im.provider import AttributePath, DataModelProvider, RequestContext
from jfds_device.im.read import AttributeReader, ReportBuilder

__all__ = [
    "SUBSCRIPTION_MAX_INTERVAL_PUBLISHER_LIMIT",
    "Subscription",
    "SubscriptionState",
    "SubscriptionTable",
    "change_report",
    "negotiate_max_interval",
    "path_matches",
]

# Core spec 8.5.1 (SUBSCRIPTION_MAX_INTERVAL_PUBLISHER_LIMIT): 60 minutes.
SUBSCRIPTION_MAX_INTERVAL_PUBLISHER_LIMIT: Final = 3600
# A MaxInterval of 0 would ask for back-to-back keep-alives; 1 s is inside every range the spec allows us.
_SHORTEST_MAX_INTERVAL: Final = 1
_ID_ATTEMPTS: Final = 16


class SubscriptionState(enum.Enum):
    PRIMING = "priming"  # the priming report is in flight on the SubscribeRequest's exchange
    IDLE = "idle"  # established, nothing in flight
    REPORTING = "reporting"  # a report exchange waits for the subscriber's StatusResponse


def negotiate_max_interval(floor: int, ceiling: int, preferred: int = 0) -> int:
    """The MaxInterval we grant (Core spec 8.5.3.2): the larger of the client's ceiling and our preference,
    kept within MinIntervalFloor <= MaxInterval <= max(SUBSCRIPTION_MAX_INTERVAL_PUBLISHER_LIMIT, ceiling)."""
    upper = max(SUBSCRIPTION_MAX_INTERVAL_PUBLISHER_LIMIT, ceiling)
    chosen = max(ceiling, preferred, floor, _SHORTEST_MAX_INTERVAL)
    return min(chosen, upper)


def path_matches(pattern: AttributePathIB, path: AttributePath) -> bool:
    return (
        (pattern.endpoint is None or pattern.endpoint == path.endpoint)
        and (pattern.cluster is None or pattern.cluster == path.cluster)
        and (pattern.attribute is None or pattern.attribute == path.attribute)
    )


def _is_concrete(pattern: AttributePathIB) -> bool:
    return pattern.endpoint is not None and pattern.cluster is not None and pattern.attribute is not None


@dataclass(eq=False, slots=True)
class Subscription:
    subscription_id: int
    ctx: RequestContext  # the subscriber's context, with its FabricFiltered choice
    attribute_paths: tuple[AttributePathIB, ...]
    event_paths: tuple[EventPathIB, ...]
    min_interval: int
    max_interval: int
    state: SubscriptionState = SubscriptionState.PRIMING
    last_report_at: float = 0.0
    # Changed paths not yet reported -> whether a concrete request path names them (then errors are reported).
    dirty: dict[AttributePath, bool] = field(default_factory=dict)
    exchange: Hashable | None = None  # the exchange of the report in flight
    # The number of the first event not yet reported (Core spec 8.5.4: every report carries the events since).
    event_next: int = 0
    # An event on an IsUrgent path waits: the next report is due after MinInterval (Core spec 8.5.4, 10.6.8).
    urgent_events: bool = False

    @property
    def session_id(self) -> int:
        return self.ctx.session_id

    @property
    def peer(self) -> tuple[int, int, int]:
        """The subscriber (Core spec 8.5.3.2 KeepSubscriptions is per subscriber node and fabric)."""
        subject = self.ctx.subject
        return (subject.fabric_index, int(subject.auth_mode), subject.subject)

    def due_at(self) -> float | None:
        """When the next report is due: a change report after MinInterval, else a keep-alive at MaxInterval."""
        if self.state is not SubscriptionState.IDLE:
            return None
        soon = self.dirty or self.urgent_events
        return self.last_report_at + (self.min_interval if soon else self.max_interval)

    def mark(self, path: AttributePath) -> bool:
        matched = False
        for pattern in self.attribute_paths:
            if path_matches(pattern, path):
                self.dirty[path] = self.dirty.get(path, False) or _is_concrete(pattern)
                matched = True
        return matched

    def event_arrived(self, record: EventRecord) -> bool:
        """A new event some path of ours names; True when a path naming it is urgent (a report becomes due)."""
        matching = [p for p in self.event_paths if event_path_matches(p, record)]
        if any(p.is_urgent for p in matching):
            self.urgent_events = True
            return True
        return False

    def take_dirty(self) -> list[tuple[AttributePath, bool]]:
        items = sorted(self.dirty.items(), key=lambda kv: (kv[0].endpoint, kv[0].cluster, kv[0].attribute))
        self.dirty = {}
        return items


def change_report(
    provider: DataModelProvider, subscription: Subscription, max_payload: int, events: EventStore | None = None
) -> list[bytes]:
    """The ReportData payloads for what changed since the last report, then the events emitted since; an empty
    report is the keep-alive (Core spec 8.5.4). Paths named only by wildcards skip errors, as in priming."""
    reader = AttributeReader(provider, subscription.ctx)
    has_events = events is not None and bool(subscription.event_paths)
    builder = ReportBuilder(max_payload, subscription_id=subscription.subscription_id, has_events=has_events)
    for path, named_concretely in subscription.take_dirty():
        item = reader.read(path, named_concretely)
        if item is not None:
            builder.add(item)
    if events is not None and subscription.event_paths:
        for record in visible_events(reader, events, subscription.event_paths, subscription.event_next):
            builder.add_event(record)
        subscription.event_next = events.next_number
    subscription.urgent_events = False
    return builder.payloads(suppress_last=False)


class SubscriptionTable:
    def __init__(self, id_source: Callable[[], int] | None = None) -> None:
        self._by_id: dict[int, Subscription] = {}
        self._id_source = id_source or (lambda: secrets.randbits(32))

    def __iter__(self) -> Iterator[Subscription]:
        """Oldest first (admission's eviction order relies on it); a copy, so callers may remove while iterating."""
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def new_id(self) -> int:
        for _ in range(_ID_ATTEMPTS):
            candidate = self._id_source() & 0xFFFF_FFFF
            if candidate not in self._by_id:
                return candidate
        # A poor source (a test's constant, say) must not spin forever: take the lowest free id.
        candidate = 0
        while candidate in self._by_id:
            candidate += 1
        return candidate

    def add(self, subscription: Subscription) -> None:
        self._by_id[subscription.subscription_id] = subscription

    def remove(self, subscription: Subscription) -> bool:
        return self._by_id.pop(subscription.subscription_id, None) is not None

    def contains(self, subscription: Subscription) -> bool:
        return self._by_id.get(subscription.subscription_id) is subscription

    def for_peer(self, peer: tuple[int, int, int]) -> list[Subscription]:
        return [s for s in self._by_id.values() if s.peer == peer]

    def for_session(self, session_id: int) -> list[Subscription]:
        return [s for s in self._by_id.values() if s.session_id == session_id]

    def mark_changed(self, paths: Iterable[AttributePath]) -> bool:
        """Record changes; True if some subscription cares (its next deadline may have moved earlier)."""
        paths = list(paths)
        touched = False
        for subscription in self._by_id.values():
            for path in paths:
                touched |= subscription.mark(path)
        return touched

    def event_emitted(self, provider: DataModelProvider, record: EventRecord) -> bool:
        """A new event: True if some subscription with an urgent path naming it, whose subject may read it, now has
        a report due after its MinInterval (Core spec 8.5.4; the CHIP SDK's Engine::ScheduleUrgentEventDelivery).
        Other events wait for the next report."""
        urgent = False
        for subscription in self._by_id.values():
            if subscription.event_paths and readable(AttributeReader(provider, subscription.ctx), record):
                urgent |= subscription.event_arrived(record)
        return urgent

    def with_unreported_events(self, provider: DataModelProvider, events: EventStore) -> list[Subscription]:
        """The idle subscriptions that have events they may read and have not had yet."""
        return [
            s
            for s in self._by_id.values()
            if s.state is SubscriptionState.IDLE
            and s.event_paths
            and visible_events(AttributeReader(provider, s.ctx), events, s.event_paths, s.event_next)
        ]

    def in_flight(self) -> bool:
        return any(s.state is SubscriptionState.REPORTING for s in self._by_id.values())

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (s.due_at() for s in self._by_id.values()) if d is not None]
        return min(deadlines, default=None)

    def due(self, now: float) -> list[Subscription]:
        return [s for s in self._by_id.values() if (d := s.due_at()) is not None and d <= now]
