"""datamodel.cluster: the ClusterServer base, driven through a toy cluster declared here."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from jfds_device.codec import tlv
from jfds_device.codec.model import AttributeDef, AuthMode, ClusterDef, CommandDef
from jfds_device.codec.schema import NULL, UINT8, UINT32, List, Str, Struct, StructType, UInt, field, struct
from jfds_device.datamodel.cluster import ClusterServer, snake_case
from jfds_device.errors import ActionError, LocalProtocolError
from jfds_device.im.provider import CommandResponse, ListOperation, RequestContext, Status, SubjectDescriptor

REPLACE, APPEND, VALUE = ListOperation.REPLACE, ListOperation.APPEND, ListOperation.NOT_A_LIST


@struct
class Entry(Struct):
    FABRIC_SENSITIVE: ClassVar[frozenset[int]] = frozenset({1})

    secret: str = field(1, Str(max_length=8))
    label: str | None = field(2, Str(max_length=8), optional=True)
    fabric_index: int | None = field(0xFE, UINT8, optional=True)


@struct
class Ping(Struct):
    value: int = field(0, UInt(8, 0, 100))


@struct
class PingResponse(Struct):
    echo: int = field(0, UINT8)


@struct
class Empty(Struct):
    pass


COUNTER, LABEL, LEVEL, ENTRIES, NUMBERS, COMPUTED, UNIMPLEMENTED, EVEN = range(8)

TOY = ClusterDef(
    id=0xFFF1_FC01,
    name="Toy",
    revision=3,
    feature_map=0x1,
    attributes=(
        AttributeDef(COUNTER, "Counter", UINT8, default=0),
        AttributeDef(LABEL, "Label", Str(max_length=4), writable=True, persistent=True, default=""),
        AttributeDef(LEVEL, "Level", UInt(8, 0, 10), writable=True, nullable=True, default=NULL),
        AttributeDef(
            ENTRIES, "Entries", List(StructType(Entry), max_length=4), writable=True, fabric_scoped=True,
            persistent=True, default=[],
        ),
        AttributeDef(NUMBERS, "Numbers", List(UINT8, max_length=3), writable=True, default=[]),
        AttributeDef(COMPUTED, "Computed", UINT32),
        AttributeDef(UNIMPLEMENTED, "Unimplemented", UINT8),
        AttributeDef(EVEN, "Even", UINT8, writable=True, default=0),
    ),
    commands=(
        CommandDef(0, "Ping", Ping, 1, PingResponse),
        CommandDef(2, "Reset", Empty),
        CommandDef(3, "NotImplemented", Empty),
        CommandDef(4, "FabricOnly", Empty, fabric_scoped=True),
        CommandDef(5, "Raw", Empty, 6, PingResponse),
    ),
)  # fmt: skip


class ToyServer(ClusterServer):
    CLUSTER = TOY

    def read_computed(self, ctx: RequestContext | None) -> int:
        return 42

    def validate_even(self, ctx: RequestContext, value: int) -> int:
        if value % 2:
            raise ActionError(Status.CONSTRAINT_ERROR)
        return value

    def on_ping(self, ctx: RequestContext, request: Ping) -> PingResponse:
        return PingResponse(echo=request.value)

    def on_reset(self, ctx: RequestContext, request: Empty) -> None:
        self.set(COUNTER, 0)

    def on_fabric_only(self, ctx: RequestContext, request: Empty) -> None:
        return None

    def on_raw(self, ctx: RequestContext, request: Empty) -> CommandResponse:
        return CommandResponse(6, {0: 7})


def ctx(fabric: int = 1, *, filtered: bool = True, node: int = 0x1234) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, node, fabric), fabric_filtered=filtered)


@pytest.fixture
def toy() -> ToyServer:
    server = ToyServer()
    server.attach(1, None)
    return server


def status_of(call: Any, *args: Any) -> Status:
    with pytest.raises(ActionError) as info:
        call(*args)
    return info.value.status


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("ArmFailSafe", "arm_fail_safe"),
        ("AddACLToNode", "add_acl_to_node"),
        ("ICACCSRRequest", "icaccsr_request"),
        ("UpTime", "up_time"),
        ("Acl", "acl"),
        ("UniqueID", "unique_id"),
        ("SetTCAcknowledgements", "set_tc_acknowledgements"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


def test_subclass_needs_a_cluster() -> None:
    class Nameless(ClusterServer):
        pass

    with pytest.raises(TypeError):
        Nameless()


def test_global_attributes(toy: ToyServer) -> None:
    c = ctx()
    assert toy.read(c, 0xFFFD) == 3
    assert toy.read(c, 0xFFFC) == 1
    # Implemented attributes only: Unimplemented has no value and no reader; Computed has a reader.
    assert toy.read(c, 0xFFFB) == [0, 1, 2, 3, 4, 5, 7, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]
    assert toy.read(c, 0xFFF9) == [0, 2, 4, 5]  # NotImplemented has no handler
    assert toy.read(c, 0xFFF8) == [1, 6]
    assert 0xFFFA not in toy.attribute_ids()  # EventList was removed in 1.3


def test_reads_give_tlv_values(toy: ToyServer) -> None:
    c = ctx()
    assert toy.read(c, COUNTER) == 0
    assert toy.read(c, LEVEL) is None  # NULL -> TLV null
    assert toy.read(c, COMPUTED) == 42
    assert status_of(toy.read, c, UNIMPLEMENTED) is Status.UNSUPPORTED_ATTRIBUTE
    assert status_of(toy.read, c, 0x99) is Status.UNSUPPORTED_ATTRIBUTE


def test_data_version_bumps_once_per_change(toy: ToyServer) -> None:
    start = toy.data_version
    assert 0 <= start <= 0xFFFF_FFFF
    toy.write(ctx(), LABEL, "ab", VALUE)
    assert toy.data_version == (start + 1) & 0xFFFF_FFFF
    toy.write(ctx(), LABEL, "ab", VALUE)  # same value: no change, no bump
    assert toy.data_version == (start + 1) & 0xFFFF_FFFF
    assert toy.set(COUNTER, 5) is True
    assert toy.data_version == (start + 2) & 0xFFFF_FFFF
    toy.touch(COMPUTED)
    assert toy.data_version == (start + 3) & 0xFFFF_FFFF


def test_data_version_starts_random_and_wraps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jfds_device.datamodel.cluster.secrets.randbits", lambda bits: 0xFFFF_FFFF)
    server = ToyServer()
    server.set(COUNTER, 1)
    assert server.data_version == 0


@pytest.mark.parametrize(
    ("attribute", "value", "status"),
    [
        (LABEL, "toolong", Status.CONSTRAINT_ERROR),
        (LABEL, 5, Status.CONSTRAINT_ERROR),
        (LABEL, None, Status.CONSTRAINT_ERROR),  # not nullable
        (LEVEL, 11, Status.CONSTRAINT_ERROR),
        (LEVEL, tlv.SInt(3), Status.CONSTRAINT_ERROR),
        (COUNTER, 1, Status.UNSUPPORTED_WRITE),
        (COMPUTED, 1, Status.UNSUPPORTED_WRITE),
        (0xFFFD, 1, Status.UNSUPPORTED_WRITE),
        (UNIMPLEMENTED, 1, Status.UNSUPPORTED_ATTRIBUTE),
        (0x99, 1, Status.UNSUPPORTED_ATTRIBUTE),
        (EVEN, 3, Status.CONSTRAINT_ERROR),  # the validate_even hook
        (NUMBERS, [1, 2, 3, 4], Status.CONSTRAINT_ERROR),
        (NUMBERS, 1, Status.CONSTRAINT_ERROR),
        (ENTRIES, [{2: "no secret"}], Status.CONSTRAINT_ERROR),
    ],
)
def test_write_errors(toy: ToyServer, attribute: int, value: Any, status: Status) -> None:
    version = toy.data_version
    op = REPLACE if attribute in (NUMBERS, ENTRIES) else VALUE
    assert status_of(toy.write, ctx(), attribute, value, op) is status
    assert toy.data_version == version


def test_writes(toy: ToyServer) -> None:
    toy.write(ctx(), LEVEL, 7, VALUE)
    assert toy.get(LEVEL) == 7
    toy.write(ctx(), LEVEL, None, VALUE)
    assert toy.get(LEVEL) is NULL
    toy.write(ctx(), EVEN, 4, VALUE)
    assert toy.read(ctx(), EVEN) == 4


def test_list_replace_and_append(toy: ToyServer) -> None:
    toy.write(ctx(), NUMBERS, [1, 2], REPLACE)
    toy.write(ctx(), NUMBERS, 3, APPEND)
    assert toy.read(ctx(), NUMBERS) == [1, 2, 3]
    assert status_of(toy.write, ctx(), NUMBERS, 4, APPEND) is Status.CONSTRAINT_ERROR
    assert status_of(toy.write, ctx(), LABEL, "x", APPEND) is Status.INVALID_ACTION
    toy.write(ctx(), NUMBERS, [], VALUE)  # a whole-list write without REPLACE is still a replace
    assert toy.read(ctx(), NUMBERS) == []


def test_fabric_scoped_writes_replace_only_the_accessing_fabric(toy: ToyServer) -> None:
    toy.write(ctx(1), ENTRIES, [{1: "a1"}], REPLACE)
    toy.write(ctx(2), ENTRIES, [{1: "b1", 0xFE: 9}], REPLACE)  # a client-sent FabricIndex is overwritten
    toy.write(ctx(2), ENTRIES, {1: "b2", 2: "x"}, APPEND)
    assert toy.read(ctx(1), ENTRIES) == [{1: "a1", 0xFE: 1}]
    assert toy.read(ctx(2), ENTRIES) == [{1: "b1", 0xFE: 2}, {1: "b2", 2: "x", 0xFE: 2}]
    toy.write(ctx(1), ENTRIES, [], REPLACE)
    assert toy.read(ctx(1), ENTRIES) == []
    assert len(toy.fabric_entries(ENTRIES, 2)) == 2


def test_fabric_scoped_unfiltered_read_omits_sensitive_fields(toy: ToyServer) -> None:
    toy.write(ctx(1), ENTRIES, [{1: "a1", 2: "pub"}], REPLACE)
    toy.write(ctx(2), ENTRIES, [{1: "b1", 2: "pub2"}], REPLACE)
    assert toy.read(ctx(1, filtered=False), ENTRIES) == [{1: "a1", 2: "pub", 0xFE: 1}, {2: "pub2", 0xFE: 2}]
    assert toy.read(None, ENTRIES) == [{1: "a1", 2: "pub", 0xFE: 1}, {1: "b1", 2: "pub2", 0xFE: 2}]
    assert toy.read(ctx(0), ENTRIES) == []  # no accessing fabric: nothing is "ours"


def test_fabric_scoped_write_without_fabric_is_refused(toy: ToyServer) -> None:
    assert status_of(toy.write, ctx(0), ENTRIES, [{1: "a"}], REPLACE) is Status.UNSUPPORTED_ACCESS


def test_fabric_scoped_capacity_counts_all_fabrics(toy: ToyServer) -> None:
    toy.write(ctx(1), ENTRIES, [{1: "a"}, {1: "b"}], REPLACE)
    toy.write(ctx(2), ENTRIES, [{1: "c"}, {1: "d"}], REPLACE)
    assert status_of(toy.write, ctx(2), ENTRIES, {1: "e"}, APPEND) is Status.CONSTRAINT_ERROR


def test_remove_fabric_entries(toy: ToyServer) -> None:
    toy.write(ctx(1), ENTRIES, [{1: "a"}], REPLACE)
    toy.write(ctx(2), ENTRIES, [{1: "b"}], REPLACE)
    toy.remove_fabric_entries(1)
    assert [e.secret for e in toy.get(ENTRIES)] == ["b"]


def test_invoke_returns_response_struct_as_command_response(toy: ToyServer) -> None:
    assert toy.invoke(ctx(), 0, {0: 5}) == CommandResponse(1, {0: 5})
    assert toy.invoke(ctx(), 5, {}) == CommandResponse(6, {0: 7})
    toy.set(COUNTER, 9)
    assert toy.invoke(ctx(), 2, None) is None
    assert toy.get(COUNTER) == 0


@pytest.mark.parametrize(
    ("command", "fields", "status"),
    [
        (0, {0: 101}, Status.CONSTRAINT_ERROR),
        (0, {}, Status.INVALID_COMMAND),
        (0, {0: "five"}, Status.INVALID_COMMAND),
        (0, [5], Status.INVALID_COMMAND),
        (3, {}, Status.UNSUPPORTED_COMMAND),  # declared, no handler
        (9, {}, Status.UNSUPPORTED_COMMAND),
    ],
)
def test_invoke_errors(toy: ToyServer, command: int, fields: Any, status: Status) -> None:
    assert status_of(toy.invoke, ctx(), command, fields) is status


def test_fabric_scoped_command_needs_a_fabric(toy: ToyServer) -> None:
    assert status_of(toy.invoke, ctx(0), 4, {}) is Status.UNSUPPORTED_ACCESS
    assert toy.invoke(ctx(1), 4, {}) is None


def test_unknown_struct_fields_are_ignored(toy: ToyServer) -> None:
    assert toy.invoke(ctx(), 0, {0: 5, 7: "future field"}) == CommandResponse(1, {0: 5})


def test_attach_twice_is_an_error(toy: ToyServer) -> None:
    with pytest.raises(LocalProtocolError):
        toy.attach(2, None)


def test_list_defaults_are_not_shared() -> None:
    a, b = ToyServer(), ToyServer()
    a.get(NUMBERS).append(1)  # even a careless in-place change stays in its own instance
    assert b.get(NUMBERS) == []


def test_persistent_attribute_cannot_become_absent(toy: ToyServer) -> None:
    with pytest.raises(LocalProtocolError):
        toy.set(LABEL, None)
