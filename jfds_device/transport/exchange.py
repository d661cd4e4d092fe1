"""Exchange manager and MRP as one sans-IO machine (Core spec §4.10 exchanges, §4.12 reliability).

Driven the way aioquic drives ``QuicConnection`` (aiortc/aioquic src/aioquic/quic/connection.py), by three kinds
of input:

* datagrams: ``receive_datagram(data, addr, now)``;
* time: ``handle_timer(now)`` at (or after) ``next_timer()``;
* API calls: ``new_exchange``, ``send``, ``close``.

After any of them, the caller transmits ``datagrams_to_send()``, re-arms its timer from ``next_timer()`` and
drains ``next_event()`` until it returns None. Nothing here reads a clock, sleeps or touches a socket; random
jitter and ids come from the injected ``rng``.

An exchange is identified by (session, exchange id, whether we initiated it) (Core spec §4.10.1). Every
exchange, however it ends, produces exactly one ``ExchangeClosed``; one the app closes ends once its last
reliable message is acknowledged (or given up on), so the reason tells whether that final message arrived.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from dataclasses import dataclass, field

from jfds_device.codec.message import MessageHeader, ProtocolHeader, ProtocolId, SecureChannelOpcode, SessionType
from jfds_device.errors import LocalProtocolError, MatterError, MessageDecodeError
from jfds_device.transport.counters import CounterExhaustedError
from jfds_device.transport.mrp import (
    EXPECTED_PROCESSING_TIME,
    MRP_MAX_TRANSMISSIONS,
    MRP_STANDALONE_ACK_TIMEOUT,
    MrpParameters,
    backoff_interval,
    max_delivery_time,
)
from jfds_device.transport.sessions import Address, SecureSession, Session, SessionTable, UnsecuredSession
from jfds_device.transport.wire import DecodedMessage, decode_header, encode_message, open_payload

__all__ = [
    "CloseReason",
    "Event",
    "ExchangeClosed",
    "ExchangeManager",
    "ExchangeRef",
    "MessageReceived",
    "SessionClosed",
]

log = logging.getLogger(__name__)

_EXCHANGE_ID_SPACE = 0x10000


class CloseReason(enum.StrEnum):
    CLOSED = "closed"
    """The app closed the exchange and its last reliable message (if any) was acknowledged."""
    TIMEOUT = "timeout"
    """No response arrived within the response timeout of a ``send(..., expect_response=True)``."""
    DELIVERY_FAILED = "delivery_failed"
    """MRP_MAX_TRANSMISSIONS transmissions of a reliable message went unacknowledged (Core spec §4.12.5)."""
    SESSION_CLOSED = "session_closed"
    """The session went away (removed, evicted, marked for close, counter exhausted)."""


@dataclass(frozen=True, slots=True)
class ExchangeRef:
    """Names one exchange: its session, its id and whether we are the initiator (Core spec §4.10.1)."""

    session: Session
    exchange_id: int
    initiator: bool

    def __repr__(self) -> str:
        return f"ExchangeRef(E:{self.exchange_id}{'i' if self.initiator else 'r'} S:{_session_label(self.session)})"


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """An application message arrived on ``exchange`` (standalone acks and duplicates never show up here).

    ``new_exchange`` is True for the first message of an exchange the peer initiated: the app either
    handles it or rejects it by closing the exchange (after sending a StatusReport if the protocol wants).
    """

    exchange: ExchangeRef
    session: Session
    protocol_id: int
    opcode: int
    payload: bytes = field(repr=False)  # decrypted application data: never in a log line
    new_exchange: bool


@dataclass(frozen=True, slots=True)
class ExchangeClosed:
    exchange: ExchangeRef
    reason: CloseReason


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """A session left the session table; all its exchanges were closed (and reported) before this."""

    session: Session


Event = MessageReceived | ExchangeClosed | SessionClosed


@dataclass(slots=True)
class _Retransmission:
    datagram: bytes
    counter: int
    transmissions: int
    deadline: float


@dataclass(slots=True)
class _Exchange:
    ref: ExchangeRef
    closing: bool = False
    pending_ack: int | None = None  # counter of a received reliable message we still owe an ack for
    ack_deadline: float | None = None
    retransmit: _Retransmission | None = None  # at most one outstanding reliable message (Core spec §4.12.4)
    response_deadline: float | None = None


def _session_label(session: Session) -> int:
    return session.local_session_id if isinstance(session, SecureSession) else 0


def _is_standalone_ack(ph: ProtocolHeader) -> bool:
    return (
        ph.vendor_id == 0
        and ph.protocol_id == ProtocolId.SECURE_CHANNEL
        and ph.opcode == SecureChannelOpcode.STANDALONE_ACK
    )


class ExchangeManager:
    """Exchanges and MRP over the sessions of one ``SessionTable``.

    ``local_mrp`` is what we advertise (DNS-SD, PASE/CASE session parameters); it only feeds the default
    response timeout, since the peer retransmits its reply on our schedule.
    """

    def __init__(
        self, sessions: SessionTable, *, rng: random.Random | None = None, local_mrp: MrpParameters | None = None
    ) -> None:
        self.sessions = sessions
        self.local_mrp = local_mrp if local_mrp is not None else MrpParameters()
        self._rng = rng if rng is not None else random.Random()
        self._exchanges: dict[ExchangeRef, _Exchange] = {}
        # Initiators allocate exchange ids from a random start, incrementing (Core spec §4.10.2).
        self._next_exchange_id = self._rng.randrange(_EXCHANGE_ID_SPACE)
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: deque[Event] = deque()

    # --- outputs -------------------------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams queued since the last call, in order, as ``(data, peer address)``."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        self._reap_sessions()
        return self._events.popleft() if self._events else None

    def next_timer(self) -> float | None:
        """The earliest pending deadline (ack, retransmission or response timeout), or None."""
        deadlines = [
            t
            for ex in self._exchanges.values()
            for t in (ex.ack_deadline, ex.retransmit.deadline if ex.retransmit else None, ex.response_deadline)
            if t is not None
        ]
        return min(deadlines, default=None)

    # --- inputs --------------------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Act on every deadline at or before ``now``: standalone acks, retransmissions, failures, timeouts."""
        self._reap_sessions()
        for ex in list(self._exchanges.values()):
            if self._exchanges.get(ex.ref) is not ex:
                continue  # finalised earlier in this loop
            if ex.ack_deadline is not None and ex.ack_deadline <= now:
                self._flush_ack(ex, now)
            rt = ex.retransmit
            if rt is not None and rt.deadline <= now:
                if rt.transmissions >= MRP_MAX_TRANSMISSIONS:
                    log.info("%r: no ack after %d transmissions of M:%d", ex.ref, rt.transmissions, rt.counter)
                    ex.retransmit = None
                    self._finalize(ex, CloseReason.DELIVERY_FAILED, now)
                    continue
                session = ex.ref.session
                log.debug("%r: retransmitting M:%d (transmission %d)", ex.ref, rt.counter, rt.transmissions + 1)
                self._outbox.append((rt.datagram, session.peer_addr))
                rt.deadline = now + self._backoff(session, rt.transmissions, now)
                rt.transmissions += 1
            if ex.response_deadline is not None and ex.response_deadline <= now:
                ex.response_deadline = None
                self._finalize(ex, CloseReason.TIMEOUT, now)
        self._reap_sessions()

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Process one datagram. Anything invalid is dropped (logged at debug); this never raises for input."""
        self._reap_sessions()
        try:
            self._receive(bytes(data), addr, now)
        except MatterError as exc:
            log.debug("dropped datagram from %s: %s", addr, exc)
        self._reap_sessions()

    def new_exchange(self, session: Session, now: float) -> ExchangeRef:
        """Open an exchange we initiate on ``session``."""
        self._reap_sessions()
        if session.closing:
            raise LocalProtocolError("the session is closed or closing")
        for _ in range(_EXCHANGE_ID_SPACE):
            exchange_id = self._next_exchange_id
            self._next_exchange_id = (exchange_id + 1) % _EXCHANGE_ID_SPACE
            ref = ExchangeRef(session, exchange_id, True)
            if ref not in self._exchanges:
                self._open(ref)
                session.last_used = now
                return ref
        raise LocalProtocolError("no free exchange id on this session")

    def send(
        self,
        exchange: ExchangeRef,
        protocol_id: int,
        opcode: int,
        payload: bytes,
        *,
        now: float,
        reliable: bool = True,
        expect_response: bool = False,
        response_timeout: float | None = None,
    ) -> None:
        """Send a message on an open exchange, piggybacking any pending ack (Core spec §4.12.3).

        ``reliable`` sets R and retransmits until acked; only one reliable message may be outstanding per
        exchange (LocalProtocolError otherwise). ``expect_response`` arms a response timeout:
        ``response_timeout`` seconds, or by default the worst-case MRP delivery time both ways plus
        EXPECTED_PROCESSING_TIME. Raises LocalProtocolError for a closed exchange or an oversized message.
        """
        self._reap_sessions()
        ex = self._exchanges.get(exchange)
        if ex is None or ex.closing:
            raise LocalProtocolError(f"{exchange!r} is closed")
        if reliable and ex.retransmit is not None:
            raise LocalProtocolError(f"{exchange!r} already has an unacknowledged reliable message")
        session = exchange.session
        ph = ProtocolHeader(
            protocol_id=protocol_id,
            opcode=opcode,
            exchange_id=exchange.exchange_id,
            initiator=exchange.initiator,
            needs_ack=reliable,
            ack_counter=ex.pending_ack,
        )
        try:
            datagram, counter = self._encode(session, ph, payload)
        except CounterExhaustedError:
            self.sessions.remove(session)
            self._reap_sessions()
            raise
        ex.pending_ack = ex.ack_deadline = None
        self._outbox.append((datagram, session.peer_addr))
        session.last_used = now
        if reliable:
            ex.retransmit = _Retransmission(datagram, counter, 1, now + self._backoff(session, 0, now))
        if expect_response:
            timeout = response_timeout if response_timeout is not None else self.default_response_timeout(session, now)
            ex.response_deadline = now + timeout
        else:
            ex.response_deadline = None

    def close(self, exchange: ExchangeRef, now: float) -> None:
        """Close an exchange: flush a pending ack as a standalone ack; keep retransmitting an unacknowledged
        message until it is acked or fails, then report ``ExchangeClosed``. Idempotent."""
        self._reap_sessions()
        ex = self._exchanges.get(exchange)
        if ex is None or ex.closing:
            return
        self._flush_ack(ex, now)
        ex.closing = True
        ex.response_deadline = None
        if ex.retransmit is None:
            self._finalize(ex, CloseReason.CLOSED, now)
        self._reap_sessions()

    # --- queries -------------------------------------------------------------------------------------------

    def is_open(self, exchange: ExchangeRef) -> bool:
        """True while the app may still send on ``exchange``."""
        ex = self._exchanges.get(exchange)
        return ex is not None and not ex.closing

    def default_response_timeout(self, session: Session, now: float) -> float:
        """Our request's worst-case delivery, the peer's processing, and its reply's worst-case delivery."""
        return (
            max_delivery_time(session.peer_mrp, session.peer_active(now))
            + EXPECTED_PROCESSING_TIME
            + max_delivery_time(self.local_mrp, True)
        )

    # --- receive path --------------------------------------------------------------------------------------

    def _receive(self, data: bytes, addr: Address, now: float) -> None:
        header, header_length = decode_header(data)
        if header.session_type is not SessionType.UNICAST:
            raise MessageDecodeError("group messages are not supported")
        session: Session | None
        if header.session_id == 0:
            msg = open_payload(data, header, header_length)
            session = self._unsecured_session(header, addr, now)
            if session is None:
                raise MessageDecodeError("unsecured message matches no session")
        else:
            session = self.sessions.get(header.session_id)
            if session is None:
                raise MessageDecodeError(f"unknown session id {header.session_id}")
            # A bad MIC raises CryptoError (a MatterError): dropped, and the window is not touched.
            msg = open_payload(
                data, header, header_length, key=session.decrypt_key, nonce_node_id=session.peer_nonce_node_id
            )
        fresh = session.receive_window.accept(header.message_counter)
        session.last_peer_activity = session.last_used = now
        if fresh and isinstance(session, SecureSession):
            session.peer_addr = addr  # follow the peer to its latest authenticated address
        self._dispatch(session, msg, fresh, addr, now)

    def _unsecured_session(self, header: MessageHeader, addr: Address, now: float) -> UnsecuredSession | None:
        if header.destination_node_id is not None:
            # A reply in a handshake we initiated: addressed to our ephemeral node id.
            return self.sessions.find_unsecured_initiator(header.destination_node_id)
        if header.source_node_id is not None:
            # From an initiator: keyed by its address and ephemeral node id.
            return self.sessions.unsecured_for(addr, header.source_node_id, now)
        return None

    def _dispatch(self, session: Session, msg: DecodedMessage, fresh: bool, addr: Address, now: float) -> None:
        ph = msg.protocol_header
        counter = msg.header.message_counter
        ref = ExchangeRef(session, ph.exchange_id, not ph.initiator)
        if log.isEnabledFor(logging.DEBUG):
            _log_message(">>>", "RX from", addr, ref, counter, ph)
        if not fresh:
            # Core spec §4.6.5 / §4.12.6: a duplicate is not delivered, but one that wants an ack gets one
            # at once, since our first ack was evidently lost.
            log.debug("%r: duplicate M:%d", ref, counter)
            if ph.needs_ack:
                self._send_standalone_ack(ref, counter, now)
            return
        ex = self._exchanges.get(ref)
        if ex is not None and ph.ack_counter is not None:
            self._handle_ack(ex, ph.ack_counter, now)
            ex = self._exchanges.get(ref)
        if _is_standalone_ack(ph):
            return
        drop_reason = None
        if ph.vendor_id != 0:
            drop_reason = "vendor-specific protocol"
        elif ex is None and not ph.initiator:
            drop_reason = "no such exchange"
        elif ex is None and session.closing:
            drop_reason = "session closing"
        elif ex is not None and ex.closing:
            drop_reason = "exchange closing"
        if drop_reason is not None:
            # Still ack it so the peer stops retransmitting (CHIP does the same for unsolicited messages).
            log.debug("%r: dropping M:%d (%s)", ref, counter, drop_reason)
            if ph.needs_ack:
                self._send_standalone_ack(ref, counter, now)
            return
        new_exchange = ex is None
        if ex is None:
            ex = self._open(ref)
        if ph.needs_ack:
            if ex.pending_ack is not None:
                self._flush_ack(ex, now)  # only one ack can ride on a message; send the older one now
            ex.pending_ack = counter
            ex.ack_deadline = now + MRP_STANDALONE_ACK_TIMEOUT
        ex.response_deadline = None
        self._events.append(MessageReceived(ref, session, ph.protocol_id, ph.opcode, msg.payload, new_exchange))

    def _handle_ack(self, ex: _Exchange, ack_counter: int, now: float) -> None:
        rt = ex.retransmit
        if rt is None or rt.counter != ack_counter:
            log.debug("%r: ignoring ack for unknown M:%d", ex.ref, ack_counter)  # Core spec §4.12.5
            return
        ex.retransmit = None
        if ex.closing:
            self._finalize(ex, CloseReason.CLOSED, now)

    # --- helpers -------------------------------------------------------------------------------------------

    def _open(self, ref: ExchangeRef) -> _Exchange:
        ex = _Exchange(ref)
        self._exchanges[ref] = ex
        ref.session.exchange_count += 1
        return ex

    def _finalize(self, ex: _Exchange, reason: CloseReason, now: float | None) -> None:
        ref = ex.ref
        if self._exchanges.get(ref) is not ex:
            return
        if now is not None and reason is not CloseReason.SESSION_CLOSED:
            self._flush_ack(ex, now)
        del self._exchanges[ref]
        session = ref.session
        session.exchange_count -= 1
        log.debug("%r closed: %s", ref, reason)
        self._events.append(ExchangeClosed(ref, reason))
        if session.closing and session.exchange_count == 0:
            self.sessions.remove(session)  # a session marked for close goes with its last exchange

    def _reap_sessions(self) -> None:
        """Close the exchanges of sessions that left the table, then report the sessions."""
        while removed := self.sessions.drain_removed():
            for session in removed:
                for ex in [e for r, e in self._exchanges.items() if r.session is session]:
                    self._finalize(ex, CloseReason.SESSION_CLOSED, None)
                log.debug("session S:%d closed", _session_label(session))
                self._events.append(SessionClosed(session))

    def _flush_ack(self, ex: _Exchange, now: float) -> None:
        if ex.pending_ack is not None:
            counter, ex.pending_ack, ex.ack_deadline = ex.pending_ack, None, None
            self._send_standalone_ack(ex.ref, counter, now)

    def _send_standalone_ack(self, ref: ExchangeRef, counter: int, now: float) -> None:
        """Core spec §4.12.7: a StandaloneAck on the same exchange, with our role's I flag, unreliable."""
        session = ref.session
        if session not in self.sessions:
            return  # removed: nothing can be sent on it any more
        ph = ProtocolHeader(
            protocol_id=ProtocolId.SECURE_CHANNEL,
            opcode=SecureChannelOpcode.STANDALONE_ACK,
            exchange_id=ref.exchange_id,
            initiator=ref.initiator,
            ack_counter=counter,
        )
        try:
            datagram, _ = self._encode(session, ph, b"")
        except CounterExhaustedError:
            self.sessions.remove(session)
            return
        except MatterError as exc:  # e.g. the counter reservation could not be persisted
            log.warning("could not send a standalone ack on %r: %s", ref, exc)
            return
        self._outbox.append((datagram, session.peer_addr))

    def _encode(self, session: Session, ph: ProtocolHeader, payload: bytes) -> tuple[bytes, int]:
        if isinstance(session, SecureSession):
            counter = session.counter.next()
            header = MessageHeader(session_id=session.peer_session_id, message_counter=counter)
            datagram = encode_message(
                header, ph, payload, key=session.encrypt_key, nonce_node_id=session.local_nonce_node_id
            )
        else:
            counter = self.sessions.global_counter.next()
            if session.initiator:
                header = MessageHeader(session_id=0, message_counter=counter, source_node_id=session.ephemeral_node_id)
            else:
                header = MessageHeader(
                    session_id=0, message_counter=counter, destination_node_id=session.ephemeral_node_id
                )
            datagram = encode_message(header, ph, payload)
        if log.isEnabledFor(logging.DEBUG):
            ref = ExchangeRef(session, ph.exchange_id, ph.initiator)
            _log_message("<<<", "TX to", session.peer_addr, ref, counter, ph)
        return datagram, counter

    def _backoff(self, session: Session, retransmissions: int, now: float) -> float:
        base = session.peer_mrp.base_interval(session.peer_active(now))
        return backoff_interval(base, retransmissions, self._rng.random())


def _log_message(arrow: str, what: str, addr: Address, ref: ExchangeRef, counter: int, ph: ProtocolHeader) -> None:
    # The CHIP SDK's one-line format (src/messaging/README.md), so our logs diff against chip-tool's.
    ack = f" A:{ph.ack_counter}" if ph.ack_counter is not None else ""
    kind = "S" if ref.session.is_secure else "U"
    log.debug(
        "%s [E:%d%s S:%d M:%d%s] (%s) Msg %s %s --- Type %04x:%02x%s",
        arrow,
        ref.exchange_id,
        "i" if ref.initiator else "r",
        _session_label(ref.session),
        counter,
        ack,
        kind,
        what,
        addr,
        ph.protocol_id,
        ph.opcode,
        " (R)" if ph.needs_ack else "",
    )
