"""The Interaction Model client (Core spec 8, 10.7): sans-IO interactions and a thin asyncio driver.

* Builders and parsers (pure): ``build_read_request``, ``build_subscribe_request``, ``build_write_requests`` /
  ``build_write_chunks`` (chunked the CHIP SDK way), ``build_invoke_request``, ``build_timed_request``;
  ``ReportAssembler`` (ReportData chunks → ``ReadResult``), ``parse_write_response``, ``parse_invoke_response``.
* Interactions, shaped like ``CaseInitiator``: ``start()`` gives the first message, ``receive(opcode, payload)``
  the ``Send`` to answer with (or None); ``done``/``failed`` with ``result``/``error``. No clock, no socket:
  tests drive them straight against an ``InteractionServer``.
* ``InteractionClient`` runs one interaction per exchange over a ``UdpEndpoint``. An ``ExchangeRouter``
  (``node.peers.ExchangeDispatcher``) hands it the events of its exchanges and the peer-initiated report
  exchanges of its subscriptions, so it never depends on the node's server-side routing.

Errors: a peer's refusal is ``IMStatusError(status, cluster_status)`` (a StatusResponse, or through
``ReadResult.value`` / ``AttributeStatus.check`` / ``InvokeResult.check``); an exchange that ended early
(response timeout, MRP gave up, session gone) is ``InteractionError(reason)``; malformed input a ``DecodeError``;
a chunked report or invoke response longer than ``max_report_bytes`` a ``ReportTooLargeError`` (the peer gets
StatusResponse(RESOURCE_EXHAUSTED) and the interaction ends: a peer cannot make us buffer without bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

from jfds_device.codec import schema
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.message import ProtocolId
from jfds_device.errors import DecodeError, LocalProtocolError, MatterError, RemoteProtocolError
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, CommandPath, Status
from jfds_device.transport.exchange import ExchangeClosed, ExchangeRef, MessageReceived, SessionClosed
from jfds_device.transport.sessions import Session
from jfds_device.transport.udp import UdpEndpoint

__all__ = [
    "DEFAULT_MAX_PAYLOAD", "DEFAULT_MAX_REPORT_BYTES", "AttributeStatus", "AttributeWrite", "ChunkBudget",
    "CommandRequest", "ExchangeRouter", "IMStatusError", "Interaction", "InteractionClient", "InteractionError",
    "InvokeInteraction", "InvokeResult", "ReadInteraction", "ReadResult", "ReportAssembler", "ReportTooLargeError",
    "Send", "SubscribeInteraction", "SubscribeResult", "Subscription", "WriteChunk", "WriteInteraction",
    "attribute_path", "build_invoke_request", "build_read_request", "build_status_response", "build_subscribe_request",
    "build_timed_request", "build_write_chunks", "build_write_requests", "parse_invoke_response",
    "parse_write_response", "summarize_write",
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


class IMStatusError(MatterError):
    """The peer answered with an IM status other than SUCCESS (Core spec 8.10)."""

    def __init__(self, status: int, cluster_status: int | None = None, message: str = "") -> None:
        try:
            name = Status(status).name
        except ValueError:
            name = f"0x{status:02X}"
        detail = name + (f" (cluster status 0x{cluster_status:02X})" if cluster_status is not None else "")
        super().__init__(f"{message}: {detail}" if message else detail)
        self.status = status
        self.cluster_status = cluster_status


class ReportTooLargeError(RemoteProtocolError):
    """The peer's chunks of one report (or invoke response) passed our bound. Answered RESOURCE_EXHAUSTED when the
    peer waits for an answer (``expects_reply``); a final chunk that wants none (SuppressResponse) gets none."""

    status = Status.RESOURCE_EXHAUSTED

    def __init__(self, received: int, limit: int, chunks: int, *, expects_reply: bool = True) -> None:
        super().__init__(f"report of {received} bytes in {chunks} chunk(s) exceeds the {limit}-byte bound")
        self.received, self.limit, self.chunks, self.expects_reply = received, limit, chunks, expects_reply


class InteractionError(MatterError):
    """The exchange ended before the interaction did; ``reason`` is the transport's CloseReason value."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or f"interaction ended: {reason}")
        self.reason = reason


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


# ---------------------------------------------------------------------------------------------- interactions


@dataclass(frozen=True, slots=True)
class Send:
    """One IM message to send on the interaction's exchange; ``expect_response`` waits for the peer's next."""

    opcode: Op
    payload: bytes
    expect_response: bool = True


_ACK: Final = build_status_response(Status.SUCCESS)
Handler = Callable[[Any, bytes], "Send | None"]


class Interaction:
    """Base of the client interactions: one ``(state, opcode) → handler`` table per class (as in ``case``).

    A m.StatusResponse where none is awaited is the peer ending the interaction (IMStatusError, not answered).
    Malformed or unexpected input fails it with one m.StatusResponse(INVALID_ACTION) (Core spec 8.2.5.1).
    """

    _HANDLERS: ClassVar[dict[tuple[str, Op], Handler]] = {}

    def __init__(self, state: str) -> None:
        self.state = state
        self.result: Any = None
        self.error: MatterError | None = None

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def failed(self) -> bool:
        return self.error is not None

    def start(self) -> Send:
        raise LocalProtocolError(f"{type(self).__name__} does not start an exchange")

    def receive(self, opcode: int, payload: bytes) -> Send | None:
        if self.done or self.failed:
            raise LocalProtocolError(f"{type(self).__name__} is over")
        try:
            op: Op | None = Op(opcode)
        except ValueError:
            op = None
        handler = self._HANDLERS.get((self.state, op)) if op is not None else None
        try:
            if handler is not None:
                return handler(self, bytes(payload))
            if op is Op.STATUS_RESPONSE and (status := m.StatusResponse.decode(payload).status) != Status.SUCCESS:
                self.error = IMStatusError(status)
                return None
            raise RemoteProtocolError(f"unexpected IM opcode 0x{opcode:02X} in state {self.state!r}")
        except (DecodeError, RemoteProtocolError) as exc:
            self.error = exc
            if isinstance(exc, ReportTooLargeError):
                if not exc.expects_reply:
                    return None
                return Send(Op.STATUS_RESPONSE, build_status_response(exc.status), expect_response=False)
            return Send(Op.STATUS_RESPONSE, build_status_response(Status.INVALID_ACTION), expect_response=False)

    def _finish(self, result: Any) -> None:
        self.result = result
        self.state = "done"


class ReadInteraction(Interaction):
    """Core spec 8.4: m.ReadRequest → m.ReportData chunks, each but the last answered with m.StatusResponse(SUCCESS).

    Built with ``subscription_id`` (and no request) it takes one later report of that subscription on an exchange
    the peer opened (Core spec 8.5.4): feed the first m.ReportData to ``receive``; a chunk that does not set
    SuppressResponse is answered, the last one included, and a report for another subscription is refused.
    """

    def __init__(self, request: bytes | None = None, *, subscription_id: int | None = None,
                 max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES) -> None:
        super().__init__("idle" if request is not None else "report")
        self._request, self.subscription_id = request, subscription_id
        self._assembler = ReportAssembler(max_report_bytes)

    def start(self) -> Send:
        if self._request is None:
            return super().start()
        self.state = "report"
        return Send(Op.READ_REQUEST, self._request)

    def _on_report(self, payload: bytes) -> Send | None:
        report = self._assembler.decode(payload)
        if self.subscription_id is not None and report.subscription_id != self.subscription_id:
            self.error = RemoteProtocolError(f"report for subscription {report.subscription_id}")
            return Send(Op.STATUS_RESPONSE, build_status_response(Status.INVALID_SUBSCRIPTION), expect_response=False)
        self._assembler.feed(report)
        if report.more_chunked_messages:
            return Send(Op.STATUS_RESPONSE, _ACK)
        self._finish(self._assembler.result)
        return None if report.suppress_response else Send(Op.STATUS_RESPONSE, _ACK, expect_response=False)

    _HANDLERS: ClassVar[dict[tuple[str, Op], Handler]] = {("report", Op.REPORT_DATA): _on_report}


class SubscribeInteraction(Interaction):
    """Core spec 8.5.3: m.SubscribeRequest → priming m.ReportData chunks, every one answered (the last too) →
    m.SubscribeResponse. Result: ``SubscribeResult``."""

    def __init__(self, request: bytes, *, max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES) -> None:
        super().__init__("idle")
        self._request = request
        self._assembler = ReportAssembler(max_report_bytes)

    def start(self) -> Send:
        self.state = "priming"
        return Send(Op.SUBSCRIBE_REQUEST, self._request)

    def _on_report(self, payload: bytes) -> Send:
        report = self._assembler.decode(payload, always_answered=True)  # 8.5.3: every priming chunk is answered
        self._assembler.feed(report)
        if not report.more_chunked_messages:
            self.state = "response"
        return Send(Op.STATUS_RESPONSE, _ACK)

    def _on_response(self, payload: bytes) -> None:
        response = m.SubscribeResponse.decode(payload)
        report = self._assembler.result
        if report.subscription_id not in (None, response.subscription_id):
            raise RemoteProtocolError("SubscribeResponse names another subscription than its priming report")
        report.subscription_id = response.subscription_id
        self._finish(SubscribeResult(response.subscription_id, response.max_interval, report))

    _HANDLERS: ClassVar[dict[tuple[str, Op], Handler]] = {
        ("priming", Op.REPORT_DATA): _on_report,
        ("response", Op.SUBSCRIBE_RESPONSE): _on_response,
    }


class _Timed(Interaction):
    """A Write or Invoke, preceded by a m.TimedRequest when ``timed_timeout_ms`` is set (Core spec 8.2.2.5)."""

    def __init__(self, first: bytes, opcode: Op, timed_timeout_ms: int | None) -> None:
        super().__init__("idle")
        self._first, self._opcode, self._timeout = first, opcode, timed_timeout_ms

    def start(self) -> Send:
        if self._timeout is not None:
            self.state = "timed"
            return Send(Op.TIMED_REQUEST, build_timed_request(self._timeout))
        self.state = "action"
        return Send(self._opcode, self._first)

    def _on_timed_status(self, payload: bytes) -> Send | None:
        status = m.StatusResponse.decode(payload).status
        if status != Status.SUCCESS:  # the peer refused the timed interaction and closed its side
            self.error = IMStatusError(status, message="TimedRequest")
            return None
        self.state = "action"
        return Send(self._opcode, self._first)


class WriteInteraction(_Timed):
    """Core spec 8.7: [m.TimedRequest →] m.WriteRequest → m.WriteResponse, per chunk. Result: every AttributeStatus in
    order (``summarize_write`` folds them per attribute).

    ``guards`` (per payload, ``WriteChunk.guarded``): when the peer refuses a guarded replace-all, the chunks left
    are not sent and a StatusResponse(FAILURE) ends the write (Core spec 8.2.5: a status other than SUCCESS ends
    the interaction), so no append lands on the list the peer kept. Their paths then have no status of their own
    (``summarize_write`` reports the refusal)."""

    def __init__(self, payloads: Sequence[bytes], timed_timeout_ms: int | None = None, *,
                 guards: Sequence[frozenset[AttributePath]] | None = None) -> None:
        if not payloads:
            raise LocalProtocolError("no m.WriteRequest to send")
        if guards is not None and len(guards) != len(payloads):
            raise LocalProtocolError("one guard set per WriteRequest payload")
        super().__init__(payloads[0], Op.WRITE_REQUEST, timed_timeout_ms)
        self._rest, self._statuses = list(payloads[1:]), list[AttributeStatus]()
        self._guards = list(guards or [frozenset()] * len(payloads))

    def _on_response(self, payload: bytes) -> Send | None:
        statuses = parse_write_response(payload)
        self._statuses.extend(statuses)
        guarded = self._guards.pop(0)
        refused = [s for s in statuses if s.path in guarded and not s.ok]
        if refused and self._rest:
            log.debug("write of %s refused (0x%02X); the %d chunk(s) left are not sent", refused[0].path,
                      refused[0].status, len(self._rest))
            self._rest.clear()
            self._finish(self._statuses)
            return Send(Op.STATUS_RESPONSE, build_status_response(Status.FAILURE), expect_response=False)
        if self._rest:
            return Send(Op.WRITE_REQUEST, self._rest.pop(0))
        self._finish(self._statuses)
        return None

    _HANDLERS: ClassVar[dict[tuple[str, Op], Handler]] = {
        ("timed", Op.STATUS_RESPONSE): _Timed._on_timed_status,
        ("action", Op.WRITE_RESPONSE): _on_response,
    }


class InvokeInteraction(_Timed):
    """Core spec 8.8: [m.TimedRequest →] m.InvokeRequest → m.InvokeResponse chunks, each but the last answered."""

    def __init__(self, request: bytes, timed_timeout_ms: int | None = None, *,
                 max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES) -> None:
        super().__init__(request, Op.INVOKE_REQUEST, timed_timeout_ms)
        self._results: list[InvokeResult] = []
        self._budget = ChunkBudget(max_report_bytes)

    def _on_response(self, payload: bytes) -> Send | None:
        results, more = parse_invoke_response(payload)
        self._budget.take(payload, expects_reply=more)
        self._results.extend(results)
        if more:
            return Send(Op.STATUS_RESPONSE, _ACK)
        self._finish(self._results)
        return None

    _HANDLERS: ClassVar[dict[tuple[str, Op], Handler]] = {
        ("timed", Op.STATUS_RESPONSE): _Timed._on_timed_status,
        ("action", Op.INVOKE_RESPONSE): _on_response,
    }


# ---------------------------------------------------------------------------------------------- asyncio driver

ExchangeEvent = MessageReceived | ExchangeClosed
ReportHandler = Callable[[MessageReceived | SessionClosed], None]


class ExchangeRouter(Protocol):
    """What the client needs from the node's event routing (``node.peers.ExchangeDispatcher``)."""

    def watch(self, exchange: ExchangeRef, handler: Callable[[ExchangeEvent], None]) -> None: ...

    def unwatch(self, exchange: ExchangeRef) -> None: ...

    def add_report_handler(self, session: Session, subscription_id: int, handler: ReportHandler) -> Callable[[], None]:
        """Route new peer-initiated exchanges carrying ReportData for ``subscription_id`` on ``session``, and that
        session's SessionClosed, to ``handler``; returns the function that removes the route."""
        ...


class Subscription:
    """An established subscription: later non-empty reports go to ``on_report``. If no report (keep-alives
    included) comes within MaxInterval plus the exchange layer's response margin, or the session closes,
    ``on_lost`` is called once and the subscription ends (Core spec 8.5.4: the subscriber's liveness check)."""

    def __init__(self, client: InteractionClient, session: Session, result: SubscribeResult,
                 on_report: Callable[[ReadResult], None], on_lost: Callable[[MatterError], None] | None) -> None:
        self.session, self.subscription_id, self.max_interval = session, result.subscription_id, result.max_interval
        self.priming = result.report
        self.active = True
        self._client, self._on_report, self._on_lost = client, on_report, on_lost
        self._watchdog: asyncio.TimerHandle | None = None
        self._remove = client.router.add_report_handler(session, self.subscription_id, self._on_event)
        self._arm()

    def cancel(self) -> None:
        """Stop listening; the peer's next report is then refused (INVALID_SUBSCRIPTION), which ends it there."""
        if self.active:
            self.active = False
            self._remove()
            if self._watchdog is not None:
                self._watchdog.cancel()

    def _arm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        endpoint = self._client.endpoint
        margin = endpoint.manager.default_response_timeout(self.session, endpoint.now())
        lost = InteractionError("timeout", f"no report within {self.max_interval} s + {margin:.1f} s")
        self._watchdog = asyncio.get_running_loop().call_later(self.max_interval + margin, self._lost, lost)

    def _lost(self, error: MatterError) -> None:
        if self.active:
            self.cancel()
            log.info("subscription 0x%08X lost: %s", self.subscription_id, error)
            if self._on_lost is not None:
                self._on_lost(error)

    def _on_event(self, event: MessageReceived | SessionClosed) -> None:
        if isinstance(event, SessionClosed):
            self._lost(InteractionError("session_closed", "the subscription's session closed"))
            return
        self._arm()
        inbox = self._client._watch(event.exchange)  # now, so none of the exchange's events slips past
        inbox.put_nowait(event)
        self._client._spawn(self._report(event.exchange, inbox))

    async def _report(self, exchange: ExchangeRef, inbox: asyncio.Queue[ExchangeEvent]) -> None:
        try:
            interaction = ReadInteraction(subscription_id=self.subscription_id,
                                          max_report_bytes=self._client.max_report_bytes)
            result = await self._client._drive(exchange, inbox, interaction)
        except MatterError as exc:
            log.info("report of subscription 0x%08X failed: %s", self.subscription_id, exc)
            return
        self._arm()
        if self.active and not result.empty:
            try:
                self._on_report(result)
            except Exception:  # the owner's bug must not end the subscription or leak from the task
                log.exception("on_report of subscription 0x%08X failed", self.subscription_id)


class InteractionClient:
    """IM interactions over the secure sessions of ``endpoint``, one exchange each. ``response_timeout``
    overrides the exchange layer's MRP-derived default for every message that awaits an answer;
    ``max_report_bytes`` bounds one chunked report or invoke response (``ReportTooLargeError`` past it)."""

    def __init__(self, endpoint: UdpEndpoint, router: ExchangeRouter, *, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 response_timeout: float | None = None, max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES) -> None:
        self.endpoint, self.router = endpoint, router
        self.max_payload, self.response_timeout = max_payload, response_timeout
        self.max_report_bytes = max_report_bytes
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, session: Session, paths: Sequence[PathLike], *, fabric_filtered: bool = True,
                   event_paths: Sequence[m.EventPathIB] | None = None,
                   data_version_filters: dict[tuple[int, int], int] | None = None) -> ReadResult:
        """Read (wildcards allowed, chunked reports reassembled); per-path errors land in ``statuses``."""
        request = build_read_request(paths, fabric_filtered=fabric_filtered, event_paths=event_paths,
                                     data_version_filters=data_version_filters)
        result: ReadResult = await self._run(session, ReadInteraction(request, max_report_bytes=self.max_report_bytes))
        return result

    async def read_attribute(self, session: Session, endpoint: int, cluster: int, attribute: int, *,
                             fabric_filtered: bool = True) -> Any:
        result = await self.read(session, [(endpoint, cluster, attribute)], fabric_filtered=fabric_filtered)
        return result.value(endpoint, cluster, attribute)

    async def write(self, session: Session, writes: Sequence[AttributeWrite], *,
                    timed_timeout_ms: int | None = None) -> list[AttributeStatus]:
        """Write (long lists chunked); one status per attribute (``summarize_write``)."""
        chunks = build_write_chunks(writes, timed=timed_timeout_ms is not None, max_payload=self.max_payload)
        interaction = WriteInteraction([c.payload for c in chunks], timed_timeout_ms,
                                       guards=[c.guarded for c in chunks])
        statuses: list[AttributeStatus] = await self._run(session, interaction)
        return summarize_write(writes, statuses)

    async def write_attribute(self, session: Session, endpoint: int, cluster: int, attribute: int, value: Any, *,
                              data_version: int | None = None, timed_timeout_ms: int | None = None) -> None:
        """Write one attribute; IMStatusError unless the peer answered SUCCESS."""
        writes = [AttributeWrite(endpoint, cluster, attribute, value, data_version)]
        [status] = await self.write(session, writes, timed_timeout_ms=timed_timeout_ms)
        status.check()

    async def invoke(self, session: Session, endpoint: int, cluster: int, command: int, fields: Any = None, *,
                     timed_timeout_ms: int | None = None) -> InvokeResult:
        """Invoke one command: its data response or SUCCESS, else IMStatusError."""
        [result] = await self.invoke_batch(session, [CommandRequest(endpoint, cluster, command, fields)],
                                           timed_timeout_ms=timed_timeout_ms)
        return result.check()

    async def invoke_batch(self, session: Session, commands: Sequence[CommandRequest], *,
                           timed_timeout_ms: int | None = None) -> list[InvokeResult]:
        request = build_invoke_request(commands, timed=timed_timeout_ms is not None)
        interaction = InvokeInteraction(request, timed_timeout_ms, max_report_bytes=self.max_report_bytes)
        results: list[InvokeResult] = await self._run(session, interaction)
        return results

    async def subscribe(self, session: Session, paths: Sequence[PathLike], min_interval: int, max_interval: int,
                        on_report: Callable[[ReadResult], None], *,
                        on_lost: Callable[[MatterError], None] | None = None, keep_subscriptions: bool = True,
                        fabric_filtered: bool = True) -> Subscription:
        """Subscribe; the priming report is ``Subscription.priming``. ``keep_subscriptions`` defaults to True so
        a new subscription does not end our others on that peer (Core spec 8.5.3.2)."""
        request = build_subscribe_request(paths, min_interval, max_interval, keep_subscriptions=keep_subscriptions,
                                          fabric_filtered=fabric_filtered)
        interaction = SubscribeInteraction(request, max_report_bytes=self.max_report_bytes)
        result: SubscribeResult = await self._run(session, interaction)
        return Subscription(self, session, result, on_report, on_lost)

    async def close(self) -> None:
        """Wait for the report handling in flight (the owners cancel their subscriptions)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- driving -----------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _watch(self, exchange: ExchangeRef) -> asyncio.Queue[ExchangeEvent]:
        inbox: asyncio.Queue[ExchangeEvent] = asyncio.Queue()
        self.router.watch(exchange, inbox.put_nowait)
        return inbox

    async def _run(self, session: Session, interaction: Interaction) -> Any:
        exchange = self.endpoint.new_exchange(session)  # LocalProtocolError if the session is closing
        inbox = self._watch(exchange)
        try:
            self._send(exchange, interaction.start())
        except BaseException:
            self._release(exchange)
            raise
        return await self._drive(exchange, inbox, interaction)

    async def _drive(self, exchange: ExchangeRef, inbox: asyncio.Queue[ExchangeEvent], interaction: Interaction) -> Any:
        """Feed the exchange's events to ``interaction`` until it is over; the exchange is released either way."""
        try:
            while not interaction.done:
                event = await inbox.get()
                if isinstance(event, ExchangeClosed):
                    raise InteractionError(str(event.reason))
                if event.protocol_id != ProtocolId.INTERACTION_MODEL:
                    raise RemoteProtocolError(f"protocol 0x{event.protocol_id:04X} on an IM exchange")
                step = interaction.receive(event.opcode, event.payload)
                if step is not None:
                    self._send(exchange, step)
                if interaction.error is not None:
                    raise interaction.error
            return interaction.result
        finally:
            self._release(exchange)

    def _release(self, exchange: ExchangeRef) -> None:
        self.router.unwatch(exchange)
        if self.endpoint.manager.is_open(exchange):
            with contextlib.suppress(MatterError):
                self.endpoint.close_exchange(exchange)  # acks what we got; our last message stays until acked

    def _send(self, exchange: ExchangeRef, step: Send) -> None:
        self.endpoint.send(exchange, ProtocolId.INTERACTION_MODEL, step.opcode, step.payload,
                           expect_response=step.expect_response,
                           response_timeout=self.response_timeout if step.expect_response else None)
