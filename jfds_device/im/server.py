"""The sans-IO Interaction Model responder (Core spec 8): reads, subscriptions, writes, invokes, timed actions.

Driving contract (no I/O, no clock; the caller owns the exchanges and the timer):

* ``on_message(exchange, ctx, opcode, payload, now)`` for every IM message that arrives; ``exchange`` is any
  hashable key naming the exchange it arrived on. It returns the messages to send, as ``Outgoing``.
* An exchange stays open only while the server's last message on it had ``expect_response=True``. If
  ``on_message`` returns nothing for an exchange, the caller acknowledges the message and closes it.
* A subscription report goes out on a new exchange: its ``Outgoing.exchange`` is a ``LocalExchange`` key the
  server minted and ``new_exchange`` is true. The caller opens an exchange on ``session_id`` and passes that
  same key for everything that later happens on it.
* ``on_exchange_closed(exchange, failed)`` when an exchange ends without the server closing it (MRP gave up,
  response timeout, peer gone); ``on_session_closed(session_id)`` when a session goes away.
* ``next_deadline()`` after every call, and ``on_timer(now)`` once that time has come (a deadline already in
  the past means "now"). The optional ``wakeup`` callback fires when the data model reports a change, so a
  caller whose change came from outside a server call re-reads ``next_deadline()``. It may be called from
  inside ``on_message`` (a write's commit notifies); it must only schedule, never call back into the server.
* Every ``Outgoing`` belongs to the Interaction Model protocol (Core spec 4.4.3.4, protocol id 0x0001).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.model import AuthMode
from jfds_device.errors import DecodeError, RequestError
from jfds_device.im.admission import (
    MAX_ATTRIBUTE_PATHS,
    MAX_EVENT_PATHS,
    Footprint,
    HeldInteraction,
    HeldSubscription,
    InteractionKind,
    Limits,
    admit_interaction,
    admit_subscription,
)
from jfds_device.im.event_read import event_min, visible_events
from jfds_device.im.events import EventRecord, EventStore
from jfds_device.im.invoke import invoke_command, invoke_response_payloads, validate_invoke_batch
from jfds_device.im.messages import (
    AttributeDataIB,
    AttributePathIB,
    AttributeStatusIB,
    InvokeRequest,
    ReadRequest,
    StatusIB,
    StatusResponse,
    SubscribeRequest,
    SubscribeResponse,
    TimedRequest,
    WriteRequest,
    WriteResponse,
)
from jfds_device.im.provider import AttributePath, DataModelProvider, RequestContext, Status
from jfds_device.im.read import AttributeReader, build_report, data_version_filters, validate_attribute_paths
from jfds_device.im.subscribe_access import has_accessible_path
from jfds_device.im.subscriptions import (
    Subscription,
    SubscriptionState,
    SubscriptionTable,
    change_report,
    negotiate_max_interval,
)
from jfds_device.im.write import SUCCESS, Outcome, WriteSession

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "MAX_ATTRIBUTE_PATHS",
    "MAX_DATA_VERSION_FILTERS",
    "MAX_EVENT_PATHS",
    "MAX_PATHS_PER_INVOKE",
    "InteractionServer",
    "LocalExchange",
    "Outgoing",
]

log = logging.getLogger(__name__)

# IM payload budget: a 1280-byte IPv6 MTU leaves 1232 bytes for the Matter message (Core spec 4.4.4); the
# message and protocol headers, an MRP ack and the 16-byte MIC need well under the remaining 132.
DEFAULT_MAX_PAYLOAD: Final = 1100
_MIN_PAYLOAD: Final = 256
# Resource limits per session, per fabric and per node, with the spec's guaranteed minimums, live in
# admission.py (its tables cite the spec); MAX_ATTRIBUTE_PATHS / MAX_EVENT_PATHS per request come from there too.
MAX_DATA_VERSION_FILTERS: Final = 64  # extra filters are ignored, which only costs bandwidth
# Commands per InvokeRequest; BasicInformation.MaxPathsPerInvoke must report the value the server is built with.
MAX_PATHS_PER_INVOKE: Final = 10


@dataclass(frozen=True, slots=True)
class LocalExchange:
    """Key of an exchange the server initiates (subscription reports). Distinct from any caller key."""

    number: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One IM message to send on ``exchange`` (Core spec 4.10 exchanges, 8.2 IM actions)."""

    exchange: Hashable
    session_id: int
    opcode: Op
    payload: bytes
    expect_response: bool  # keep the exchange open and wait for the peer's next IM message
    close_exchange: bool  # the interaction ends with this message
    new_exchange: bool = False  # open an exchange on ``session_id`` first; ``exchange`` is a LocalExchange
    # Seconds the peer may take to answer (a TimedRequest's window); the exchange layer waits for the larger of
    # this and its own response timeout, as the SDK's TimedHandler does.
    response_timeout: float | None = None


class _ChunkKind(enum.Enum):
    READ = "read"
    INVOKE = "invoke"
    PRIMING = "priming"  # every chunk, and the last too, is answered with a StatusResponse
    REPORT = "report"


@dataclass(slots=True, eq=False)
class _Chunks:
    """A chunked answer: the peer acknowledges each chunk with StatusResponse(SUCCESS) (Core spec 8.2.5.2)."""

    session_id: int
    opcode: Op
    remaining: deque[bytes]
    kind: _ChunkKind
    subscription: Subscription | None = None


@dataclass(slots=True, eq=False)
class _TimedWindow:
    """After a TimedRequest: the Write or Invoke must arrive on this exchange before ``deadline`` (Core spec
    8.2.2.5, 8.7.2.1, 8.8.2.1)."""

    session_id: int
    deadline: float


_Pending = _Chunks | _TimedWindow | WriteSession

# What a waiting exchange counts as for admission; subscription reports are bounded by the subscriptions instead.
_HELD_KIND: Final[dict[object, InteractionKind]] = {
    _ChunkKind.READ: InteractionKind.READ,
    _ChunkKind.INVOKE: InteractionKind.INVOKE,
    _TimedWindow: InteractionKind.TIMED,
    WriteSession: InteractionKind.WRITE,
}


class InteractionServer:
    """The IM responder over one ``DataModelProvider``. See the module docstring for the driving contract.

    ``max_payload``: the largest IM payload (TLV bytes after the protocol header) a message may carry.
    ``max_paths_per_invoke``: commands accepted in one InvokeRequest (BasicInformation.MaxPathsPerInvoke).
    ``preferred_max_interval``: the MaxInterval (s) we would like; a subscriber gets at least its ceiling.
    ``wakeup``: called when a data-model change makes a report due earlier (see the module docstring).
    ``subscription_ids``: source of candidate SubscriptionIds (random 32-bit by default; tests inject one).
    ``limits``: the admission tables (admission.py); ``Limits.for_fabrics(SupportedFabrics)`` sizes the pool.
    ``events``: the node's event store (events.py); without one, event paths find no events.
    """

    def __init__(
        self,
        provider: DataModelProvider,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_paths_per_invoke: int = MAX_PATHS_PER_INVOKE,
        preferred_max_interval: int = 0,
        wakeup: Callable[[], None] | None = None,
        subscription_ids: Callable[[], int] | None = None,
        limits: Limits | None = None,
        events: EventStore | None = None,
    ) -> None:
        if max_payload < _MIN_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} is below {_MIN_PAYLOAD}")
        self._provider = provider
        self._max_payload = max_payload
        self._max_paths_per_invoke = max_paths_per_invoke
        self._preferred_max_interval = preferred_max_interval
        self._wakeup = wakeup
        self._subscriptions = SubscriptionTable(subscription_ids)
        self._pending: dict[Hashable, _Pending] = {}
        self._limits = limits or Limits()
        self._session_fabric: dict[int, int] = {}  # each session's accessing fabric (a WriteSession lacks it)
        self._next_local_exchange = 0
        self._events = events
        self.interactions: Counter[tuple[Op, int]] = Counter()
        """Interactions by request opcode and the status they ended with: SUCCESS, or the StatusResponse that
        refused the request (per-path statuses inside a report or response are not counted; diagnostics)."""
        provider.subscribe_changes(self)
        if events is not None:
            events.add_listener(self.event_emitted)

    # ------------------------------------------------------------------------------------------------ API

    @property
    def max_payload(self) -> int:
        """The largest IM payload the server emits; the caller's exchange layer must carry it."""
        return self._max_payload

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The live subscriptions (read-only use: diagnostics and tests)."""
        return tuple(self._subscriptions)

    def on_message(
        self, exchange: Hashable, ctx: RequestContext, opcode: int, payload: bytes, now: float
    ) -> list[Outgoing]:
        """Handle one incoming IM message; never raises for anything the peer sent."""
        if ctx.subject.auth_mode is AuthMode.GROUP:
            # Group IM (Core spec 8.7.2 / 8.8.2 groupcast) needs group membership we do not track yet;
            # groupcast is never answered, so dropping is what a peer sees for unsupported anyway.
            return []
        try:
            op: Op | None = Op(opcode)
        except ValueError:
            op = None
        self._session_fabric[ctx.session_id] = ctx.subject.fabric_index
        pending = self._pending.pop(exchange, None)
        # A request that starts an interaction (a timed window's Write/Invoke too; not a chunk or its ack) is counted.
        counted = op if (pending is None or type(pending) is _TimedWindow) and op in _INITIAL else None
        try:
            if pending is not None:
                continuation = _CONTINUATIONS[type(pending)].get(op)  # type: ignore[arg-type]
                if continuation is None:
                    raise RequestError(Status.INVALID_ACTION, f"{op!r} not expected here")
                out = continuation(self, exchange, ctx, pending, payload, now)
            else:
                handler = _INITIAL.get(op)  # type: ignore[arg-type]
                if handler is None:
                    return self._unsolicited(exchange, ctx, op)
                out = handler(self, exchange, ctx, payload, now)
            if counted is not None:
                self.interactions[counted, Status.SUCCESS] += 1
            return out
        except RequestError as exc:
            log.info("IM request on %r refused: %s", exchange, exc)
            status = exc.status
        except DecodeError as exc:
            log.info("malformed IM message %r on %r: %s", op, exchange, exc)
            status = Status.INVALID_ACTION
        except Exception:
            log.exception("IM handler failed for %r on %r", op, exchange)
            status = Status.FAILURE
        self._abandon(exchange, pending)
        self._abandon(exchange, self._pending.get(exchange))  # whatever the failed handler had begun
        for subscription in self._subscriptions:
            if subscription.exchange == exchange and subscription.state is SubscriptionState.PRIMING:
                self._drop_subscription(subscription)
        if counted is not None:
            self.interactions[counted, status] += 1
        return [self._status_reply(exchange, ctx.session_id, status)]

    def on_exchange_closed(self, exchange: Hashable, failed: bool) -> None:
        pending = self._pending.get(exchange)
        if pending is not None:
            log.info("IM exchange %r closed while waiting (failed=%s)", exchange, failed)
            self._abandon(exchange, pending)

    def on_session_closed(self, session_id: int) -> None:
        self._session_fabric.pop(session_id, None)
        for key, pending in list(self._pending.items()):
            if pending.session_id == session_id:
                self._abandon(key, pending)
        for subscription in self._subscriptions.for_session(session_id):
            self._drop_subscription(subscription)

    def on_fabric_removed(self, fabric_index: int) -> None:
        """RemoveFabric: that fabric's subscriptions end (as the SDK's OnFabricRemoved closes its handlers)."""
        for subscription in self._subscriptions:
            if subscription.ctx.subject.fabric_index == fabric_index:
                self._drop_subscription(subscription)

    def next_deadline(self) -> float | None:
        return self._subscriptions.next_deadline()

    def on_timer(self, now: float) -> list[Outgoing]:
        """Send the change reports and keep-alives that are due (Core spec 8.5.4)."""
        return self._start_reports(self._subscriptions.due(now), now)

    def event_emitted(self, record: EventRecord) -> None:
        """EventStore listener: an urgent event makes reports due after MinInterval (subscriptions.py)."""
        if self._subscriptions.event_emitted(self._provider, record) and self._wakeup is not None:
            self._wakeup()

    def flush_events(self, now: float) -> list[Outgoing]:
        """Report at once, MinInterval or not, to every idle subscription that has unreported events it may read:
        the ShutDown path (the CHIP SDK's BasicInformation shutdown runs ScheduleUrgentEventDeliverySync)."""
        if self._events is None:
            return []
        return self._start_reports(self._subscriptions.with_unreported_events(self._provider, self._events), now)

    def reports_in_flight(self) -> bool:
        """Whether some subscription report still waits for its subscriber's answer (the stop path waits on it)."""
        return self._subscriptions.in_flight()

    def attributes_changed(self, paths: Iterable[AttributePath]) -> None:
        """ChangeListener: the data model changed these attributes."""
        if self._subscriptions.mark_changed(paths) and self._wakeup is not None:
            self._wakeup()

    # ------------------------------------------------------------------------------------------------ helpers

    def _status_reply(self, exchange: Hashable, session_id: int, status: Status) -> Outgoing:
        return Outgoing(exchange, session_id, Op.STATUS_RESPONSE, StatusResponse(status=status).encode(), False, True)

    def _abandon(self, exchange: Hashable, pending: _Pending | None) -> None:
        """Forget the interaction on ``exchange``; a subscription whose report was in flight dies with it."""
        if self._pending.get(exchange) is pending:
            self._pending.pop(exchange, None)
        if isinstance(pending, _Chunks) and pending.subscription is not None:
            self._drop_subscription(pending.subscription)

    def _drop_subscription(self, subscription: Subscription) -> None:
        if self._subscriptions.remove(subscription):
            log.info("subscription %#x dropped", subscription.subscription_id)
        key = subscription.exchange
        if key is not None:
            pending = self._pending.get(key)
            if isinstance(pending, _Chunks) and pending.subscription is subscription:
                del self._pending[key]

    def _unsolicited(self, exchange: Hashable, ctx: RequestContext, op: Op | None) -> list[Outgoing]:
        if op is Op.STATUS_RESPONSE and isinstance(exchange, LocalExchange):
            return []  # the late answer to a report of a subscription we have since dropped
        # A report for a subscription we do not hold (we subscribe to nobody): Core spec 8.6.? / the SDK's
        # OnUnsolicitedReportData answer INVALID_SUBSCRIPTION; anything else unexpected is INVALID_ACTION.
        status = Status.INVALID_SUBSCRIPTION if op is Op.REPORT_DATA else Status.INVALID_ACTION
        return [self._status_reply(exchange, ctx.session_id, status)]

    def _send_chunks(
        self,
        exchange: Hashable,
        session_id: int,
        opcode: Op,
        payloads: list[bytes],
        kind: _ChunkKind,
        subscription: Subscription | None = None,
        new_exchange: bool = False,
    ) -> Outgoing:
        """Send the first chunk and remember the rest until the peer's StatusResponse asks for them."""
        pending = _Chunks(session_id, opcode, deque(payloads), kind, subscription)
        return self._next_chunk(exchange, pending, new_exchange)

    def _next_chunk(self, exchange: Hashable, pending: _Chunks, new_exchange: bool = False) -> Outgoing:
        payload = pending.remaining.popleft()
        # Subscription reports are always acknowledged, including the last chunk (Core spec 8.5.3.3, 8.6.2).
        waits = bool(pending.remaining) or pending.kind in (_ChunkKind.PRIMING, _ChunkKind.REPORT)
        if waits:
            self._pending[exchange] = pending
        return Outgoing(exchange, pending.session_id, pending.opcode, payload, waits, not waits, new_exchange)

    def _visible(self, reader: AttributeReader, paths: Sequence[Any], min_number: int) -> list[EventRecord]:
        if self._events is None or not paths:
            return []
        return visible_events(reader, self._events, paths, min_number)

    def _admit(self, ctx: RequestContext, kind: InteractionKind, now: float, paths: tuple[int, int] = (0, 0)) -> None:
        """Refuse a new interaction its session or fabric has no room for (admission.py, Core spec 8.4, 8.10)."""
        request = HeldInteraction(ctx.session_id, ctx.subject.fabric_index, kind)
        decision = admit_interaction(self._limits.interactions, self._held_interactions(now), request, paths)
        if not decision.admitted:
            raise RequestError(decision.status, f"{kind.value} refused: {decision.reason}")

    def _held_interactions(self, now: float) -> list[HeldInteraction]:
        """What counts against the caps; a timed window past its deadline no longer does (its exchange may linger)."""
        return [
            HeldInteraction(p.session_id, self._session_fabric.get(p.session_id, 0), kind)
            for p in self._pending.values()
            if (kind := _HELD_KIND.get(p.kind if isinstance(p, _Chunks) else type(p))) is not None
            and not (isinstance(p, _TimedWindow) and now > p.deadline)
        ]

    def _make_room_for(self, subscription: Subscription) -> None:
        """Refuse it, or evict what Core spec 8.5.1 says to (admission.py). An evicted subscription just ends, as the
        CHIP SDK's ReadHandler::Close does: its subscriber misses the next report and subscribes again."""
        held = [_held(s) for s in self._subscriptions]  # oldest first
        decision = admit_subscription(self._limits.subscriptions, held, _held(subscription))
        if not decision.admitted:
            raise RequestError(decision.status, f"subscription refused: {decision.reason}")
        for victim in decision.evict:
            assert isinstance(victim, Subscription)
            fabric = victim.ctx.subject.fabric_index
            log.info("subscription %#x of fabric %d evicted: %s", victim.subscription_id, fabric, decision.reason)
            self._drop_subscription(victim)

    def _check_paths(self, attributes: list[Any], events: list[Any]) -> None:
        if not attributes and not events:
            raise RequestError(Status.INVALID_ACTION, "no paths")
        if len(attributes) > MAX_ATTRIBUTE_PATHS or len(events) > MAX_EVENT_PATHS:
            raise RequestError(Status.PATHS_EXHAUSTED, f"{len(attributes)} + {len(events)} paths")
        validate_attribute_paths(attributes)

    # ------------------------------------------------------------------------------------------------ read

    def _on_read(self, exchange: Hashable, ctx: RequestContext, payload: bytes, now: float) -> list[Outgoing]:
        """Core spec 8.4.3: one report, chunked; the last chunk sets SuppressResponse."""
        request = ReadRequest.decode(payload)
        attributes, events = request.attribute_requests or [], request.event_requests or []
        self._check_paths(attributes, events)
        self._admit(ctx, InteractionKind.READ, now, (len(attributes), len(events)))
        read_ctx = dataclasses.replace(ctx, fabric_filtered=request.fabric_filtered, timed=False)
        filters = data_version_filters(request.data_version_filters, MAX_DATA_VERSION_FILTERS)
        reader = AttributeReader(self._provider, read_ctx, filters)
        records = self._visible(reader, events, event_min(request.event_filters))
        payloads = build_report(
            reader, attributes, events, self._max_payload, None, suppress_last=True, events=records
        )
        return [self._send_chunks(exchange, ctx.session_id, Op.REPORT_DATA, payloads, _ChunkKind.READ)]

    def _continue_chunks(
        self, exchange: Hashable, ctx: RequestContext, pending: _Chunks, payload: bytes, now: float
    ) -> list[Outgoing]:
        status = StatusResponse.decode(payload).status
        if status != Status.SUCCESS:
            # The peer ends the interaction (e.g. INVALID_SUBSCRIPTION for a report it no longer wants).
            log.info("peer answered %#x to a chunk on %r; interaction ends", status, exchange)
            self._abandon(exchange, pending)
            return []
        if pending.remaining:
            return [self._next_chunk(exchange, pending)]
        subscription = pending.subscription
        if subscription is None or not self._subscriptions.contains(subscription):
            return []
        subscription.state = SubscriptionState.IDLE
        subscription.exchange = None
        if pending.kind is not _ChunkKind.PRIMING:
            return []
        # Priming acknowledged: the subscription is established (Core spec 8.5.3.3).
        subscription.last_report_at = now
        response = SubscribeResponse(
            subscription_id=subscription.subscription_id, max_interval=subscription.max_interval
        )
        return [Outgoing(exchange, pending.session_id, Op.SUBSCRIBE_RESPONSE, response.encode(), False, True)]

    # ------------------------------------------------------------------------------------------------ subscribe

    def _on_subscribe(self, exchange: Hashable, ctx: RequestContext, payload: bytes, now: float) -> list[Outgoing]:
        """Core spec 8.5.3: negotiate, send the priming report, then SubscribeResponse."""
        request = SubscribeRequest.decode(payload)
        attributes, events = request.attribute_requests or [], request.event_requests or []
        self._check_paths(attributes, events)
        if request.min_interval_floor > request.max_interval_ceiling:
            raise RequestError(Status.INVALID_ACTION, "MinIntervalFloor above MaxIntervalCeiling")
        sub_ctx = dataclasses.replace(ctx, fabric_filtered=request.fabric_filtered, timed=False)
        subscription = Subscription(
            subscription_id=self._subscriptions.new_id(),
            ctx=sub_ctx,
            attribute_paths=tuple(attributes),
            event_paths=tuple(events),
            min_interval=request.min_interval_floor,
            max_interval=negotiate_max_interval(
                request.min_interval_floor, request.max_interval_ceiling, self._preferred_max_interval
            ),
            exchange=exchange,
        )
        if not request.keep_subscriptions:
            for old in self._subscriptions.for_peer(subscription.peer):
                self._drop_subscription(old)
        filters = data_version_filters(request.data_version_filters, MAX_DATA_VERSION_FILTERS)
        reader = AttributeReader(self._provider, sub_ctx, filters)
        # Core spec 8.5.3.2: nothing the subject may read, no subscription. Checked after KeepSubscriptions=false
        # has ended the peer's old ones, as the CHIP SDK's InteractionModelEngine::OnReadInitialRequest does.
        if not has_accessible_path(reader, attributes, events):
            raise RequestError(Status.INVALID_ACTION, "every path is denied by access control")
        self._make_room_for(subscription)
        records = self._visible(reader, events, event_min(request.event_filters))
        payloads = build_report(
            reader, attributes, events, self._max_payload, subscription.subscription_id, suppress_last=False,
            events=records,
        )
        if self._events is not None:
            subscription.event_next = self._events.next_number
        self._subscriptions.add(subscription)
        return [self._send_chunks(exchange, ctx.session_id, Op.REPORT_DATA, payloads, _ChunkKind.PRIMING, subscription)]

    def _start_reports(self, subscriptions: Iterable[Subscription], now: float) -> list[Outgoing]:
        """The first message of each one's report; a subscription whose report cannot be built is dropped."""
        out = []
        for subscription in subscriptions:
            try:
                out.append(self._start_report(subscription, now))
            except Exception:
                log.exception("report for subscription %#x failed", subscription.subscription_id)
                self._drop_subscription(subscription)
        return out

    def _start_report(self, subscription: Subscription, now: float) -> Outgoing:
        """A change report, or an empty keep-alive, on a new exchange (Core spec 8.5.4)."""
        payloads = change_report(self._provider, subscription, self._max_payload, self._events)
        self._next_local_exchange += 1
        key = LocalExchange(self._next_local_exchange)
        subscription.state = SubscriptionState.REPORTING
        subscription.exchange = key
        subscription.last_report_at = now
        return self._send_chunks(
            key, subscription.session_id, Op.REPORT_DATA, payloads, _ChunkKind.REPORT, subscription, True
        )

    # ------------------------------------------------------------------------------------------------ timed

    def _on_timed(self, exchange: Hashable, ctx: RequestContext, payload: bytes, now: float) -> list[Outgoing]:
        """Core spec 8.2.2.5: acknowledge, then wait on this exchange for the Write/Invoke until the timeout."""
        timeout = TimedRequest.decode(payload).timeout / 1000
        self._admit(ctx, InteractionKind.TIMED, now)
        self._pending[exchange] = _TimedWindow(ctx.session_id, now + timeout)
        ok = StatusResponse(status=Status.SUCCESS).encode()
        return [Outgoing(exchange, ctx.session_id, Op.STATUS_RESPONSE, ok, True, False, response_timeout=timeout)]

    @staticmethod
    def _check_window(window: _TimedWindow | None, now: float) -> None:
        """Checked before the request is even decoded, as the CHIP SDK's TimedHandler does ("Time is up.
        Spec says to send UNSUPPORTED_ACCESS"; Core spec 8.2.2.5)."""
        if window is not None and now > window.deadline:
            raise RequestError(Status.UNSUPPORTED_ACCESS, "timed window expired")

    @staticmethod
    def _check_timed_flag(window: _TimedWindow | None, timed_flag: bool) -> None:
        if timed_flag != (window is not None):
            # Core spec 8.7.3.1 / 8.8.3.1: TimedRequest flag and the preceding Timed Request must agree.
            raise RequestError(Status.TIMED_REQUEST_MISMATCH, "TimedRequest flag does not match the interaction")

    # ------------------------------------------------------------------------------------------------ write

    def _on_write(
        self,
        exchange: Hashable,
        ctx: RequestContext,
        payload: bytes,
        now: float,
        window: _TimedWindow | None = None,
    ) -> list[Outgoing]:
        self._check_window(window, now)
        request = WriteRequest.decode(payload)
        self._check_timed_flag(window, request.timed_request)
        if window is None:  # a timed write takes over its window's place
            self._admit(ctx, InteractionKind.WRITE, now)
        session = WriteSession(ctx.session_id, timed=window is not None)
        return self._write_chunk(exchange, ctx, session, request)

    def _apply_writes(
        self, session: WriteSession, ctx: RequestContext, ibs: Sequence[AttributeDataIB]
    ) -> list[AttributeStatusIB]:
        """Apply every AttributeDataIB in order, in one data-model transaction; one AttributeStatusIB each."""
        for ib in ibs:
            # Unicast writes name one attribute; wildcards are for group writes only (Core spec 8.7.2).
            if ib.path.endpoint is None or ib.path.cluster is None or ib.path.attribute is None:
                raise RequestError(Status.INVALID_ACTION, "wildcard path in a unicast write")
        node = AttributeReader(self._provider, ctx)
        outcomes: list[Outcome] = []
        self._provider.begin_write()
        try:
            for ib in ibs:
                path = AttributePath(ib.path.endpoint, ib.path.cluster, ib.path.attribute)
                outcomes.append(session.take(node, ctx, ib, self._list_write_in_progress(path)))
        finally:
            try:
                self._provider.end_write()
            except Exception:  # the commit failed: nothing that claimed success was stored
                log.exception("end_write failed")
                outcomes = [(Status.FAILURE, None) if o == SUCCESS else o for o in outcomes]
        return [
            AttributeStatusIB(
                path=AttributePathIB(
                    endpoint=ib.path.endpoint,
                    cluster=ib.path.cluster,
                    attribute=ib.path.attribute,
                    list_index=ib.path.list_index,
                ),
                status=StatusIB(status=status, cluster_status=cluster_status),
            )
            for ib, (status, cluster_status) in zip(ibs, outcomes, strict=True)
        ]

    def _list_write_in_progress(self, path: AttributePath) -> bool:
        """Another exchange is in the middle of a chunked write of ``path`` (the SDK answers BUSY then)."""
        return any(isinstance(p, WriteSession) and p.processing == path for p in self._pending.values())

    def _on_timed_write(
        self, exchange: Hashable, ctx: RequestContext, window: _TimedWindow, payload: bytes, now: float
    ) -> list[Outgoing]:
        return self._on_write(exchange, ctx, payload, now, window)

    def _continue_write(
        self, exchange: Hashable, ctx: RequestContext, session: WriteSession, payload: bytes, now: float
    ) -> list[Outgoing]:
        request = WriteRequest.decode(payload)
        if request.timed_request != session.timed:
            raise RequestError(Status.TIMED_REQUEST_MISMATCH, "TimedRequest flag changed between write chunks")
        return self._write_chunk(exchange, ctx, session, request)

    def _write_chunk(
        self, exchange: Hashable, ctx: RequestContext, session: WriteSession, request: WriteRequest
    ) -> list[Outgoing]:
        """Core spec 8.7.3: apply, answer WriteResponse; MoreChunkedMessages keeps the exchange open."""
        more = bool(request.more_chunked_messages)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("write request on %r (more chunks: %s): %s", exchange, more, _ib_summary(request.write_requests))
        if more and session.timed:
            # A timed write is one message (the SDK's WriteHandler refuses a chunked one as malformed).
            raise RequestError(Status.INVALID_ACTION, "chunked timed write")
        statuses = self._apply_writes(session, dataclasses.replace(ctx, timed=session.timed), request.write_requests)
        if more:
            self._pending[exchange] = session
        elif request.suppress_response:
            return []  # SuppressResponse is honoured on the last chunk only: every other chunk needs its answer
        payload = WriteResponse(write_responses=statuses).encode()
        return [Outgoing(exchange, ctx.session_id, Op.WRITE_RESPONSE, payload, more, not more)]

    # ------------------------------------------------------------------------------------------------ invoke

    def _on_invoke(
        self,
        exchange: Hashable,
        ctx: RequestContext,
        payload: bytes,
        now: float,
        window: _TimedWindow | None = None,
    ) -> list[Outgoing]:
        """Core spec 8.8.3: run each command, answer InvokeResponse (chunked if it must be)."""
        self._check_window(window, now)
        request = InvokeRequest.decode(payload)
        self._check_timed_flag(window, request.timed_request)
        if window is None:  # a timed invoke takes over its window's place
            self._admit(ctx, InteractionKind.INVOKE, now)
        validate_invoke_batch(request.invoke_requests, self._max_paths_per_invoke)
        invoke_ctx = dataclasses.replace(ctx, timed=window is not None)
        node = AttributeReader(self._provider, invoke_ctx)
        responses = [invoke_command(node, invoke_ctx, r) for r in request.invoke_requests]
        if request.suppress_response:
            return []
        payloads = invoke_response_payloads(responses, request.invoke_requests, self._max_payload)
        return [self._send_chunks(exchange, ctx.session_id, Op.INVOKE_RESPONSE, payloads, _ChunkKind.INVOKE)]

    def _on_timed_invoke(
        self, exchange: Hashable, ctx: RequestContext, window: _TimedWindow, payload: bytes, now: float
    ) -> list[Outgoing]:
        return self._on_invoke(exchange, ctx, payload, now, window)


def _ib_summary(ibs: Sequence[AttributeDataIB]) -> str:
    """What a write message carries, for the log: ``0x0000/0x001f/0x0000 replace x1, ... append x4``."""
    runs: list[list[Any]] = []
    for ib in ibs:
        p = ib.path  # not validated yet: any part may be missing
        where = "/".join("*" if v is None else f"{v:#06x}" for v in (p.endpoint, p.cluster, p.attribute))
        key = f"{where} {'append' if p.list_index is not None else 'replace'}"
        if runs and runs[-1][0] == key:
            runs[-1][1] += 1
        else:
            runs.append([key, 1])
    return ", ".join(f"{key} x{count}" for key, count in runs)


# The first message of an interaction, by opcode (Core spec 8.2: which actions start an interaction).
_INITIAL: Final[dict[Op, Callable[..., list[Outgoing]]]] = {
    Op.READ_REQUEST: InteractionServer._on_read,
    Op.SUBSCRIBE_REQUEST: InteractionServer._on_subscribe,
    Op.WRITE_REQUEST: InteractionServer._on_write,
    Op.INVOKE_REQUEST: InteractionServer._on_invoke,
    Op.TIMED_REQUEST: InteractionServer._on_timed,
}

# What may follow on an exchange that waits, by what it waits for.
_CONTINUATIONS: Final[dict[type, dict[Op, Callable[..., list[Outgoing]]]]] = {
    _Chunks: {Op.STATUS_RESPONSE: InteractionServer._continue_chunks},
    _TimedWindow: {
        Op.WRITE_REQUEST: InteractionServer._on_timed_write,
        Op.INVOKE_REQUEST: InteractionServer._on_timed_invoke,
    },
    WriteSession: {Op.WRITE_REQUEST: InteractionServer._continue_write},
}


def _held(s: Subscription) -> HeldSubscription:
    footprint = Footprint(1, len(s.attribute_paths), len(s.event_paths))
    return HeldSubscription(s, s.session_id, s.ctx.subject.fabric_index, footprint)
