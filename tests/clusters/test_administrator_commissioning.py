"""Administrator Commissioning 0x003C (Core spec 11.19): commands, statuses, attributes and reports, with
injected time; the timed-invoke requirement through the IM engine; ids cross-checked with the CHIP SDK."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from clusters.administrator_commissioning import schema
from clusters.administrator_commissioning.schema import CommissioningWindowStatusEnum as WindowStatus
from clusters.administrator_commissioning.schema import StatusCode
from clusters.administrator_commissioning.server import AdministratorCommissioningServer
from clusters.general_commissioning.logic import FailSafe
from jfds_device.clock import ManualClock
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.crypto.spake2p import P256_ORDER, make_verifier
from jfds_device.datamodel import acl
from jfds_device.datamodel.commissioning_window import CloseReason, CommissioningWindow, WindowState
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.errors import ActionError
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, CommandPath, RequestContext, Status, SubjectDescriptor
from jfds_device.im.server import InteractionServer
from jfds_device.securechannel.pase import PaseInitiator, PaseResponder

ROOT = DeviceType(device_type=0x0016, revision=3)
OCW, OBCW, REVOKE = 0x00, 0x01, 0x02
PASSCODE, DISCRIMINATOR = 20202021, 3840
ADMIN_NODE, OPERATOR_NODE = 0x1234, 0x5678
VENDORS = {1: 0xFFF1, 2: 0x1234}
NEW_PASSCODE, SALT, ITERATIONS = 34567890, b"0123456789abcdef", 1000
VERIFIER = make_verifier(NEW_PASSCODE, SALT, ITERATIONS).to_bytes()
T0 = 1000.0


class Changes:
    def __init__(self) -> None:
        self.paths: list[AttributePath] = []

    def attributes_changed(self, paths: Iterable[AttributePath]) -> None:
        self.paths.extend(paths)

    def attributes(self) -> set[int]:
        return {p.attribute for p in self.paths if p.cluster == schema.CLUSTER_ID}


class Acl:
    def acl_entries(self) -> list[acl.AclEntry]:
        return [
            acl.AclEntry(1, Privilege.ADMINISTER, AuthMode.CASE, (ADMIN_NODE,)),
            acl.AclEntry(1, Privilege.OPERATE, AuthMode.CASE, (OPERATOR_NODE,)),
        ]


def case(fabric: int = 1, node: int = ADMIN_NODE, session: int = 20) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, node, fabric), timed=True, session_id=session)


def pase(session: int = 7) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True), timed=True, session_id=session)


def ocw_fields(timeout: int = 300, verifier: bytes = VERIFIER, discriminator: int = 0x0ABC,
               iterations: int = ITERATIONS, salt: bytes = SALT) -> dict[int, Any]:  # fmt: skip
    return {0: timeout, 1: verifier, 2: discriminator, 3: iterations, 4: salt}


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock(start=T0)
        self.failsafe = FailSafe()
        self.window = CommissioningWindow(PASSCODE, DISCRIMINATOR)
        self.server = AdministratorCommissioningServer(
            self.window, self.failsafe, now=self.clock.now, fabric_vendor_id=VENDORS.get
        )
        self.node = Node()
        self.node.add_endpoint(0, [ROOT], [self.server])
        self.node.set_acl_source(Acl())
        self.changes = Changes()
        self.node.subscribe_changes(self.changes)

    def invoke(self, command: int, fields: dict[int, Any] | None = None, ctx: RequestContext | None = None) -> None:
        assert self.node.invoke(ctx or case(), CommandPath(0, schema.CLUSTER_ID, command), fields or {}) is None

    def failure(self, command: int, fields: dict[int, Any] | None = None, ctx: RequestContext | None = None) -> Any:
        """(IM status, cluster status) of a command expected to fail."""
        with pytest.raises(ActionError) as info:
            self.invoke(command, fields, ctx)
        return info.value.status, info.value.cluster_status

    def read(self, attribute: int) -> Any:
        return self.node.read_attribute(case(), AttributePath(0, schema.CLUSTER_ID, attribute))

    def attributes(self) -> tuple[Any, Any, Any]:
        return (self.read(schema.WINDOW_STATUS), self.read(schema.ADMIN_FABRIC_INDEX),
                self.read(schema.ADMIN_VENDOR_ID))  # fmt: skip


@pytest.fixture
def h() -> Harness:
    return Harness()


BUSY = (Status.FAILURE, StatusCode.BUSY)
PAKE_ERROR = (Status.FAILURE, StatusCode.PAKE_PARAMETER_ERROR)
NOT_OPEN = (Status.FAILURE, StatusCode.WINDOW_NOT_OPEN)
INVALID = (Status.INVALID_COMMAND, None)


# --------------------------------------------------------------------------------------------- attributes


def test_attributes_and_globals(h: Harness) -> None:
    assert h.attributes() == (WindowStatus.WINDOW_NOT_OPEN, None, None)  # TLV null for both
    assert h.read(0xFFFC) == schema.Feature.BASIC == 1
    assert h.read(0xFFFD) == 1
    assert h.read(0xFFF9) == [OCW, OBCW, REVOKE]
    assert h.read(0xFFF8) == []
    assert h.read(0xFFFB) == [0, 1, 2, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]


def test_initial_window_reads_window_not_open(h: Harness) -> None:
    h.window.open_initial(T0)
    assert h.attributes() == (WindowStatus.WINDOW_NOT_OPEN, None, None)


# --------------------------------------------------------------------------------------------- OpenCommissioningWindow


def test_open_commissioning_window(h: Harness) -> None:
    version = h.server.data_version
    h.invoke(OCW, ocw_fields(timeout=300, discriminator=0x0ABC))
    assert h.attributes() == (WindowStatus.ENHANCED_WINDOW_OPEN, 1, 0xFFF1)
    assert h.window.state is WindowState.ENHANCED and h.window.discriminator == 0x0ABC
    assert h.window.get_timer() == T0 + 300
    assert (h.window.salt, h.window.iterations) == (SALT, ITERATIONS)
    assert h.server.data_version != version
    assert h.changes.attributes() == {schema.WINDOW_STATUS, schema.ADMIN_FABRIC_INDEX, schema.ADMIN_VENDOR_ID}


def test_opened_window_runs_pase_with_the_administrators_passcode(h: Harness) -> None:
    h.invoke(OCW, ocw_fields())
    verifier = h.window.pase_verifier
    assert verifier is not None
    responder = PaseResponder(verifier, salt=h.window.salt, iterations=h.window.iterations, local_session_id=3)
    initiator = PaseInitiator(NEW_PASSCODE, local_session_id=4)
    message = initiator.start()
    while message is not None and (replies := responder.receive(*message)):
        message = initiator.receive(*replies[0])
    assert responder.done and initiator.done


def test_window_times_out_with_injected_time(h: Harness) -> None:
    h.invoke(OCW, ocw_fields(timeout=180), ctx=case(fabric=2))
    assert h.attributes() == (WindowStatus.ENHANCED_WINDOW_OPEN, 2, 0x1234)
    h.changes.paths.clear()
    version = h.server.data_version
    assert not h.window.handle_timer(T0 + 179)
    assert h.window.handle_timer(T0 + 180)
    assert h.attributes() == (WindowStatus.WINDOW_NOT_OPEN, None, None)
    assert h.server.data_version != version
    assert h.changes.attributes() == {schema.WINDOW_STATUS, schema.ADMIN_FABRIC_INDEX, schema.ADMIN_VENDOR_ID}


def test_an_expired_window_does_not_block_a_new_one(h: Harness) -> None:
    h.invoke(OBCW, {0: 180})
    h.clock.tick_to(T0 + 180)  # the deadline passed but the node's timer has not fired yet
    assert h.failure(REVOKE) == NOT_OPEN
    assert h.window.is_open  # a failing command changes nothing
    h.invoke(OCW, ocw_fields(timeout=200))
    assert h.window.state is WindowState.ENHANCED and h.window.get_timer() == T0 + 380


@pytest.mark.parametrize("command", [OCW, OBCW])
def test_busy_when_a_window_is_open(h: Harness, command: int) -> None:
    h.invoke(OBCW, {0: 180})
    fields = ocw_fields() if command == OCW else {0: 180}
    assert h.failure(command, fields) == BUSY
    assert h.window.state is WindowState.BASIC


@pytest.mark.parametrize("command", [OCW, OBCW])
def test_busy_during_the_initial_window(h: Harness, command: int) -> None:
    h.window.open_initial(T0)
    assert h.failure(command, ocw_fields() if command == OCW else {0: 180}) == BUSY


@pytest.mark.parametrize("command", [OCW, OBCW])
def test_busy_when_the_fail_safe_is_armed(h: Harness, command: int) -> None:
    h.failsafe.arm(60, T0, fabric_index=2, session_id=9)
    fields = ocw_fields() if command == OCW else {0: 180}
    assert h.failure(command, fields) == BUSY
    assert not h.window.is_open
    h.clock.tick_to(T0 + 60)  # expired by time, even before the node's timer runs
    h.invoke(command, fields)
    assert h.window.is_open


@pytest.mark.parametrize(
    "fields",
    [
        ocw_fields(iterations=999),
        ocw_fields(iterations=100_001),
        ocw_fields(salt=b"x" * 15),
        ocw_fields(salt=b"x" * 33),
        ocw_fields(verifier=VERIFIER[:-1]),
        ocw_fields(verifier=VERIFIER + b"\x00"),
        ocw_fields(verifier=P256_ORDER.to_bytes(32, "big") + VERIFIER[32:]),  # w0 out of range
        ocw_fields(verifier=VERIFIER[:33] + bytes(64)),  # L not on the curve
        ocw_fields(verifier=VERIFIER[:32] + b"\x02" + VERIFIER[33:]),  # L not uncompressed
    ],
    ids=["iter-low", "iter-high", "salt-short", "salt-long", "verifier-96", "verifier-98", "w0", "L", "L-format"],
)
def test_pake_parameter_error(h: Harness, fields: dict[int, Any]) -> None:
    assert h.failure(OCW, fields) == PAKE_ERROR
    assert not h.window.is_open


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        (OCW, ocw_fields(timeout=179)),
        (OCW, ocw_fields(timeout=901)),
        (OCW, ocw_fields(discriminator=4096)),
        (OBCW, {0: 179}),
        (OBCW, {0: 901}),
    ],
    ids=["ocw-179", "ocw-901", "ocw-discriminator", "obcw-179", "obcw-901"],
)
def test_invalid_command(h: Harness, command: int, fields: dict[int, Any]) -> None:
    assert h.failure(command, fields) == INVALID
    assert not h.window.is_open


@pytest.mark.parametrize("timeout", [180, 900])
def test_timeout_bounds_are_inclusive(h: Harness, timeout: int) -> None:
    h.invoke(OCW, ocw_fields(timeout=timeout))
    assert h.window.get_timer() == T0 + timeout


def test_check_order_matches_the_sdk(h: Harness) -> None:
    # Bad PAKE parameters and a bad timeout together: PAKEParameterError comes first.
    assert h.failure(OCW, ocw_fields(timeout=5, iterations=5)) == PAKE_ERROR
    # A bad timeout before an unparsable verifier: INVALID_COMMAND.
    assert h.failure(OCW, ocw_fields(timeout=5, verifier=b"")) == INVALID
    h.invoke(OBCW, {0: 180})
    # Busy before any parameter check.
    assert h.failure(OCW, ocw_fields(timeout=5, iterations=5)) == BUSY


@pytest.mark.parametrize("command", [OCW, OBCW])
def test_an_opener_without_a_fabric_is_a_pake_parameter_error(h: Harness, command: int) -> None:
    fields = ocw_fields() if command == OCW else {0: 180}
    assert h.failure(command, fields, ctx=pase()) == PAKE_ERROR  # PASE before AddNOC: no Administrator
    assert h.failure(command, fields, ctx=case(fabric=9)) == PAKE_ERROR  # no such fabric
    assert not h.window.is_open


def test_a_missing_field_is_invalid_command(h: Harness) -> None:
    fields = ocw_fields()
    del fields[4]
    assert h.failure(OCW, fields) == INVALID


# ------------------------------------------------------------------------------------ OpenBasicCommissioningWindow


def test_open_basic_commissioning_window(h: Harness) -> None:
    h.invoke(OBCW, {0: 900}, ctx=case(fabric=2))
    assert h.attributes() == (WindowStatus.BASIC_WINDOW_OPEN, 2, 0x1234)
    assert h.window.state is WindowState.BASIC and h.window.discriminator == DISCRIMINATOR
    assert h.window.get_timer() == T0 + 900


# --------------------------------------------------------------------------------------------- RevokeCommissioning


def test_revoke_without_a_window(h: Harness) -> None:
    h.failsafe.arm(60, T0, fabric_index=2, session_id=9)
    version = h.server.data_version
    assert h.failure(REVOKE) == NOT_OPEN
    # The spec expires the fail-safe only when a window was open (11.19.8.3); nothing changed.
    assert h.failsafe.armed and h.server.data_version == version


def test_revoke_closes_the_window_and_forgets_the_verifier(h: Harness) -> None:
    h.invoke(OCW, ocw_fields(discriminator=7))
    h.changes.paths.clear()
    h.invoke(REVOKE)
    assert h.attributes() == (WindowStatus.WINDOW_NOT_OPEN, None, None)
    assert h.window.last_close_reason is CloseReason.REVOKED
    assert h.window.pase_verifier is None and h.window.discriminator == DISCRIMINATOR
    assert h.changes.attributes() == {schema.WINDOW_STATUS, schema.ADMIN_FABRIC_INDEX, schema.ADMIN_VENDOR_ID}
    assert h.failure(REVOKE) == NOT_OPEN


def test_revoke_expires_an_armed_fail_safe(h: Harness) -> None:
    undone: list[str] = []
    h.invoke(OBCW, {0: 300})
    # A commissioner got in over PASE and armed the fail-safe, then added a NOC.
    h.failsafe.arm(60, T0 + 1, fabric_index=0, session_id=7)
    h.failsafe.add_rollback(lambda: undone.append("noc"))
    h.invoke(REVOKE, ctx=case(fabric=2))
    assert not h.failsafe.armed and undone == ["noc"]
    assert not h.window.is_open


def test_revoke_closes_the_initial_window(h: Harness) -> None:
    h.window.open_initial(T0)
    h.invoke(REVOKE)
    assert not h.window.is_open


# --------------------------------------------------------------------------------------------- fabric removal


def test_removing_the_openers_fabric_nulls_admin_attributes(h: Harness) -> None:
    h.invoke(OCW, ocw_fields(), ctx=case(fabric=2))
    h.changes.paths.clear()
    h.window.fabric_removed(1)
    assert h.changes.paths == []
    h.window.fabric_removed(2)
    assert h.attributes() == (WindowStatus.ENHANCED_WINDOW_OPEN, None, None)
    assert h.changes.attributes() == {schema.ADMIN_FABRIC_INDEX, schema.ADMIN_VENDOR_ID}


# --------------------------------------------------------------------------------------------- IM: access and timed


def test_all_commands_need_administer_and_a_timed_invoke() -> None:
    for command in schema.CLUSTER.commands:
        assert command.timed and command.privilege is Privilege.ADMINISTER and command.response is None
    for attribute in schema.CLUSTER.attributes:
        assert attribute.read_privilege is Privilege.VIEW and not attribute.writable


def _im_invoke(server: InteractionServer, ctx: RequestContext, command: int, fields: dict[int, Any], *,
               timed: bool) -> tuple[int, int | None]:  # fmt: skip
    exchange = object()
    if timed:
        server.on_message(exchange, ctx, Op.TIMED_REQUEST, m.TimedRequest(timeout=500).encode(), T0)
    data = m.CommandDataIB(path=m.CommandPathIB(endpoint=0, cluster=schema.CLUSTER_ID, command=command), fields=fields)
    request = m.InvokeRequest(timed_request=timed, invoke_requests=[data]).encode()
    [out] = server.on_message(exchange, ctx, Op.INVOKE_REQUEST, request, T0 + 0.1)
    [ib] = m.InvokeResponse.decode(out.payload).invoke_responses
    return ib.status.status.status, ib.status.status.cluster_status


def test_im_enforces_timed_and_administer(h: Harness) -> None:
    im = InteractionServer(h.node)
    admin = RequestContext(SubjectDescriptor(AuthMode.CASE, ADMIN_NODE, 1), session_id=20)
    operator = RequestContext(SubjectDescriptor(AuthMode.CASE, OPERATOR_NODE, 1), session_id=21)
    for command, fields in ((OCW, ocw_fields()), (OBCW, {0: 180}), (REVOKE, {})):
        assert _im_invoke(im, admin, command, fields, timed=False) == (Status.NEEDS_TIMED_INTERACTION, None)
        assert _im_invoke(im, operator, command, fields, timed=True) == (Status.UNSUPPORTED_ACCESS, None)
    assert not h.window.is_open
    assert _im_invoke(im, admin, OBCW, {0: 180}, timed=True) == (Status.SUCCESS, None)
    assert h.window.window_status is WindowStatus.BASIC_WINDOW_OPEN
    assert _im_invoke(im, admin, OCW, ocw_fields(), timed=True) == (Status.FAILURE, StatusCode.BUSY)
    assert _im_invoke(im, admin, REVOKE, {}, timed=True) == (Status.SUCCESS, None)
    assert _im_invoke(im, admin, REVOKE, {}, timed=True) == (Status.FAILURE, StatusCode.WINDOW_NOT_OPEN)


# --------------------------------------------------------------------------------------------- CHIP SDK cross-check


@pytest.mark.interop
def test_schema_matches_the_sdk() -> None:
    objects = pytest.importorskip("chip.clusters.Objects", reason="home-assistant-chip-clusters is not installed")
    sdk = objects.AdministratorCommissioning
    assert sdk.id == schema.CLUSTER_ID
    sdk_attributes = {
        a.attribute_id: name for name, a in vars(sdk.Attributes).items()
        if hasattr(a, "attribute_id") and a.attribute_id < 0xFFF0
    }  # fmt: skip
    assert sdk_attributes == {a.id: a.name for a in schema.CLUSTER.attributes}
    sdk_commands = {n for n in dir(sdk.Commands) if not n.startswith("_")}
    assert sdk_commands == {c.name for c in schema.CLUSTER.commands}
    for command in schema.CLUSTER.commands:
        theirs = getattr(sdk.Commands, command.name)
        assert theirs.command_id == command.id and theirs.is_client
        assert bool(theirs.must_use_timed_invoke) is command.timed is True
        assert theirs.response_type is None and command.response is None
        assert command.request.__name__ == command.name
        norm = str.maketrans("", "", "_")
        assert {f.Tag: f.Label.lower() for f in theirs.descriptor.Fields} == {
            s.tag: s.name.translate(norm) for s in command.request.FIELDS
        }
    assert {e.name: int(e) for e in sdk.Enums.StatusCode if e.name != "kUnknownEnumValue"} == {
        "kBusy": StatusCode.BUSY, "kPAKEParameterError": StatusCode.PAKE_PARAMETER_ERROR,
        "kWindowNotOpen": StatusCode.WINDOW_NOT_OPEN,
    }  # fmt: skip
    assert [int(e) for e in sdk.Enums.CommissioningWindowStatusEnum if e.name != "kUnknownEnumValue"] == [
        int(e) for e in WindowStatus
    ]
    assert int(sdk.Bitmaps.Feature.kBasic) == schema.Feature.BASIC


@pytest.mark.interop
def test_command_bytes_match_the_sdk() -> None:
    objects = pytest.importorskip("chip.clusters.Objects", reason="home-assistant-chip-clusters is not installed")
    commands = objects.AdministratorCommissioning.Commands
    ours = schema.OpenCommissioningWindow(
        commissioning_timeout=300, pake_passcode_verifier=VERIFIER, discriminator=0xABC, iterations=1000, salt=SALT
    )
    theirs = commands.OpenCommissioningWindow(
        commissioningTimeout=300, PAKEPasscodeVerifier=VERIFIER, discriminator=0xABC, iterations=1000, salt=SALT
    )
    assert ours.encode() == bytes(theirs.ToTLV())
    basic = schema.OpenBasicCommissioningWindow(commissioning_timeout=180)
    assert basic.encode() == bytes(commands.OpenBasicCommissioningWindow(commissioningTimeout=180).ToTLV())
    assert schema.RevokeCommissioning().encode() == bytes(commands.RevokeCommissioning().ToTLV())
