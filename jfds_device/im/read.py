"""Reads (Core spec 8.4.3, 8.9, 10.7): per-path reads and the encoding and chunking of what they answer.
``server.py`` is the exchange-facing half of the IM engine; ``write.py`` and ``invoke.py`` the other actions.

``AttributeReader`` turns request paths into report items: it expands wildcards, checks existence and access
in the order the spec and the CHIP SDK use, applies DataVersionFilters and reads values from the provider.
``ReportBuilder`` encodes each item once as an AttributeReportIB (``tlv.Raw``) and packs the IBs into
ReportData payloads that each fit ``max_payload``. A list too large for one message is split the way the
CHIP SDK splits it: the attribute with as many leading items as fit, then one AttributeReportIB per further
item with ListIndex null (append), in as many messages as it takes (Core spec 8.4.3.3: chunked lists).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jfds_device.codec import tlv
from jfds_device.codec.model import ClusterDef, Privilege
from jfds_device.errors import ActionError, LocalProtocolError, RequestError, SchemaError
from jfds_device.im.events import EventRecord
from jfds_device.im.messages import (
    NULL,
    AttributeDataIB,
    AttributePathIB,
    AttributeReportIB,
    AttributeStatusIB,
    DataVersionFilterIB,
    EventPathIB,
    EventReportIB,
    EventStatusIB,
    ReportData,
    StatusIB,
)
from jfds_device.im.provider import AttributePath, DataModelProvider, RequestContext, Status

__all__ = [
    "AttributeItem",
    "AttributeReader",
    "Packer",
    "ReportBuilder",
    "build_report",
    "data_version_filters",
    "event_statuses",
    "is_global_attribute",
    "validate_attribute_paths",
]

log = logging.getLogger(__name__)

# Statuses that make a wildcard expansion skip a path silently instead of reporting it (Core spec 8.9.2.3:
# "paths that are not supported or not allowed are silently ignored"); the CHIP SDK skips the same set.
_SKIPPED_IN_WILDCARD: Final = frozenset(
    {
        Status.UNSUPPORTED_READ,
        Status.UNSUPPORTED_ACCESS,
        Status.ACCESS_RESTRICTED,
        Status.UNSUPPORTED_ATTRIBUTE,
        Status.UNSUPPORTED_CLUSTER,
        Status.UNSUPPORTED_ENDPOINT,
    }
)

# Global attributes (Core spec 7.13): the only ones a path may name with a wildcard cluster (Core spec 8.9.2.2).
_GLOBAL_FIRST: Final = 0xF000
_GLOBAL_LAST: Final = 0xFFFE


def is_global_attribute(attribute_id: int) -> bool:
    return _GLOBAL_FIRST <= attribute_id <= _GLOBAL_LAST


def validate_attribute_paths(paths: Iterable[AttributePathIB]) -> None:
    """Reject read/subscribe paths the spec calls malformed (answered with INVALID_ACTION)."""
    for path in paths:
        # ListIndex has no meaning in a read (Core spec 10.6.2: only writes append with a null index).
        if path.list_index is not None:
            raise RequestError(Status.INVALID_ACTION, "ListIndex in a read path")
        if path.cluster is None and path.attribute is not None and not is_global_attribute(path.attribute):
            raise RequestError(Status.INVALID_ACTION, "wildcard cluster with a non-global attribute")


def data_version_filters(filters: Sequence[DataVersionFilterIB] | None, limit: int) -> dict[tuple[int, int], int]:
    """The usable filters as {(endpoint, cluster): version}. A filter on a wildcard cluster path is ignored, as
    are filters beyond ``limit`` (Core spec 8.4.3.1 lets a server ignore filters it cannot store)."""
    out: dict[tuple[int, int], int] = {}
    for f in (filters or ())[:limit]:
        if f.path.endpoint is not None and f.path.cluster is not None:
            out[(f.path.endpoint, f.path.cluster)] = f.data_version
    return out


@dataclass(frozen=True, slots=True)
class AttributeItem:
    """One report entry: a value (``status is None``) or a status for ``path``."""

    path: AttributePath
    value: Any = None
    data_version: int = 0
    status: Status | None = None
    cluster_status: int | None = None


class AttributeReader:
    """The node as one interaction sees it: its shape (cached for the interaction) and its attribute values,
    read on behalf of ``ctx``. Writes and invokes use it for their existence checks too."""

    def __init__(
        self,
        provider: DataModelProvider,
        ctx: RequestContext,
        version_filters: Mapping[tuple[int, int], int] | None = None,
    ) -> None:
        self.provider = provider
        self._provider = provider
        self._ctx = ctx
        self._filters = version_filters or {}
        self._endpoints: list[int] | None = None
        self._clusters: dict[int, dict[int, ClusterDef]] = {}
        self._attribute_ids: dict[tuple[int, int], frozenset[int]] = {}
        self._access: dict[tuple[int, int, Privilege], bool] = {}

    @property
    def subject_fabric_index(self) -> int:
        return self._ctx.subject.fabric_index

    # -- the node's shape, cached for the interaction

    def endpoints(self) -> list[int]:
        if self._endpoints is None:
            self._endpoints = list(self._provider.endpoints())
        return self._endpoints

    def clusters(self, endpoint: int) -> dict[int, ClusterDef]:
        found = self._clusters.get(endpoint)
        if found is None:
            found = {c.id: c for c in self._provider.clusters(endpoint)} if endpoint in self.endpoints() else {}
            self._clusters[endpoint] = found
        return found

    def find_cluster(self, endpoint: int, cluster: int) -> ClusterDef | Status:
        """The cluster instance, or the status that says which part of the path does not exist."""
        if endpoint not in self.endpoints():
            return Status.UNSUPPORTED_ENDPOINT
        return self.clusters(endpoint).get(cluster, Status.UNSUPPORTED_CLUSTER)

    def allowed(self, endpoint: int, cluster: int, privilege: Privilege) -> bool:
        """The provider's access check for ``ctx``'s subject, asked once per cluster and privilege."""
        key = (endpoint, cluster, privilege)
        found = self._access.get(key)
        if found is None:
            found = self._access[key] = self._provider.allowed(self._ctx.subject, endpoint, cluster, privilege)
        return found

    def attribute_ids(self, endpoint: int, cluster: int) -> frozenset[int]:
        key = (endpoint, cluster)
        found = self._attribute_ids.get(key)
        if found is None:
            found = self._attribute_ids[key] = frozenset(self._provider.attribute_ids(endpoint, cluster))
        return found

    # -- reading

    def expand(self, request: AttributePathIB) -> Iterator[AttributeItem]:
        """Items for one request path. Concrete paths report their errors; wildcards skip them."""
        if request.endpoint is not None and request.cluster is not None and request.attribute is not None:
            item = self.read(AttributePath(request.endpoint, request.cluster, request.attribute), True)
            if item is not None:
                yield item
            return
        endpoints = self.endpoints() if request.endpoint is None else [request.endpoint]
        for endpoint in endpoints:
            clusters = self.clusters(endpoint)
            cluster_ids = sorted(clusters) if request.cluster is None else [request.cluster]
            for cluster_id in cluster_ids:
                if cluster_id not in clusters:
                    continue
                if self._filtered(endpoint, cluster_id):
                    continue
                ids = self.attribute_ids(endpoint, cluster_id)
                for attribute_id in sorted(ids) if request.attribute is None else [request.attribute]:
                    if attribute_id not in ids:
                        continue
                    item = self.read(AttributePath(endpoint, cluster_id, attribute_id), False)
                    if item is not None:
                        yield item

    def read(self, path: AttributePath, report_errors: bool) -> AttributeItem | None:
        """Read one concrete path. Errors become status items if ``report_errors``, else ``None``.

        Order: View on the cluster, endpoint, cluster, attribute existence, the attribute's read privilege,
        then the DataVersionFilter (a filtered cluster yields no data, but errors above still report).
        """
        status = self._check(path)
        if status is None and self._filtered(path.endpoint, path.cluster):
            return None
        if status is None:
            try:
                value = self._provider.read_attribute(self._ctx, path)
                version = self._provider.data_version(path.endpoint, path.cluster)
            except ActionError as exc:
                if not report_errors and exc.status in _SKIPPED_IN_WILDCARD:
                    return None
                return AttributeItem(path, status=exc.status, cluster_status=exc.cluster_status)
            except Exception:  # a data-model bug must not take the node down: report FAILURE for the path
                log.exception("read_attribute %s failed", path)
                return AttributeItem(path, status=Status.FAILURE)
            return AttributeItem(path, value=value, data_version=version)
        if not report_errors:
            return None
        return AttributeItem(path, status=status)

    def _check(self, path: AttributePath) -> Status | None:
        # Core spec 8.4.3.2 as revised (spec PR 9024; the CHIP SDK's ValidateReadAttributeACL checks the ACL
        # first too): a subject without View on the cluster learns nothing, not even what exists there.
        if not self.allowed(path.endpoint, path.cluster, Privilege.VIEW):
            return Status.UNSUPPORTED_ACCESS
        if path.endpoint not in self.endpoints():
            return Status.UNSUPPORTED_ENDPOINT
        cluster = self.clusters(path.endpoint).get(path.cluster)
        if cluster is None:
            return Status.UNSUPPORTED_CLUSTER
        if path.attribute not in self.attribute_ids(path.endpoint, path.cluster):
            return Status.UNSUPPORTED_ATTRIBUTE
        attribute = cluster.attribute_by_id.get(path.attribute)
        # Global attributes need no AttributeDef; they are readable with View (Core spec 7.13).
        privilege = attribute.read_privilege if attribute is not None else Privilege.VIEW
        if privilege > Privilege.VIEW and not self.allowed(path.endpoint, path.cluster, privilege):
            return Status.UNSUPPORTED_ACCESS
        return None

    def _filtered(self, endpoint: int, cluster: int) -> bool:
        """A DataVersionFilter matches: the client already holds this cluster's data (Core spec 8.4.3.2)."""
        wanted = self._filters.get((endpoint, cluster))
        return wanted is not None and self._provider.data_version(endpoint, cluster) == wanted


def event_statuses(reader: AttributeReader, paths: Iterable[EventPathIB]) -> list[tuple[EventPathIB, Status]]:
    """An EventStatusIB for every concrete event path that names no event the subject may read; wildcard paths
    report nothing (Core spec 8.9.2.3). Order as the CHIP SDK's Engine::CheckAccessDeniedEventPaths and the
    attribute checks: no View on the cluster -> UNSUPPORTED_ACCESS (the subject learns nothing of what exists),
    then UNSUPPORTED_ENDPOINT / UNSUPPORTED_CLUSTER / UNSUPPORTED_EVENT, then the event's read privilege
    (Administer for AccessControl's events, Core spec 9.10.7) -> UNSUPPORTED_ACCESS."""
    out: list[tuple[EventPathIB, Status]] = []
    for path in paths:
        if path.endpoint is None or path.cluster is None or path.event is None:
            continue
        status = _event_status(reader, path.endpoint, path.cluster, path.event)
        if status is not None:
            out.append((path, status))
    return out


def _event_status(reader: AttributeReader, endpoint: int, cluster_id: int, event_id: int) -> Status | None:
    if not reader.allowed(endpoint, cluster_id, Privilege.VIEW):
        return Status.UNSUPPORTED_ACCESS
    if endpoint not in reader.endpoints():
        return Status.UNSUPPORTED_ENDPOINT
    cluster = reader.clusters(endpoint).get(cluster_id)
    if cluster is None:
        return Status.UNSUPPORTED_CLUSTER
    definition = cluster.event_by_id.get(event_id)
    if definition is None:
        return Status.UNSUPPORTED_EVENT
    if not reader.allowed(endpoint, cluster_id, definition.read_privilege):
        return Status.UNSUPPORTED_ACCESS
    return None


# ---------------------------------------------------------------------------------------------------- packing


class Packer:
    """Greedy packing of encoded IBs into chunks whose IB bytes stay within ``budget``."""

    def __init__(self, budget: int, lanes: int = 1) -> None:
        if budget <= 0:
            raise LocalProtocolError(f"message budget {budget} leaves no room for IBs")
        self.budget = budget
        self._lanes = lanes
        self.chunks: list[list[list[tlv.Raw]]] = [[[] for _ in range(lanes)]]
        self._used = 0

    @property
    def free(self) -> int:
        return self.budget - self._used

    @property
    def current_empty(self) -> bool:
        return self._used == 0

    def new_chunk(self) -> None:
        if not self.current_empty:
            self.chunks.append([[] for _ in range(self._lanes)])
            self._used = 0

    def add(self, raw: tlv.Raw, lane: int = 0) -> bool:
        """Append to the current chunk, or to a new one if it does not fit; False if it fits in none."""
        if len(raw) > self.free:
            if len(raw) > self.budget:
                return False
            self.new_chunk()
        self.chunks[-1][lane].append(raw)
        self._used += len(raw)
        return True


def _path_ib(path: AttributePath, append: bool = False) -> AttributePathIB:
    return AttributePathIB(
        endpoint=path.endpoint,
        cluster=path.cluster,
        attribute=path.attribute,
        list_index=NULL if append else None,
    )


def _data_ib(path: AttributePath, version: int, value: Any, append: bool = False) -> tlv.Raw:
    ib = AttributeDataIB(data_version=version, path=_path_ib(path, append), data=value)
    return tlv.Raw(AttributeReportIB(attribute_data=ib).encode())


def _status_ib(path: AttributePath, status: Status, cluster_status: int | None = None) -> tlv.Raw:
    ib = AttributeStatusIB(path=_path_ib(path), status=StatusIB(status=status, cluster_status=cluster_status))
    return tlv.Raw(AttributeReportIB(attribute_status=ib).encode())


class ReportBuilder:
    """Builds the ReportData payloads of one report (a read, a priming report or a change report)."""

    _ATTRIBUTES, _EVENTS = 0, 1

    def __init__(self, max_payload: int, *, subscription_id: int | None, has_events: bool) -> None:
        self._subscription_id = subscription_id
        # The frame of a non-final chunk: MoreChunkedMessages costs what SuppressResponse costs on a read's
        # last chunk, and a subscription's last chunk carries neither, so this bound is exact for reads.
        frame = ReportData(
            subscription_id=subscription_id,
            attribute_reports=[],
            event_reports=[] if has_events else None,
            more_chunked_messages=True,
        )
        self.max_payload = max_payload
        self._packer = Packer(max_payload - len(frame.encode()), lanes=2)

    def add_event_status(self, path: EventPathIB, status: Status) -> None:
        raw = tlv.Raw(EventReportIB(event_status=EventStatusIB(path=path, status=StatusIB(status=status))).encode())
        self._packer.add(raw, self._EVENTS)

    def add_event(self, record: EventRecord) -> None:
        if not self._packer.add(record.report_ib(), self._EVENTS):
            log.error("event %d does not fit in a report", record.number)

    def add(self, item: AttributeItem) -> None:
        if item.status is not None:
            self._packer.add(_status_ib(item.path, item.status, item.cluster_status), self._ATTRIBUTES)
            return
        value = item.value
        is_list = type(value) is list or type(value) is tuple
        try:
            items = [tlv.Raw(tlv.encode(v)) for v in value] if is_list else None
            whole = _data_ib(item.path, item.data_version, items if is_list else value)
        except (LocalProtocolError, SchemaError):
            log.exception("attribute %s has a value that is not TLV-encodable", item.path)
            self._packer.add(_status_ib(item.path, Status.FAILURE), self._ATTRIBUTES)
            return
        packer = self._packer
        if packer.add(whole, self._ATTRIBUTES):  # in this chunk, or alone at the start of the next
            return
        if items is None:
            # A single non-list value larger than a whole message cannot be reported at all.
            log.error("attribute %s (%d bytes) does not fit in a report", item.path, len(whole))
            packer.add(_status_ib(item.path, Status.RESOURCE_EXHAUSTED), self._ATTRIBUTES)
            return
        self._add_split_list(item, items)

    def _add_split_list(self, item: AttributeItem, items: list[tlv.Raw]) -> None:
        """The CHIP SDK's list chunking: as many items as fit with the attribute, the rest appended one by one."""
        packer = self._packer
        packer.new_chunk()
        room = packer.budget - len(_data_ib(item.path, item.data_version, []))
        count = 0
        for raw in items:
            if len(raw) > room:
                break
            room -= len(raw)
            count += 1
        packer.add(_data_ib(item.path, item.data_version, items[:count]), self._ATTRIBUTES)
        for raw in items[count:]:
            if not packer.add(_data_ib(item.path, item.data_version, raw, append=True), self._ATTRIBUTES):
                log.error("an item of list attribute %s does not fit in a report", item.path)
                packer.add(_status_ib(item.path, Status.RESOURCE_EXHAUSTED), self._ATTRIBUTES)
                return

    def payloads(self, *, suppress_last: bool) -> list[bytes]:
        """The ReportData payloads. ``suppress_last``: a read's last chunk sets SuppressResponse; chunks before
        it set MoreChunkedMessages and never SuppressResponse (Core spec 8.4.3.3; CircuitMatter got this wrong)."""
        chunks = self._packer.chunks
        out = []
        for i, (attributes, events) in enumerate(chunks):
            more = i < len(chunks) - 1
            message = ReportData(
                subscription_id=self._subscription_id,
                attribute_reports=attributes or None,
                event_reports=events or None,
                more_chunked_messages=True if more else None,
                suppress_response=True if (suppress_last and not more) else None,
            )
            out.append(message.encode())
        return out


def build_report(
    reader: AttributeReader,
    attribute_paths: Iterable[AttributePathIB],
    event_paths: Iterable[EventPathIB],
    max_payload: int,
    subscription_id: int | None,
    *,
    suppress_last: bool,
    events: Sequence[EventRecord] = (),
) -> list[bytes]:
    """The ReportData payloads of a read or a priming report: every attribute request path, then the event
    statuses and ``events`` (the stored events the event paths yield, ``event_read.visible_events``), as the
    CHIP SDK's Engine::BuildReportData puts attribute reports before event reports in each chunk."""
    event_paths = list(event_paths)
    statuses = event_statuses(reader, event_paths)
    builder = ReportBuilder(max_payload, subscription_id=subscription_id, has_events=bool(event_paths))
    for request in attribute_paths:
        for item in reader.expand(request):
            builder.add(item)
    for path, status in statuses:
        builder.add_event_status(path, status)
    for record in events:
        builder.add_event(record)
    return builder.payloads(suppress_last=suppress_last)
