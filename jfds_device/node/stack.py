"""The one Matter stack of a node: endpoint, sessions, handshakes, the IM server, the client side, peer connections.

``Stack`` composes what every message passes through, over a ``Link`` (``links.py``: the UDP socket, or an
in-process ``VirtualLink`` between stacks in tests) and a ``Clock`` (``jfds_device.clock``), and owns the one routing
policy of transport events (``on_event``):

1. ``ExchangeDispatcher.dispatch`` first: replies on exchanges our client side opened (CASE as initiator, IM
   interactions of ``InteractionClient``) and the reports of our subscriptions go to whoever waits on them.
2. A message on an unsecured session: Secure Channel goes to the handshakes (PASE / CASE responders, Core spec
   4.13, 4.14); anything else is dropped (Core spec 4.11.2: only session establishment runs unsecured).
3. A message on a secure session: Interaction Model goes to the IM server (``ImRouter``), with the session's subject
   (Core spec 6.6.2: a PASE session holds implicit Administer while commissioning); a stack that serves no data model
   refuses IM requests (INVALID_SUBSCRIPTION for an unknown report, else INVALID_ACTION); a StatusReport
   CloseSession ends the session (Core spec 4.10.1.3); other protocols are closed.
4. ExchangeClosed goes to the handshakes and the IM server; SessionClosed (observed by the dispatcher too) ends the
   session's subscriptions and is passed to ``on_session_closed``.

It also keeps one timer for the IM server's deadlines and for the deadlines the owner adds (``add_timer``: the
fail-safe and the commissioning window in ``Device``). ``Device`` (``app.py``) is the process shell around it;
tests build the same ``Stack`` (two of them on a ``VirtualLink``) instead of copying the routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from jfds_device.clock import Clock, LoopClock, TimerHandle
from jfds_device.codec.message import InteractionModelOpcode, ProtocolId, SecureChannelOpcode
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.errors import DecodeError, MatterError
from jfds_device.im.admission import Limits
from jfds_device.im.client import InteractionClient
from jfds_device.im.client_messages import build_status_response
from jfds_device.im.events import EventStore
from jfds_device.im.provider import AuthMode, DataModelProvider, RequestContext, Status, SubjectDescriptor
from jfds_device.im.server import DEFAULT_MAX_PAYLOAD, InteractionServer
from jfds_device.node.client_dispatch import ExchangeDispatcher
from jfds_device.node.handshakes import HandshakeManager, close_session
from jfds_device.node.im_routing import ImRouter
from jfds_device.node.links import Link
from jfds_device.node.peer_connections import BackoffPolicy, PeerConnections, PeerResolver
from jfds_device.securechannel.case_identity import InMemoryResumptionStore, OperationalIdentity, ResumptionStore
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import SecureChannelProtocolCode, StatusReport
from jfds_device.transport.exchange import Event, ExchangeClosed, ExchangeManager, MessageReceived, SessionClosed
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import (
    DEFAULT_INBOUND_SESSIONS,
    DEFAULT_OUTBOUND_SESSIONS,
    SecureSession,
    SessionAuthMode,
    SessionTable,
)
from jfds_device.transport.udp import UdpEndpoint

__all__ = ["SessionBudget", "Stack", "session_parameters"]

log = logging.getLogger(__name__)

DEFAULT_PASSCODE, DEFAULT_DISCRIMINATOR = 20202021, 3840

_Part = TypeVar("_Part")


@dataclass(frozen=True, slots=True)
class SessionBudget:
    """How the session table is sized and where its global counter persists (``transport/sessions.py``)."""

    max_inbound_sessions: int = DEFAULT_INBOUND_SESSIONS
    max_outbound_sessions: int = DEFAULT_OUTBOUND_SESSIONS
    global_counter_start: int | None = None
    on_counter_reserve: Callable[[int], None] | None = None
    rng: random.Random | None = None


def session_parameters(mrp: MrpParameters) -> SessionParameters:
    """Our MRP intervals as the session parameters a handshake announces (Core spec 4.12.8)."""
    return SessionParameters(idle_interval_ms=round(mrp.idle_interval * 1000),
                             active_interval_ms=round(mrp.active_interval * 1000),
                             active_threshold_ms=round(mrp.active_threshold * 1000))


class Stack:
    """See the module docstring. Build it inside the running loop, then ``await stack.open(link)``.

    ``data_model``: what the IM server serves (None: a client-only stack that refuses requests); ``im_limits``: its
    resource limits (``im/admission.py``; default: sized for the default fabric count). ``window``: the
    commissioning window PASE checks (default: one that never opens, so PASE is refused with BUSY). ``identities``
    and ``resumption``: our operational identities and CASE resumption records, for both CASE directions.
    ``resolver``: operational discovery for peer connections (settable later as ``peers.resolver``).
    ``on_pase_established`` takes over what a PASE session means for commissioning; ``on_session_closed`` hears of
    every secure session that ended (after its subscriptions ended)."""

    def __init__(self, *, data_model: DataModelProvider | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 im_limits: Limits | None = None, window: CommissioningWindow | None = None,
                 identities: Callable[[], Sequence[OperationalIdentity]] = list,
                 resumption: ResumptionStore | None = None, resolver: PeerResolver | None = None,
                 local_mrp: MrpParameters | None = None, budget: SessionBudget | None = None,
                 clock: Clock | None = None, peer_backoff: BackoffPolicy | None = None,
                 handshake_timeout: float | None = None, response_timeout: float | None = None,
                 on_pase_established: Callable[[SecureSession], None] | None = None,
                 on_session_closed: Callable[[SecureSession], None] | None = None,
                 events: EventStore | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.clock: Clock = clock or LoopClock(self._loop)
        self.window = window or CommissioningWindow(DEFAULT_PASSCODE, DEFAULT_DISCRIMINATOR)
        self.local_mrp = local_mrp or MrpParameters()
        self.session_params = session_parameters(self.local_mrp)
        budget = budget or SessionBudget()
        self.sessions = SessionTable(rng=budget.rng, max_inbound_sessions=budget.max_inbound_sessions,
                                     max_outbound_sessions=budget.max_outbound_sessions, in_use=self._session_in_use,
                                     global_counter_start=budget.global_counter_start,
                                     on_counter_reserve=budget.on_counter_reserve)
        self.manager = ExchangeManager(self.sessions, local_mrp=self.local_mrp)
        self.im = None if data_model is None else InteractionServer(data_model, max_payload=max_payload,
                                                                    wakeup=self._schedule_rearm, limits=im_limits,
                                                                    events=events)
        self.dispatcher = ExchangeDispatcher()
        self._identities, self._resolver = identities, resolver
        self.resumption: ResumptionStore = resumption if resumption is not None else InMemoryResumptionStore()
        self._peer_backoff, self._handshake_timeout = peer_backoff, handshake_timeout
        self._response_timeout = response_timeout
        self._on_pase_established, self._on_session_closed = on_pase_established, on_session_closed
        self._timers: list[tuple[Callable[[], float | None], Callable[[float], None]]] = []
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._endpoint: UdpEndpoint | None = None
        self._handshakes: HandshakeManager | None = None
        self._router: ImRouter | None = None
        self._peers: PeerConnections | None = None
        self._client: InteractionClient | None = None

    # --- building --------------------------------------------------------------------------------------------

    async def open(self, link: Link) -> Stack:
        """Open the endpoint over ``link`` (``UdpBindError`` if it cannot) and build what runs on it."""
        endpoint = await link(self.manager, self.on_event)
        # Nothing awaits from here on: no event is routed before every part exists.
        self._endpoint = endpoint
        self._handshakes = HandshakeManager(endpoint, self.sessions, self.window, self.session_params,
                                            identities=self._identities,
                                            # a client-only stack answers no CASE either (it serves nothing)
                                            resumption=self.resumption if self.im is not None else None,
                                            on_pase_established=self._on_pase_established)
        self._router = None if self.im is None else ImRouter(endpoint, self.sessions, self.im)
        self._peers = PeerConnections(endpoint, self.dispatcher, self._identities, self.resumption,
                                      self._resolver, backoff=self._peer_backoff,
                                      handshake_timeout=self._handshake_timeout)
        self._client = InteractionClient(endpoint, self.dispatcher, response_timeout=self._response_timeout)
        self.rearm()
        return self

    @property
    def endpoint(self) -> UdpEndpoint:
        return _opened(self._endpoint)

    @property
    def handshakes(self) -> HandshakeManager:
        return _opened(self._handshakes)

    @property
    def peers(self) -> PeerConnections:
        return _opened(self._peers)

    @property
    def client(self) -> InteractionClient:
        return _opened(self._client)

    async def close(self) -> None:
        """Stop the timer, close the peer sessions (CloseSession) and the client, then the endpoint."""
        self.cancel_timer()
        if self._peers is not None:
            await self._peers.close()
        if self._client is not None:
            await self._client.close()
        if self._endpoint is not None:
            self._endpoint.close()

    # --- sessions --------------------------------------------------------------------------------------------

    def close_session(self, session: SecureSession) -> None:
        """Tell the peer (StatusReport CloseSession, Core spec 4.10.1.3) and drop the session."""
        if self._endpoint is not None:
            close_session(self._endpoint, session)

    def close_fabric_sessions(self, fabric_index: int) -> None:
        for session in self.sessions.sessions_for_fabric(fabric_index):
            self.close_session(session)

    def close_pase_sessions(self) -> None:
        """Every PASE session ends, deferred: the request that ended them still gets its response first."""
        for session in self.sessions.secure_sessions():
            if session.auth_mode is SessionAuthMode.PASE:
                self._loop.call_soon(self.close_session, session)

    def _session_in_use(self, session: SecureSession) -> bool:
        """A subscription lives on ``session``: a peer's to us, or ours to a peer. Its eviction would end it, so the
        session table evicts it last of its rank (transport/eviction.py)."""
        if self.im is not None and any(s.session_id == session.local_session_id for s in self.im.subscriptions):
            return True
        return self.dispatcher.has_report_routes(session)

    # --- routing (the one policy; see the module docstring) -------------------------------------------------

    def on_event(self, event: Event) -> None:
        if self._endpoint is None:  # the link delivered before open() finished building: nothing can serve it
            log.debug("dropping a %s event: the stack is still opening", type(event).__name__)
            return
        try:
            if self.dispatcher.dispatch(event):  # a reply on an exchange our client opened
                return
            if isinstance(event, MessageReceived):
                self._on_message(event)
            elif isinstance(event, ExchangeClosed):
                self.handshakes.on_exchange_closed(event.exchange)
                if self._router is not None:
                    self._router.on_exchange_closed(event)
            elif isinstance(event, SessionClosed) and isinstance(event.session, SecureSession):
                if self.im is not None:
                    self.im.on_session_closed(event.session.local_session_id)
                if self._on_session_closed is not None:
                    self._on_session_closed(event.session)
        finally:
            self.rearm()

    def _on_message(self, event: MessageReceived) -> None:
        session = event.session
        if not isinstance(session, SecureSession):
            if event.protocol_id == ProtocolId.SECURE_CHANNEL:
                self.handshakes.on_message(event)
            else:
                log.debug("dropping protocol 0x%04x on an unsecured session", event.protocol_id)
                self.endpoint.close_exchange(event.exchange)
            return
        if event.protocol_id == ProtocolId.INTERACTION_MODEL:
            if self._router is not None:
                self._router.on_message(event, self._context(session))
            else:
                self._refuse_im(event)
        elif event.protocol_id == ProtocolId.SECURE_CHANNEL:
            self._on_secure_channel(event, session)
        else:
            log.debug("unsupported protocol 0x%04x on session %d", event.protocol_id, session.local_session_id)
            self.endpoint.close_exchange(event.exchange)

    def _on_secure_channel(self, event: MessageReceived, session: SecureSession) -> None:
        if event.opcode == SecureChannelOpcode.STATUS_REPORT:
            with contextlib.suppress(MatterError):
                report = StatusReport.decode(event.payload)
                if report.protocol_code == SecureChannelProtocolCode.CLOSE_SESSION:
                    log.info("peer closed session %d", session.local_session_id)
                    # Closing first, then the exchange: closing its last exchange removes the session and reports
                    # SessionClosed at once (the other order leaves it for the next datagram to report).
                    self.sessions.mark_for_close(session)
        self.endpoint.close_exchange(event.exchange)

    def _refuse_im(self, event: MessageReceived) -> None:
        """A client-only stack serves nothing: a report of no subscription of ours is INVALID_SUBSCRIPTION (Core
        spec 8.5.4 / 8.9.1), any other request INVALID_ACTION."""
        if event.new_exchange and event.opcode != InteractionModelOpcode.STATUS_RESPONSE:
            unknown_report = event.opcode == InteractionModelOpcode.REPORT_DATA
            status = Status.INVALID_SUBSCRIPTION if unknown_report else Status.INVALID_ACTION
            with contextlib.suppress(MatterError):
                self.endpoint.send(event.exchange, ProtocolId.INTERACTION_MODEL,
                                   InteractionModelOpcode.STATUS_RESPONSE, build_status_response(status))
        with contextlib.suppress(MatterError, DecodeError):
            self.endpoint.close_exchange(event.exchange)

    def _context(self, session: SecureSession) -> RequestContext:
        return RequestContext(
            subject=_subject(session),
            session_id=session.local_session_id,
            attestation_challenge=session.attestation_challenge,
            bind_fabric=_binder(session) if session.auth_mode is SessionAuthMode.PASE else None,
        )

    # --- timers ----------------------------------------------------------------------------------------------

    def add_timer(self, next_deadline: Callable[[], float | None], on_timer: Callable[[float], None]) -> None:
        """Also fire ``on_timer(now)`` at ``next_deadline()`` (clock time; re-read after every event and timer).
        Deadlines run in the order they were added, the IM server's last."""
        self._timers.append((next_deadline, on_timer))
        self.rearm()

    def cancel_timer(self) -> None:
        """No deadline fires until the next ``rearm`` (the node stops its timers first when it shuts down)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    async def flush_event_reports(self, timeout: float) -> None:
        """Send every subscriber the events it has not had yet, MinInterval or not, and wait (up to ``timeout``
        seconds) until every subscription report in flight is acknowledged or given up: the stop path's ShutDown
        (the CHIP SDK's BasicInformation shutdown runs ScheduleUrgentEventDeliverySync before the stack stops)."""
        if self.im is None or self._router is None:
            return
        self._router.send(self.im.flush_events(self.clock.now()))
        deadline = self.clock.now() + timeout
        while self.im.reports_in_flight() and self.clock.now() < deadline:
            await asyncio.sleep(0.02)

    def _schedule_rearm(self) -> None:
        self._loop.call_soon(self.rearm)

    def rearm(self) -> None:
        """Arm the one timer at the earliest deadline (call after anything that may move one)."""
        candidates = [deadline() for deadline, _ in self._timers]
        if self.im is not None:
            candidates.append(self.im.next_deadline())
        deadlines = [d for d in candidates if d is not None]
        when = min(deadlines) if deadlines else None
        if when == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None
        if when is not None:
            self._timer_at = when
            self._timer = self.clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        # A timer may fire up to one clock resolution early: never hand a time before its deadline.
        now = max(self.clock.now(), self._timer_at or 0.0)
        self._timer = self._timer_at = None
        try:
            for _, on_timer in self._timers:
                on_timer(now)
            if self._router is not None:
                self._router.on_timer(now)
        except Exception:  # a timer bug must not stop the node; it is logged with its traceback
            log.exception("timer handling failed")
        finally:
            self.rearm()


def _opened(part: _Part | None) -> _Part:
    if part is None:
        raise MatterError("the stack is not open")
    return part


def _subject(session: SecureSession) -> SubjectDescriptor:
    if session.auth_mode is SessionAuthMode.PASE:
        # A PASE session holds implicit Administer while the node is being commissioned (Core spec 6.6.2.9).
        return SubjectDescriptor(AuthMode.PASE, 0, session.fabric_index, (), is_commissioning=True)
    return SubjectDescriptor(AuthMode.CASE, session.peer_node_id, session.fabric_index, tuple(session.cats))


def _binder(session: SecureSession) -> Callable[[int], None]:
    def bind(fabric_index: int) -> None:
        session.fabric_index = fabric_index  # AddNOC over PASE: the session now acts for the new fabric

    return bind

