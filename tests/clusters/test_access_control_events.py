"""AccessControl's AccessControlEntryChanged event (Core spec 9.10.7.1), as the CHIP SDK reports ACL writes."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.access_control import schema
from clusters.access_control.schema import ChangeTypeEnum
from clusters.access_control.server import AccessControlServer, admin_entry
from jfds_device.codec.model import AuthMode
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.errors import ActionError
from jfds_device.im.events import EventRecord, EventStore
from jfds_device.im.provider import AttributePath, ListOperation, RequestContext, SubjectDescriptor

ROOT = DeviceType(device_type=0x0016, revision=3)
ACL_PATH = AttributePath(0, schema.CLUSTER_ID, schema.ACL)
ADMIN_NODE = 0x0000_0000_0001_B669
CASE, GROUP = 2, 3
OPERATE, ADMINISTER = 3, 5


def make() -> tuple[Node, AccessControlServer, EventStore]:
    node = Node(None)
    server = AccessControlServer()
    node.add_endpoint(0, [ROOT], [server])
    node.set_acl_source(server)
    store = EventStore()
    node.attach_events(store, lambda: 1234)
    return node, server, store


def ctx(fabric: int = 1, auth: AuthMode = AuthMode.CASE, subject: int = ADMIN_NODE) -> RequestContext:
    return RequestContext(SubjectDescriptor(auth, subject, fabric))


def entry(privilege: int = ADMINISTER, auth: int = CASE, subjects: Any = None) -> dict[int, Any]:
    return {1: privilege, 2: auth, 3: [ADMIN_NODE] if subjects is None else subjects, 4: None}


def changes(store: EventStore) -> list[tuple[int, Any, Any, int]]:
    """(change type, admin node, admin passcode, latest privilege) per event."""
    return [(r.data[3], r.data[1], r.data[2], r.data[4][1]) for r in store.records()]


def write(node: Node, value: Any, op: ListOperation = ListOperation.REPLACE, **kw: Any) -> None:
    node.write_attribute(ctx(**kw), ACL_PATH, value, op)


def test_add_noc_entry_is_added_by_the_pase_passcode() -> None:
    _, server, store = make()
    server.add_entry(1, admin_entry(ADMIN_NODE), by=SubjectDescriptor(AuthMode.PASE, 0, 0))
    [record] = store.records()
    assert record.data[1] is None and record.data[2] == 0 and record.data[3] == ChangeTypeEnum.ADDED
    assert record.data[4][0xFE] == 1 and record.data[0xFE] == 1
    assert record.fabric_index == 1 and record.system_ms == 1234
    assert (record.endpoint, record.cluster, record.event) == (0, schema.CLUSTER_ID,
                                                               schema.EVENT_ACCESS_CONTROL_ENTRY_CHANGED)


def test_replace_all_reports_changed_added_and_removed_like_the_sdk() -> None:
    node, _, store = make()
    write(node, [entry()])
    # One entry stays in place, one is new: Changed then Added (TC-ACL-2.6 expects both), by the CASE admin.
    write(node, [entry(), entry(OPERATE, GROUP, [])])
    assert changes(store)[1:] == [(ChangeTypeEnum.CHANGED, ADMIN_NODE, None, ADMINISTER),
                                  (ChangeTypeEnum.ADDED, ADMIN_NODE, None, OPERATE)]
    write(node, [entry()])
    assert changes(store)[3:] == [(ChangeTypeEnum.CHANGED, ADMIN_NODE, None, ADMINISTER),
                                  (ChangeTypeEnum.REMOVED, ADMIN_NODE, None, OPERATE)]


def test_an_append_is_one_added_event() -> None:
    node, _, store = make()
    write(node, [entry()])
    write(node, entry(OPERATE, GROUP, []), ListOperation.APPEND)
    assert changes(store)[1:] == [(ChangeTypeEnum.ADDED, ADMIN_NODE, None, OPERATE)]


def test_a_refused_write_emits_nothing() -> None:
    node, _, store = make()
    write(node, [entry()])
    with pytest.raises(ActionError):
        write(node, [entry(), entry(OPERATE, GROUP, [0])])  # group id 0: CONSTRAINT_ERROR
    assert len(list(store.records())) == 1


def test_events_are_scoped_to_the_writing_fabric() -> None:
    node, _, store = make()
    write(node, [entry()], fabric=2)
    records: list[EventRecord] = list(store.records())
    assert [r.fabric_index for r in records] == [2] and records[0].data[4][0xFE] == 2
