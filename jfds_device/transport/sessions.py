"""The session table: unsecured and secure unicast sessions with their counters, windows and MRP parameters.

Sans-IO: nothing here reads a clock (callers pass ``now``) or touches a socket. The exchange manager owns the
exchanges; this table owns the sessions they run on. A session that leaves the table, whether removed,
evicted or closed after its last exchange, is queued for ``drain_removed()`` so the manager can close its
exchanges and report ``SessionClosed``.

Unsecured sessions (session id 0; Core spec §4.13, "Unsecured Session Context") carry the PASE and CASE
handshakes. They are keyed by the peer address and the ephemeral initiator node id that the initiator puts in
the source node id field; the responder answers with that id as the destination node id. When *we* initiate,
we draw our own ephemeral id and look replies up by it.

Secure sessions (Core spec §4.14) are keyed by the local session id this table allocates. Creating one is
the last step of PASE or CASE; see ``SessionTable.add_secure``.

Budgets: sessions we responded to (inbound: controllers and other nodes reaching us) and sessions we initiated
(outbound: the reconciler's peers) are capped separately, and a new session only displaces one of its own kind,
chosen by ``transport.eviction`` (the CHIP SDK's per-fabric policy inbound, LRU idle-first outbound). Unsecured
sessions are split the same way, so a flood of handshakes from peers cannot evict the handshakes we run.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jfds_device.codec.model import AuthMode
from jfds_device.crypto.primitives import SYMMETRIC_KEY_LENGTH, check_length
from jfds_device.errors import LocalProtocolError
from jfds_device.transport.counters import (
    DEFAULT_RESERVE_BLOCK,
    MessageCounter,
    ReceiveWindow,
    random_counter_start,
)
from jfds_device.transport.eviction import InUse, inbound_victim, outbound_victim
from jfds_device.transport.mrp import MrpParameters

__all__ = [
    "DEFAULT_INBOUND_SESSIONS",
    "DEFAULT_OUTBOUND_SESSIONS",
    "MIN_CASE_SESSIONS_PER_FABRIC",
    "Address",
    "SecureSession",
    "Session",
    "SessionAuthMode",
    "SessionTable",
    "UnsecuredSession",
]

log = logging.getLogger(__name__)

Address = tuple[Any, ...]
"""A socket address as the UDP edge sees it, e.g. ``("fe80::1", 5540, 0, 2)``; opaque to the table."""

_MAX_SESSION_ID = 0xFFFF
# Operational node ids end at 0xFFFF_FFEF_FFFF_FFFF (Core spec §2.5.5); an ephemeral initiator id is drawn
# from that range so it never collides with the reserved ids above it.
_MAX_OPERATIONAL_NODE_ID = 0xFFFF_FFEF_FFFF_FFFF

MIN_CASE_SESSIONS_PER_FABRIC = 3
"""Core spec 4.14.2: a node supports at least 3 CASE sessions per fabric (CapabilityMinima.CaseSessionsPerFabric)."""
DEFAULT_INBOUND_SESSIONS = MIN_CASE_SESSIONS_PER_FABRIC * 5 + 2
"""The CHIP SDK's pool size (CHIP_CONFIG_SECURE_SESSION_POOL_SIZE = 3 per fabric + 2, connectedhomeip
``src/lib/core/CHIPConfig.h``) for the 5 fabrics a node supports at least (SupportedFabrics, Core spec 11.18.5.3):
with it, the fabric that holds the most sessions is always over its minimum when the table is full."""
DEFAULT_OUTBOUND_SESSIONS = 16
"""Sessions to peers we keep at once; beyond that the least recently used idle one goes and is set up again on
demand (CASE resumption makes that one round trip)."""


SessionAuthMode = AuthMode
"""How a secure session was authenticated: the one AuthMode (``codec.model``; PASE or CASE here). The old name
stays for the code that spells it so."""


@dataclass(eq=False, slots=True)
class UnsecuredSession:
    """An unsecured unicast session (session id 0) with one peer, for session establishment only."""

    peer_addr: Address
    ephemeral_node_id: int
    """The initiator's ephemeral node id: the peer's when ``initiator`` is False, ours when it is True."""
    initiator: bool
    """True when we initiated: we send it as the source node id, replies carry it as the destination."""
    peer_mrp: MrpParameters = field(default_factory=MrpParameters)
    """Set from the peer's session parameters in PBKDFParamRequest/Sigma1 (or their responses)."""
    receive_window: ReceiveWindow = field(default_factory=ReceiveWindow.unencrypted)
    last_peer_activity: float = -math.inf
    last_used: float = -math.inf
    closing: bool = False
    exchange_count: int = field(default=0, init=False)
    """Open exchanges on this session; maintained by the ExchangeManager."""

    is_secure = False

    def peer_active(self, now: float) -> bool:
        """Core spec §4.12.2.1: the peer counts as active within its SAT of its last message."""
        return now - self.last_peer_activity < self.peer_mrp.active_threshold


@dataclass(eq=False, slots=True)
class SecureSession:
    """An established PASE or CASE unicast session (Core spec §4.14)."""

    local_session_id: int
    """Our id for the session: peers put it in the message header's session id field."""
    peer_session_id: int
    """The peer's id for the session: we put it in the header of what we send."""
    encrypt_key: bytes = field(repr=False)
    decrypt_key: bytes = field(repr=False)
    auth_mode: SessionAuthMode
    peer_addr: Address
    counter: MessageCounter = field(repr=False)
    local_node_id: int = 0
    """Our operational node id on the session's fabric (CASE); 0 (kUndefinedNodeId) for PASE."""
    peer_node_id: int = 0
    """The peer's operational node id (CASE); 0 for PASE."""
    fabric_index: int = 0
    """0 until a PASE session's commissioner adds a NOC (AddNOC then sets it); the fabric for CASE."""
    cats: tuple[int, ...] = ()
    """The peer's CASE Authenticated Tags from its NOC (CASE only)."""
    peer_mrp: MrpParameters = field(default_factory=MrpParameters)
    is_initiator: bool = False
    """True when we initiated PASE/CASE: we encrypt with I2R and decrypt with R2I."""
    attestation_challenge: bytes = field(default=b"", repr=False)
    """From the session keys; AttestationRequest/CSRRequest sign over it during commissioning."""
    receive_window: ReceiveWindow = field(default_factory=ReceiveWindow.secure, repr=False)
    created_at: float = 0.0
    last_peer_activity: float = -math.inf
    last_used: float = -math.inf
    closing: bool = False
    """Marked for close: takes no new exchanges; removed once its open exchanges are done."""
    evicted: bool = False
    """Removed to make room for a newer session of its budget: neither side closed it and the peer did not fail."""
    exchange_count: int = field(default=0, init=False)
    """Open exchanges on this session; maintained by the ExchangeManager."""

    is_secure = True

    @property
    def local_nonce_node_id(self) -> int:
        """Node id in the nonce of what we send: ours for CASE, 0 for PASE (Core spec §4.8.1.1)."""
        return self.local_node_id if self.auth_mode is SessionAuthMode.CASE else 0

    @property
    def peer_nonce_node_id(self) -> int:
        """Node id in the nonce of what the peer sends: the sender's, so the peer's for CASE, 0 for PASE."""
        return self.peer_node_id if self.auth_mode is SessionAuthMode.CASE else 0

    def peer_active(self, now: float) -> bool:
        """Core spec §4.12.2.1: the peer counts as active within its SAT of its last message."""
        return now - self.last_peer_activity < self.peer_mrp.active_threshold


Session = UnsecuredSession | SecureSession


class SessionTable:
    """All sessions of the node, with the global unencrypted message counter.

    ``on_counter_reserve(upto)`` persists the global counter's reservation (see ``MessageCounter``); pass the
    persisted value back as ``global_counter_start`` after a restart. Without one the counter starts at a
    random value in [1, 2^28] (Core spec §4.6.1).

    ``max_inbound_sessions`` / ``max_outbound_sessions`` cap the secure sessions we responded to / initiated;
    ``max_unsecured_sessions`` caps each side's handshake sessions. ``in_use(session)`` tells the eviction policy
    that a layer above holds state on a session (a subscription): such a session is the last of its rank to go.
    """

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        max_inbound_sessions: int = DEFAULT_INBOUND_SESSIONS,
        max_outbound_sessions: int = DEFAULT_OUTBOUND_SESSIONS,
        max_unsecured_sessions: int = 16,
        in_use: InUse[SecureSession] | None = None,
        global_counter_start: int | None = None,
        on_counter_reserve: Callable[[int], None] | None = None,
        counter_reserve_block: int = DEFAULT_RESERVE_BLOCK,
    ) -> None:
        if min(max_inbound_sessions, max_outbound_sessions, max_unsecured_sessions) < 1:
            raise LocalProtocolError("session limits must be positive")
        self._rng = rng if rng is not None else random.Random()
        self.max_inbound_sessions = max_inbound_sessions
        self.max_outbound_sessions = max_outbound_sessions
        self.max_unsecured_sessions = max_unsecured_sessions
        self.in_use = in_use
        self.evictions = {"inbound": 0, "outbound": 0, "unsecured": 0}
        """Sessions evicted to make room, per budget, since start (for logs and tests)."""
        start = global_counter_start if global_counter_start is not None else random_counter_start(self._rng)
        self.global_counter = MessageCounter(
            start, rollover=True, reserve=on_counter_reserve, reserve_block=counter_reserve_block
        )
        self._secure: dict[int, SecureSession] = {}
        self._reserved_ids: set[int] = set()
        self._next_session_id = self._rng.randint(1, _MAX_SESSION_ID)
        self._responder_unsecured: dict[tuple[Address, int], UnsecuredSession] = {}
        self._initiator_unsecured: dict[int, UnsecuredSession] = {}
        self._removed: list[Session] = []

    # --- secure sessions -----------------------------------------------------------------------------------

    def allocate_session_id(self) -> int:
        """Reserve a fresh non-zero local session id (Core spec §4.14, PASE/CASE session ids).

        PASE and CASE need it before the session exists: it goes in PBKDFParamRequest/Response and
        Sigma1/Sigma2. Hand it to ``add_secure`` on success or to ``release_session_id`` on failure.
        """
        for _ in range(_MAX_SESSION_ID):
            candidate = self._next_session_id
            self._next_session_id = candidate % _MAX_SESSION_ID + 1  # 1..0xFFFF, never 0
            if candidate not in self._secure and candidate not in self._reserved_ids:
                self._reserved_ids.add(candidate)
                return candidate
        raise LocalProtocolError("no free local session id")

    def release_session_id(self, local_session_id: int) -> None:
        """Give back an id from ``allocate_session_id`` whose handshake failed."""
        self._reserved_ids.discard(local_session_id)

    def add_secure(
        self,
        *,
        peer_session_id: int,
        encrypt_key: bytes,
        decrypt_key: bytes,
        auth_mode: SessionAuthMode,
        peer_addr: Address,
        now: float,
        local_session_id: int | None = None,
        local_node_id: int = 0,
        peer_node_id: int = 0,
        fabric_index: int = 0,
        cats: tuple[int, ...] = (),
        peer_mrp: MrpParameters | None = None,
        is_initiator: bool = False,
        attestation_challenge: bytes = b"",
        counter_start: int | None = None,
    ) -> SecureSession:
        """Install a session that PASE or CASE just established, evicting one of its budget if that is full.

        ``encrypt_key, decrypt_key = keys.for_role(is_initiator)``. ``local_session_id`` should come from
        ``allocate_session_id``; ``None`` allocates one now. ``counter_start`` overrides the random start of
        the session's message counter (for tests and known-answer vectors).
        """
        if not 1 <= peer_session_id <= _MAX_SESSION_ID:
            raise LocalProtocolError(f"peer session id {peer_session_id} is not in 1..65535")
        check_length(encrypt_key, SYMMETRIC_KEY_LENGTH, "session encrypt key")
        check_length(decrypt_key, SYMMETRIC_KEY_LENGTH, "session decrypt key")
        if local_session_id is None:
            local_session_id = self.allocate_session_id()
        elif local_session_id in self._secure or not 1 <= local_session_id <= _MAX_SESSION_ID:
            raise LocalProtocolError(f"local session id {local_session_id} is in use or invalid")
        self._reserved_ids.discard(local_session_id)
        start = counter_start if counter_start is not None else random_counter_start(self._rng)
        session = SecureSession(
            local_session_id=local_session_id,
            peer_session_id=peer_session_id,
            encrypt_key=encrypt_key,
            decrypt_key=decrypt_key,
            auth_mode=auth_mode,
            peer_addr=peer_addr,
            counter=MessageCounter(start, rollover=False),
            local_node_id=local_node_id,
            peer_node_id=peer_node_id,
            fabric_index=fabric_index,
            cats=tuple(cats),
            peer_mrp=peer_mrp if peer_mrp is not None else MrpParameters(),
            is_initiator=is_initiator,
            attestation_challenge=attestation_challenge,
            created_at=now,
            # The handshake's last message just arrived (or is about to), so the peer is active now.
            last_peer_activity=now,
            last_used=now,
        )
        self._make_secure_room(session)
        self._secure[local_session_id] = session
        log.debug("secure session %d added (%s, %s, peer session %d)", local_session_id, auth_mode.name,
                  "outbound" if is_initiator else "inbound", peer_session_id)
        return session

    def get(self, local_session_id: int) -> SecureSession | None:
        return self._secure.get(local_session_id)

    def secure_sessions(self) -> list[SecureSession]:
        return list(self._secure.values())

    def sessions_for_fabric(self, fabric_index: int) -> list[SecureSession]:
        return [s for s in self._secure.values() if s.fabric_index == fabric_index]

    def inbound_sessions(self) -> list[SecureSession]:
        """Sessions we were the PASE/CASE responder of, oldest first."""
        return [s for s in self._secure.values() if not s.is_initiator]

    def outbound_sessions(self) -> list[SecureSession]:
        """Sessions we initiated (to peers), oldest first."""
        return [s for s in self._secure.values() if s.is_initiator]

    def _make_secure_room(self, newcomer: SecureSession) -> None:
        if newcomer.is_initiator:
            while len(ours := self.outbound_sessions()) >= self.max_outbound_sessions:
                victim = outbound_victim(ours, self.in_use)
                self._evict_secure("outbound", victim, newcomer, self.max_outbound_sessions)
        else:
            while len(others := self.inbound_sessions()) >= self.max_inbound_sessions:
                victim = inbound_victim(others, newcomer, self.in_use)
                self._evict_secure("inbound", victim, newcomer, self.max_inbound_sessions)

    def _evict_secure(self, budget: str, victim: SecureSession | None, newcomer: SecureSession, limit: int) -> None:
        assert victim is not None  # the budget is full, so there is a candidate
        self.evictions[budget] += 1
        victim.evicted = True
        log.info("%s session budget (%d) full: evicting session %d (fabric %d, peer %016X, %d open exchange(s), "
                 "idle %.1f s) for session %d (fabric %d, peer %016X)", budget, limit, victim.local_session_id,
                 victim.fabric_index, victim.peer_node_id, victim.exchange_count, newcomer.last_used - victim.last_used,
                 newcomer.local_session_id, newcomer.fabric_index, newcomer.peer_node_id)
        self.remove(victim)

    # --- unsecured sessions --------------------------------------------------------------------------------

    def unsecured_for(self, peer_addr: Address, ephemeral_node_id: int, now: float) -> UnsecuredSession:
        """The responder-side session for a peer initiator, found or created (Core spec §4.13).

        A new ephemeral id from the same address is a new session with a fresh receive window, which is how
        an initiator that restarted its handshake re-syncs its counter.
        """
        key = (peer_addr, ephemeral_node_id)
        session = self._responder_unsecured.get(key)
        if session is None:
            self._make_unsecured_room(self._responder_unsecured)
            session = UnsecuredSession(peer_addr, ephemeral_node_id, initiator=False, last_used=now)
            self._responder_unsecured[key] = session
        return session

    def new_unsecured_initiator(self, peer_addr: Address, now: float) -> UnsecuredSession:
        """A session for a handshake we initiate, under a fresh random ephemeral node id."""
        self._make_unsecured_room(self._initiator_unsecured)
        while True:
            node_id = self._rng.randint(1, _MAX_OPERATIONAL_NODE_ID)
            if node_id not in self._initiator_unsecured:
                break
        session = UnsecuredSession(peer_addr, node_id, initiator=True, last_used=now)
        self._initiator_unsecured[node_id] = session
        return session

    def find_unsecured_initiator(self, ephemeral_node_id: int) -> UnsecuredSession | None:
        """Our initiator session whose ephemeral id a reply carries as its destination node id."""
        return self._initiator_unsecured.get(ephemeral_node_id)

    def _make_unsecured_room(self, side: dict[Any, UnsecuredSession]) -> None:
        """Each side (handshakes peers run with us, handshakes we run) has its own cap and evicts only its own."""
        while len(side) >= self.max_unsecured_sessions:
            # Least recently used, preferring sessions with no open exchange (idle ones).
            victim = min(side.values(), key=lambda s: (s.exchange_count > 0, s.last_used))
            self.evictions["unsecured"] += 1
            # Debug only: a finished handshake's session stays until it is the least recently used, so every
            # handshake past the budget evicts one and this is routine.
            log.debug("unsecured session budget (%d) full: evicting the %s session with %s",
                      self.max_unsecured_sessions, "initiator" if victim.initiator else "responder", victim.peer_addr)
            self.remove(victim)

    def __contains__(self, session: object) -> bool:
        """Whether ``session`` is still in the table (a removed session never comes back)."""
        if isinstance(session, SecureSession):
            return self._secure.get(session.local_session_id) is session
        if isinstance(session, UnsecuredSession):
            if session.initiator:
                return self._initiator_unsecured.get(session.ephemeral_node_id) is session
            return self._responder_unsecured.get((session.peer_addr, session.ephemeral_node_id)) is session
        return False

    # --- removal -------------------------------------------------------------------------------------------

    def remove(self, session: Session | int) -> None:
        """Remove a session now (by object or local session id). Idempotent; sends nothing to the peer.

        Its exchanges close and ``SessionClosed`` is reported the next time the exchange manager runs.
        """
        if isinstance(session, int):
            found = self._secure.get(session)
            if found is None:
                return
            session = found
        if session not in self:
            return
        if isinstance(session, SecureSession):
            del self._secure[session.local_session_id]
        elif session.initiator:
            del self._initiator_unsecured[session.ephemeral_node_id]
        else:
            del self._responder_unsecured[(session.peer_addr, session.ephemeral_node_id)]
        session.closing = True
        self._removed.append(session)

    def mark_for_close(self, session: Session) -> None:
        """Close a session silently once its open exchanges are done (e.g. after the RemoveFabric response).

        It takes no new exchanges from now on; the exchange manager removes it when the last one closes.
        """
        session.closing = True
        if session.exchange_count == 0:
            self.remove(session)

    def drain_removed(self) -> list[Session]:
        """Sessions removed since the last call, oldest first (for the exchange manager)."""
        removed, self._removed = self._removed, []
        return removed
