"""The provider-facing half of the IM engine: per-path reads, writes and invokes, and the encoding and chunking
of what they answer (Core spec 8.4.3, 8.7.3, 8.8.3, 8.9, 10.7). ``server.py`` is the exchange-facing half.

``AttributeReader`` turns request paths into report items: it expands wildcards, checks existence and access
in the order the spec and the CHIP SDK use, applies DataVersionFilters and reads values from the provider.
``ReportBuilder`` encodes each item once as an AttributeReportIB (``tlv.Raw``) and packs the IBs into
ReportData payloads that each fit ``max_payload``. A list too large for one message is split the way the
CHIP SDK splits it: the attribute with as many leading items as fit, then one AttributeReportIB per further
item with ListIndex null (append), in as many messages as it takes (Core spec 8.4.3.3: chunked lists).

Status choices for values that do not decode (the data model's schema conversion raises ``SchemaError``
subclasses, which the engine maps):

* Writes answer CONSTRAINT_ERROR for every decode failure (wrong TLV type, missing struct field, out of
  range). The spec never names INVALID_DATA_TYPE as a write answer, and the CHIP SDK's maintainers call it an
  internal-programming-error code a client should never see (connectedhomeip #31020). The SDK answers
  CONSTRAINT_ERROR for range failures (``EmberAttributeDataBuffer::DecodeUnsignedInteger``) and, for wrong TLV
  types, what ``StatusIB(CHIP_ERROR_WRONG_TLV_TYPE)`` maps to, i.e. FAILURE; matter.js answers CONSTRAINT_ERROR
  for both. CONSTRAINT_ERROR is the one that tells the client "this value is not acceptable".
* Invokes answer INVALID_COMMAND for wrong types and missing fields, as the SDK's generated dispatch does for
  any field decode failure, and CONSTRAINT_ERROR for a value out of range (Core spec 8.8.3.3, 7.10.9).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from jfds_device.codec import tlv
from jfds_device.codec.model import ClusterDef, Privilege
from jfds_device.codec.schema import ConstraintError, MissingFieldError, WrongTypeError
from jfds_device.errors import LocalProtocolError, MatterError, SchemaError
from jfds_device.im.messages import (
    NULL,
    AttributeDataIB,
    AttributePathIB,
    AttributeReportIB,
    AttributeStatusIB,
    CommandDataIB,
    CommandPathIB,
    CommandStatusIB,
    DataVersionFilterIB,
    EventPathIB,
    EventReportIB,
    EventStatusIB,
    InvokeResponse,
    InvokeResponseIB,
    ReportData,
    StatusIB,
)
from jfds_device.im.provider import (
    ActionError,
    AttributePath,
    CommandPath,
    DataModelProvider,
    ListOperation,
    RequestContext,
    Status,
)

__all__ = [
    "SUCCESS",
    "AttributeItem",
    "AttributeReader",
    "Outcome",
    "Packer",
    "ReportBuilder",
    "RequestError",
    "WriteSession",
    "build_report",
    "command_status_ib",
    "data_version_filters",
    "event_statuses",
    "invoke_command",
    "invoke_response_payloads",
    "is_global_attribute",
    "validate_attribute_paths",
    "validate_invoke_batch",
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


class RequestError(MatterError):
    """The whole request is refused with one StatusResponse carrying ``status``."""

    def __init__(self, status: Status, message: str = "") -> None:
        super().__init__(message or status.name)
        self.status = status


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
    """We have no events (ClusterDef declares none): wildcard event paths match nothing and report nothing,
    concrete ones get the status a node without that event answers (Core spec 8.4.3.2, event paths)."""
    out: list[tuple[EventPathIB, Status]] = []
    for path in paths:
        if path.endpoint is None or path.cluster is None or path.event is None:
            continue
        if path.endpoint not in reader.endpoints():
            status = Status.UNSUPPORTED_ENDPOINT
        elif path.cluster not in reader.clusters(path.endpoint):
            status = Status.UNSUPPORTED_CLUSTER
        else:
            status = Status.UNSUPPORTED_EVENT
        out.append((path, status))
    return out


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


def command_status_ib(request: CommandDataIB, status: Status, cluster_status: int | None = None) -> tlv.Raw:
    """An InvokeResponseIB carrying a status for ``request`` (Core spec 10.6.14), echoing its CommandRef."""
    ib = CommandStatusIB(
        path=request.path,
        status=StatusIB(status=status, cluster_status=cluster_status),
        command_ref=request.command_ref,
    )
    return tlv.Raw(InvokeResponseIB(status=ib).encode())


def invoke_response_payloads(
    responses: Sequence[tlv.Raw], requests: Sequence[CommandDataIB], max_payload: int
) -> list[bytes]:
    """InvokeResponse messages carrying ``responses``, chunked to ``max_payload`` (Core spec 8.8.3.4: every
    chunk but the last sets MoreChunkedMessages; the client acknowledges each with a StatusResponse). A response
    too big for any message is replaced by a RESOURCE_EXHAUSTED status for its command."""
    frame = InvokeResponse(suppress_response=False, invoke_responses=[], more_chunked_messages=True)
    packer = Packer(max_payload - len(frame.encode()))
    for raw, request in zip(responses, requests, strict=True):
        if not packer.add(raw):
            log.error("the response to %s does not fit in a message", request.path)
            packer.add(command_status_ib(request, Status.RESOURCE_EXHAUSTED))
    chunks = packer.chunks
    return [
        InvokeResponse(
            suppress_response=False,
            invoke_responses=lanes[0],
            more_chunked_messages=True if i < len(chunks) - 1 else None,
        ).encode()
        for i, lanes in enumerate(chunks)
    ]


def build_report(
    reader: AttributeReader,
    attribute_paths: Iterable[AttributePathIB],
    event_paths: Iterable[EventPathIB],
    max_payload: int,
    subscription_id: int | None,
    *,
    suppress_last: bool,
) -> list[bytes]:
    """The ReportData payloads of a read or a priming report: event statuses, then every request path."""
    events = event_statuses(reader, event_paths)
    builder = ReportBuilder(max_payload, subscription_id=subscription_id, has_events=bool(events))
    for path, status in events:
        builder.add_event_status(path, status)
    for request in attribute_paths:
        for item in reader.expand(request):
            builder.add(item)
    return builder.payloads(suppress_last=suppress_last)


# ---------------------------------------------------------------------------------------------------- write, invoke


_DECODE_STATUS: Final[dict[str, dict[type[SchemaError], Status]]] = {  # see the module docstring
    "write": {WrongTypeError: Status.CONSTRAINT_ERROR, MissingFieldError: Status.CONSTRAINT_ERROR},
    "invoke": {WrongTypeError: Status.INVALID_COMMAND, MissingFieldError: Status.INVALID_COMMAND},
}
Outcome = tuple[Status, int | None]
SUCCESS: Final[Outcome] = (Status.SUCCESS, None)


def _decode_status(action: str, exc: SchemaError) -> Status:
    if isinstance(exc, ConstraintError):
        return Status.CONSTRAINT_ERROR
    return next((s for cls, s in _DECODE_STATUS[action].items() if isinstance(exc, cls)), Status.CONSTRAINT_ERROR)


@dataclass(slots=True, eq=False)
class WriteSession:
    """One write interaction, possibly chunked over several WriteRequests (Core spec 8.7.3).

    ``take`` runs one AttributeDataIB through the checks and the provider; the server groups the IBs of a
    message into one data-model transaction."""

    session_id: int
    timed: bool
    # The attribute of the last IB taken up: appends must continue it (the CHIP SDK's WriteHandler answers
    # BUSY to an append whose list was not begun in this interaction; Core spec 8.7.3.3 chunked lists).
    processing: AttributePath | None = None
    # Lists replaced earlier in this interaction: their appends skip the DataVersion check, since the
    # replace itself bumped the version the client read (the SDK client's chunked list writes rely on it).
    replaced: set[AttributePath] = field(default_factory=set)
    # Access granted earlier in this interaction, per attribute and privilege. The decision is taken once per
    # attribute per write interaction, as the CHIP SDK's WriteHandler caches it (mACLCheckCache): a chunked list
    # write of the ACL (replace-all with [], then appends) must not lock its own writer out half-way.
    granted: set[tuple[AttributePath, Privilege]] = field(default_factory=set)

    def take(self, node: AttributeReader, ctx: RequestContext, ib: AttributeDataIB, busy: bool) -> Outcome:
        path = AttributePath(ib.path.endpoint, ib.path.cluster, ib.path.attribute)
        append = ib.path.list_index is NULL
        if busy or (append and path != self.processing):
            return (Status.BUSY, None)
        self.processing = path
        if ib.path.list_index is not None and not append:
            return (Status.INVALID_ACTION, None)  # a numeric ListIndex is reserved (Core spec 10.6.2)
        cluster = node.find_cluster(path.endpoint, path.cluster)
        if isinstance(cluster, Status):
            return (cluster, None)
        if path.attribute not in node.attribute_ids(path.endpoint, path.cluster):
            return (Status.UNSUPPORTED_ATTRIBUTE, None)
        attribute = cluster.attribute_by_id.get(path.attribute)
        # The CHIP SDK's WriteHandler::CheckWriteAllowed order: writability before access (its TC_AccessChecker
        # expects UNSUPPORTED_WRITE for a read-only attribute), then timed. Globals are read-only.
        if attribute is None or not attribute.writable:
            return (Status.UNSUPPORTED_WRITE, None)
        provider, subject = node.provider, ctx.subject
        grant = (path, attribute.write_privilege)
        if grant not in self.granted:
            if not provider.allowed(subject, path.endpoint, path.cluster, attribute.write_privilege):
                return (Status.UNSUPPORTED_ACCESS, None)
            self.granted.add(grant)
        if attribute.timed_write and not ctx.timed:
            return (Status.NEEDS_TIMED_INTERACTION, None)
        if attribute.fabric_scoped and subject.fabric_index == 0:
            return (Status.UNSUPPORTED_ACCESS, None)  # no accessing fabric (Core spec 8.7.3.2)
        if append and not attribute.is_list:
            return (Status.INVALID_ACTION, None)
        checks_version = ib.data_version is not None and not (append and path in self.replaced)
        if checks_version and ib.data_version != provider.data_version(path.endpoint, path.cluster):
            return (Status.DATA_VERSION_MISMATCH, None)
        if append:
            op = ListOperation.APPEND
        else:
            op = ListOperation.REPLACE if attribute.is_list else ListOperation.NOT_A_LIST
        try:
            provider.write_attribute(ctx, path, None if ib.data is NULL else ib.data, op)
        except ActionError as exc:
            return (exc.status, exc.cluster_status)
        except SchemaError as exc:
            return (_decode_status("write", exc), None)
        except Exception:
            log.exception("write_attribute %s failed", path)
            return (Status.FAILURE, None)
        if op is ListOperation.REPLACE:
            self.replaced.add(path)
        return SUCCESS


def validate_invoke_batch(requests: Sequence[CommandDataIB], max_paths: int) -> None:
    """Core spec 8.8.2: unicast invokes name an endpoint; a batch needs distinct CommandRefs and distinct
    paths; more commands than MaxPathsPerInvoke are refused."""
    if not requests or len(requests) > max_paths:
        raise RequestError(Status.INVALID_ACTION, f"{len(requests)} commands in one invoke")
    if any(r.path.endpoint is None for r in requests):
        raise RequestError(Status.INVALID_ACTION, "wildcard endpoint in a unicast invoke")
    if len(requests) > 1:
        refs = [r.command_ref for r in requests]
        if None in refs or len(set(refs)) != len(refs):
            raise RequestError(Status.INVALID_ACTION, "batch commands need distinct CommandRefs")
        if len({(r.path.endpoint, r.path.cluster, r.path.command) for r in requests}) != len(requests):
            raise RequestError(Status.INVALID_ACTION, "the same command path twice in a batch")


def invoke_command(node: AttributeReader, ctx: RequestContext, request: CommandDataIB) -> tlv.Raw:
    """One command: checks in the CHIP SDK's ValidateCommandCanBeDispatched order (existence, access, timed,
    accessing fabric; Core spec 8.8.3.3), then the provider. Returns an encoded InvokeResponseIB."""
    p, provider = request.path, node.provider
    path = CommandPath(p.endpoint, p.cluster, p.command)  # type: ignore[arg-type]  # validated: not None
    cluster = node.find_cluster(path.endpoint, path.cluster)
    if isinstance(cluster, Status):
        return command_status_ib(request, cluster)
    command = cluster.command_by_id.get(path.command)
    if command is None:
        return command_status_ib(request, Status.UNSUPPORTED_COMMAND)
    if not node.allowed(path.endpoint, path.cluster, command.privilege):
        return command_status_ib(request, Status.UNSUPPORTED_ACCESS)
    if command.timed and not ctx.timed:
        return command_status_ib(request, Status.NEEDS_TIMED_INTERACTION)
    if command.fabric_scoped and ctx.subject.fabric_index == 0:
        return command_status_ib(request, Status.UNSUPPORTED_ACCESS)
    # Absent CommandFields means an empty structure; a null one reaches the schema and fails there.
    fields = {} if request.fields is None else (None if request.fields is NULL else request.fields)
    try:
        response = provider.invoke(ctx, path, fields)
    except ActionError as exc:
        return command_status_ib(request, exc.status, exc.cluster_status)
    except SchemaError as exc:
        return command_status_ib(request, _decode_status("invoke", exc))
    except Exception:
        log.exception("invoke %s failed", path)
        return command_status_ib(request, Status.FAILURE)
    if response is None:
        return command_status_ib(request, Status.SUCCESS)
    data = CommandDataIB(
        path=CommandPathIB(endpoint=path.endpoint, cluster=path.cluster, command=response.command),
        fields=response.fields,
        command_ref=request.command_ref,
    )
    try:
        return tlv.Raw(InvokeResponseIB(command=data).encode())
    except (LocalProtocolError, SchemaError):
        log.exception("invoke %s returned fields that do not encode", path)
        return command_status_ib(request, Status.FAILURE)
