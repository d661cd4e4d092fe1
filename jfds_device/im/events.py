"""The event store (Core spec 7.14 Events, 8.9.3 event paths): what the node has emitted, bounded per priority.

Sans-IO: emitters pass ``now_ms`` (system time, milliseconds since boot); nothing here reads a clock.

* Buffers: one bounded buffer per priority (DEBUG, INFO, CRITICAL); when a buffer is full the oldest event of
  that priority goes, as the CHIP SDK's circular buffers evict (connectedhomeip src/app/EventManagement.cpp).
* Event numbers (Core spec 7.14.2.2) are monotonic across restarts: the store hands numbers out of an epoch it
  reserves durably through ``reserve(upto) -> None`` before using any of them (the next epoch is reserved half
  an epoch ahead), and after a restart it starts at the last reserved limit, as the SDK's persisted
  ``EventNumber`` counter does (its epoch is 0x10000 too).
* Timestamps: the node has no Time Synchronization cluster, so every event carries a system timestamp
  (milliseconds since boot), as the SDK does without a UTC time (EventManagement::CalculateEventTimestamp).
* A fabric-sensitive event carries its fabric index and reaches only that fabric's subjects
  (EventManagement::CheckEventContext).

Listeners (the IM server) hear of every new event so subscriptions can report it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from jfds_device.codec import tlv
from jfds_device.codec.model import EventPriority
from jfds_device.im.messages import EventDataIB, EventPathIB, EventReportIB

__all__ = [
    "DEFAULT_CAPACITY",
    "EVENT_NUMBER_EPOCH",
    "EventRecord",
    "EventStore",
    "event_path_matches",
]

log = logging.getLogger(__name__)

# How many event numbers one durable reservation covers (the SDK's CHIP_DEVICE_CONFIG_EVENT_ID_COUNTER_EPOCH).
EVENT_NUMBER_EPOCH: Final = 0x10000
# Events kept per priority; the SDK's defaults are byte budgets of the same order (CHIP_DEVICE_CONFIG_EVENT_
# LOGGING_{DEBUG,INFO,CRIT}_BUFFER_SIZE), counted here in events because ours are small and similar in size.
DEFAULT_CAPACITY: Final = {EventPriority.DEBUG: 64, EventPriority.INFO: 64, EventPriority.CRITICAL: 64}


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One emitted event: its path, number, priority, system timestamp (ms), TLV data and fabric if sensitive."""

    number: int
    priority: EventPriority
    endpoint: int
    cluster: int
    event: int
    system_ms: int
    data: Any
    fabric_index: int | None = None

    def report_ib(self) -> tlv.Raw:
        """The EventReportIB carrying this event (Core spec 10.6.9), encoded once."""
        ib = EventDataIB(
            path=EventPathIB(endpoint=self.endpoint, cluster=self.cluster, event=self.event),
            event_number=self.number,
            priority=int(self.priority),
            system_timestamp=self.system_ms,
            data=self.data,
        )
        return tlv.Raw(EventReportIB(event_data=ib).encode())


def event_path_matches(pattern: EventPathIB, record: EventRecord) -> bool:
    return (
        (pattern.endpoint is None or pattern.endpoint == record.endpoint)
        and (pattern.cluster is None or pattern.cluster == record.cluster)
        and (pattern.event is None or pattern.event == record.event)
    )


class EventStore:
    """The node's event buffers and its event number counter. ``first_number`` is where the persisted counter
    stands (0 on a fresh node); ``reserve(upto)`` must durably store ``upto`` before it returns."""

    def __init__(
        self,
        first_number: int = 0,
        reserve: Callable[[int], None] | None = None,
        capacity: dict[EventPriority, int] | None = None,
    ) -> None:
        self._capacity = dict(DEFAULT_CAPACITY if capacity is None else capacity)
        self._buffers: dict[EventPriority, deque[EventRecord]] = {
            p: deque(maxlen=max(1, self._capacity.get(p, 1))) for p in EventPriority
        }
        self._reserve = reserve
        self._next = first_number
        self._limit = first_number
        self._listeners: list[Callable[[EventRecord], None]] = []
        self._reserve_epoch()

    @property
    def next_number(self) -> int:
        """The number the next event will get; every event already emitted has a lower one."""
        return self._next

    def add_listener(self, listener: Callable[[EventRecord], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[EventRecord], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(
        self,
        endpoint: int,
        cluster: int,
        event: int,
        priority: EventPriority,
        data: Any,
        now_ms: int,
        *,
        fabric_index: int | None = None,
    ) -> EventRecord:
        """Record one event and tell the listeners. ``data`` is the event's TLV struct value."""
        if self._next >= self._limit - EVENT_NUMBER_EPOCH // 2:
            self._reserve_epoch()
        record = EventRecord(
            number=self._next,
            priority=priority,
            endpoint=endpoint,
            cluster=cluster,
            event=event,
            system_ms=max(0, int(now_ms)),
            data=data,
            fabric_index=fabric_index,
        )
        self._next += 1
        buffer = self._buffers[priority]
        if len(buffer) == buffer.maxlen:
            log.debug("event buffer %s full: event %d evicted", priority.name, buffer[0].number)
        buffer.append(record)
        log.info(
            "event %d: %#06x/%#06x/%#04x priority %s", record.number, endpoint, cluster, event, priority.name
        )
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:  # a listener's bug must not lose the event for the others
                log.exception("event listener failed for event %d", record.number)
        return record

    def records(self, min_number: int = 0) -> Iterator[EventRecord]:
        """Every stored event numbered ``min_number`` or above, in event-number order."""
        merged = [r for buffer in self._buffers.values() for r in buffer if r.number >= min_number]
        merged.sort(key=lambda r: r.number)
        return iter(merged)

    def matching(self, paths: Iterable[EventPathIB], min_number: int = 0) -> Iterator[EventRecord]:
        patterns = list(paths)
        for record in self.records(min_number):
            if any(event_path_matches(p, record) for p in patterns):
                yield record

    def forget_fabric(self, fabric_index: int) -> None:
        """RemoveFabric: the fabric's sensitive events are nobody's any more, as the SDK's
        EventManagement::FabricRemoved makes them unreadable; a later fabric with the same index never sees them."""
        for priority, buffer in self._buffers.items():
            kept = [r for r in buffer if r.fabric_index != fabric_index]
            if len(kept) != len(buffer):
                self._buffers[priority] = deque(kept, maxlen=buffer.maxlen)

    def _reserve_epoch(self) -> None:
        """Store the next limit before its numbers are needed (Core spec 7.14.2.2: numbers never go back).

        It is asked for half an epoch ahead, so a reservation that cannot run now (the database refuses one inside
        a transaction, a full disk) is retried on the following events long before the stored limit is reached.
        """
        limit = self._next + EVENT_NUMBER_EPOCH
        if self._reserve is not None:
            try:
                self._reserve(limit)
            except Exception as exc:
                if self._next >= self._limit:  # past the stored limit: a restart may reuse these numbers
                    log.error("event number reservation up to %d failed past the stored limit: %s", limit, exc)
                else:
                    log.info("event number reservation up to %d postponed: %s", limit, exc)
                return
        self._limit = limit
