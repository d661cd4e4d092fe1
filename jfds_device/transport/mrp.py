"""Message Reliability Protocol constants and backoff arithmetic (Core spec §4.12). Pure functions, no state.

Times are float seconds throughout the transport layer; the spec states them in milliseconds, so the TLV
session parameters (PBKDFParamRequest, Sigma1/Sigma2 ``session-parameters``, DNS-SD ``SII``/``SAI``/``SAT``)
go through ``MrpParameters.from_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jfds_device.errors import LocalProtocolError

__all__ = [
    "EXPECTED_PROCESSING_TIME",
    "MRP_BACKOFF_BASE",
    "MRP_BACKOFF_JITTER",
    "MRP_BACKOFF_MARGIN",
    "MRP_BACKOFF_THRESHOLD",
    "MRP_MAX_TRANSMISSIONS",
    "MRP_STANDALONE_ACK_TIMEOUT",
    "MrpParameters",
    "backoff_interval",
    "max_delivery_time",
]

# Core spec §4.12.8, "MRP Parameters" table.
MRP_MAX_TRANSMISSIONS = 5  # the initial transmission plus 4 retransmissions
MRP_BACKOFF_BASE = 1.6
MRP_BACKOFF_JITTER = 0.25
MRP_BACKOFF_MARGIN = 1.1
MRP_BACKOFF_THRESHOLD = 1  # retransmissions sent before the backoff turns exponential
MRP_STANDALONE_ACK_TIMEOUT = 0.200  # seconds a pending ack waits for a message to piggyback on

# How long the peer may take to act on a request before it replies. Not a spec constant: the CHIP SDK's
# kExpectedIMProcessingTime (2 s), which matter.js copies as DEFAULT_EXPECTED_PROCESSING_TIME.
EXPECTED_PROCESSING_TIME = 2.0

# Upper bounds of the session parameters: SII/SAI at most one hour (the DNS-SD SII/SAI TXT key rules, Core spec
# §4.3), SAT a uint16 in milliseconds (session-parameter-struct, Core spec §4.12.8).
_MAX_INTERVAL = 3600.0
_MAX_ACTIVE_THRESHOLD = 65.535


@dataclass(frozen=True, slots=True)
class MrpParameters:
    """A node's MRP timing parameters and their defaults (Core spec §4.12.8), in seconds."""

    idle_interval: float = 0.5
    """SESSION_IDLE_INTERVAL (SII): base retry interval while the node is idle."""
    active_interval: float = 0.3
    """SESSION_ACTIVE_INTERVAL (SAI): base retry interval while the node is active."""
    active_threshold: float = 4.0
    """SESSION_ACTIVE_THRESHOLD (SAT): how long after its last message a node still counts as active."""

    def __post_init__(self) -> None:
        for name, value, upper in (
            ("idle_interval", self.idle_interval, _MAX_INTERVAL),
            ("active_interval", self.active_interval, _MAX_INTERVAL),
            ("active_threshold", self.active_threshold, _MAX_ACTIVE_THRESHOLD),
        ):
            if not 0 <= value <= upper:
                raise LocalProtocolError(f"MRP {name} {value} s outside [0, {upper}] s")

    @classmethod
    def from_ms(
        cls, idle_ms: int | None = None, active_ms: int | None = None, threshold_ms: int | None = None
    ) -> MrpParameters:
        """Build from the millisecond TLV fields; an absent field (``None``) takes the spec default."""
        default = cls()
        return cls(
            default.idle_interval if idle_ms is None else idle_ms / 1000,
            default.active_interval if active_ms is None else active_ms / 1000,
            default.active_threshold if threshold_ms is None else threshold_ms / 1000,
        )

    def base_interval(self, peer_active: bool) -> float:
        """The interval the backoff grows from: SAI while the peer is active, else SII (Core spec §4.12.2.1)."""
        return self.active_interval if peer_active else self.idle_interval


def backoff_interval(base_interval: float, retransmissions: int, jitter: float) -> float:
    """Core spec §4.12.2.1: how long to wait for an ack after a transmission.

    ``retransmissions`` is how many retransmissions have been sent so far (0 right after the initial send),
    ``jitter`` a random fraction in [0, 1). The formula:
    ``i * MARGIN * BASE^max(0, n - THRESHOLD) * (1 + jitter * JITTER)``.
    """
    if retransmissions < 0 or not 0.0 <= jitter <= 1.0:
        raise LocalProtocolError(f"bad backoff inputs: n={retransmissions}, jitter={jitter}")
    exponent = max(0, retransmissions - MRP_BACKOFF_THRESHOLD)
    return base_interval * MRP_BACKOFF_MARGIN * MRP_BACKOFF_BASE**exponent * (1.0 + jitter * MRP_BACKOFF_JITTER)


def max_delivery_time(params: MrpParameters, peer_active: bool) -> float:
    """Worst case from the first transmission of a reliable message until MRP gives up (all jitter maximal).

    A peer that stops counting as active while we retransmit is treated as idle from then on, as matter.js
    does (MRP.ts maxResponseTimeOf).
    """
    total = 0.0
    active = peer_active
    for n in range(MRP_MAX_TRANSMISSIONS):
        if active and total > params.active_threshold:
            active = False
        total += backoff_interval(params.base_interval(active), n, 1.0)
    return total
