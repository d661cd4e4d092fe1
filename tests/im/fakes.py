"""A small in-memory DataModelProvider for the IM engine tests, and a client-side driver.

Node shape:

* endpoint 0: cluster BASIC (0x0028) with a read-only uint16, a writable label (Manage), a writable bool;
* endpoint 1: cluster TEST (0xFFF1FC00) with a bounded uint8, a large list, an Administer-only attribute,
  a timed-write attribute, a nullable uint16, a fabric-scoped list of structs, an unreadable attribute, and
  commands: plain-status, data-response, timed, Administer-only, big-response, failing, fabric-scoped.

Access: ``PRIVILEGES`` maps a subject node id to its privilege on every cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jfds_device.codec import schema
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.model import AttributeDef, AuthMode, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import NULL, Struct, field, struct
from jfds_device.errors import ActionError
from jfds_device.im.messages import AttributePathIB, ReportData, StatusResponse
from jfds_device.im.provider import (
    AttributePath,
    ChangeListener,
    CommandPath,
    CommandResponse,
    ListOperation,
    RequestContext,
    Status,
    SubjectDescriptor,
)
from jfds_device.im.server import InteractionServer, Outgoing

ADMIN, OPERATOR, VIEWER, STRANGER = 0x1111, 0x2222, 0x3333, 0x4444
PRIVILEGES = {ADMIN: Privilege.ADMINISTER, OPERATOR: Privilege.OPERATE, VIEWER: Privilege.VIEW}

BASIC, TEST = 0x0028, 0xFFF1_FC00
FEATURE_MAP, CLUSTER_REVISION, ATTRIBUTE_LIST = 0xFFFC, 0xFFFD, 0xFFFB
ACCEPTED_COMMANDS, GENERATED_COMMANDS = 0xFFF9, 0xFFF8
GLOBALS = (GENERATED_COMMANDS, ACCEPTED_COMMANDS, ATTRIBUTE_LIST, FEATURE_MAP, CLUSTER_REVISION)

# BASIC attributes
REVISION, LABEL, DISABLED = 0x0000, 0x0005, 0x0010
# TEST attributes
SMALL, BIG_LIST, SECRET, TIMED_ATTR, NULLABLE, FABRIC_LIST, WRITE_ONLY = range(7)
# TEST commands
TOGGLE, ECHO, ECHO_RESPONSE, TIMED_CMD, ADMIN_CMD, BIG_CMD, FAIL_CMD, FABRIC_CMD, BIG_RESPONSE, BIG_CMD_B = range(10)
TIMED_FABRIC_CMD = 0x0A


@struct
class Entry(Struct):
    """A fabric-scoped list entry (Core spec 7.13.6: FabricIndex is tag 0xFE)."""

    note: str = field(1, schema.Str(max_length=16))
    fabric_index: int | None = field(0xFE, schema.UInt(8, 1, 254), optional=True)


@struct
class Empty(Struct):
    pass


@struct
class EchoRequest(Struct):
    value: int = field(0, schema.UInt(8, 0, 200))


@struct
class EchoResponse(Struct):
    value: int = field(0, schema.UINT8)


@struct
class BigRequest(Struct):
    size: int = field(0, schema.UINT16)


BASIC_DEF = ClusterDef(
    BASIC,
    "Basic",
    revision=3,
    attributes=(
        AttributeDef(REVISION, "DataModelRevision", schema.UINT16),
        AttributeDef(LABEL, "NodeLabel", schema.Str(max_length=32), writable=True, write_privilege=Privilege.MANAGE),
        AttributeDef(DISABLED, "LocalConfigDisabled", schema.BOOL, writable=True),
    ),
)

TEST_DEF = ClusterDef(
    TEST,
    "Test",
    revision=1,
    feature_map=0x5,
    attributes=(
        AttributeDef(SMALL, "Small", schema.UInt(8, 0, 100), writable=True),
        AttributeDef(BIG_LIST, "BigList", schema.List(schema.Octets(max_length=200)), writable=True),
        AttributeDef(SECRET, "Secret", schema.UINT32, read_privilege=Privilege.ADMINISTER),
        AttributeDef(TIMED_ATTR, "TimedAttr", schema.UINT8, writable=True, timed_write=True),
        AttributeDef(NULLABLE, "Nullable", schema.UINT16, nullable=True, writable=True),
        AttributeDef(
            FABRIC_LIST,
            "FabricList",
            schema.List(schema.StructType(Entry)),
            writable=True,
            fabric_scoped=True,
            write_privilege=Privilege.ADMINISTER,
        ),
        AttributeDef(WRITE_ONLY, "WriteOnly", schema.UINT8, writable=True),
    ),
    commands=(
        CommandDef(TOGGLE, "Toggle", Empty),
        CommandDef(ECHO, "Echo", EchoRequest, response_id=ECHO_RESPONSE, response=EchoResponse),
        CommandDef(TIMED_CMD, "Timed", Empty, timed=True),
        CommandDef(ADMIN_CMD, "Admin", Empty, privilege=Privilege.ADMINISTER),
        CommandDef(BIG_CMD, "Big", BigRequest, response_id=BIG_RESPONSE),
        CommandDef(BIG_CMD_B, "BigToo", BigRequest, response_id=BIG_RESPONSE),
        CommandDef(FAIL_CMD, "Fail", Empty),
        CommandDef(FABRIC_CMD, "Fabric", Empty, fabric_scoped=True),
        CommandDef(TIMED_FABRIC_CMD, "TimedFabric", Empty, timed=True, fabric_scoped=True),
    ),
)


def big_list(count: int, size: int = 40) -> list[bytes]:
    return [bytes([i % 256]) * size for i in range(count)]


class FakeProvider:
    """Implements ``DataModelProvider`` over dicts; values are kept in TLV form."""

    def __init__(self) -> None:
        self.defs: dict[int, list[ClusterDef]] = {0: [BASIC_DEF], 1: [TEST_DEF]}
        self.values: dict[AttributePath, Any] = {
            AttributePath(0, BASIC, REVISION): 17,
            AttributePath(0, BASIC, LABEL): "kitchen",
            AttributePath(0, BASIC, DISABLED): False,
            AttributePath(1, TEST, SMALL): 5,
            AttributePath(1, TEST, BIG_LIST): big_list(3),
            AttributePath(1, TEST, SECRET): 0xC0FFEE,
            AttributePath(1, TEST, TIMED_ATTR): 0,
            AttributePath(1, TEST, NULLABLE): None,
            AttributePath(1, TEST, FABRIC_LIST): [{1: "one", 0xFE: 1}, {1: "two", 0xFE: 2}],
            AttributePath(1, TEST, WRITE_ONLY): 0,
        }
        self.versions: dict[tuple[int, int], int] = {(0, BASIC): 0x100, (1, TEST): 0xFFFF_FFF0}
        self.listeners: list[ChangeListener] = []
        self.writes: list[tuple[AttributePath, ListOperation, Any]] = []
        self.invokes: list[tuple[CommandPath, Any, RequestContext]] = []
        self.read_contexts: list[RequestContext] = []
        self.transactions: list[str] = []
        self._changed: list[AttributePath] = []
        self.toggled = False

    # -- shape

    def endpoints(self) -> Sequence[int]:
        return sorted(self.defs)

    def clusters(self, endpoint: int) -> Sequence[ClusterDef]:
        return self.defs.get(endpoint, [])

    def _def(self, endpoint: int, cluster: int) -> ClusterDef:
        return next(c for c in self.defs[endpoint] if c.id == cluster)

    def attribute_ids(self, endpoint: int, cluster: int) -> Sequence[int]:
        cdef = self._def(endpoint, cluster)
        return sorted([a.id for a in cdef.attributes] + list(GLOBALS))

    def data_version(self, endpoint: int, cluster: int) -> int:
        return self.versions[(endpoint, cluster)]

    # -- access

    def allowed(self, subject: SubjectDescriptor, endpoint: int, cluster: int, privilege: Privilege) -> bool:
        return PRIVILEGES.get(subject.subject, 0) >= privilege

    # -- read

    def read_attribute(self, ctx: RequestContext, path: AttributePath) -> Any:
        self.read_contexts.append(ctx)
        cdef = self._def(path.endpoint, path.cluster)
        globals_: dict[int, Callable[[], Any]] = {
            FEATURE_MAP: lambda: cdef.feature_map,
            CLUSTER_REVISION: lambda: cdef.revision,
            ATTRIBUTE_LIST: lambda: list(self.attribute_ids(path.endpoint, path.cluster)),
            ACCEPTED_COMMANDS: lambda: sorted(cdef.command_by_id),
            GENERATED_COMMANDS: lambda: cdef.generated_command_ids,
        }
        if path.attribute in globals_:
            return globals_[path.attribute]()
        if path.cluster == TEST and path.attribute == WRITE_ONLY:
            raise ActionError(Status.UNSUPPORTED_READ)
        value = copy.deepcopy(self.values[path])
        if path.cluster == TEST and path.attribute == FABRIC_LIST and ctx.fabric_filtered:
            value = [e for e in value if e[0xFE] == ctx.subject.fabric_index]
        return value

    # -- write

    def begin_write(self) -> None:
        self.transactions.append("begin")

    def end_write(self) -> None:
        self.transactions.append("end")
        changed, self._changed = self._changed, []
        self.notify(changed)

    def write_attribute(self, ctx: RequestContext, path: AttributePath, value: Any, op: ListOperation) -> None:
        adef = self._def(path.endpoint, path.cluster).attribute_by_id[path.attribute]
        if op is ListOperation.APPEND:
            assert isinstance(adef.type, schema.List)
            adef.type.item.from_tlv(value)  # validates; raises SchemaError subclasses
            new = [*self.values[path], self._stamp(ctx, path, value)]
        elif value is None and adef.nullable:
            new = None
        else:
            adef.type.from_tlv(value)
            new = [self._stamp(ctx, path, v) for v in value] if op is ListOperation.REPLACE else value
        if path.attribute == FABRIC_LIST and op is ListOperation.REPLACE:
            others = [e for e in self.values[path] if e[0xFE] != ctx.subject.fabric_index]
            new = others + new
        self.writes.append((path, op, value))
        self.values[path] = new
        self._bump(path)

    def _stamp(self, ctx: RequestContext, path: AttributePath, item: Any) -> Any:
        if path.attribute == FABRIC_LIST:
            return {**item, 0xFE: ctx.subject.fabric_index}
        return item

    def _bump(self, path: AttributePath) -> None:
        key = (path.endpoint, path.cluster)
        self.versions[key] = (self.versions[key] + 1) & 0xFFFF_FFFF
        self._changed.append(path)

    # -- invoke

    def invoke(self, ctx: RequestContext, path: CommandPath, fields: Any) -> CommandResponse | None:
        cdef = self._def(path.endpoint, path.cluster).command_by_id[path.command]
        request = cdef.request.from_tlv(fields)
        self.invokes.append((path, request, ctx))
        if path.command == TOGGLE:
            self.toggled = not self.toggled
            return None
        if path.command == ECHO:
            return CommandResponse(ECHO_RESPONSE, EchoResponse(value=request.value).to_tlv())
        if path.command in (BIG_CMD, BIG_CMD_B):
            return CommandResponse(BIG_RESPONSE, {0: b"\xab" * request.size})
        if path.command == FAIL_CMD:
            raise ActionError(Status.FAILURE, cluster_status=5)
        return None

    # -- changes

    def subscribe_changes(self, listener: ChangeListener) -> None:
        self.listeners.append(listener)

    def notify(self, paths: Iterable[AttributePath]) -> None:
        paths = list(paths)
        if paths:
            for listener in self.listeners:
                listener.attributes_changed(paths)

    def set_value(self, path: AttributePath, value: Any) -> None:
        """An application-side change (not through a write)."""
        self.values[path] = value
        self._bump(path)
        changed, self._changed = self._changed, []
        self.notify(changed)


# ---------------------------------------------------------------------------------------------------- client side


def make_ctx(subject: int = ADMIN, fabric: int = 1, session: int = 7, auth: AuthMode = AuthMode.CASE) -> RequestContext:
    return RequestContext(subject=SubjectDescriptor(auth, subject, fabric), session_id=session)


SUCCESS = StatusResponse(status=Status.SUCCESS).encode()


def status_of(out: Outgoing) -> int:
    assert out.opcode is Op.STATUS_RESPONSE
    return int(StatusResponse.decode(out.payload).status)


@dataclass
class ReadResult:
    reports: list[ReportData]
    outgoing: list[Outgoing]


def drive_chunks(
    server: InteractionServer,
    first: list[Outgoing],
    ctx: RequestContext,
    now: float = 0.0,
    ack_last: bool = False,
) -> ReadResult:
    """Acknowledge every chunk with StatusResponse(SUCCESS) as a client does; collect the reports.

    Checks the chunking invariants on the way (Core spec 8.4.3.3): no SuppressResponse with
    MoreChunkedMessages, every chunk within the payload budget, the exchange kept open until the end.
    """
    outs = first
    result = ReadResult([], [])
    while True:
        assert len(outs) == 1, outs
        out = outs[0]
        result.outgoing.append(out)
        assert out.opcode is Op.REPORT_DATA, out
        report = ReportData.decode(out.payload)
        result.reports.append(report)
        assert len(out.payload) <= server.max_payload
        if report.more_chunked_messages:
            assert not report.suppress_response
            assert out.expect_response and not out.close_exchange
        elif not ack_last:
            assert out.close_exchange and not out.expect_response
            return result
        else:
            assert out.expect_response
        outs = server.on_message(out.exchange, ctx, Op.STATUS_RESPONSE, SUCCESS, now)
        if not report.more_chunked_messages:
            result.outgoing.extend(outs)
            return result


def reassemble(reports: Iterable[ReportData]) -> tuple[dict[AttributePath, Any], dict[AttributePath, int]]:
    """Apply reports as a client cache does: a whole value replaces, ListIndex null appends."""
    values: dict[AttributePath, Any] = {}
    statuses: dict[AttributePath, int] = {}
    for report in reports:
        for ib in report.attribute_reports or ():
            if ib.attribute_data is not None:
                data = ib.attribute_data
                path = AttributePath(data.path.endpoint, data.path.cluster, data.path.attribute)
                value = None if data.data is NULL else data.data
                if data.path.list_index is None:
                    values[path] = list(value) if type(value) is list else value  # don't alias the report
                else:
                    assert data.path.list_index is NULL
                    values[path].append(value)
            else:
                st = ib.attribute_status
                path = AttributePath(st.path.endpoint, st.path.cluster, st.path.attribute)
                statuses[path] = st.status.status
    return values, statuses


def apath(endpoint: int | None = None, cluster: int | None = None, attribute: int | None = None, **kw: Any) -> Any:
    return AttributePathIB(endpoint=endpoint, cluster=cluster, attribute=attribute, **kw)
