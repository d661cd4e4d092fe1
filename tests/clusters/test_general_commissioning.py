"""General Commissioning 0x0030 and the fail-safe (Core spec 11.10), with injected time."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.general_commissioning import schema
from clusters.general_commissioning.logic import FailSafe
from clusters.general_commissioning.schema import (
    ArmFailSafeResponse,
    CommissioningCompleteResponse,
    CommissioningErrorEnum,
    RegulatoryLocationTypeEnum,
    SetRegulatoryConfigResponse,
)
from clusters.general_commissioning.server import GeneralCommissioningServer
from jfds_device.clock import ManualClock
from jfds_device.codec.model import AuthMode
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.errors import ActionError
from jfds_device.im.provider import AttributePath, CommandPath, ListOperation, RequestContext, Status, SubjectDescriptor

Error = CommissioningErrorEnum
ROOT = DeviceType(device_type=0x0016, revision=3)
ARM, SET_REGULATORY, COMPLETE = 0x00, 0x02, 0x04


def pase(session: int = 7) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True), session_id=session)


def case(fabric: int = 1, session: int = 20) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, 0x1234, fabric), session_id=session)


class Harness:
    def __init__(self, location: RegulatoryLocationTypeEnum = RegulatoryLocationTypeEnum.INDOOR_OUTDOOR) -> None:
        self.clock = ManualClock(start=1000.0)
        self.window_open = False
        self.failsafe = FailSafe()
        self.server = GeneralCommissioningServer(
            self.failsafe,
            now=self.clock.now,
            location_capability=location,
            commissioning_window_open=lambda: self.window_open,
        )
        self.node = Node()
        self.node.add_endpoint(0, [ROOT], [self.server])

    def invoke(self, ctx: RequestContext, command: int, fields: dict[int, Any]) -> Any:
        response = self.node.invoke(ctx, CommandPath(0, schema.CLUSTER_ID, command), fields)
        assert response is not None
        decoder = {ARM: ArmFailSafeResponse, SET_REGULATORY: SetRegulatoryConfigResponse}.get(
            command, CommissioningCompleteResponse
        )
        return decoder.from_tlv(response.fields).error_code

    def arm(self, ctx: RequestContext, seconds: int, breadcrumb: int = 1) -> Error:
        return self.invoke(ctx, ARM, {0: seconds, 1: breadcrumb})  # type: ignore[no-any-return]

    def complete(self, ctx: RequestContext) -> Error:
        return self.invoke(ctx, COMPLETE, {})  # type: ignore[no-any-return]

    def read(self, attribute: int) -> Any:
        return self.node.read_attribute(case(), AttributePath(0, schema.CLUSTER_ID, attribute))


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_attributes(h: Harness) -> None:
    assert h.read(schema.BREADCRUMB) == 0
    assert h.read(schema.BASIC_COMMISSIONING_INFO) == {0: 60, 1: 900}
    assert h.read(schema.REGULATORY_CONFIG) == RegulatoryLocationTypeEnum.INDOOR_OUTDOOR
    assert h.read(schema.LOCATION_CAPABILITY) == RegulatoryLocationTypeEnum.INDOOR_OUTDOOR
    assert h.read(schema.SUPPORTS_CONCURRENT_CONNECTION) is True
    assert h.read(0xFFF9) == [0, 2, 4]
    assert h.read(0xFFF8) == [1, 3, 5]
    assert h.read(0xFFFB) == [0, 1, 2, 3, 4, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]


def test_breadcrumb_is_writable(h: Harness) -> None:
    h.node.write_attribute(case(), AttributePath(0, schema.CLUSTER_ID, schema.BREADCRUMB), 42, ListOperation.NOT_A_LIST)
    assert h.read(schema.BREADCRUMB) == 42


def test_arm_sets_deadline_and_breadcrumb(h: Harness) -> None:
    assert h.arm(pase(), 60, breadcrumb=5) is Error.OK
    assert h.failsafe.armed
    assert h.failsafe.get_timer() == 1060.0
    assert h.read(schema.BREADCRUMB) == 5


def test_rearm_extends_but_never_past_the_cumulative_limit(h: Harness) -> None:
    h.arm(pase(), 60)
    h.clock.tick(50)
    assert h.arm(pase(), 60) is Error.OK
    assert h.failsafe.get_timer() == 1110.0
    while h.clock.now() < 1850:  # keep re-arming before each deadline
        h.clock.tick(50)
        assert h.arm(pase(), 60) is Error.OK
    assert h.failsafe.get_timer() == 1900.0  # armed at 1000, MaxCumulativeFailsafeSeconds 900
    h.clock.tick_to(1900.0)
    assert h.arm(case(fabric=2), 60) is Error.OK  # the capped context expired; a new one starts


def test_cumulative_limit() -> None:
    failsafe = FailSafe(max_cumulative_s=900)
    failsafe.arm(60, 0.0, fabric_index=0, session_id=1)
    failsafe.arm(60, 850.0, fabric_index=0, session_id=1)
    assert failsafe.get_timer() == 900.0
    failsafe.arm(600, 100.0, fabric_index=0, session_id=1)  # shortening is allowed too
    assert failsafe.get_timer() == 700.0


def test_other_admin_is_busy(h: Harness) -> None:
    assert h.arm(case(fabric=1), 60) is Error.OK
    assert h.arm(case(fabric=2), 60) is Error.BUSY_WITH_OTHER_ADMIN
    assert h.arm(pase(), 60) is Error.BUSY_WITH_OTHER_ADMIN
    assert h.arm(case(fabric=1, session=99), 30) is Error.OK  # same fabric, another session: same admin


def test_pase_armed_context_is_held_by_its_session(h: Harness) -> None:
    assert h.arm(pase(session=7), 60) is Error.OK
    assert h.arm(pase(session=8), 60) is Error.BUSY_WITH_OTHER_ADMIN
    assert h.arm(case(fabric=1), 60) is Error.BUSY_WITH_OTHER_ADMIN
    h.failsafe.associate_fabric(1)  # AddNOC bound the context to fabric 1
    assert h.arm(case(fabric=1), 60) is Error.OK


def test_open_commissioning_window_reserves_the_fail_safe_for_pase(h: Harness) -> None:
    h.window_open = True
    assert h.arm(case(fabric=1), 60) is Error.BUSY_WITH_OTHER_ADMIN
    assert h.arm(pase(), 60) is Error.OK


def test_arm_zero_expires_with_rollback(h: Harness) -> None:
    undone: list[str] = []
    h.arm(pase(), 60, breadcrumb=9)
    h.failsafe.add_rollback(lambda: undone.append("noc"))
    assert h.arm(pase(), 0, breadcrumb=3) is Error.OK
    assert not h.failsafe.armed
    assert undone == ["noc"]
    assert h.read(schema.BREADCRUMB) == 0


def test_arm_zero_when_disarmed_is_a_no_op(h: Harness) -> None:
    assert h.arm(pase(), 0) is Error.OK
    assert not h.failsafe.armed


def test_expiry_by_time_rolls_back_in_reverse_order(h: Harness) -> None:
    undone: list[str] = []
    h.arm(pase(), 60, breadcrumb=4)
    h.failsafe.add_rollback(lambda: undone.append("root cert"))
    h.failsafe.add_rollback(lambda: undone.append("noc"))
    assert not h.failsafe.handle_timer(1059.9)
    assert h.failsafe.handle_timer(1060.0)
    assert undone == ["noc", "root cert"]
    assert not h.failsafe.armed
    assert h.read(schema.BREADCRUMB) == 0
    assert not h.failsafe.handle_timer(5000.0)


def test_expiry_is_noticed_lazily_by_the_next_command(h: Harness) -> None:
    h.arm(case(fabric=1), 60)
    h.clock.tick(61)
    assert h.arm(case(fabric=2), 60) is Error.OK  # the old context had expired


def test_commissioning_complete_commits(h: Harness) -> None:
    events: list[str] = []
    h.arm(pase(), 60, breadcrumb=8)
    h.failsafe.add_rollback(lambda: events.append("rolled back"))
    h.failsafe.add_commit(lambda: events.append("committed"))
    h.failsafe.associate_fabric(1)
    assert h.complete(case(fabric=1)) is Error.OK
    assert events == ["committed"]
    assert not h.failsafe.armed
    assert h.read(schema.BREADCRUMB) == 0
    h.failsafe.handle_timer(10_000.0)
    assert events == ["committed"]


def test_commissioning_complete_needs_a_fail_safe(h: Harness) -> None:
    assert h.complete(case(fabric=1)) is Error.NO_FAIL_SAFE
    h.arm(case(fabric=1), 60)
    h.clock.tick(60)
    assert h.complete(case(fabric=1)) is Error.NO_FAIL_SAFE


def test_commissioning_complete_needs_case_on_the_commissioned_fabric(h: Harness) -> None:
    h.arm(pase(), 60)
    h.failsafe.associate_fabric(1)
    assert h.complete(case(fabric=2)) is Error.INVALID_AUTHENTICATION
    pase_with_fabric = RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 1, is_commissioning=True))
    assert h.complete(pase_with_fabric) is Error.INVALID_AUTHENTICATION
    assert h.failsafe.armed


def test_commissioning_complete_without_fabric_is_unsupported_access(h: Harness) -> None:
    h.arm(pase(), 60)
    with pytest.raises(ActionError) as info:
        h.complete(pase())
    assert info.value.status is Status.UNSUPPORTED_ACCESS


def test_set_regulatory_config(h: Harness) -> None:
    assert h.invoke(case(), SET_REGULATORY, {0: 1, 1: "DE", 2: 77}) is Error.OK
    assert h.read(schema.REGULATORY_CONFIG) == RegulatoryLocationTypeEnum.OUTDOOR
    assert h.read(schema.BREADCRUMB) == 77
    assert h.server.country_code == "DE"
    assert h.invoke(case(), SET_REGULATORY, {0: 3, 1: "DE", 2: 1}) is Error.VALUE_OUTSIDE_RANGE
    assert h.read(schema.BREADCRUMB) == 77


def test_set_regulatory_config_respects_location_capability() -> None:
    h = Harness(RegulatoryLocationTypeEnum.INDOOR)
    assert h.invoke(case(), SET_REGULATORY, {0: 1, 1: "US", 2: 0}) is Error.VALUE_OUTSIDE_RANGE
    assert h.invoke(case(), SET_REGULATORY, {0: 0, 1: "US", 2: 0}) is Error.OK


def test_set_regulatory_config_country_code_length(h: Harness) -> None:
    with pytest.raises(ActionError) as info:
        h.invoke(case(), SET_REGULATORY, {0: 0, 1: "USA", 2: 0})
    assert info.value.status is Status.CONSTRAINT_ERROR


def test_fail_safe_misuse() -> None:
    failsafe = FailSafe()
    with pytest.raises(ValueError):
        failsafe.arm(0, 0.0, fabric_index=0, session_id=1)
    with pytest.raises(RuntimeError):
        failsafe.add_rollback(lambda: None)
    with pytest.raises(RuntimeError):
        failsafe.add_commit(lambda: None)
    with pytest.raises(RuntimeError):
        failsafe.associate_fabric(1)
    assert not failsafe.held_by(0, 0)


def test_a_failing_rollback_does_not_stop_the_others() -> None:
    failsafe = FailSafe()
    undone: list[int] = []

    def broken() -> None:
        raise OSError("storage gone")

    failsafe.arm(10, 0.0, fabric_index=1, session_id=1)
    failsafe.add_rollback(lambda: undone.append(1))
    failsafe.add_rollback(broken)
    failsafe.add_rollback(lambda: undone.append(3))
    failsafe.expire()
    assert undone == [3, 1]


def test_disarm_runs_nothing() -> None:
    failsafe = FailSafe()
    ran: list[str] = []
    failsafe.add_expiry_listener(lambda: ran.append("expired"))
    failsafe.arm(10, 0.0, fabric_index=1, session_id=1)
    failsafe.add_rollback(lambda: ran.append("rollback"))
    failsafe.disarm()
    assert not failsafe.armed
    assert ran == []
    failsafe.arm(10, 0.0, fabric_index=1, session_id=1)
    failsafe.flags.add("add_noc")
    failsafe.expire()
    assert ran == ["expired"]  # the earlier rollback was dropped with the disarmed context
    failsafe.arm(10, 0.0, fabric_index=1, session_id=1)
    assert failsafe.flags == set()  # per-arming markers start empty
