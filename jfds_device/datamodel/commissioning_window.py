"""The commissioning window (Core spec 5.4.2, 5.5, 11.19) as a sans-IO object: no clock, no timers, no I/O.

States, and what opens or closes them::

    CLOSED --open_initial / open_basic--> BASIC    --close(reason) / timeout / 20 failed attempts--> CLOSED
    CLOSED --open_enhanced------------->  ENHANCED --close(reason) / timeout / 20 failed attempts--> CLOSED

A BASIC window uses the device's own passcode (its verifier is derived once, from the passcode, a random salt
and 1000 PBKDF2 iterations, at construction); an ENHANCED window uses the verifier, salt, iterations and
discriminator an Administrator sent in OpenCommissioningWindow (Core spec 5.4.2, 11.19.8.1).

Time: every entry point that can start or end a deadline takes ``now`` (seconds, monotonic). ``get_timer()``
gives the deadline, ``handle_timer(now)`` closes the window once it has passed (CloseReason.TIMEOUT).

The initial window (``open_initial``: the node has no fabric, e.g. after a factory reset) has no timeout by
default. Core spec 5.4.2 (Announcement Duration) leaves how long an uncommissioned device announces to the
product (at least 3 minutes; 15 minutes is the SDK's default for devices that also advertise over BLE). An
on-network node that cannot be commissioned until it is power-cycled is worse than one that stays
discoverable, so it stays open until commissioned; pass ``timeout_s`` to bound it.

Listening: between a PASE session being established and commissioning ending, the window stays open (the
Administrator attributes keep their values) but the node neither accepts another PASE handshake nor
advertises commissioning mode (``accepting_pase`` is False, ``commissioning_mode`` 0), as the CHIP SDK's
CommissioningWindowManager does. ``attempt_failed()`` (fail-safe expiry, PASE session lost) resumes
listening, or closes the window at the 20th failed attempt (Core spec 5.5).

Listeners (``add_listener``) are called after every observable change with the window itself: the node
re-advertises DNS-SD, the AdministratorCommissioning server bumps its DataVersion.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable

from clusters.administrator_commissioning.schema import MAX_DISCRIMINATOR, CommissioningWindowStatusEnum
from jfds_device.crypto.spake2p import PaseVerifier, make_verifier
from jfds_device.errors import LocalProtocolError
from jfds_device.onboarding import is_valid_passcode
from jfds_device.securechannel import pase_messages as pm
from jfds_device.securechannel.pase import PaseAttemptLimiter, PaseResponder

__all__ = [
    "BASIC_PBKDF_ITERATIONS",
    "CloseReason",
    "CommissioningMode",
    "CommissioningWindow",
    "WindowListener",
    "WindowState",
]

log = logging.getLogger(__name__)

BASIC_PBKDF_ITERATIONS = 1000  # the spec minimum (Core spec 3.9); the CHIP SDK's default for on-device verifiers
BASIC_SALT_LENGTH = 32  # PBKDF salt of the device's own verifier: the maximum of 16..32 (Core spec 4.14.1.2)

WindowListener = Callable[["CommissioningWindow"], None]
RandomBytes = Callable[[int], bytes]


class WindowState(enum.Enum):
    CLOSED = "closed"
    BASIC = "basic"  # Basic Commissioning Method: the device's own passcode (5.4.2)
    ENHANCED = "enhanced"  # Enhanced Commissioning Method: an Administrator's one-time verifier (5.4.2)


class CommissioningMode(enum.IntEnum):
    """The DNS-SD commissionable TXT key CM (Core spec 4.3.1)."""

    DISABLED = 0
    BASIC = 1
    ENHANCED = 2


class CloseReason(enum.Enum):
    TIMEOUT = "commissioning timeout elapsed"  # 11.19.8.1 CommissioningTimeout, or the initial window's
    REVOKED = "revoked"  # RevokeCommissioning (11.19.8.3)
    COMMISSIONED = "commissioning complete"  # CommissioningComplete committed the fail-safe (11.10.7.6)
    FAILED_ATTEMPTS = "too many failed attempts"  # Core spec 5.5: exit commissioning mode after 20
    SHUTDOWN = "node shutting down"


class CommissioningWindow:
    """Which commissioning window is open, its PASE parameters, deadline, attempt limit and Administrator."""

    def __init__(
        self,
        passcode: int,
        discriminator: int,
        *,
        salt: bytes | None = None,
        iterations: int = BASIC_PBKDF_ITERATIONS,
        limiter: PaseAttemptLimiter | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        """``passcode`` and ``discriminator`` are the device's own (onboarding payload, Core spec 5.1.1).
        ``salt`` defaults to ``BASIC_SALT_LENGTH`` random bytes; the basic verifier is derived here, once."""
        if not is_valid_passcode(passcode):
            raise LocalProtocolError("invalid setup passcode (Core spec 5.1.7.1)")
        _check_discriminator(discriminator)
        basic_salt = random_bytes(BASIC_SALT_LENGTH) if salt is None else bytes(salt)
        _check_pbkdf(basic_salt, iterations)
        self.passcode = passcode
        self.device_discriminator = discriminator
        self.limiter = limiter if limiter is not None else PaseAttemptLimiter()
        self._basic = (make_verifier(passcode, basic_salt, iterations), basic_salt, iterations)
        self._state = WindowState.CLOSED
        self._deadline: float | None = None
        self._initial = False
        self._via_admin = False
        self._listening = False
        self._enhanced: tuple[PaseVerifier, bytes, int] | None = None
        self._enhanced_discriminator = discriminator
        self._admin_fabric_index: int | None = None
        self._admin_vendor_id: int | None = None
        self.last_close_reason: CloseReason | None = None
        self._listeners: list[WindowListener] = []

    # ------------------------------------------------------------------------------------------ state

    @property
    def state(self) -> WindowState:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._state is not WindowState.CLOSED

    @property
    def is_initial(self) -> bool:
        """Open as the initial window of an uncommissioned node (``open_initial``)."""
        return self.is_open and self._initial

    @property
    def accepting_pase(self) -> bool:
        """Open and not busy with an established PASE session: a PBKDFParamRequest may start a handshake."""
        return self.is_open and self._listening

    @property
    def deadline(self) -> float | None:
        return self._deadline

    # ------------------------------------------------------------------------------------------ PASE parameters

    @property
    def pase_verifier(self) -> PaseVerifier | None:
        """The verifier the PASE responder must use, or None while closed."""
        if self._state is WindowState.ENHANCED and self._enhanced is not None:
            return self._enhanced[0]
        return self._basic[0] if self._state is WindowState.BASIC else None

    @property
    def salt(self) -> bytes:
        """PBKDF salt of the open window's verifier (the device's own while closed or basic)."""
        return self._pbkdf_source()[1]

    @property
    def iterations(self) -> int:
        return self._pbkdf_source()[2]

    def _pbkdf_source(self) -> tuple[PaseVerifier, bytes, int]:
        if self._state is WindowState.ENHANCED and self._enhanced is not None:
            return self._enhanced
        return self._basic

    # ------------------------------------------------------------------------------------------ advertising

    @property
    def discriminator(self) -> int:
        """The discriminator to advertise: an enhanced window's own, else the device's (11.19.8.1)."""
        return self._enhanced_discriminator if self._state is WindowState.ENHANCED else self.device_discriminator

    @property
    def commissioning_mode(self) -> CommissioningMode:
        """DNS-SD CM: 0 while closed or busy with a PASE session, 1 basic, 2 enhanced (Core spec 4.3.1)."""
        if not self.accepting_pase:
            return CommissioningMode.DISABLED
        return CommissioningMode.ENHANCED if self._state is WindowState.ENHANCED else CommissioningMode.BASIC

    # ------------------------------------------------------------------------------------------ cluster attributes

    @property
    def window_status(self) -> CommissioningWindowStatusEnum:
        """WindowStatus (11.19.7.1): only windows an Administrator opened count. The initial window (and one
        opened locally, without an Administrator) reads WindowNotOpen, per the spec's note and the SDK's
        CommissioningWindowStatusForCluster."""
        if not self._via_admin or self._state is WindowState.CLOSED:
            return CommissioningWindowStatusEnum.WINDOW_NOT_OPEN
        if self._state is WindowState.ENHANCED:
            return CommissioningWindowStatusEnum.ENHANCED_WINDOW_OPEN
        return CommissioningWindowStatusEnum.BASIC_WINDOW_OPEN

    @property
    def admin_fabric_index(self) -> int | None:
        """AdminFabricIndex (11.19.7.2); None is null: no window, not opened by an Administrator, or that
        Administrator's fabric has since been removed."""
        return self._admin_fabric_index

    @property
    def admin_vendor_id(self) -> int | None:
        """AdminVendorId (11.19.7.3); None is null."""
        return self._admin_vendor_id

    # ------------------------------------------------------------------------------------------ transitions

    def open_initial(self, now: float, timeout_s: float | None = None) -> None:
        """Open the basic window of an uncommissioned node (5.4.2); no deadline unless ``timeout_s``."""
        self._open(WindowState.BASIC, now, timeout_s, initial=True, admin=(None, None))

    def open_basic(
        self,
        now: float,
        timeout_s: float,
        *,
        admin_fabric_index: int | None = None,
        admin_vendor_id: int | None = None,
    ) -> None:
        """Open a Basic Commissioning Method window with the device's own passcode (11.19.8.2).

        The caller (the cluster server) enforces the 180..900 s CommissioningTimeout range; here any positive
        timeout is accepted so tools and tests can open shorter or longer windows.
        """
        self._open(WindowState.BASIC, now, timeout_s, initial=False, admin=(admin_fabric_index, admin_vendor_id))

    def open_enhanced(
        self,
        now: float,
        timeout_s: float,
        verifier: PaseVerifier,
        salt: bytes,
        iterations: int,
        discriminator: int,
        *,
        admin_fabric_index: int | None,
        admin_vendor_id: int | None,
    ) -> None:
        """Open an Enhanced Commissioning Method window with an Administrator's verifier (11.19.8.1)."""
        salt = bytes(salt)
        _check_pbkdf(salt, iterations)
        _check_discriminator(discriminator)
        self._open(
            WindowState.ENHANCED,
            now,
            timeout_s,
            initial=False,
            admin=(admin_fabric_index, admin_vendor_id),
            enhanced=((verifier, salt, iterations), discriminator),
        )

    def _open(
        self,
        state: WindowState,
        now: float,
        timeout_s: float | None,
        *,
        initial: bool,
        admin: tuple[int | None, int | None],
        enhanced: tuple[tuple[PaseVerifier, bytes, int], int] | None = None,
    ) -> None:
        # Every check comes before the first assignment: a refused open leaves an open window untouched.
        if self.is_open:
            # The cluster answers Busy before getting here (11.19.8.1); reaching this is a caller bug.
            raise LocalProtocolError(f"a {self._state.value} commissioning window is already open")
        if timeout_s is not None and not timeout_s > 0:
            raise LocalProtocolError("the commissioning timeout must be positive")
        self._enhanced, self._enhanced_discriminator = enhanced or (None, self.device_discriminator)
        self._state = state
        self._deadline = None if timeout_s is None else now + timeout_s
        self._initial = initial
        self._admin_fabric_index, self._admin_vendor_id = admin
        # SDK: "opened via the cluster" is keyed on the opener's vendor id, which survives fabric removal.
        self._via_admin = admin[0] is not None or admin[1] is not None
        self._listening = True
        self.limiter.reset()  # the 20-attempt budget is per window (5.5)
        self.last_close_reason = None
        log.info(
            "%s commissioning window opened (discriminator %d, %s)",
            state.value,
            self.discriminator,
            "no timeout" if timeout_s is None else f"{timeout_s:g} s",
        )
        self._notify()

    def close(self, reason: CloseReason) -> bool:
        """Close the window, forgetting an enhanced verifier and the Administrator (11.19.7.2, 11.19.8.3).
        Returns whether it was open. PASE sessions already established are not torn down here: the
        CommissioningTimeout only ends announcements and new sessions (11.19.8.1); the caller decides."""
        if not self.is_open:
            return False
        log.info("%s commissioning window closed: %s", self._state.value, reason.value)
        self._state = WindowState.CLOSED
        self._deadline = None
        self._initial = False
        self._via_admin = False
        self._listening = False
        self._enhanced = None  # RevokeCommissioning: "delete the temporary PAKEPasscodeVerifier" (11.19.8.3)
        self._enhanced_discriminator = self.device_discriminator
        self._admin_fabric_index = self._admin_vendor_id = None
        self.last_close_reason = reason
        self._notify()
        return True

    def fabric_removed(self, fabric_index: int) -> None:
        """RemoveFabric of the opening Administrator's fabric nulls AdminFabricIndex and AdminVendorId
        (11.19.7.2); the window itself stays open. (The SDK nulls only the fabric index; the spec's
        AdminVendorId describes the same Administrator, so both go.)"""
        if self._admin_fabric_index is not None and self._admin_fabric_index == fabric_index:
            self._admin_fabric_index = self._admin_vendor_id = None
            self._notify()

    # ------------------------------------------------------------------------------------------ time

    def get_timer(self) -> float | None:
        """The commissioning timeout deadline, or None (closed, or an initial window without timeout)."""
        return self._deadline

    def handle_timer(self, now: float) -> bool:
        """Close the window if its deadline has passed; returns whether it closed now."""
        if self._deadline is not None and now >= self._deadline:
            return self.close(CloseReason.TIMEOUT)
        return False

    # ------------------------------------------------------------------------------------------ attempts

    def observe_pase(self, responder: PaseResponder) -> bool:
        """Feed one ended (failed) PASE responder to the limiter; close at the limit. Returns whether the
        window closed. Only attempts that consumed a passcode guess count (see ``PaseAttemptLimiter``)."""
        if self.limiter.observe(responder) and self.is_open:
            log.warning("%d failed PASE attempts", self.limiter.failed_attempts)
            return self.close(CloseReason.FAILED_ATTEMPTS)
        return False

    def session_established(self) -> None:
        """A PASE session now exists through this window: stop accepting PASE and advertising commissioning
        mode until the attempt ends (SDK: CommissioningWindowManager::OnSessionEstablished)."""
        if self.is_open and self._listening:
            self._listening = False
            self._notify()

    def attempt_failed(self) -> bool:
        """A commissioning attempt over an established PASE session failed (fail-safe expired, session lost):
        count it, then listen again, or close at the limit (Core spec 5.5). Returns whether the window closed."""
        if self.limiter.record_failure() and self.is_open:
            log.warning("%d failed commissioning attempts", self.limiter.failed_attempts)
            return self.close(CloseReason.FAILED_ATTEMPTS)
        if self.is_open and not self._listening:
            self._listening = True
            self._notify()
        return False

    # ------------------------------------------------------------------------------------------ listeners

    def add_listener(self, listener: WindowListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: WindowListener) -> None:
        self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)


def _check_pbkdf(salt: bytes, iterations: int) -> None:
    if not pm.PBKDF_SALT_MIN_LENGTH <= len(salt) <= pm.PBKDF_SALT_MAX_LENGTH:
        raise LocalProtocolError(f"PBKDF salt must be {pm.PBKDF_SALT_MIN_LENGTH}..{pm.PBKDF_SALT_MAX_LENGTH} bytes")
    if not pm.PBKDF_ITERATIONS_MIN <= iterations <= pm.PBKDF_ITERATIONS_MAX:
        raise LocalProtocolError(f"PBKDF iterations must be {pm.PBKDF_ITERATIONS_MIN}..{pm.PBKDF_ITERATIONS_MAX}")


def _check_discriminator(discriminator: int) -> None:
    if not 0 <= discriminator <= MAX_DISCRIMINATOR:
        raise LocalProtocolError(f"discriminator {discriminator} outside 0..{MAX_DISCRIMINATOR}")
