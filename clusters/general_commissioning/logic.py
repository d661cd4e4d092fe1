"""The fail-safe context (Core spec 11.10.7.2.1) as a sans-IO object: no clock, no timers, no I/O.

While armed, commissioning changes (NOC, trusted root, ACL entries, network config...) are provisional.
Whoever makes such a change registers a rollback callback; if the fail-safe expires (its deadline passes,
or ArmFailSafe(0)), the callbacks undo the changes in reverse order. CommissioningComplete commits:
commit callbacks run and the rollbacks are dropped. The owner drives time: ``get_timer()`` gives the
deadline, ``handle_timer(now)`` expires the context once ``now`` reaches it.

The context is bound to the fabric (or, before AddNOC, the PASE session) that armed it; another admin
gets BusyWithOtherAdmin until it is disarmed (11.10.7.2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from clusters.general_commissioning.schema import MAX_CUMULATIVE_FAILSAFE_S

__all__ = ["FailSafe"]

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class FailSafe:
    def __init__(self, max_cumulative_s: float = MAX_CUMULATIVE_FAILSAFE_S) -> None:
        self.max_cumulative_s = max_cumulative_s
        self._deadline: float | None = None
        self._armed_at = 0.0
        self.fabric_index = 0
        self.session_id = 0
        self.flags: set[str] = set()
        """Per-arming markers for other clusters (e.g. "add_noc" so a second AddNOC is refused, 11.18.6.8)."""
        self._rollbacks: list[Callback] = []
        self._commits: list[Callback] = []
        self._expiry_listeners: list[Callback] = []
        self._commit_listeners: list[Callback] = []

    # ------------------------------------------------------------------------------------------ state

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    @property
    def deadline(self) -> float | None:
        return self._deadline

    def held_by(self, fabric_index: int, session_id: int) -> bool:
        """Whether a request from ``fabric_index``/``session_id`` belongs to the armed context."""
        if not self.armed:
            return False
        if self.fabric_index != 0:
            return fabric_index == self.fabric_index
        # Armed over PASE before AddNOC: only that session (no fabric yet) holds it.
        return fabric_index == 0 and session_id == self.session_id

    # ------------------------------------------------------------------------------------------ transitions

    def arm(self, expiry_s: float, now: float, *, fabric_index: int, session_id: int) -> None:
        """Arm, or re-arm (extend or shorten) an armed context held by the caller.

        The deadline never passes ``armed_at + max_cumulative_s``: re-arming cannot keep one context
        alive beyond MaxCumulativeFailsafeSeconds (11.10.5.2).
        """
        if expiry_s <= 0:
            raise ValueError("expiry_s must be positive; use expire() to disarm with rollback")
        if not self.armed:
            self._armed_at = now
            self.fabric_index = fabric_index
            self.session_id = session_id
            self.flags = set()
        self._deadline = min(now + expiry_s, self._armed_at + self.max_cumulative_s)

    def associate_fabric(self, fabric_index: int) -> None:
        """Bind the context to the fabric AddNOC just created (later CASE requests then hold it)."""
        if not self.armed:
            raise RuntimeError("associate_fabric() needs an armed fail-safe")
        self.fabric_index = fabric_index

    def add_rollback(self, callback: Callback) -> None:
        """Undo step for a provisional change; runs (in reverse order) only if the context expires."""
        if not self.armed:
            raise RuntimeError("add_rollback() needs an armed fail-safe")
        self._rollbacks.append(callback)

    def add_commit(self, callback: Callback) -> None:
        """Step that makes a provisional change final; runs (in order) at CommissioningComplete."""
        if not self.armed:
            raise RuntimeError("add_commit() needs an armed fail-safe")
        self._commits.append(callback)

    def add_expiry_listener(self, callback: Callback) -> None:
        """Permanent hook run after every expiry's rollbacks (e.g. reset Breadcrumb, close the PASE session)."""
        self._expiry_listeners.append(callback)

    def add_commit_listener(self, callback: Callback) -> None:
        """Permanent hook run after every CommissioningComplete's commits (e.g. close the commissioning window)."""
        self._commit_listeners.append(callback)

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> bool:
        """Expire the context if its deadline has passed; returns whether it expired."""
        if self._deadline is not None and now >= self._deadline:
            self.expire()
            return True
        return False

    def expire(self) -> None:
        """Roll back every provisional change and disarm (timer expiry or ArmFailSafe with 0 s)."""
        if not self.armed:
            return
        rollbacks = self._rollbacks
        self._clear()
        # Every rollback runs even if one fails: a half-undone commissioning is worse than a logged error.
        for callback in [*reversed(rollbacks), *self._expiry_listeners]:
            try:
                callback()
            except Exception:
                log.exception("fail-safe rollback step failed")

    def commit(self) -> None:
        """CommissioningComplete: keep the provisional changes and disarm."""
        commits = self._commits
        self._clear()
        for callback in [*commits, *self._commit_listeners]:
            callback()

    def disarm(self) -> None:
        """Clear the context without running any callback."""
        self._clear()

    def _clear(self) -> None:
        self._deadline = None
        self.fabric_index = 0
        self.session_id = 0
        self._rollbacks = []
        self._commits = []
