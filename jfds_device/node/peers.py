"""Reaching peer nodes: event routing for the exchanges we open, and CASE sessions to peers on our fabrics.

* ``ExchangeDispatcher`` routes the transport events of exchanges our client side opened (CASE handshakes, IM
  interactions) to whoever waits on them, and the peer-initiated report exchanges of our subscriptions to their
  handlers. The node's event handler calls ``dispatch(event)`` first and stops when it returns True; what is
  left (everything the node serves) goes on as before. SessionClosed is observed, never consumed.
* ``PeerConnections`` opens CASE sessions (Core spec 4.14.2) as initiator: it resolves the peer's operational
  DNS-SD record ``<compressed fabric id>-<node id>`` (Core spec 4.3.2), runs ``CaseInitiator`` over an unsecured
  initiator session on the shared ``UdpEndpoint``, installs the secure session and keeps it for later requests.
  Resumption is offered whenever the ResumptionStore has a record for the peer. One attempt per peer runs at a
  time; failures back off exponentially with jitter (``BackoffPolicy``/``Backoff``, sans-IO); reachability is an
  observable ``PeerState`` per peer; ``watch(peer)`` keeps a peer connected by reconnecting in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from jfds_device.backoff import Backoff, BackoffPolicy
from jfds_device.codec.message import InteractionModelOpcode, ProtocolId, SecureChannelOpcode
from jfds_device.crypto.case_keys import compressed_fabric_id
from jfds_device.errors import DecodeError, LocalProtocolError, MatterError
from jfds_device.im.client import ExchangeEvent, ReportHandler
from jfds_device.im.client_messages import build_status_response
from jfds_device.im.messages import ReportData
from jfds_device.im.provider import Status
from jfds_device.securechannel.case import CaseInitiator, CaseResult
from jfds_device.securechannel.case_identity import OperationalIdentity, ResumptionStore
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import GeneralCode, SecureChannelProtocolCode, StatusReport
from jfds_device.transport.exchange import Event, ExchangeClosed, ExchangeRef, MessageReceived, SessionClosed
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import Address, SecureSession, Session, SessionAuthMode
from jfds_device.transport.udp import UdpEndpoint

__all__ = [
    "Backoff", "BackoffPolicy", "ClientOnlyEvents", "ExchangeDispatcher", "PeerConnections", "PeerId",
    "PeerResolver", "PeerState", "PeerStatus", "PeerUnreachableError", "socket_address",
]  # fmt: skip

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- event routing


class ExchangeDispatcher:
    """Routes transport events to the client side. Synchronous and loop-bound: handlers must only schedule."""

    def __init__(self) -> None:
        self._watched: dict[ExchangeRef, Callable[[ExchangeEvent], None]] = {}
        self._closed: set[ExchangeRef] = set()  # watched exchanges whose ExchangeClosed was delivered
        self._released: set[ExchangeRef] = set()  # unwatched but still open: swallow their ExchangeClosed
        self._reports: dict[tuple[Session, int], ReportHandler] = {}
        self._session_listeners: list[Callable[[Session], None]] = []

    def watch(self, exchange: ExchangeRef, handler: Callable[[ExchangeEvent], None]) -> None:
        """Deliver ``exchange``'s MessageReceived and ExchangeClosed events to ``handler``."""
        self._watched[exchange] = handler
        self._released.discard(exchange)

    def unwatch(self, exchange: ExchangeRef) -> None:
        """Stop delivering; the exchange's ExchangeClosed (still to come unless already seen) is swallowed."""
        if self._watched.pop(exchange, None) is not None and exchange not in self._closed:
            self._released.add(exchange)
        self._closed.discard(exchange)

    def add_report_handler(self, session: Session, subscription_id: int, handler: ReportHandler) -> Callable[[], None]:
        """Hand new peer-initiated exchanges whose ReportData names ``subscription_id`` on ``session`` to
        ``handler`` (Core spec 8.5.4: reports of a subscription come on exchanges the publisher opens), and
        the session's SessionClosed. Returns the (idempotent) function that removes the route."""
        key = (session, subscription_id)
        self._reports[key] = handler

        def remove() -> None:
            if self._reports.get(key) is handler:
                del self._reports[key]

        return remove

    def has_report_routes(self, session: Session) -> bool:
        """Whether one of our subscriptions lives on ``session`` (the session table keeps such sessions longest)."""
        return any(key[0] is session for key in self._reports)

    def add_session_listener(self, listener: Callable[[Session], None]) -> Callable[[], None]:
        """Call ``listener(session)`` for every SessionClosed; returns the function that removes it."""
        self._session_listeners.append(listener)
        return lambda: self._session_listeners.remove(listener) if listener in self._session_listeners else None

    def dispatch(self, event: Event) -> bool:
        """Route one event; True if it belonged to the client side (the caller must then drop it)."""
        if isinstance(event, SessionClosed):
            for key in [k for k in self._reports if k[0] is event.session]:
                _call(self._reports.pop(key), event)
            for listener in list(self._session_listeners):
                _call(listener, event.session)
            return False
        handler = self._watched.get(event.exchange)
        if handler is not None:
            if isinstance(event, ExchangeClosed):
                self._closed.add(event.exchange)
            _call(handler, event)
            return True
        if isinstance(event, ExchangeClosed):
            if event.exchange in self._released:
                self._released.discard(event.exchange)
                return True
            return False
        if (event.new_exchange and self._reports and event.protocol_id == ProtocolId.INTERACTION_MODEL
                and event.opcode == InteractionModelOpcode.REPORT_DATA):
            report_handler = self._reports.get((event.session, _subscription_id(event.payload)))
            if report_handler is not None:
                _call(report_handler, event)
                return True
        return False


def _subscription_id(payload: bytes) -> int | None:
    try:
        subscription_id: int | None = ReportData.decode(payload).subscription_id
    except DecodeError:
        return None
    return subscription_id


def _call(handler: Callable[[object], object], arg: object) -> None:
    try:
        handler(arg)
    except Exception:  # one failing handler must not stop the node's event loop
        log.exception("exchange event handler %r failed", handler)


def _close_session(endpoint: UdpEndpoint, session: SecureSession) -> None:
    """StatusReport(CloseSession) to the peer (Core spec 4.10.1.3), then drop the session once it is idle."""
    report = StatusReport.secure_channel(GeneralCode.SUCCESS, SecureChannelProtocolCode.CLOSE_SESSION)
    if session in endpoint.manager.sessions and not session.closing:
        with contextlib.suppress(MatterError):
            exchange = endpoint.new_exchange(session)
            endpoint.send(exchange, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.STATUS_REPORT, report.encode(),
                          reliable=False)
            endpoint.close_exchange(exchange)
    endpoint.manager.sessions.mark_for_close(session)


class ClientOnlyEvents:
    """``on_event`` for a process that serves nothing (tools, tests): the dispatcher first; a peer's CloseSession
    closes the session; any IM request is refused (INVALID_SUBSCRIPTION for an unknown report, else
    INVALID_ACTION); everything else is closed. Set ``endpoint`` once ``UdpEndpoint.open`` returned."""

    def __init__(self, dispatcher: ExchangeDispatcher) -> None:
        self.dispatcher = dispatcher
        self.endpoint: UdpEndpoint | None = None

    def __call__(self, event: Event) -> None:
        endpoint = self.endpoint
        if self.dispatcher.dispatch(event) or not isinstance(event, MessageReceived) or endpoint is None:
            return
        session = event.session
        if isinstance(session, SecureSession) and event.protocol_id == ProtocolId.SECURE_CHANNEL:
            with contextlib.suppress(DecodeError):
                if StatusReport.decode(event.payload).protocol_code == SecureChannelProtocolCode.CLOSE_SESSION:
                    endpoint.manager.sessions.mark_for_close(session)
        elif (isinstance(session, SecureSession) and event.protocol_id == ProtocolId.INTERACTION_MODEL
              and event.new_exchange and event.opcode != InteractionModelOpcode.STATUS_RESPONSE):
            unknown_report = event.opcode == InteractionModelOpcode.REPORT_DATA
            status = Status.INVALID_SUBSCRIPTION if unknown_report else Status.INVALID_ACTION
            with contextlib.suppress(MatterError):
                endpoint.send(event.exchange, ProtocolId.INTERACTION_MODEL, InteractionModelOpcode.STATUS_RESPONSE,
                              build_status_response(status))
        with contextlib.suppress(MatterError):
            endpoint.close_exchange(event.exchange)


# ---------------------------------------------------------------------------------------------- backoff (sans-IO)




# ---------------------------------------------------------------------------------------------- peers


@dataclass(frozen=True, slots=True)
class PeerId:
    """A peer as CASE names it: our fabric (by local fabric index) and its operational node id."""

    fabric_index: int
    node_id: int

    def __str__(self) -> str:
        return f"{self.fabric_index}:{self.node_id:016X}"


class PeerState(enum.Enum):
    UNKNOWN = "unknown"  # never tried, or the session ended without a failure
    CONNECTING = "connecting"
    # A CASE session is up, or was until our session table evicted it to make room for another peer's: the peer
    # did not go away, so reconnecting (on the next ``connect``) is no reachability change and tells no listener.
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"  # the last attempt failed; the next waits for the backoff


@dataclass(frozen=True, slots=True)
class PeerStatus:
    state: PeerState
    session: SecureSession | None
    address: Address | None  # where the last session was established
    resumed: bool  # whether that session came from CASE resumption
    failures: int
    retry_at: float  # loop time before which ``connect`` fails fast (-inf: any time)
    last_error: MatterError | None


class PeerUnreachableError(MatterError):
    """No CASE session to ``peer``: the attempt failed (``__cause__``), or the backoff has not elapsed."""

    def __init__(self, peer: PeerId, message: str, retry_in: float = 0.0) -> None:
        super().__init__(f"peer {peer} unreachable: {message}")
        self.peer, self.retry_in = peer, retry_in


class PeerResolver(Protocol):
    """Operational discovery; ``node.dnssd.Resolver`` fits (``(address, port)`` pairs, best first)."""

    async def resolve_operational(self, compressed_fabric_id: bytes | int, node_id: int,
                                  timeout: float = 3.0) -> list[tuple[str, int]]: ...


def socket_address(host: str, port: int) -> Address:
    """A resolved ``(address, port)`` as a socket address; ``fe80::1%3`` / ``fe80::1%eth0`` keep their scope."""
    address, _, scope = host.partition("%")
    if ":" not in address:
        return (address, port)  # IPv4: the UDP edge maps it to ::ffff:a.b.c.d
    scope_id = (int(scope) if scope.isdigit() else socket.if_nametoindex(scope)) if scope else 0
    return (address, port, 0, scope_id)


@dataclass(slots=True)
class _Peer:
    backoff: Backoff
    state: PeerState = PeerState.UNKNOWN
    session: SecureSession | None = None
    address: Address | None = None
    resumed: bool = False
    last_error: MatterError | None = None
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    evicted: bool = False  # the last session went to make room (outbound budget), not because it failed


class PeerConnections:
    """CASE sessions to peers, established on demand and reused (see the module docstring).

    ``identities()`` gives our operational identities (``FabricTable.identities``); ``resumption`` keeps the
    CASE resumption records (shared with the responder side is fine: one record per peer either way).
    ``handshake_timeout`` bounds the wait for each Sigma2/StatusReport (default: the exchange layer's MRP-derived
    response timeout). Callers that see an interaction time out on a session call ``session_failed(peer)``.
    """

    def __init__(self, endpoint: UdpEndpoint, dispatcher: ExchangeDispatcher,
                 identities: Callable[[], Sequence[OperationalIdentity]], resumption: ResumptionStore,
                 resolver: PeerResolver | None = None, *, backoff: BackoffPolicy | None = None,
                 resolve_timeout: float = 3.0, handshake_timeout: float | None = None,
                 rng: random.Random | None = None) -> None:
        self.endpoint, self.dispatcher = endpoint, dispatcher
        self._identities, self._resumption, self._resolver = identities, resumption, resolver
        self._policy = backoff or BackoffPolicy()
        self._resolve_timeout, self._handshake_timeout = resolve_timeout, handshake_timeout
        self._rng = rng or random.Random()
        mrp: MrpParameters = endpoint.manager.local_mrp
        self._session_params = SessionParameters(  # our MRP intervals, for the peer's retransmissions (4.12.8)
            idle_interval_ms=round(mrp.idle_interval * 1000), active_interval_ms=round(mrp.active_interval * 1000),
            active_threshold_ms=round(mrp.active_threshold * 1000))
        self._peers: dict[PeerId, _Peer] = {}
        self._attempts: dict[PeerId, asyncio.Task[SecureSession]] = {}
        self._watchers: dict[PeerId, asyncio.Task[None]] = {}
        self._listeners: list[Callable[[PeerId, PeerState], None]] = []
        self._remove_listener = dispatcher.add_session_listener(self._session_closed)

    # --- observing ---------------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[PeerId, PeerState], None]) -> Callable[[], None]:
        """Call ``listener(peer, state)`` on every reachability change; returns the function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def state(self, peer: PeerId) -> PeerState:
        entry = self._peers.get(peer)
        return PeerState.UNKNOWN if entry is None else entry.state

    def status(self, peer: PeerId) -> PeerStatus:
        e = self._entry(peer)
        return PeerStatus(e.state, self.session(peer), e.address, e.resumed, e.backoff.failures, e.backoff.retry_at,
                          e.last_error)

    def session(self, peer: PeerId) -> SecureSession | None:
        """The live session to ``peer``, if any."""
        entry = self._peers.get(peer)
        session = entry.session if entry is not None else None
        if session is None or session.closing or session not in self.endpoint.manager.sessions:
            return None
        return session

    # --- connecting --------------------------------------------------------------------------------------

    async def connect(self, peer: PeerId, *, ignore_backoff: bool = False) -> SecureSession:
        """The session to ``peer``: the live one, the attempt in progress, or a new attempt. Raises
        ``PeerUnreachableError`` when the attempt fails, or at once while the backoff runs (unless
        ``ignore_backoff``)."""
        session = self.session(peer)
        if session is not None:
            return session
        task = self._attempts.get(peer)
        if task is None:
            entry = self._entry(peer)
            wait = entry.backoff.wait(self.endpoint.now())
            if wait > 0 and not ignore_backoff:
                raise PeerUnreachableError(peer, f"backing off after {entry.backoff.failures} failure(s)", wait)
            task = asyncio.get_running_loop().create_task(self._attempt(peer))
            self._attempts[peer] = task
            task.add_done_callback(lambda done: self._attempt_done(peer, done))
        return await asyncio.shield(task)

    def _attempt_done(self, peer: PeerId, task: asyncio.Task[SecureSession]) -> None:
        if self._attempts.get(peer) is task:
            del self._attempts[peer]
        if not task.cancelled():
            task.exception()  # retrieved: callers that gave up waiting must not leave it "never retrieved"

    def watch(self, peer: PeerId) -> None:
        """Keep a session to ``peer``: reconnect in the background whenever there is none, honouring the backoff.
        A session the outbound budget evicted is set up again by the next ``connect`` only: watchers of more peers
        than the budget would otherwise evict one another in a loop."""
        if peer not in self._watchers:
            self._watchers[peer] = asyncio.get_running_loop().create_task(self._keep(peer))

    def unwatch(self, peer: PeerId) -> None:
        task = self._watchers.pop(peer, None)
        if task is not None:
            task.cancel()

    def session_failed(self, peer: PeerId) -> None:
        """Drop ``peer``'s session (e.g. an interaction timed out on it): the next ``connect`` runs CASE again."""
        session = self.session(peer)
        if session is not None:
            self.endpoint.manager.sessions.remove(session)
            self.endpoint.transmit()  # lets the manager report SessionClosed
            self._session_closed(session)

    async def close(self) -> None:
        """Stop watching and connecting, and close every session with CloseSession."""
        for task in [*self._watchers.values(), *self._attempts.values()]:
            task.cancel()
        await asyncio.gather(*self._watchers.values(), *self._attempts.values(), return_exceptions=True)
        self._watchers.clear()
        for peer, entry in self._peers.items():
            if (session := self.session(peer)) is not None:
                _close_session(self.endpoint, session)
            entry.session = None
            self._set_state(peer, PeerState.UNKNOWN)
        self._remove_listener()

    # --- internals ---------------------------------------------------------------------------------------

    def _entry(self, peer: PeerId) -> _Peer:
        entry = self._peers.get(peer)
        if entry is None:
            entry = self._peers[peer] = _Peer(Backoff(self._policy))
        return entry

    def _set_state(self, peer: PeerId, state: PeerState) -> None:
        entry = self._entry(peer)
        if entry.state is not state:
            entry.state = state
            log.info("peer %s is %s", peer, state.value)
            for listener in list(self._listeners):
                try:
                    listener(peer, state)
                except Exception:
                    log.exception("peer state listener %r failed", listener)

    def _session_closed(self, session: Session) -> None:
        evicted = isinstance(session, SecureSession) and session.evicted
        for peer, entry in self._peers.items():
            if entry.session is session:
                entry.session, entry.evicted = None, evicted
                entry.lost.set()
                if entry.state is PeerState.REACHABLE and not evicted:
                    self._set_state(peer, PeerState.UNKNOWN)

    async def _keep(self, peer: PeerId) -> None:
        entry = self._entry(peer)
        while True:
            if self.session(peer) is None and not entry.evicted:
                await asyncio.sleep(entry.backoff.wait(self.endpoint.now()))
                with contextlib.suppress(PeerUnreachableError):
                    await self.connect(peer)
                continue
            entry.lost.clear()
            await entry.lost.wait()

    async def _attempt(self, peer: PeerId) -> SecureSession:
        entry = self._entry(peer)
        if entry.state is not PeerState.REACHABLE:  # REACHABLE here: its session was evicted, not lost (PeerState)
            self._set_state(peer, PeerState.CONNECTING)
        try:
            identity = next((i for i in self._identities() if i.fabric_index == peer.fabric_index), None)
            if identity is None:
                raise LocalProtocolError(f"no fabric with index {peer.fabric_index}")
            errors: list[Exception] = []
            for address in await self._addresses(peer, identity):
                try:
                    session, result = await self._case(peer, identity, address)
                except (MatterError, OSError) as exc:
                    log.info("CASE to %s at %s failed: %s", peer, address, exc)
                    errors.append(exc)
                    continue
                entry.backoff.succeeded()
                entry.session, entry.address, entry.resumed, entry.last_error = session, address, result.resumed, None
                entry.evicted = False
                self._set_state(peer, PeerState.REACHABLE)
                return session
            raise errors[-1] if errors else PeerUnreachableError(peer, "no operational address")
        except asyncio.CancelledError:
            self._set_state(peer, PeerState.UNKNOWN)
            raise
        except Exception as exc:  # resolver, socket or protocol: all make the peer unreachable for now
            delay = entry.backoff.failed(self.endpoint.now(), self._rng.random())
            entry.last_error = exc if isinstance(exc, MatterError) else PeerUnreachableError(peer, str(exc))
            self._set_state(peer, PeerState.UNREACHABLE)
            if isinstance(exc, PeerUnreachableError):
                exc.retry_in = delay
                raise
            raise PeerUnreachableError(peer, str(exc), delay) from exc

    async def _addresses(self, peer: PeerId, identity: OperationalIdentity) -> list[Address]:
        """Resolved addresses, best first, then the one the last session used (if the record is gone)."""
        found: list[Address] = []
        if self._resolver is not None:
            cfid = compressed_fabric_id(identity.root_public_key, identity.fabric_id)
            resolved = await self._resolver.resolve_operational(cfid, peer.node_id, self._resolve_timeout)
            found = [socket_address(host, port) for host, port in resolved]
        last = self._entry(peer).address
        if last is not None and last not in found:
            found.append(last)
        return found

    async def _case(self, peer: PeerId, identity: OperationalIdentity,
                    address: Address) -> tuple[SecureSession, CaseResult]:
        """One CASE handshake with ``address`` over a fresh unsecured initiator session (Core spec 4.14.2)."""
        endpoint = self.endpoint
        sessions = endpoint.manager.sessions
        record = self._resumption.get_by_peer(peer.fabric_index, peer.node_id)
        local_session_id = sessions.allocate_session_id()
        unsecured = sessions.new_unsecured_initiator(address, endpoint.now())
        initiator = CaseInitiator(identity, peer.node_id, local_session_id=local_session_id,
                                  session_params=self._session_params, resumption_record=record,
                                  now=datetime.now(UTC))  # certificate validity is wall-clock time
        exchange = endpoint.new_exchange(unsecured)
        inbox: asyncio.Queue[ExchangeEvent] = asyncio.Queue()
        self.dispatcher.watch(exchange, inbox.put_nowait)
        installed = False
        try:
            self._send_handshake(exchange, initiator.start(), last=False)
            while not (initiator.done or initiator.failed):
                event = await inbox.get()
                if isinstance(event, ExchangeClosed):
                    initiator.abort()
                    raise PeerUnreachableError(peer, f"CASE with {address[0]}: {event.reason}")
                if event.protocol_id != ProtocolId.SECURE_CHANNEL:
                    continue
                reply = initiator.receive(event.opcode, event.payload)
                if reply is not None:
                    self._send_handshake(exchange, reply, last=initiator.done or initiator.failed)
            result = initiator.result
            if result is None:
                if record is not None:  # never offer a record again that took part in a failed handshake
                    self._resumption.remove(record.resumption_id)
                raise PeerUnreachableError(peer, f"CASE with {address[0]} failed: {initiator.error}")
            session = self._install(result, address)
            installed = True
            return session, result
        finally:
            if not installed:
                sessions.release_session_id(local_session_id)
            self.dispatcher.unwatch(exchange)
            if endpoint.manager.is_open(exchange):
                endpoint.close_exchange(exchange)  # acks the peer's last message; ours stays until acked
            sessions.mark_for_close(unsecured)  # leaves the table with its last exchange

    def _send_handshake(self, exchange: ExchangeRef, message: tuple[int, bytes], *, last: bool) -> None:
        opcode, payload = message
        self.endpoint.send(exchange, ProtocolId.SECURE_CHANNEL, opcode, payload, expect_response=not last,
                           response_timeout=None if last else self._handshake_timeout)

    def _install(self, result: CaseResult, address: Address) -> SecureSession:
        encrypt_key, decrypt_key = result.keys.for_role(result.is_initiator)
        params = result.peer_session_params
        session = self.endpoint.manager.sessions.add_secure(
            local_session_id=result.local_session_id, peer_session_id=result.peer_session_id,
            encrypt_key=encrypt_key, decrypt_key=decrypt_key, auth_mode=SessionAuthMode.CASE, peer_addr=address,
            now=self.endpoint.now(), local_node_id=result.local_node_id, peer_node_id=result.peer_node_id,
            fabric_index=result.fabric_index, cats=tuple(result.peer_cats), is_initiator=True,
            peer_mrp=MrpParameters.from_ms(*(params.clamped() if params else (None, None, None))),
            attestation_challenge=result.keys.attestation_challenge)
        self._resumption.put(result.resumption_record)
        log.info("CASE session %d to %016X established (%s)", session.local_session_id, result.peer_node_id,
                 "resumed" if result.resumed else "full handshake")
        return session
