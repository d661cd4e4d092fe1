"""Exponential backoff with jitter, as a plain value (time is a parameter): peer reconnects and reconciler retries.

Delays grow ``initial * factor**(failures - 1)``, capped at ``maximum`` and spread by ±``jitter`` so peers that
failed together do not retry in lockstep (the CHIP SDK's CASE reconnects grow the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from jfds_device.errors import LocalProtocolError

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How the delays grow (see the module docstring)."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.maximum < self.initial or not 0 <= self.jitter < 1:
            raise LocalProtocolError(f"invalid backoff policy {self}")

    def delay(self, failures: int, rand: float) -> float:
        """The wait after the ``failures``-th consecutive failure (>= 1); ``rand`` is uniform in [0, 1)."""
        if failures < 1 or not 0.0 <= rand <= 1.0:
            raise LocalProtocolError(f"bad backoff inputs: failures={failures}, rand={rand}")
        base = min(self.maximum, self.initial * self.factor ** min(failures - 1, 64))
        return base * (1.0 + self.jitter * (2.0 * rand - 1.0))


@dataclass(slots=True)
class Backoff:
    """One peer's (or node's) schedule of the next attempt; time is a parameter (``now``)."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    failures: int = 0
    retry_at: float = -math.inf

    def failed(self, now: float, rand: float) -> float:
        """Record a failed attempt; returns the delay until the next one may start."""
        self.failures += 1
        delay = self.policy.delay(self.failures, rand)
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.retry_at = 0, -math.inf

    def wait(self, now: float) -> float:
        """Seconds until an attempt may start (0 when it may start now)."""
        return max(0.0, self.retry_at - now)
