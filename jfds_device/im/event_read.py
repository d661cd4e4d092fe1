"""Which stored events a read or subscription yields (Core spec 8.4.3.2 event paths, 8.9.3, 10.6.6).

An event is delivered when some request path matches it, it exists on a cluster the node serves, its subject holds
the event's read privilege there (View; Administer for AccessControl's events, Core spec 9.10.7) and, for a
fabric-sensitive event, the subject is of the event's fabric, whatever ``fabric_filtered`` says: the CHIP SDK's
EventManagement::CheckEventContext drops another fabric's sensitive events from every report (connectedhomeip
src/app/EventManagement.cpp). EventFilters (10.6.6): events numbered below EventMin are not reported; the largest
EventMin given counts. The EventStatusIBs of concrete paths are ``read.event_statuses``.
"""

from __future__ import annotations

from collections.abc import Sequence

from jfds_device.codec.model import Privilege
from jfds_device.im.events import EventRecord, EventStore, event_path_matches
from jfds_device.im.messages import EventFilterIB, EventPathIB
from jfds_device.im.read import AttributeReader

__all__ = ["event_min", "readable", "visible_events"]


def event_min(filters: Sequence[EventFilterIB] | None) -> int:
    """The lowest event number the client wants (0: every stored event)."""
    return max((f.event_min for f in filters or ()), default=0)


def readable(reader: AttributeReader, record: EventRecord) -> bool:
    """Whether ``reader``'s subject may receive ``record`` at all (paths aside)."""
    cluster = reader.clusters(record.endpoint).get(record.cluster)
    if cluster is None:
        return False
    definition = cluster.event_by_id.get(record.event)
    if definition is None:
        return False
    if (definition.fabric_sensitive or record.fabric_index is not None) and (
        record.fabric_index != reader.subject_fabric_index
    ):
        return False
    return reader.allowed(record.endpoint, record.cluster, Privilege.VIEW) and reader.allowed(
        record.endpoint, record.cluster, definition.read_privilege
    )


def visible_events(
    reader: AttributeReader, store: EventStore, paths: Sequence[EventPathIB], min_number: int = 0
) -> list[EventRecord]:
    """The stored events numbered ``min_number`` or above that ``paths`` name and the subject may read, in order."""
    if not paths:
        return []
    return [
        record
        for record in store.records(min_number)
        if any(event_path_matches(p, record) for p in paths) and readable(reader, record)
    ]
