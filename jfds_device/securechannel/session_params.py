"""Session parameters exchanged during session establishment (Core spec §4.12.8, session-parameter-struct).

PASE carries them in PBKDFParamRequest/Response (tag 5) and CASE in Sigma1/Sigma2 (tag 5 / tag 4), so the
struct lives here rather than in either handshake. Every field is optional on decode: the spec made tags 4..7
mandatory only in Matter 1.3, and older initiators send only the two MRP intervals (among them the
PBKDFParamRequest captured from connectedhomeip in matter.js packages/general/test/crypto/Spake2pTest.ts
@ b851ce019504). Unknown tags are ignored by the schema layer (Core spec §7.19.1), which is how newer fields from
later revisions pass through.
"""

from __future__ import annotations

from jfds_device.codec.schema import UINT16, UINT32, Struct, field, struct

__all__ = [
    "MAX_SESSION_INTERVAL_MS",
    "SESSION_ACTIVE_INTERVAL_DEFAULT_MS",
    "SESSION_ACTIVE_THRESHOLD_DEFAULT_MS",
    "SESSION_IDLE_INTERVAL_DEFAULT_MS",
    "SessionParameters",
]

# Defaults a peer is assumed to use for an absent field (Core spec §4.12.8, MRP parameters table).
SESSION_IDLE_INTERVAL_DEFAULT_MS = 500
SESSION_ACTIVE_INTERVAL_DEFAULT_MS = 300
SESSION_ACTIVE_THRESHOLD_DEFAULT_MS = 4000
# The spec caps both intervals at one hour (connectedhomeip's Dnssd kMaxRetryInterval is the same bound).
# Decoding does not enforce it, so one odd peer cannot fail a handshake; MRP clamps with ``clamped()``.
MAX_SESSION_INTERVAL_MS = 3_600_000


@struct
class SessionParameters(Struct):
    """A node's MRP timing and revision information, as sent in a session establishment message."""

    idle_interval_ms: int | None = field(1, UINT32, optional=True)
    active_interval_ms: int | None = field(2, UINT32, optional=True)
    active_threshold_ms: int | None = field(3, UINT16, optional=True)
    data_model_revision: int | None = field(4, UINT16, optional=True)
    interaction_model_revision: int | None = field(5, UINT16, optional=True)
    specification_version: int | None = field(6, UINT32, optional=True)
    max_paths_per_invoke: int | None = field(7, UINT16, optional=True)
    # Matter 1.4 additions; kept as plain integers so unknown transport bits do not fail a handshake.
    supported_transports: int | None = field(8, UINT16, optional=True)
    max_tcp_message_size: int | None = field(9, UINT32, optional=True)

    def clamped(self) -> tuple[int, int, int]:
        """``(idle_ms, active_ms, threshold_ms)`` with spec defaults for absent fields and the 1-hour cap."""
        idle = self.idle_interval_ms if self.idle_interval_ms is not None else SESSION_IDLE_INTERVAL_DEFAULT_MS
        active = self.active_interval_ms if self.active_interval_ms is not None else SESSION_ACTIVE_INTERVAL_DEFAULT_MS
        threshold = (
            self.active_threshold_ms if self.active_threshold_ms is not None else SESSION_ACTIVE_THRESHOLD_DEFAULT_MS
        )
        return min(idle, MAX_SESSION_INTERVAL_MS), min(active, MAX_SESSION_INTERVAL_MS), threshold
