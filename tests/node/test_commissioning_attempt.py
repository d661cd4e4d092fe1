"""CommissioningAttempt: every PASE session runs under the fail-safe, so an abandoned one cannot wedge the window.

Driven on virtual time through a whole root node (General Commissioning, Operational Credentials and
Administrator Commissioning answer as they do on the wire), following the CHIP SDK's
CommissioningWindowManager (OnSessionEstablished, HandleFailedAttempt, OnSessionReleased) and General
Commissioning's ArmFailSafe / CommissioningComplete handlers.
"""

from __future__ import annotations

import logging

import pytest

from clusters.administrator_commissioning import schema as ac
from clusters.general_commissioning import schema as gc
from clusters.general_commissioning.schema import CommissioningErrorEnum as Error
from clusters.operational_credentials.schema import NodeOperationalCertStatusEnum as NocStatus
from jfds_device.codec.model import AuthMode
from jfds_device.datamodel.commissioning_window import CloseReason, CommissioningMode
from jfds_device.errors import ActionError
from jfds_device.im.provider import AttributePath, RequestContext, Status, SubjectDescriptor
from jfds_device.node.commissioning_attempt import NO_FABRIC, CommissioningAttempt
from jfds_device.securechannel.pase import PaseAttemptLimiter
from tests.clusters.test_operational_credentials import ADD_NOC, ADD_ROOT, ARM, COMPLETE, GC, Harness
from tests.test_fabrics import Commissioner

EXPIRY = gc.FAIL_SAFE_EXPIRY_LENGTH_S  # 60 s, the SDK's CHIP_DEVICE_CONFIG_FAILSAFE_EXPIRY_LENGTH_SEC
MAX_CUMULATIVE = gc.MAX_CUMULATIVE_FAILSAFE_S
AC_CLUSTER = ac.CLUSTER_ID
OPEN_BASIC, REVOKE = 0x01, 0x02


class Node(Harness):
    """A root node with its initial window open and a CommissioningAttempt; ``ended`` counts how often the
    PASE sessions were told to end (the shell closes them)."""

    def __init__(self) -> None:
        super().__init__()
        self.window = self.root.window
        self.failsafe = self.root.failsafe
        self.ended = 0
        self.attempt = CommissioningAttempt(self.window, self.failsafe, end_pase_sessions=self._end)
        self.window.open_initial(self.now)

    def _end(self) -> None:
        self.ended += 1

    def establish(self) -> int:
        """A new PASE session completes its handshake."""
        self.new_pase()
        self.attempt.pase_established(self.pase_session, self.now)
        return self.pase_session

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.root.handle_timer(self.now)
        self.window.handle_timer(self.now)

    def arm_status(self, ctx: RequestContext, seconds: int, breadcrumb: int = 1) -> Error:
        return Error(self.invoke(ctx, ARM, {0: seconds, 1: breadcrumb}, cluster=GC)[0])

    def breadcrumb(self) -> int:
        return int(self.node.read_attribute(self.pase(), AttributePath(0, GC, gc.BREADCRUMB)))

    def listening(self) -> bool:
        return self.window.accepting_pase and self.window.commissioning_mode is not CommissioningMode.DISABLED


@pytest.fixture
def n() -> Node:
    return Node()


def test_pase_establishment_arms_a_60_s_fail_safe_without_fabric(n: Node) -> None:
    session = n.establish()
    assert n.failsafe.armed and n.failsafe.deadline == n.now + EXPIRY
    assert n.failsafe.fabric_index == NO_FABRIC and n.failsafe.held_by(NO_FABRIC, session)
    assert n.attempt.session_id == session
    assert n.window.is_open and not n.listening()  # stops advertising _matterc._udp (CM=0)
    assert n.root.get_timer() == n.now + EXPIRY


def test_abandoned_pase_session_expires_and_the_window_listens_again(n: Node) -> None:
    n.establish()
    n.advance(EXPIRY - 0.001)
    assert n.failsafe.armed and not n.listening() and n.ended == 0
    n.advance(0.001)
    assert not n.failsafe.armed
    assert n.ended == 1  # the PASE session is closed (CloseSession)
    assert n.listening() and n.window.commissioning_mode is CommissioningMode.BASIC
    assert n.window.limiter.failed_attempts == 1  # SDK HandleFailedAttempt
    assert n.attempt.session_id is None


def test_the_next_commissioner_succeeds_after_an_abandoned_attempt(n: Node) -> None:
    n.establish()
    n.advance(EXPIRY)
    index = n.commission(Commissioner())
    assert index == 1
    assert not n.window.is_open and n.window.last_close_reason is CloseReason.COMMISSIONED


def test_arm_fail_safe_0_on_a_fail_safe_the_commissioner_never_armed(n: Node) -> None:
    """The commissioner sends only ArmFailSafe(0): it expires the fail-safe PASE establishment armed
    (General Commissioning ArmFailSafe: expiry 0 is ForceFailSafeTimerExpiry), same path as the timer."""
    n.establish()
    assert n.arm_status(n.pase(), 0, breadcrumb=5) is Error.OK
    assert not n.failsafe.armed and n.ended == 1 and n.listening()
    assert n.window.limiter.failed_attempts == 1
    assert n.breadcrumb() == 0
    assert n.root.get_timer() is None


def test_arm_fail_safe_0_without_any_fail_safe_is_ok_and_changes_nothing() -> None:
    n = Node()
    n.window.close(CloseReason.SHUTDOWN)
    assert n.arm_status(n.case(1), 0) is Error.OK  # SDK: ForceFailSafeTimerExpiry returns when not armed
    assert not n.failsafe.armed and n.ended == 0 and n.window.limiter.failed_attempts == 0


def test_the_pase_commissioner_may_re_arm_and_nobody_else_may(n: Node) -> None:
    session = n.establish()
    armed_at = n.now
    n.advance(10)
    assert n.arm_status(n.pase(), 120, breadcrumb=3) is Error.OK  # no fabric index: matches the PASE session
    assert n.failsafe.deadline == n.now + 120 and n.breadcrumb() == 3
    other_pase = RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True), session_id=session + 9)
    assert n.arm_status(other_pase, 60) is Error.BUSY_WITH_OTHER_ADMIN
    assert n.arm_status(n.case(1), 60) is Error.BUSY_WITH_OTHER_ADMIN
    assert n.arm_status(n.case(1), 0) is Error.BUSY_WITH_OTHER_ADMIN  # nor disarm it
    assert n.failsafe.armed
    # Re-arming never outlives MaxCumulativeFailsafeSeconds from PASE establishment (11.10.5.2).
    n.advance(100)
    assert n.arm_status(n.pase(), 900) is Error.OK
    assert n.failsafe.deadline == armed_at + MAX_CUMULATIVE


def test_commissioning_complete_needs_case_on_the_new_fabric(n: Node) -> None:
    n.establish()
    # CommissioningComplete is fabric-scoped: over PASE before AddNOC there is no accessing fabric.
    with pytest.raises(ActionError) as refused:
        n.complete(n.pase())
    assert refused.value.status is Status.UNSUPPORTED_ACCESS
    # Armed, so no longer NoFailSafe: CASE of a fabric that does not hold it is InvalidAuthentication.
    assert Error(n.complete(n.case(3))) is Error.INVALID_AUTHENTICATION
    assert n.failsafe.armed and n.window.is_open and n.ended == 0


def test_commissioning_complete_closes_the_window_and_ends_pase_sessions(n: Node) -> None:
    commissioner = Commissioner()
    session = n.establish()
    n.invoke(n.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, icac = commissioner.chain(n.csr(n.pase()), 0x1234)
    response = n.add_noc(n.pase(), noc, icac, commissioner.ipk)
    assert response[0] == NocStatus.OK
    index = int(response[1])
    assert n.failsafe.fabric_index == index  # AddNOC binds the PASE-armed fail-safe to the new fabric
    assert Error(n.complete(n.case(index))) is Error.OK
    assert not n.failsafe.armed
    assert not n.window.is_open and n.window.last_close_reason is CloseReason.COMMISSIONED
    assert n.ended == 1  # SDK ExpireAllPASESessions: implicit Administer over PASE ends here
    n.attempt.pase_session_closed(session)  # the shell reports the session it closed
    assert n.window.limiter.failed_attempts == 0 and not n.window.is_open
    assert [f.fabric_index for f in n.table.fabrics()] == [index]


def test_losing_the_pase_session_expires_its_fail_safe_and_rolls_back(n: Node) -> None:
    """SDK OnSessionReleased: a commissioner that closes its PASE session (CloseSession) mid-way fails the
    attempt at once; what it staged is rolled back."""
    commissioner = Commissioner()
    session = n.establish()
    n.invoke(n.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, icac = commissioner.chain(n.csr(n.pase()), 0x1234)
    assert n.add_noc(n.pase(), noc, icac, commissioner.ipk)[0] == NocStatus.OK
    assert n.table.fabrics(include_pending=True)
    n.attempt.pase_session_closed(session)
    assert not n.failsafe.armed and n.ended == 1
    assert n.table.fabrics(include_pending=True) == []
    assert n.listening() and n.window.limiter.failed_attempts == 1
    n.attempt.pase_session_closed(session)  # reported twice: counted once
    assert n.window.limiter.failed_attempts == 1


def test_a_session_closed_after_its_expiry_is_not_counted_again(n: Node) -> None:
    session = n.establish()
    n.advance(EXPIRY)
    n.attempt.pase_session_closed(session)  # the close the expiry asked for
    assert n.window.limiter.failed_attempts == 1 and n.listening()


def test_a_new_attempt_is_not_failed_by_the_late_close_of_the_previous_session(n: Node) -> None:
    first = n.establish()
    n.advance(EXPIRY)
    second = n.establish()
    n.attempt.pase_session_closed(first)
    assert n.failsafe.armed and n.failsafe.held_by(NO_FABRIC, second) and not n.listening()
    assert n.window.limiter.failed_attempts == 1


def test_the_window_timeout_still_applies_during_an_attempt(n: Node) -> None:
    n.window.close(CloseReason.SHUTDOWN)
    n.window.open_basic(n.now, 180, admin_fabric_index=1, admin_vendor_id=0xFFF1)
    n.advance(170)
    n.establish()
    assert n.arm_status(n.pase(), 300) is Error.OK
    n.advance(10)  # the window's 180 s are over: it closes, the attempt may still finish
    assert not n.window.is_open and n.window.last_close_reason is CloseReason.TIMEOUT
    assert n.failsafe.armed
    n.advance(300)  # the fail-safe expires: the session ends, and the closed window stays closed
    assert not n.failsafe.armed and n.ended == 1
    assert not n.window.is_open and not n.listening()


def test_revoke_commissioning_ends_the_attempt_and_closes_the_window(n: Node) -> None:
    index = n.commission(Commissioner())
    n.invoke(n.case(index), OPEN_BASIC, {0: 180}, cluster=AC_CLUSTER)
    ended = n.ended
    n.establish()
    n.invoke(n.case(index), REVOKE, {}, cluster=AC_CLUSTER)
    assert not n.failsafe.armed and n.ended == ended + 1
    assert not n.window.is_open and n.window.last_close_reason is CloseReason.REVOKED


def test_the_window_closes_after_the_spec_limit_of_failed_attempts() -> None:
    n = Node()
    n.window.limiter = PaseAttemptLimiter()  # 20 (Core spec 5.5)
    for attempt in range(1, 21):
        assert n.listening(), attempt
        n.establish()
        n.advance(EXPIRY)
        assert n.window.limiter.failed_attempts == attempt
    assert not n.window.is_open and n.window.last_close_reason is CloseReason.FAILED_ATTEMPTS
    assert n.ended == 20


def test_a_fail_safe_armed_before_pase_is_left_alone(n: Node, caplog: pytest.LogCaptureFixture) -> None:
    """Not expected (an open window refuses CASE arming): the SDK logs an error and keeps the fail-safe; the
    attempt still ends with the session, so the window does not stay deaf."""
    n.failsafe.arm(500, n.now, fabric_index=4, session_id=77)
    with caplog.at_level(logging.ERROR):
        session = n.establish()
    assert "already armed" in caplog.text
    assert n.failsafe.fabric_index == 4 and n.failsafe.deadline == n.now + 500
    n.attempt.pase_session_closed(session)
    assert n.failsafe.armed  # not ours to expire
    assert n.listening() and n.window.limiter.failed_attempts == 1


def test_a_second_pase_session_during_an_attempt_ends_with_it(n: Node) -> None:
    first = n.establish()
    second = n.establish()  # two handshakes that began while the window listened
    assert n.attempt.session_id == first and n.failsafe.held_by(NO_FABRIC, first)
    n.attempt.pase_session_closed(second)
    assert n.failsafe.armed and n.window.limiter.failed_attempts == 0
    n.advance(EXPIRY)
    assert n.ended == 1 and n.listening()  # every PASE session ends with the first attempt


def test_rollback_steps_run_in_one_transaction_with_the_expiry(n: Node) -> None:
    """ACL writes of the PASE holder are provisional like everything else it staged (11.10.7.2.1)."""
    commissioner = Commissioner()
    n.establish()
    n.invoke(n.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, icac = commissioner.chain(n.csr(n.pase()), 0x1234)
    index = int(n.add_noc(n.pase(), noc, icac, commissioner.ipk)[1])
    assert n.root.access_control.entries(index)
    n.advance(EXPIRY)
    assert n.root.access_control.entries(index) == []
    assert n.table.fabrics(include_pending=True) == []
    with pytest.raises(ActionError) as refused:
        n.invoke(n.pase(), ADD_NOC, {0: noc, 2: commissioner.ipk, 3: 1, 4: 0xFFF1})
    assert refused.value.status is Status.FAILSAFE_REQUIRED  # no fail-safe any more


def test_complete_over_case_after_expiry_reports_no_fail_safe(n: Node) -> None:
    n.establish()
    n.advance(EXPIRY)
    assert Error(n.invoke(n.case(1), COMPLETE, {}, cluster=GC)[0]) is Error.NO_FAIL_SAFE


def test_a_paused_window_without_an_attempt_on_record_listens_again_on_any_expiry(n: Node) -> None:
    """Defensive: whatever paused the window, a fail-safe expiry must not leave it deaf."""
    n.window.session_established()  # paused, but no PASE session reported to the attempt
    n.failsafe.arm(30, n.now, fabric_index=NO_FABRIC, session_id=5)
    n.advance(30)
    assert n.listening() and n.window.limiter.failed_attempts == 1 and n.ended == 1


def test_expiry_and_failure_are_logged_without_secrets(n: Node, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="jfds_device.node.commissioning_attempt"):
        session = n.establish()
        n.advance(EXPIRY)
    assert f"PASE session {session}: fail-safe armed for 60 s" in caplog.text
    assert f"fail-safe expired: the commissioning attempt of PASE session {session} ends" in caplog.text
    assert "failures in this window: 1 of 20); listening for PASE again" in caplog.text
    assert "20202021" not in caplog.text and "34970112332" not in caplog.text


def test_a_handshake_that_completes_after_the_window_closed_is_still_bounded_by_the_fail_safe(n: Node) -> None:
    n.window.close(CloseReason.TIMEOUT)  # closed while a handshake was under way
    n.establish()
    assert n.failsafe.armed and n.failsafe.deadline == n.now + EXPIRY
    n.advance(EXPIRY)
    assert n.ended == 1 and not n.window.is_open and not n.failsafe.armed


def test_the_expiry_must_be_positive(n: Node) -> None:
    with pytest.raises(ValueError):
        CommissioningAttempt(n.window, n.failsafe, end_pase_sessions=lambda: None, expiry_s=0)


def test_a_session_reported_closed_during_the_rollback_counts_once(n: Node) -> None:
    """The rollback of AddNOC removes the pending fabric, and the shell closes that fabric's sessions, the PASE
    one included; however soon that close is reported, the attempt fails once."""
    commissioner = Commissioner()
    session = n.establish()
    n.invoke(n.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, icac = commissioner.chain(n.csr(n.pase()), 0x1234)
    assert n.add_noc(n.pase(), noc, icac, commissioner.ipk)[0] == NocStatus.OK

    reported: list[int] = []

    class CloseOnRemoval:
        def fabric_removed(self, fabric_index: int) -> None:
            reported.append(session)
            n.attempt.pase_session_closed(session)

    n.table.add_listener(CloseOnRemoval())
    n.advance(EXPIRY)
    assert reported == [session]
    assert n.window.limiter.failed_attempts == 1 and n.listening() and not n.failsafe.armed
    assert n.table.fabrics(include_pending=True) == []
