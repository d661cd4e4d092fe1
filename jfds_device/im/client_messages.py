"""IM client messages (Core spec 10.7): pure builders and parsers, the result types and the client's errors.

* Builders: ``build_read_request``, ``build_subscribe_request``, ``build_write_requests`` / ``build_write_chunks``
  (chunked the CHIP SDK way), ``build_invoke_request``, ``build_timed_request``, ``build_status_response``.
* Parsers: ``ReportAssembler`` (ReportData chunks → ``ReadResult``, bounded by ``ChunkBudget``),
  ``parse_write_response`` / ``summarize_write``, ``parse_invoke_response``.

``im/interactions.py`` drives these as sans-IO interactions and ``im/client.py`` runs them over exchanges.

Errors (``errors``): a peer's refusal is ``IMStatusError(status, cluster_status)`` (a StatusResponse, or through
``ReadResult.value`` / ``AttributeStatus.check`` / ``InvokeResult.check``); an exchange that ended early
(response timeout, MRP gave up, session gone) is ``InteractionError(reason)``; malformed input a ``DecodeError``;
a chunked report or invoke response longer than ``max_report_bytes`` a ``ReportTooLargeError`` (the peer gets
StatusResponse(RESOURCE_EXHAUSTED) and the interaction ends: a peer cannot make us buffer without bound).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from jfds_device.codec import schema
from jfds_device.codec.model import AttributeRef, CommandDef, command_of
from jfds_device.errors import IMStatusError, LocalProtocolError, RemoteProtocolError, ReportTooLargeError
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, CommandPath, Status

__all__ = [
    "DEFAULT_MAX_PAYLOAD", "DEFAULT_MAX_REPORT_BYTES", "AttributeStatus", "AttributeWrite", "ChunkBudget",
    "CommandRequest", "InvokeResult", "PathLike", "ReadResult", "ReportAssembler", "SubscribeResult", "WriteChunk",
    "attribute_path", "build_invoke_request", "build_read_request", "build_status_response",
    "build_subscribe_request", "build_timed_request", "build_write_chunks", "build_write_requests", "command_request",
    "command_response", "parse_invoke_response", "parse_write_response", "summarize_write",
]  # fmt: skip

log = logging.getLogger(__name__)

# One message's IM payload: a 1280-byte IPv6 MTU leaves 1232 bytes for the Matter message (Core spec 4.4.4);
# headers, an ack and the MIC fit in the rest. InteractionServer uses the same default.
DEFAULT_MAX_PAYLOAD: Final = 1100

# The most one chunked report (or invoke response) may carry, summed over its chunks' IM payloads. Core spec 8.4.3.3
# puts no bound on the number of chunks, so we set one. The largest lists a peer holds are far smaller (the JFDS's
# own 8192-entry per-node lists, the biggest in this stack, are about 0.4 MiB as chunked ReportData).
DEFAULT_MAX_REPORT_BYTES: Final = 2 * 1024 * 1024

PathLike = m.AttributePathIB | tuple[int | None, int | None, int | None]
"""A request path: an m.AttributePathIB or ``(endpoint, cluster, attribute)`` with None as a wildcard."""


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class AttributeStatus:
    path: AttributePath
    status: int
    cluster_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS

    def check(self) -> None:
        if not self.ok:
            raise IMStatusError(self.status, self.cluster_status, f"attribute {self.path}")


@dataclass(slots=True)
class ReadResult:
    """One whole report (all its chunks). Values are in plain TLV form (``codec.tlv``), a top-level null is None;
    DataVersions are per cluster instance (Core spec 7.10.3)."""

    attributes: dict[AttributePath, Any] = field(default_factory=dict)
    statuses: dict[AttributePath, AttributeStatus] = field(default_factory=dict)
    data_versions: dict[tuple[int, int], int] = field(default_factory=dict)
    events: list[m.EventDataIB] = field(default_factory=list)
    event_statuses: list[m.EventStatusIB] = field(default_factory=list)
    subscription_id: int | None = None

    @property
    def empty(self) -> bool:
        """Nothing reported: a subscription keep-alive (Core spec 8.5.4)."""
        return not (self.attributes or self.statuses or self.events or self.event_statuses)

    def value(self, endpoint: int, cluster: int, attribute: int, as_type: schema.FieldType | None = None) -> Any:
        """The value (through ``as_type.from_tlv`` if given); IMStatusError for a reported status, KeyError if
        the report does not mention the path."""
        path = AttributePath(endpoint, cluster, attribute)
        status = self.statuses.get(path)
        if status is not None:
            raise IMStatusError(status.status, status.cluster_status, f"attribute {path}")
        value = self.attributes[path]
        return value if as_type is None or value is None else as_type.from_tlv(value)

    def typed(self, endpoint: int, attribute: AttributeRef) -> Any:
        """The value of ``attribute`` on ``endpoint`` decoded by its schema (a top-level null is None);
        IMStatusError for a reported status, KeyError if the report does not mention it, ``SchemaError`` (a
        ``DecodeError``) if the peer's value does not fit the schema."""
        return attribute.decode(self.value(endpoint, attribute.cluster_id, attribute.attribute_id))


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """One InvokeResponseIB: a data response (``fields``, its TLV struct; ``path`` names the response command)
    or a status (``path`` is the request's)."""

    path: CommandPath
    status: int = Status.SUCCESS
    cluster_status: int | None = None
    fields: Any = None
    command_ref: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS

    def check(self) -> InvokeResult:
        if not self.ok:
            raise IMStatusError(self.status, self.cluster_status, f"command {self.path}")
        return self


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """Core spec 8.5.3: what the m.SubscribeResponse granted, with the priming report."""

    subscription_id: int
    max_interval: int
    report: ReadResult


@dataclass(frozen=True, slots=True)
class AttributeWrite:
    """One attribute to write: ``value`` in TLV form, a schema Struct, or a list of either (a list attribute)."""

    endpoint: int
    cluster: int
    attribute: int
    value: Any
    data_version: int | None = None


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One command; ``fields`` is its request (a Struct, a TLV dict, or None for an empty structure)."""

    endpoint: int
    cluster: int
    command: int
    fields: Any = None
    command_ref: int | None = None


# ---------------------------------------------------------------------------------------------- builders


def attribute_path(path: PathLike) -> m.AttributePathIB:
    if isinstance(path, m.AttributePathIB):
        return path
    endpoint, cluster, attribute = path
    return m.AttributePathIB(endpoint=endpoint, cluster=cluster, attribute=attribute)


def _to_tlv(value: Any) -> Any:
    if isinstance(value, schema.Struct):
        return value.to_tlv()
    if type(value) is list or type(value) is tuple:  # not TLVList, a list subclass that is a TLV *list*
        return [_to_tlv(v) for v in value]
    return value


def build_read_request(paths: Sequence[PathLike], *, fabric_filtered: bool = True,
                       event_paths: Sequence[m.EventPathIB] | None = None,
                       data_version_filters: dict[tuple[int, int], int] | None = None) -> bytes:
    """Core spec 10.7.2. ``data_version_filters``: {(endpoint, cluster): the DataVersion we hold}."""
    filters = [m.DataVersionFilterIB(path=m.ClusterPathIB(endpoint=ep, cluster=cl), data_version=v)
               for (ep, cl), v in (data_version_filters or {}).items()]
    return m.ReadRequest(attribute_requests=[attribute_path(p) for p in paths] or None,
                       event_requests=list(event_paths) if event_paths else None,
                       fabric_filtered=fabric_filtered, data_version_filters=filters or None).encode()


def build_subscribe_request(paths: Sequence[PathLike], min_interval: int, max_interval: int, *,
                            keep_subscriptions: bool = True, fabric_filtered: bool = True,
                            event_paths: Sequence[m.EventPathIB] | None = None) -> bytes:
    """Core spec 10.7.4; MinIntervalFloor and MaxIntervalCeiling in seconds."""
    if not 0 <= min_interval <= max_interval <= 0xFFFF:
        raise LocalProtocolError(f"subscription intervals {min_interval}..{max_interval} are invalid")
    return m.SubscribeRequest(keep_subscriptions=keep_subscriptions, min_interval_floor=min_interval,
                            max_interval_ceiling=max_interval,
                            attribute_requests=[attribute_path(p) for p in paths] or None,
                            event_requests=list(event_paths) if event_paths else None,
                            fabric_filtered=fabric_filtered).encode()


def build_timed_request(timeout_ms: int) -> bytes:
    """Core spec 10.7.8: the window (ms) in which the Write or Invoke must reach the peer."""
    if not 1 <= timeout_ms <= 0xFFFF:
        raise LocalProtocolError(f"timed request timeout {timeout_ms} ms outside 1..65535")
    return m.TimedRequest(timeout=timeout_ms).encode()


def build_status_response(status: int) -> bytes:
    return m.StatusResponse(status=status).encode()


def _data_ib(write: AttributeWrite, value: Any, *, append: bool = False) -> m.AttributeDataIB:
    path = m.AttributePathIB(endpoint=write.endpoint, cluster=write.cluster, attribute=write.attribute,
                           list_index=m.NULL if append else None)
    # The DataVersion rides on the whole value / the replace only: the replace itself bumps it on the peer.
    return m.AttributeDataIB(data_version=None if append else write.data_version, path=path, data=value)


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """One WriteRequest message of a write. ``guarded``: the conditional list writes (``data_version`` set) whose
    replace-all IB ends this message; if the peer refuses one, the write stops here (``WriteInteraction``)."""

    payload: bytes
    guarded: frozenset[AttributePath] = frozenset()


def build_write_requests(writes: Sequence[AttributeWrite], *, timed: bool = False,
                         max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[bytes]:
    """WriteRequest payloads for ``writes`` (``build_write_chunks`` without the guards)."""
    return [chunk.payload for chunk in build_write_chunks(writes, timed=timed, max_payload=max_payload)]


def build_write_chunks(writes: Sequence[AttributeWrite], *, timed: bool = False,
                       max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[WriteChunk]:
    """WriteRequest messages for ``writes`` (Core spec 10.7.6), each at most ``max_payload`` bytes.

    A value that fits one message goes whole (in the current message or at the start of the next). A longer list
    goes as the CHIP SDK's WriteClient sends it (Core spec 8.7.3.3, chunked lists): replace-all with an empty list,
    then one m.AttributeDataIB per item with ListIndex null (append), over as many messages as it takes; all but the
    last set MoreChunkedMessages. A timed write must be one message (the SDK's WriteHandler refuses a chunked one).

    A chunked *conditional* list write (``data_version`` set) carries the DataVersion on its replace-all IB only:
    that IB bumps the version on the peer, so the appends could never match it (matter.js checks every IB that
    carries one, ``AttributeWriteResponse.#writeConcrete``). Its replace-all ends its message, and the appends start
    in the next: a peer that refuses the replace (DATA_VERSION_MISMATCH) still applies the appends of the same
    message to the list it kept (matter.js does), so they must not travel with it (the chunk is ``guarded``).
    """
    if not writes:
        raise LocalProtocolError("a write needs at least one attribute")
    frame = m.WriteRequest(timed_request=timed, write_requests=[], more_chunked_messages=True)
    budget = max_payload - len(frame.encode())
    chunks: list[list[m.AttributeDataIB]] = [[]]
    guards: list[set[AttributePath]] = [set()]
    used = 0

    def put(ib: m.AttributeDataIB) -> bool:
        nonlocal used
        size = len(ib.encode())
        if size > budget:
            return False
        if used + size > budget:
            new_chunk()
        chunks[-1].append(ib)
        used += size
        return True

    def new_chunk() -> None:
        nonlocal used
        chunks.append([])
        guards.append(set())
        used = 0

    for write in writes:
        value = _to_tlv(write.value)
        if put(_data_ib(write, value)):
            continue
        if type(value) is not list or not put(_data_ib(write, [])):
            raise LocalProtocolError(f"the value of {write} does not fit in one message")
        if write.data_version is not None and value:
            guards[-1].add(AttributePath(write.endpoint, write.cluster, write.attribute))
            new_chunk()
        for item in value:
            if not put(_data_ib(write, item, append=True)):
                raise LocalProtocolError(f"an item of {write} does not fit in one message")
    if timed and len(chunks) > 1:
        raise LocalProtocolError("a timed write must fit in one message")
    last = len(chunks) - 1
    return [WriteChunk(m.WriteRequest(timed_request=timed, write_requests=ibs,
                                      more_chunked_messages=True if i < last else None).encode(), frozenset(guard))
            for i, (ibs, guard) in enumerate(zip(chunks, guards, strict=True))]


def build_invoke_request(commands: Sequence[CommandRequest], *, timed: bool = False) -> bytes:
    """Core spec 10.7.9. A batch needs distinct CommandRefs (8.8.2): missing ones are numbered by position."""
    if not commands:
        raise LocalProtocolError("an invoke needs at least one command")
    batch = len(commands) > 1
    ibs = [m.CommandDataIB(path=m.CommandPathIB(endpoint=c.endpoint, cluster=c.cluster, command=c.command),
                         fields={} if c.fields is None else _to_tlv(c.fields),
                         command_ref=i if c.command_ref is None and batch else c.command_ref)
           for i, c in enumerate(commands)]
    return m.InvokeRequest(suppress_response=False, timed_request=timed, invoke_requests=ibs).encode()


def command_request(endpoint: int, request: schema.Struct, command_ref: int | None = None
                    ) -> tuple[CommandRequest, CommandDef]:
    """The CommandRequest for a schema request struct (its cluster and command come from the schema tables)."""
    cluster, command = command_of(request)
    return CommandRequest(endpoint, cluster.id, command.id, request, command_ref), command


def command_response(command: CommandDef, result: InvokeResult) -> schema.Struct | None:
    """The typed answer to ``command``: its response struct decoded by the schema, or None when the peer answered
    a status (SUCCESS) or the command has no response. IMStatusError if the peer refused it; ``SchemaError`` (a
    ``DecodeError``) if the response does not fit the schema."""
    result.check()
    if command.response is None or result.fields is None:
        return None
    response: schema.Struct = command.response.from_tlv(result.fields)
    return response


# ---------------------------------------------------------------------------------------------- parsers


def _concrete(path: m.AttributePathIB) -> AttributePath:
    if path.endpoint is None or path.cluster is None or path.attribute is None:
        raise RemoteProtocolError(f"report path is not concrete: {path}")
    return AttributePath(path.endpoint, path.cluster, path.attribute)


class ChunkBudget:
    """Counts the payload bytes of one chunked response; ``ReportTooLargeError`` (and a log line) past ``limit``."""

    def __init__(self, limit: int = DEFAULT_MAX_REPORT_BYTES) -> None:
        if limit < 1:
            raise LocalProtocolError("the report bound must be positive")
        self.limit, self.received, self.chunks = limit, 0, 0

    def take(self, payload: bytes, *, expects_reply: bool = True) -> None:
        """Account for one more chunk (decoded, as one message is small, but not yet kept): past the bound nothing
        more is kept and the interaction ends. ``expects_reply``: whether the peer waits for our StatusResponse."""
        self.received += len(payload)
        self.chunks += 1
        if self.received > self.limit:
            log.warning("peer's chunked response passed %d bytes (%d bytes in %d chunks): ending the interaction",
                        self.limit, self.received, self.chunks)
            raise ReportTooLargeError(self.received, self.limit, self.chunks, expects_reply=expects_reply)


class ReportAssembler:
    """Applies the m.ReportData chunks of one report in order: a whole value replaces, ListIndex null appends to the
    list carried earlier in the same report (Core spec 8.4.3.3, 10.6.2). ``budget`` bounds the whole report."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_REPORT_BYTES) -> None:
        self.result = ReadResult()
        self.budget = ChunkBudget(max_bytes)

    def decode(self, payload: bytes, *, always_answered: bool = False) -> m.ReportData:
        """One chunk's m.ReportData, counted against the budget before ``feed`` keeps any of it. The last chunk of a
        report with SuppressResponse waits for no answer, unless ``always_answered`` (priming reports)."""
        report = m.ReportData.decode(payload)
        final_silent = not report.more_chunked_messages and bool(report.suppress_response) and not always_answered
        self.budget.take(payload, expects_reply=not final_silent)
        return report

    def feed(self, report: m.ReportData) -> None:
        result = self.result
        if report.subscription_id is not None:
            result.subscription_id = report.subscription_id
        for ib in report.attribute_reports or ():
            if ib.attribute_data is not None:
                data = ib.attribute_data
                path = _concrete(data.path)
                value = None if data.data is m.NULL else data.data
                if data.data_version is not None:
                    result.data_versions[(path.endpoint, path.cluster)] = data.data_version
                if data.path.list_index is None:
                    result.attributes[path] = value
                    result.statuses.pop(path, None)
                elif data.path.list_index is not m.NULL:
                    raise RemoteProtocolError(f"numeric ListIndex in a report for {path}")
                elif type(result.attributes.get(path)) is list:
                    result.attributes[path].append(value)
                else:
                    raise RemoteProtocolError(f"append to {path}, which the report did not carry as a list")
            elif ib.attribute_status is not None:
                st = ib.attribute_status
                path = _concrete(st.path)
                result.statuses[path] = AttributeStatus(path, st.status.status, st.status.cluster_status)
            else:
                raise RemoteProtocolError("AttributeReportIB with neither data nor status")
        for event in report.event_reports or ():
            if event.event_data is not None:
                result.events.append(event.event_data)
            elif event.event_status is not None:
                result.event_statuses.append(event.event_status)


def parse_write_response(payload: bytes) -> list[AttributeStatus]:
    return [AttributeStatus(_concrete(ib.path), ib.status.status, ib.status.cluster_status)
            for ib in m.WriteResponse.decode(payload).write_responses]


def summarize_write(writes: Sequence[AttributeWrite], statuses: Sequence[AttributeStatus]) -> list[AttributeStatus]:
    """One status per attribute written: its first failure (a chunked list has several IBs), else its SUCCESS;
    FAILURE if the peer said nothing about it."""
    out: dict[AttributePath, AttributeStatus] = {}
    for write in writes:
        path = AttributePath(write.endpoint, write.cluster, write.attribute)
        mine = [s for s in statuses if s.path == path]
        out[path] = next((s for s in mine if not s.ok), mine[0] if mine else AttributeStatus(path, Status.FAILURE))
    return list(out.values())


def parse_invoke_response(payload: bytes) -> tuple[list[InvokeResult], bool]:
    """The results in one m.InvokeResponse and whether more chunks follow (Core spec 10.7.10)."""
    response = m.InvokeResponse.decode(payload)
    results = []
    for ib in response.invoke_responses:
        if ib.command is not None:
            p, fields = ib.command.path, (None if ib.command.fields is m.NULL else ib.command.fields)
            results.append(InvokeResult(CommandPath(p.endpoint, p.cluster, p.command), fields=fields,
                                        command_ref=ib.command.command_ref))
        elif ib.status is not None:
            p, st = ib.status.path, ib.status.status
            results.append(InvokeResult(CommandPath(p.endpoint, p.cluster, p.command), st.status, st.cluster_status,
                                        command_ref=ib.status.command_ref))
        else:
            raise RemoteProtocolError("InvokeResponseIB with neither command nor status")
    return results, bool(response.more_chunked_messages)
