"""Which secure session leaves when a session budget is full: a pure function of the sessions in that budget.

The session table keeps two budgets (``transport.sessions.SessionTable``): *inbound* sessions, where we were the
PASE/CASE responder (controllers and any other node of our fabrics that reaches us), and *outbound* sessions, which
we initiated (the reconciler's peers). A new session only ever displaces a session of its own budget, so no amount
of reconciling evicts a controller's session, and no flood of inbound CASE evicts the reconciler's.

Inbound follows the CHIP SDK's ``SecureSessionTable::DefaultEvictionPolicy`` (connectedhomeip
``src/transport/SecureSessionTable.cpp`` and ``.h``), which keeps the Core spec's guarantee that a node supports at
least 3 CASE sessions per fabric (Core spec 4.14.2, CASE; connectedhomeip ``src/lib/core/CHIPConfig.h`` cites it as
4.13.2.8 in the 1.0 numbering; the node advertises it as BasicInformation CapabilityMinima.CaseSessionsPerFabric)
and stops one peer from evicting the others. The candidates are sorted by, best victim first:

1. sessions on the fabric that holds the most sessions (the newcomer counted): with the table sized as the SDK sizes
   it (3 per supported fabric + 2) that fabric is over its minimum, so a fabric at or under its minimum never loses
   a session to another fabric;
2. on a tie, the newcomer's own fabric;
3. sessions of the peer (fabric, node id) that holds the most sessions: a node that opens many sessions loses its
   own duplicates before anybody else loses one;
4. on a tie, the newcomer's own peer;
5. the session's use (the SDK's "state" key): idle first, then sessions with open exchanges, then sessions that carry
   a subscription. The SDK cannot evict a session something still holds and tries the next candidate; here that is
   an explicit key, so a subscriber's session is the last of its rank to go;
6. least recently active first (the SDK's plain LRU key).

Sessions already closing (marked for close, waiting for their last exchange) go before all of these and are not
counted for their fabric or peer: they are nobody's live session.

Outbound is ours to manage: its least recently used idle session goes (then one with open exchanges, then one that
carries a subscription); the reconciler reconnects to that peer when it needs it again.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["EvictionCandidate", "InUse", "SessionUse", "inbound_victim", "outbound_victim", "session_use"]


class EvictionCandidate(Protocol):
    """What the policy reads of a session (``sessions.SecureSession`` has it; the table there calls this module,
    so the policy depends on this shape rather than on the table's module)."""

    @property
    def closing(self) -> bool: ...
    @property
    def exchange_count(self) -> int: ...
    @property
    def fabric_index(self) -> int: ...
    @property
    def peer_node_id(self) -> int: ...
    @property
    def last_used(self) -> float: ...


SessionT = TypeVar("SessionT", bound=EvictionCandidate)
"""The session type the table evicts from (the policy returns one of the sessions it is given)."""

InUse = Callable[[SessionT], bool]
"""Whether a layer above the transport holds state on a session (a subscription, ours or a peer's)."""


class SessionUse(enum.IntEnum):
    """How much a session's eviction would cost, cheapest first (eviction key 5)."""

    CLOSING = 0
    IDLE = 1
    EXCHANGES = 2
    SUBSCRIPTION = 3


def session_use(session: SessionT, in_use: InUse[SessionT] | None) -> SessionUse:
    if session.closing:
        return SessionUse.CLOSING
    if in_use is not None and in_use(session):
        return SessionUse.SUBSCRIPTION
    return SessionUse.EXCHANGES if session.exchange_count > 0 else SessionUse.IDLE


def _peer(session: EvictionCandidate) -> tuple[int, int]:
    return session.fabric_index, session.peer_node_id


def inbound_victim(sessions: Sequence[SessionT], newcomer: SessionT,
                   in_use: InUse[SessionT] | None = None) -> SessionT | None:
    """The inbound session to evict so that ``newcomer`` fits (None if ``sessions`` is empty); see the module
    docstring for the order. ``newcomer`` is not in ``sessions``; it counts for its fabric and peer."""
    if not sessions:
        return None
    live = [s for s in sessions if not s.closing]
    on_fabric = Counter(s.fabric_index for s in live)
    on_peer = Counter(_peer(s) for s in live)
    on_fabric[newcomer.fabric_index] += 1
    on_peer[_peer(newcomer)] += 1

    def rank(session: SessionT) -> tuple[object, ...]:
        use = session_use(session, in_use)
        if use is SessionUse.CLOSING:
            return (0, session.last_used)
        return (
            1,
            -on_fabric[session.fabric_index],  # key 1
            session.fabric_index != newcomer.fabric_index,  # key 2
            -on_peer[_peer(session)],  # key 3
            _peer(session) != _peer(newcomer),  # key 4
            use,  # key 5
            session.last_used,  # key 6
        )

    return min(sessions, key=rank)


def outbound_victim(sessions: Sequence[SessionT], in_use: InUse[SessionT] | None = None) -> SessionT | None:
    """The outbound session to evict: closing, else the least recently used idle one, else the least costly."""
    if not sessions:
        return None
    return min(sessions, key=lambda s: (session_use(s, in_use), s.last_used))
