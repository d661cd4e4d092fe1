"""The IM client's interactions (Core spec 8.4, 8.5, 8.7, 8.8), sans-IO and shaped like ``CaseInitiator``:
``start()`` gives the first message, ``receive(opcode, payload)`` the ``Send`` to answer with (or None);
``done``/``failed`` with ``result``/``error``. No clock, no socket: tests drive them straight against an
``InteractionServer``; ``im/client.py`` runs them over exchanges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.errors import (
    DecodeError,
    IMStatusError,
    LocalProtocolError,
    MatterError,
    RemoteProtocolError,
    ReportTooLargeError,
)
from jfds_device.im import messages as m
from jfds_device.im.client_messages import (
    DEFAULT_MAX_REPORT_BYTES,
    AttributeStatus,
    ChunkBudget,
    InvokeResult,
    ReportAssembler,
    SubscribeResult,
    build_status_response,
    build_timed_request,
    parse_invoke_response,
    parse_write_response,
)
from jfds_device.im.provider import AttributePath, Status

__all__ = [
    "Interaction", "InvokeInteraction", "ReadInteraction", "Send", "SubscribeInteraction", "WriteInteraction",
]  # fmt: skip

log = logging.getLogger(__name__)



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
