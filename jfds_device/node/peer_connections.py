"""CASE sessions to peers on our fabrics, set up on demand and kept (the reconciler's ``PeerSessions``).

``PeerConnections`` opens CASE sessions (Core spec 4.14.2) as initiator: it resolves the peer's operational DNS-SD
record ``<compressed fabric id>-<node id>`` (Core spec 4.3.2), runs ``CaseInitiator`` over an unsecured initiator
session on the stack's endpoint, installs the secure session and keeps it for later requests. Resumption is offered
whenever the ResumptionStore has a record for the peer. One attempt per peer runs at a time; failures back off
exponentially with jitter (``BackoffPolicy``/``Backoff``, sans-IO); reachability is an observable ``PeerState`` per
peer; ``watch(peer)`` keeps a peer connected by reconnecting in the background. The replies of its handshakes reach
it through the client-side ``ExchangeDispatcher`` (``client_dispatch.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from jfds_device.backoff import Backoff, BackoffPolicy
from jfds_device.codec.message import ProtocolId
from jfds_device.crypto.case_keys import compressed_fabric_id
from jfds_device.errors import LocalProtocolError, MatterError
from jfds_device.im.client import ExchangeEvent
from jfds_device.node.client_dispatch import ExchangeDispatcher
from jfds_device.node.handshakes import close_session
from jfds_device.reconciler.ports import PeerId, PeerListener, PeerState, PeerUnreachableError
from jfds_device.securechannel.case import CaseInitiator, CaseResult
from jfds_device.securechannel.case_identity import OperationalIdentity, ResumptionStore
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.transport.exchange import ExchangeClosed, ExchangeRef
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import Address, SecureSession, Session, SessionAuthMode
from jfds_device.transport.udp import UdpEndpoint

__all__ = [
    "Backoff", "BackoffPolicy", "PeerConnections", "PeerId", "PeerResolver", "PeerState", "PeerStatus",
    "PeerUnreachableError", "socket_address",
]  # fmt: skip

log = logging.getLogger(__name__)

MAX_CONCURRENT_HANDSHAKES = 8  # half the unsecured initiator budget (16), the rest for a node's own retries


@dataclass(frozen=True, slots=True)
class PeerStatus:
    state: PeerState
    session: SecureSession | None
    address: Address | None  # where the last session was established
    resumed: bool  # whether that session came from CASE resumption
    failures: int
    retry_at: float  # loop time before which ``connect`` fails fast (-inf: any time)
    last_error: MatterError | None


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
    ``resolver`` may be set later (the attribute of that name): the node starts DNS-SD once its port is bound.
    It is the reconciler's ``PeerSessions`` (``reconciler/ports.py``) as it stands.
    """

    def __init__(self, endpoint: UdpEndpoint, dispatcher: ExchangeDispatcher,
                 identities: Callable[[], Sequence[OperationalIdentity]], resumption: ResumptionStore,
                 resolver: PeerResolver | None = None, *, backoff: BackoffPolicy | None = None,
                 resolve_timeout: float = 3.0, handshake_timeout: float | None = None,
                 max_handshakes: int = MAX_CONCURRENT_HANDSHAKES, rng: random.Random | None = None) -> None:
        self.endpoint, self.dispatcher = endpoint, dispatcher
        self._identities, self._resumption, self.resolver = identities, resumption, resolver
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
        self._listeners: list[PeerListener] = []
        self._remove_listener = dispatcher.add_session_listener(self._session_closed)
        # Handshakes at once: below the unsecured initiator budget (transport/sessions.py), so a burst of connects
        # (a restart with a thousand managed peers) queues here instead of evicting each other's handshakes.
        self._handshakes = asyncio.Semaphore(max_handshakes)

    # --- observing ---------------------------------------------------------------------------------------

    def add_listener(self, listener: PeerListener) -> Callable[[], None]:
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
                close_session(self.endpoint, session)
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
                    async with self._handshakes:  # each handshake holds an unsecured session until it ends
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
        if self.resolver is not None:
            cfid = compressed_fabric_id(identity.root_public_key, identity.fabric_id)
            resolved = await self.resolver.resolve_operational(cfid, peer.node_id, self._resolve_timeout)
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
