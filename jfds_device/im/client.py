"""The Interaction Model client (Core spec 8, 10.7): the asyncio driver of the sans-IO interactions.

``InteractionClient`` runs one interaction (``im/interactions.py``) per exchange over a ``UdpEndpoint``, with the
messages of ``im/client_messages.py``. An ``ExchangeRouter`` (``node.peers.ExchangeDispatcher``) hands it the
events of its exchanges and the peer-initiated report exchanges of its subscriptions, so it never depends on the
node's server-side routing.

Two ways to name what to act on: by ids and TLV values (``read``, ``write``, ``invoke``: wildcards, batches,
other people's values as they are), or typed from the cluster schemas (``send_command`` with a request struct,
``read_value`` / ``write_value`` with an ``AttributeRef``): "each cluster and message is described once", and
client and server share the description.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from jfds_device.codec.message import ProtocolId
from jfds_device.codec.model import AttributeRef
from jfds_device.codec.schema import Struct
from jfds_device.errors import InteractionError, MatterError, RemoteProtocolError
from jfds_device.im import messages as m
from jfds_device.im.client_messages import (
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_MAX_REPORT_BYTES,
    AttributeStatus,
    AttributeWrite,
    CommandRequest,
    InvokeResult,
    PathLike,
    ReadResult,
    SubscribeResult,
    build_invoke_request,
    build_read_request,
    build_subscribe_request,
    build_write_chunks,
    command_request,
    command_response,
    summarize_write,
)
from jfds_device.im.interactions import (
    Interaction,
    InvokeInteraction,
    ReadInteraction,
    Send,
    SubscribeInteraction,
    WriteInteraction,
)
from jfds_device.transport.exchange import ExchangeClosed, ExchangeRef, MessageReceived, SessionClosed
from jfds_device.transport.sessions import Session
from jfds_device.transport.udp import UdpEndpoint

__all__ = ["ExchangeEvent", "ExchangeRouter", "InteractionClient", "ReportHandler", "Subscription"]

log = logging.getLogger(__name__)

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

    async def send_command(self, session: Session, endpoint: int, request: Struct, *,
                           timed_timeout_ms: int | None = None) -> Struct | None:
        """Invoke the command ``request`` is the schema struct of (e.g. ``groups.AddGroup(...)``): its typed
        response struct, or None for a command answered with SUCCESS; IMStatusError if the peer refused it."""
        call, command = command_request(endpoint, request)
        [result] = await self.invoke_batch(session, [call], timed_timeout_ms=timed_timeout_ms)
        return command_response(command, result)

    async def read_value(self, session: Session, endpoint: int, attribute: AttributeRef, *,
                         fabric_filtered: bool = True) -> Any:
        """One attribute decoded by its schema (e.g. ``access_control.CLUSTER.attribute(ACL)``)."""
        result = await self.read(session, [(endpoint, attribute.cluster_id, attribute.attribute_id)],
                                 fabric_filtered=fabric_filtered)
        return result.typed(endpoint, attribute)

    async def write_value(self, session: Session, endpoint: int, attribute: AttributeRef, value: Any, *,
                          data_version: int | None = None, timed_timeout_ms: int | None = None) -> None:
        """Write a schema value (a Struct, a list of them, a scalar) to one attribute, conditioned on
        ``data_version`` when given (Core spec 8.7.3.2); IMStatusError unless the peer answered SUCCESS."""
        await self.write_attribute(session, endpoint, attribute.cluster_id, attribute.attribute_id, value,
                                   data_version=data_version, timed_timeout_ms=timed_timeout_ms)

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
