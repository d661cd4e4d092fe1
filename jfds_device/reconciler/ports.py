"""What the reconciler needs of the node, declared here as small Protocols the node adapts to (the reconciler never
imports ``jfds_device.node``).

* ``PeerSessions``: CASE sessions to peers on our fabrics (``node.peer_connections.PeerConnections`` fits):
  ``connect`` gives a session (or raises ``PeerUnreachableError``), ``session_failed`` drops one an interaction
  timed out on, ``add_listener`` reports reachability changes (``PeerState``), which trigger verify passes.
* The clock is ``jfds_device.clock.Clock`` (base layer); the anchor fabric and who we are on it are two callables
  (``Reconciler(fabric_index=..., own_identity=...)``).

``PeerId``, ``PeerState`` and ``PeerUnreachableError`` are the vocabulary both sides share.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from jfds_device.errors import MatterError

__all__ = ["PeerId", "PeerListener", "PeerSessions", "PeerState", "PeerUnreachableError"]


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


class PeerUnreachableError(MatterError):
    """No CASE session to ``peer``: the attempt failed (``__cause__``), or the backoff has not elapsed."""

    def __init__(self, peer: PeerId, message: str, retry_in: float = 0.0) -> None:
        super().__init__(f"peer {peer} unreachable: {message}")
        self.peer, self.retry_in = peer, retry_in


PeerListener = Callable[[PeerId, PeerState], None]


class PeerSessions(Protocol):
    """CASE sessions to peers, as the reconciler uses them."""

    async def connect(self, peer: PeerId, *, ignore_backoff: bool = False) -> Any:
        """A live session to ``peer`` (an opaque handle the IM client takes); ``PeerUnreachableError`` if none."""
        ...

    def session_failed(self, peer: PeerId) -> None:
        """An interaction timed out on ``peer``'s session: drop it, the next ``connect`` sets one up again."""
        ...

    def add_listener(self, listener: PeerListener) -> Callable[[], None]:
        """Call ``listener(peer, state)`` on every reachability change; returns the function that removes it."""
        ...
