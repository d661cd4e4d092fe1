"""Access Control 0x001F (Core spec 9.10): fabric-scoped ACL writes, validation, and the ACL engine feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters.access_control import schema
from clusters.access_control.schema import AccessControlEntryStruct
from clusters.access_control.server import AccessControlServer, admin_entry
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.acl import AclEntry, AclTarget, cat_subject
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, ListOperation, RequestContext, Status, SubjectDescriptor
from jfds_device.im.server import InteractionServer

ROOT = DeviceType(device_type=0x0016, revision=3)
ACL_PATH = AttributePath(0, schema.CLUSTER_ID, schema.ACL)
REPLACE, APPEND = ListOperation.REPLACE, ListOperation.APPEND
ADMIN_NODE = 0x0000_0000_0001_B669
CASE, GROUP, PASE = 2, 3, 1
VIEW, OPERATE, ADMINISTER = 1, 3, 5


def ctx(fabric: int = 1, *, filtered: bool = True) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, ADMIN_NODE, fabric), fabric_filtered=filtered)


def entry(privilege: int = ADMINISTER, auth: int = CASE, subjects: Any = None, targets: Any = None) -> dict[int, Any]:
    return {1: privilege, 2: auth, 3: [ADMIN_NODE] if subjects is None else subjects, 4: targets}


def make(db: Database | None = None) -> tuple[Node, AccessControlServer]:
    node = Node(db)
    server = AccessControlServer()
    node.add_endpoint(0, [ROOT], [server])
    node.set_acl_source(server)
    return node, server


@pytest.fixture
def node() -> Node:
    return make()[0]


def write(node: Node, value: Any, fabric: int = 1, op: ListOperation = REPLACE) -> None:
    node.write_attribute(ctx(fabric), ACL_PATH, value, op)


def write_status(node: Node, value: Any, fabric: int = 1, op: ListOperation = REPLACE) -> Status:
    with pytest.raises(ActionError) as info:
        write(node, value, fabric, op)
    return info.value.status


def test_capacity_attributes(node: Node) -> None:
    def read(attribute: int) -> Any:
        return node.read_attribute(ctx(), AttributePath(0, schema.CLUSTER_ID, attribute))

    assert read(schema.SUBJECTS_PER_ACCESS_CONTROL_ENTRY) == 4
    assert read(schema.TARGETS_PER_ACCESS_CONTROL_ENTRY) == 3
    assert read(schema.ACCESS_CONTROL_ENTRIES_PER_FABRIC) == 16
    assert read(0xFFFB) == [0, 2, 3, 4, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]  # no Extension, no ARL
    assert read(0xFFFC) == 0


def test_acl_privileges_in_schema() -> None:
    acl_attr = schema.CLUSTER.attribute_by_id[schema.ACL]
    assert acl_attr.read_privilege is Privilege.ADMINISTER
    assert acl_attr.write_privilege is Privilege.ADMINISTER
    assert acl_attr.fabric_scoped


def test_write_and_read_back_stamped(node: Node) -> None:
    targets = [{0: 6, 1: None, 2: None}, {0: None, 1: 1, 2: None}]
    write(node, [entry(), entry(OPERATE, CASE, [], targets)])
    assert node.read_attribute(ctx(), ACL_PATH) == [
        {1: ADMINISTER, 2: CASE, 3: [ADMIN_NODE], 4: None, 0xFE: 1},
        {1: OPERATE, 2: CASE, 3: [], 4: targets, 0xFE: 1},
    ]


def test_other_fabrics_see_only_fabric_index(node: Node) -> None:
    write(node, [entry()], fabric=1)
    write(node, [entry(VIEW)], fabric=2)
    assert node.read_attribute(ctx(2), ACL_PATH) == [{1: VIEW, 2: CASE, 3: [ADMIN_NODE], 4: None, 0xFE: 2}]
    assert node.read_attribute(ctx(2, filtered=False), ACL_PATH) == [
        {0xFE: 1},
        {1: VIEW, 2: CASE, 3: [ADMIN_NODE], 4: None, 0xFE: 2},
    ]


def test_writes_touch_only_the_accessing_fabric(node: Node) -> None:
    write(node, [entry()], fabric=1)
    write(node, [entry(), entry(VIEW)], fabric=2)
    write(node, [], fabric=2)
    assert node.read_attribute(ctx(1), ACL_PATH) == [{1: ADMINISTER, 2: CASE, 3: [ADMIN_NODE], 4: None, 0xFE: 1}]


def test_append(node: Node) -> None:
    write(node, [], fabric=1)
    write(node, entry(), fabric=1, op=APPEND)
    write(node, entry(VIEW, CASE, []), fabric=1, op=APPEND)
    assert len(node.read_attribute(ctx(), ACL_PATH)) == 2


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ([entry(auth=PASE, subjects=[])], Status.CONSTRAINT_ERROR),  # PASE entries are implicit only
        ([entry(ADMINISTER, GROUP, [0x0101])], Status.CONSTRAINT_ERROR),  # Group cannot Administer
        ([entry(subjects=[0])], Status.CONSTRAINT_ERROR),  # not an operational node id
        ([entry(subjects=[0xFFFF_FFFD_0001_0000])], Status.CONSTRAINT_ERROR),  # CAT version 0
        ([entry(OPERATE, GROUP, [0])], Status.CONSTRAINT_ERROR),  # group id 0
        ([entry(OPERATE, GROUP, [0x1_0000])], Status.CONSTRAINT_ERROR),
        ([entry(privilege=0)], Status.CONSTRAINT_ERROR),
        ([entry(privilege=6)], Status.CONSTRAINT_ERROR),
        ([entry(auth=4)], Status.CONSTRAINT_ERROR),
        ([entry(targets=[{0: None, 1: None, 2: None}])], Status.CONSTRAINT_ERROR),  # empty target
        ([entry(targets=[{0: None, 1: 1, 2: 0x0100}])], Status.CONSTRAINT_ERROR),  # endpoint and device type
        ([entry(targets=[{0: 0x8000, 1: None, 2: None}])], Status.CONSTRAINT_ERROR),  # invalid cluster id
        ([entry(targets=[{0: None, 1: 0xFFFF, 2: None}])], Status.CONSTRAINT_ERROR),  # invalid endpoint
        ([entry(targets=[{0: None, 1: None, 2: 0xC000}])], Status.CONSTRAINT_ERROR),  # invalid device type
        ([entry(subjects=[ADMIN_NODE + i for i in range(5)])], Status.RESOURCE_EXHAUSTED),
        ([entry(targets=[{0: c, 1: None, 2: None} for c in range(4)])], Status.RESOURCE_EXHAUSTED),
        ([entry()] * (schema.ENTRIES_PER_FABRIC + 1), Status.RESOURCE_EXHAUSTED),
        ([{1: ADMINISTER, 2: CASE, 3: None}], Status.CONSTRAINT_ERROR),  # Targets field missing
        ([{1: "admin", 2: CASE, 3: None, 4: None}], Status.CONSTRAINT_ERROR),
    ],
)
def test_invalid_entries(node: Node, value: Any, status: Status) -> None:
    write(node, [entry()])
    assert write_status(node, value) is status
    assert len(node.read_attribute(ctx(), ACL_PATH)) == 1  # nothing changed


def test_capacity_is_per_fabric(node: Node) -> None:
    write(node, [entry()] * schema.ENTRIES_PER_FABRIC, fabric=1)
    write(node, [entry()] * schema.ENTRIES_PER_FABRIC, fabric=2)
    assert write_status(node, entry(), fabric=2, op=APPEND) is Status.RESOURCE_EXHAUSTED


def test_valid_limits_are_accepted(node: Node) -> None:
    cat = cat_subject(0xABCD, 1)
    targets = [{0: 6, 1: None, 2: None}, {0: None, 1: None, 2: 0x0100}, {0: 0xFFF1_FC00, 1: 1, 2: None}]
    write(node, [entry(subjects=[ADMIN_NODE, cat, 2, 3], targets=targets), entry(OPERATE, GROUP, [1, 0xFFFF])])


def test_write_without_fabric_is_refused(node: Node) -> None:
    pase = RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True))
    with pytest.raises(ActionError) as info:
        node.write_attribute(pase, ACL_PATH, [entry()], REPLACE)
    assert info.value.status is Status.UNSUPPORTED_ACCESS


def test_entries_feed_the_access_check(node: Node) -> None:
    subject = SubjectDescriptor(AuthMode.CASE, ADMIN_NODE, 1)
    assert not node.allowed(subject, 0, 0x28, Privilege.VIEW)
    write(node, [entry(OPERATE, CASE, [ADMIN_NODE], [{0: 0x28, 1: None, 2: None}])])
    assert node.allowed(subject, 0, 0x28, Privilege.OPERATE)
    assert not node.allowed(subject, 0, 0x30, Privilege.VIEW)
    assert not node.allowed(SubjectDescriptor(AuthMode.CASE, ADMIN_NODE, 2), 0, 0x28, Privilege.VIEW)


def test_acl_entries_view() -> None:
    _, server = make()
    server.add_entry(3, admin_entry(ADMIN_NODE))
    assert server.acl_entries() == (AclEntry(3, Privilege.ADMINISTER, AuthMode.CASE, (ADMIN_NODE,)),)
    server.add_entry(
        3,
        AccessControlEntryStruct(
            privilege=3, auth_mode=3, subjects=[7], targets=[schema.AccessControlTargetStruct(cluster=6)]
        ),
    )  # type: ignore[arg-type]
    assert server.acl_entries()[1] == AclEntry(3, Privilege.OPERATE, AuthMode.GROUP, (7,), (AclTarget(cluster=6),))


def test_add_entry_validates_and_counts() -> None:
    _, server = make()
    for _ in range(schema.ENTRIES_PER_FABRIC):
        server.add_entry(1, admin_entry(ADMIN_NODE))
    with pytest.raises(ActionError) as info:
        server.add_entry(1, admin_entry(ADMIN_NODE))
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    with pytest.raises(ActionError):
        server.add_entry(2, admin_entry(0))


def test_remove_fabric(node: Node) -> None:
    server = node.server_of(0, AccessControlServer)
    write(node, [entry()], fabric=1)
    write(node, [entry()], fabric=2)
    server.remove_fabric(1)
    assert [e.fabric_index for e in server.acl_entries()] == [2]
    assert server.entries(1) == []


def test_acl_survives_restart(tmp_path: Path) -> None:
    file = tmp_path / "node.sqlite"
    with Database(file) as db:
        node, _ = make(db)
        write(node, [entry()], fabric=4)
    with Database(file) as db:
        _, server = make(db)
        assert server.acl_entries() == (AclEntry(4, Privilege.ADMINISTER, AuthMode.CASE, (ADMIN_NODE,)),)



# ------------------------------------------------------------------------------- chunked ACL writes via the IM


def _im_write(im: InteractionServer, ctx: RequestContext, exchange: int, items: list[Any], more: bool) -> list[int]:
    """One WriteRequest of ACL IBs, each ``(list_index, value)`` (NULL = append); its WriteResponse statuses."""
    ibs = [
        m.AttributeDataIB(
            path=m.AttributePathIB(endpoint=0, cluster=schema.CLUSTER_ID, attribute=schema.ACL, list_index=index),
            data=value,
        )
        for index, value in items
    ]
    request = m.WriteRequest(timed_request=False, write_requests=ibs, more_chunked_messages=more or None)
    [out] = im.on_message(exchange, ctx, Op.WRITE_REQUEST, request.encode(), 0.0)
    assert out.opcode is Op.WRITE_RESPONSE
    return [s.status.status for s in m.WriteResponse.decode(out.payload).write_responses]


def test_a_chunked_acl_write_keeps_its_writers_access(node: Node) -> None:
    """Replace-all with [] then appends (matter.js always, the CHIP SDK past one message): the access decision is
    taken once per attribute per write interaction (the SDK's WriteHandler caches it), so the writer is not locked
    out half-way; the ACL in force meanwhile is what has been written so far."""
    write(node, [entry()])
    im = InteractionServer(node)
    admin = ctx()
    viewer = entry(VIEW, subjects=[0x2222])
    assert _im_write(im, admin, 1, [(None, [])], more=True) == [Status.SUCCESS]
    # Meanwhile the fabric's ACL is empty and enforced: any other interaction of the writer has no access.
    assert not node.allowed(admin.subject, 0, schema.CLUSTER_ID, Privilege.VIEW)
    assert _im_write(im, admin, 1, [(NULL, viewer)], more=True) == [Status.SUCCESS]
    assert _im_write(im, admin, 1, [(NULL, entry())], more=False) == [Status.SUCCESS]
    assert node.read_attribute(admin, ACL_PATH) == [viewer | {0xFE: 1}, entry() | {0xFE: 1}]
    assert node.allowed(admin.subject, 0, schema.CLUSTER_ID, Privilege.ADMINISTER)


def test_the_cached_decision_does_not_outlive_its_interaction(node: Node) -> None:
    write(node, [entry()])
    im = InteractionServer(node)
    # A write that leaves the writer only View is granted (access was decided before it); the next interaction
    # is decided against the new ACL.
    assert _im_write(im, ctx(), 1, [(None, [entry(VIEW)])], more=False) == [Status.SUCCESS]
    assert _im_write(im, ctx(), 2, [(None, [entry()])], more=False) == [Status.UNSUPPORTED_ACCESS]


def test_a_chunked_write_without_access_is_refused_for_every_chunk(node: Node) -> None:
    write(node, [entry()])
    im = InteractionServer(node)
    stranger = RequestContext(SubjectDescriptor(AuthMode.CASE, 0x3333, 1))
    assert _im_write(im, stranger, 1, [(None, [])], more=True) == [Status.UNSUPPORTED_ACCESS]
    assert _im_write(im, stranger, 1, [(NULL, entry(subjects=[0x3333]))], more=False) == [Status.UNSUPPORTED_ACCESS]
    assert node.read_attribute(ctx(), ACL_PATH) == [entry() | {0xFE: 1}]
