"""The commissioning window (Core spec 5.4.2, 5.5, 11.19): transitions, injected time, the attempt limit,
listeners, and PASE run end to end against the parameters the window hands out."""

from __future__ import annotations

import pytest

from clusters.administrator_commissioning.schema import CommissioningWindowStatusEnum as Status
from jfds_device.crypto.spake2p import PaseVerifier, make_verifier
from jfds_device.datamodel.commissioning_window import (
    BASIC_PBKDF_ITERATIONS,
    CloseReason,
    CommissioningMode,
    CommissioningWindow,
    WindowState,
)
from jfds_device.errors import LocalProtocolError
from jfds_device.securechannel.pase import PaseAttemptLimiter, PaseInitiator, PaseResponder

PASSCODE = 20202021
DISCRIMINATOR = 3840
SALT = bytes(range(32))
ADMIN_PASSCODE = 34567890  # the one-time passcode behind an enhanced window's verifier
ADMIN_SALT = b"enhanced-salt-16"
ADMIN_ITERATIONS = 2000
ADMIN_DISCRIMINATOR = 0x123
ADMIN_VERIFIER = make_verifier(ADMIN_PASSCODE, ADMIN_SALT, ADMIN_ITERATIONS)
T0 = 1000.0


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[WindowState, Status, int | None]] = []

    def __call__(self, window: CommissioningWindow) -> None:
        self.seen.append((window.state, window.window_status, window.admin_fabric_index))


@pytest.fixture
def window() -> CommissioningWindow:
    return CommissioningWindow(PASSCODE, DISCRIMINATOR, salt=SALT)


def open_enhanced(window: CommissioningWindow, now: float = T0, timeout: float = 300) -> None:
    window.open_enhanced(
        now, timeout, ADMIN_VERIFIER, ADMIN_SALT, ADMIN_ITERATIONS, ADMIN_DISCRIMINATOR,
        admin_fabric_index=2, admin_vendor_id=0x1234,
    )  # fmt: skip


def run_pase(window: CommissioningWindow, passcode: int) -> tuple[PaseInitiator, PaseResponder]:
    """A commissioner with ``passcode`` against a responder built from the window's parameters, in memory."""
    verifier = window.pase_verifier
    assert verifier is not None
    responder = PaseResponder(verifier, salt=window.salt, iterations=window.iterations, local_session_id=11)
    initiator = PaseInitiator(passcode, local_session_id=22)
    message = initiator.start()
    while message is not None:
        replies = responder.receive(*message)
        if not replies:
            break
        message = initiator.receive(*replies[0])
    return initiator, responder


# --------------------------------------------------------------------------------------------- construction


def test_closed_at_construction(window: CommissioningWindow) -> None:
    assert window.state is WindowState.CLOSED and not window.is_open and not window.accepting_pase
    assert window.pase_verifier is None
    assert window.get_timer() is None
    assert window.commissioning_mode is CommissioningMode.DISABLED
    assert window.window_status is Status.WINDOW_NOT_OPEN
    assert window.admin_fabric_index is None and window.admin_vendor_id is None
    assert window.discriminator == DISCRIMINATOR
    assert (window.salt, window.iterations) == (SALT, BASIC_PBKDF_ITERATIONS)


def test_basic_verifier_is_derived_once_with_a_random_salt() -> None:
    window = CommissioningWindow(PASSCODE, DISCRIMINATOR, random_bytes=lambda n: b"\x07" * n)
    assert window.salt == b"\x07" * 32 and window.iterations == 1000
    window.open_initial(T0)
    assert window.pase_verifier == make_verifier(PASSCODE, b"\x07" * 32, 1000)
    first = window.pase_verifier
    window.close(CloseReason.COMMISSIONED)
    window.open_basic(T0, 180)
    assert window.pase_verifier is first


@pytest.mark.parametrize(
    ("passcode", "discriminator", "kwargs"),
    [
        (11111111, DISCRIMINATOR, {}),  # trivial passcode (Core spec 5.1.7.1)
        (0, DISCRIMINATOR, {}),
        (PASSCODE, 4096, {}),
        (PASSCODE, DISCRIMINATOR, {"salt": b"short"}),
        (PASSCODE, DISCRIMINATOR, {"iterations": 999}),
    ],
)
def test_invalid_device_parameters(passcode: int, discriminator: int, kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        CommissioningWindow(passcode, discriminator, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- transitions


def test_initial_window_has_no_timeout_and_no_administrator(window: CommissioningWindow) -> None:
    window.open_initial(T0)
    assert window.state is WindowState.BASIC and window.is_initial and window.accepting_pase
    assert window.get_timer() is None
    assert not window.handle_timer(T0 + 10 * 24 * 3600.0)
    assert window.commissioning_mode is CommissioningMode.BASIC
    # Not opened by an Administrator: WindowStatus stays WindowNotOpen (11.19.7.1 note; SDK likewise).
    assert window.window_status is Status.WINDOW_NOT_OPEN
    assert window.admin_fabric_index is None and window.admin_vendor_id is None
    assert window.pase_verifier == make_verifier(PASSCODE, SALT, BASIC_PBKDF_ITERATIONS)
    assert window.close(CloseReason.COMMISSIONED)
    assert window.last_close_reason is CloseReason.COMMISSIONED and not window.is_initial


def test_initial_window_with_a_product_timeout(window: CommissioningWindow) -> None:
    window.open_initial(T0, timeout_s=900)
    assert window.get_timer() == T0 + 900
    assert window.handle_timer(T0 + 900)
    assert window.last_close_reason is CloseReason.TIMEOUT


def test_basic_window_times_out(window: CommissioningWindow) -> None:
    window.open_basic(T0, 180, admin_fabric_index=1, admin_vendor_id=0xFFF1)
    assert window.state is WindowState.BASIC and not window.is_initial
    assert window.window_status is Status.BASIC_WINDOW_OPEN
    assert (window.admin_fabric_index, window.admin_vendor_id) == (1, 0xFFF1)
    assert window.get_timer() == T0 + 180
    assert not window.handle_timer(T0 + 179.999)
    assert window.is_open
    assert window.handle_timer(T0 + 180)
    assert window.state is WindowState.CLOSED and window.last_close_reason is CloseReason.TIMEOUT
    assert window.get_timer() is None
    # AdminFabricIndex / AdminVendorId become null with the window (11.19.7.2, 11.19.7.3).
    assert window.admin_fabric_index is None and window.admin_vendor_id is None
    assert window.window_status is Status.WINDOW_NOT_OPEN
    assert not window.handle_timer(T0 + 10_000)


def test_enhanced_window_parameters_and_revert_on_close(window: CommissioningWindow) -> None:
    open_enhanced(window)
    assert window.state is WindowState.ENHANCED
    assert window.pase_verifier == ADMIN_VERIFIER
    assert (window.salt, window.iterations) == (ADMIN_SALT, ADMIN_ITERATIONS)
    assert window.discriminator == ADMIN_DISCRIMINATOR
    assert window.commissioning_mode is CommissioningMode.ENHANCED
    assert window.window_status is Status.ENHANCED_WINDOW_OPEN
    assert (window.admin_fabric_index, window.admin_vendor_id) == (2, 0x1234)
    assert window.close(CloseReason.REVOKED)
    # The temporary verifier is forgotten; the device's own parameters are back (11.19.8.3).
    assert window.pase_verifier is None
    assert window.discriminator == DISCRIMINATOR
    assert (window.salt, window.iterations) == (SALT, BASIC_PBKDF_ITERATIONS)
    window.open_basic(T0, 200)
    assert window.pase_verifier == make_verifier(PASSCODE, SALT, BASIC_PBKDF_ITERATIONS)
    assert window.discriminator == DISCRIMINATOR


def test_locally_opened_basic_window_is_not_an_administrator_window(window: CommissioningWindow) -> None:
    window.open_basic(T0, 180)
    assert window.window_status is Status.WINDOW_NOT_OPEN
    assert window.commissioning_mode is CommissioningMode.BASIC


def test_opening_an_open_window_is_a_caller_bug(window: CommissioningWindow) -> None:
    window.open_initial(T0)
    with pytest.raises(LocalProtocolError):
        window.open_basic(T0, 180)
    with pytest.raises(LocalProtocolError):
        open_enhanced(window)
    assert window.is_initial  # unchanged


def test_a_refused_open_leaves_an_enhanced_window_untouched(window: CommissioningWindow) -> None:
    open_enhanced(window)
    other = make_verifier(PASSCODE, SALT, 1000)
    with pytest.raises(LocalProtocolError):
        window.open_enhanced(T0, 180, other, SALT, 1000, 1, admin_fabric_index=1, admin_vendor_id=1)
    assert window.pase_verifier == ADMIN_VERIFIER and window.discriminator == ADMIN_DISCRIMINATOR
    assert (window.salt, window.iterations, window.admin_fabric_index) == (ADMIN_SALT, ADMIN_ITERATIONS, 2)


@pytest.mark.parametrize(
    ("salt", "iterations", "discriminator"),
    [(b"x" * 15, 1000, 1), (b"x" * 33, 1000, 1), (b"x" * 16, 999, 1), (b"x" * 16, 100_001, 1), (b"x" * 16, 1000, 4096)],
)
def test_enhanced_parameters_are_checked(
    window: CommissioningWindow, salt: bytes, iterations: int, discriminator: int
) -> None:
    with pytest.raises(LocalProtocolError):
        window.open_enhanced(
            T0, 180, ADMIN_VERIFIER, salt, iterations, discriminator, admin_fabric_index=1, admin_vendor_id=1
        )
    assert not window.is_open


@pytest.mark.parametrize("timeout", [0, -1])
def test_timeout_must_be_positive(window: CommissioningWindow, timeout: float) -> None:
    with pytest.raises(LocalProtocolError):
        window.open_basic(T0, timeout)


def test_close_when_closed_is_a_no_op(window: CommissioningWindow) -> None:
    recorder = Recorder()
    window.add_listener(recorder)
    assert not window.close(CloseReason.REVOKED)
    assert recorder.seen == [] and window.last_close_reason is None


# --------------------------------------------------------------------------------------------- listeners and fabrics


def test_listeners_see_every_change(window: CommissioningWindow) -> None:
    recorder = Recorder()
    window.add_listener(recorder)
    open_enhanced(window)
    window.fabric_removed(1)  # not the opener: nothing changes
    window.fabric_removed(2)
    window.close(CloseReason.REVOKED)
    assert recorder.seen == [
        (WindowState.ENHANCED, Status.ENHANCED_WINDOW_OPEN, 2),
        (WindowState.ENHANCED, Status.ENHANCED_WINDOW_OPEN, None),
        (WindowState.CLOSED, Status.WINDOW_NOT_OPEN, None),
    ]
    window.remove_listener(recorder)
    window.open_initial(T0)
    assert len(recorder.seen) == 3


def test_removing_the_openers_fabric_nulls_the_administrator_only(window: CommissioningWindow) -> None:
    window.open_basic(T0, 180, admin_fabric_index=3, admin_vendor_id=0xFFF1)
    window.fabric_removed(3)
    assert window.admin_fabric_index is None and window.admin_vendor_id is None
    assert window.is_open and window.window_status is Status.BASIC_WINDOW_OPEN
    assert window.get_timer() == T0 + 180


# --------------------------------------------------------------------------------------------- attempts (Core spec 5.5)


def test_twenty_failed_pase_attempts_close_the_window(window: CommissioningWindow) -> None:
    recorder = Recorder()
    window.open_basic(T0, 900, admin_fabric_index=1, admin_vendor_id=0xFFF1)
    window.add_listener(recorder)
    for attempt in range(1, 21):
        initiator, responder = run_pase(window, PASSCODE + 1)
        assert responder.failed and responder.failed_confirmation and initiator.failed
        closed = window.observe_pase(responder)
        assert closed is (attempt == 20)
        assert window.is_open is (attempt < 20)
    assert window.last_close_reason is CloseReason.FAILED_ATTEMPTS
    assert window.limiter.failed_attempts == 20
    assert recorder.seen == [(WindowState.CLOSED, Status.WINDOW_NOT_OPEN, None)]
    # A new window starts a new budget.
    window.open_basic(T0 + 1, 180)
    assert window.limiter.failed_attempts == 0
    initiator, responder = run_pase(window, PASSCODE)
    assert responder.done and initiator.done


def test_handshakes_that_never_guess_are_not_counted(window: CommissioningWindow) -> None:
    window.open_initial(T0)
    verifier = window.pase_verifier
    assert verifier is not None
    for _ in range(25):
        responder = PaseResponder(verifier, salt=window.salt, iterations=window.iterations, local_session_id=1)
        responder.abort()  # timed out before Pake1: no passcode guess consumed
        assert not window.observe_pase(responder)
    assert window.is_open and window.limiter.failed_attempts == 0


def test_limiter_is_injectable() -> None:
    window = CommissioningWindow(PASSCODE, DISCRIMINATOR, salt=SALT, limiter=PaseAttemptLimiter(2))
    window.open_initial(T0)
    assert not window.attempt_failed()
    assert window.attempt_failed()
    assert window.last_close_reason is CloseReason.FAILED_ATTEMPTS


def test_established_session_pauses_listening_until_the_attempt_fails(window: CommissioningWindow) -> None:
    recorder = Recorder()
    window.open_basic(T0, 300, admin_fabric_index=1, admin_vendor_id=0xFFF1)
    window.add_listener(recorder)
    window.session_established()
    assert window.is_open and not window.accepting_pase
    assert window.commissioning_mode is CommissioningMode.DISABLED
    assert window.window_status is Status.BASIC_WINDOW_OPEN  # still open for the cluster
    window.session_established()  # idempotent
    assert not window.attempt_failed()  # e.g. the fail-safe expired
    assert window.accepting_pase and window.commissioning_mode is CommissioningMode.BASIC
    assert window.limiter.failed_attempts == 1
    assert len(recorder.seen) == 2


def test_failed_commissioning_attempts_share_the_budget_with_pase_failures(window: CommissioningWindow) -> None:
    window.open_initial(T0)
    for _ in range(19):
        window.session_established()
        assert not window.attempt_failed()
    _, responder = run_pase(window, PASSCODE + 1)
    assert window.observe_pase(responder)
    assert not window.is_open


def test_attempts_on_a_closed_window_do_not_reopen_it(window: CommissioningWindow) -> None:
    assert not window.attempt_failed()
    assert not window.is_open and not window.accepting_pase
    window.session_established()
    assert not window.is_open


# --------------------------------------------------------------------------------------------- PASE end to end


def test_enhanced_window_verifier_is_accepted_by_a_pase_responder(window: CommissioningWindow) -> None:
    open_enhanced(window)
    initiator, responder = run_pase(window, ADMIN_PASSCODE)
    assert initiator.done and responder.done
    assert initiator.result is not None and responder.result is not None
    assert initiator.result.keys == responder.result.keys
    # The device's own passcode does not open an enhanced window.
    initiator, responder = run_pase(window, PASSCODE)
    assert responder.failed and responder.failed_confirmation and not initiator.done


def test_enhanced_window_from_a_serialized_verifier(window: CommissioningWindow) -> None:
    """The 97-byte blob OpenCommissioningWindow carries round-trips into a working verifier."""
    verifier = PaseVerifier.from_bytes(ADMIN_VERIFIER.to_bytes())
    window.open_enhanced(
        T0, 180, verifier, ADMIN_SALT, ADMIN_ITERATIONS, 7, admin_fabric_index=1, admin_vendor_id=0xFFF1
    )
    initiator, responder = run_pase(window, ADMIN_PASSCODE)
    assert initiator.done and responder.done


def test_basic_window_accepts_the_device_passcode(window: CommissioningWindow) -> None:
    window.open_initial(T0)
    initiator, responder = run_pase(window, PASSCODE)
    assert initiator.done and responder.done
