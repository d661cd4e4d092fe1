"""Whether a SubscribeRequest reaches anything its subject may read (Core spec 8.5.3.2).

A subscription whose every path is denied by access control is refused with StatusResponse INVALID_ACTION
instead of a priming report. The definition is the CHIP SDK's (connectedhomeip
``src/app/InteractionModelEngine.cpp``, ``OnReadInitialRequest`` "has no access at all", with
``ParseAttributePaths`` and ``MayHaveAccessibleEventPath``):

* an attribute path is valid when it names (or, as a wildcard, expands to) an attribute that exists and the
  subject holds that attribute's read privilege there;
* an event path may be valid when the subject holds the event's read privilege on some cluster it names or, as a
  wildcard, expands to. The cluster need not exist for a concrete cluster id (the SDK checks only the ACL there).

DataVersionFilters play no part: a filtered cluster is still a path the subject may read.
"""

from __future__ import annotations

from collections.abc import Iterable

from jfds_device.codec.model import Privilege
from jfds_device.im.messages import AttributePathIB, EventPathIB
from jfds_device.im.read import AttributeReader

ACCESS_CONTROL_CLUSTER = 0x001F
# Events readable only with Administer: Access Control's AccessControlEntryChanged and AccessControlExtensionChanged
# (Core spec 9.10.7, access "S A"). Every other event is read with View (Core spec 7.14).
_EVENT_READ_PRIVILEGE = {ACCESS_CONTROL_CLUSTER: Privilege.ADMINISTER}


def has_accessible_path(reader: AttributeReader, attributes: Iterable[AttributePathIB],
                        events: Iterable[EventPathIB]) -> bool:
    """True when at least one attribute path is valid or one event path may be, for ``reader``'s subject."""
    return any(_attribute_path_allowed(reader, p) for p in attributes) or any(
        _event_path_allowed(reader, p) for p in events)


def _attribute_path_allowed(reader: AttributeReader, path: AttributePathIB) -> bool:
    endpoints = reader.endpoints() if path.endpoint is None else [path.endpoint]
    for endpoint in endpoints:
        clusters = reader.clusters(endpoint)  # empty for an endpoint that does not exist
        for cluster_id in clusters if path.cluster is None else [path.cluster]:
            cluster = clusters.get(cluster_id)
            if cluster is None:
                continue
            ids = reader.attribute_ids(endpoint, cluster_id)
            for attribute_id in ids if path.attribute is None else [path.attribute]:
                if attribute_id not in ids:
                    continue
                attribute = cluster.attribute_by_id.get(attribute_id)
                # Global attributes need no AttributeDef; they are readable with View (Core spec 7.13).
                privilege = attribute.read_privilege if attribute is not None else Privilege.VIEW
                if reader.allowed(endpoint, cluster_id, Privilege.VIEW) and reader.allowed(endpoint, cluster_id,
                                                                                           privilege):
                    return True
    return False


def _event_path_allowed(reader: AttributeReader, path: EventPathIB) -> bool:
    endpoints = reader.endpoints() if path.endpoint is None else [path.endpoint]
    for endpoint in endpoints:
        for cluster_id in reader.clusters(endpoint) if path.cluster is None else [path.cluster]:
            # A wildcard event id asks for View on the cluster; a concrete one for that event's read privilege.
            privilege = Privilege.VIEW if path.event is None else _EVENT_READ_PRIVILEGE.get(cluster_id,
                                                                                           Privilege.VIEW)
            if reader.allowed(endpoint, cluster_id, privilege):
                return True
    return False
