"""One commissioning attempt over a PASE session, bounded by the fail-safe (sans-IO: no clock, no I/O).

A commissioner that opens a PASE session and then goes away (a crashed phone app, a controller that only
sends ArmFailSafe(0)) must not leave the node deaf to the next commissioner. The CHIP SDK's
CommissioningWindowManager (connectedhomeip src/app/server/CommissioningWindowManager.cpp) guarantees that by
tying every PASE session to the fail-safe, and this object does the same:

* PASE established (``pase_established``, SDK ``OnSessionEstablished``): the window stops listening and the
  fail-safe is armed for ``FAIL_SAFE_EXPIRY_LENGTH_S`` (60 s) with no fabric
  (``ArmFailSafe(kUndefinedFabricIndex, ...)``), held by that PASE session, so its commissioner may re-arm it
  (ArmFailSafe, Core spec 11.10.7.2) and nobody else can. If it was already armed, it is left as it is
  (the SDK logs an error too; an open window refuses CASE arming, so this is not expected).
* Fail-safe expiry (timer, ArmFailSafe(0), RevokeCommissioning; SDK ``kFailSafeTimerExpired``): after the
  rollbacks the PASE sessions end and the attempt counts as failed (SDK ``HandleFailedAttempt``): the window
  listens and advertises again, or closes at the 20th failure (Core spec 5.5). A window whose commissioning
  timeout has passed stays closed: the timeout still applies while a PASE session exists.
* The commissioning PASE session lost (peer CloseSession; SDK ``OnSessionReleased`` ->
  ``ExpireFailSafeIfArmed``): the fail-safe expires as above. Without a fail-safe of its own the attempt
  still counts as failed, so the window never stays deaf.
* CommissioningComplete committed (SDK ``kCommissioningComplete``): the window closes and every PASE
  session ends (``ExpireAllPASESessions``): implicit Administer over PASE ends with commissioning.

Ending sessions is I/O; the owner passes ``end_pase_sessions``, which must not close them re-entrantly (the
node defers it so an ArmFailSafe(0) still gets its response on the session it ends).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from clusters.general_commissioning.logic import FailSafe
from clusters.general_commissioning.schema import FAIL_SAFE_EXPIRY_LENGTH_S
from jfds_device.datamodel.commissioning_window import CloseReason, CommissioningWindow

__all__ = ["NO_FABRIC", "CommissioningAttempt"]

log = logging.getLogger(__name__)

NO_FABRIC = 0  # kUndefinedFabricIndex: a fail-safe armed over PASE before AddNOC belongs to no fabric


class CommissioningAttempt:
    """Arms the fail-safe for each PASE session and turns its expiry or loss into a failed attempt."""

    def __init__(
        self,
        window: CommissioningWindow,
        failsafe: FailSafe,
        *,
        end_pase_sessions: Callable[[], None],
        expiry_s: float = FAIL_SAFE_EXPIRY_LENGTH_S,
    ) -> None:
        if not expiry_s > 0:
            raise ValueError("the fail-safe a PASE session arms needs a positive expiry")
        self.window = window
        self.failsafe = failsafe
        self._end_pase_sessions = end_pase_sessions
        self._expiry_s = expiry_s
        self._session_id: int | None = None
        self._owns_failsafe = False
        failsafe.add_expiry_listener(self._failsafe_expired)
        failsafe.add_commit_listener(self._commissioning_complete)

    @property
    def session_id(self) -> int | None:
        """Local id of the PASE session of the attempt in progress, or None."""
        return self._session_id

    def pase_established(self, session_id: int, now: float) -> None:
        """A PASE session now exists: stop listening, arm the fail-safe on its behalf."""
        self.window.session_established()
        if self._session_id is not None:
            # Two handshakes that started while the window listened: the first attempt keeps the fail-safe, and
            # this session ends with it (every PASE session ends when the fail-safe expires or commits).
            log.warning("PASE session %d established during the attempt of session %d", session_id, self._session_id)
            return
        self._session_id = session_id
        if self.failsafe.armed:
            # SDK: "arm failsafe is already armed on PASE session establishment completion" (not expected: an
            # open window refuses CASE arming and a window cannot open under an armed fail-safe).
            log.error("fail-safe already armed when PASE session %d was established; left as it is", session_id)
            self._owns_failsafe = False
            return
        self.failsafe.arm(self._expiry_s, now, fabric_index=NO_FABRIC, session_id=session_id)
        self._owns_failsafe = True
        log.info("PASE session %d: fail-safe armed for %g s", session_id, self._expiry_s)

    def pase_session_closed(self, session_id: int) -> None:
        """A PASE session is gone. If it was the commissioning session, the attempt fails (SDK
        ``OnSessionReleased``): the fail-safe it holds expires, which rolls back and counts the failure."""
        if session_id != self._session_id:
            return  # already ended by an expiry or CommissioningComplete, or not a commissioning session
        if self._owns_failsafe and self.failsafe.armed:
            log.info("commissioning PASE session %d closed: expiring its fail-safe", session_id)
            self.failsafe.expire()  # -> _failsafe_expired
            return
        self._session_id = None
        self._owns_failsafe = False
        self._attempt_failed()

    def _failsafe_expired(self) -> None:
        # Core spec 11.10.7.2.1: after the rollback the commissioning session ends; SDK HandleFailedAttempt.
        session_id, self._session_id = self._session_id, None
        self._owns_failsafe = False
        self._end_pase_sessions()
        if session_id is not None:
            log.info("fail-safe expired: the commissioning attempt of PASE session %d ends", session_id)
            self._attempt_failed()
        elif self.window.is_open and not self.window.accepting_pase:
            self.window.attempt_failed()  # no attempt on record, yet the window waits for one: never stay deaf

    def _attempt_failed(self) -> None:
        if not self.window.is_open:
            log.info("commissioning attempt failed; the commissioning window is closed")
            return
        self.window.attempt_failed()
        log.info("commissioning attempt failed (failures in this window: %d of %d); %s",
                 self.window.limiter.failed_attempts, self.window.limiter.max_failed_attempts,
                 "listening for PASE again" if self.window.accepting_pase else "the window closed")

    def _commissioning_complete(self) -> None:
        self._session_id = None
        self._owns_failsafe = False
        self.window.close(CloseReason.COMMISSIONED)
        self._end_pase_sessions()
