"""User Label: a writable, persisted list with a capacity that answers RESOURCE_EXHAUSTED."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusters.user_label import schema
from clusters.user_label.server import UserLabelServer
from jfds_device.codec.model import AuthMode
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError
from jfds_device.im.provider import AttributePath, ListOperation, RequestContext, Status, SubjectDescriptor

CTX = RequestContext(subject=SubjectDescriptor(AuthMode.PASE, 0, is_commissioning=True))
PATH = AttributePath(0, schema.CLUSTER_ID, schema.LABEL_LIST)


def make(db: Database | None = None) -> Node:
    node = Node(db)
    node.add_endpoint(0, [DeviceType(device_type=0x16, revision=3)], [UserLabelServer()])
    return node


def labels(n: int) -> list[dict[int, str]]:
    return [{0: f"l{i}", 1: f"v{i}"} for i in range(n)]


def write(node: Node, value: object, op: ListOperation) -> None:
    node.begin_write()
    try:
        node.write_attribute(CTX, PATH, value, op)
    finally:
        node.end_write()


def test_replace_append_and_persist(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    node = make(db)
    write(node, labels(3), ListOperation.REPLACE)
    write(node, {0: "extra", 1: "x"}, ListOperation.APPEND)
    assert node.read_attribute(CTX, PATH) == [*labels(3), {0: "extra", 1: "x"}]
    db.close()
    reopened = make(Database(tmp_path / "state.sqlite3"))
    assert reopened.read_attribute(CTX, PATH) == [*labels(3), {0: "extra", 1: "x"}]


def test_capacity_is_resource_exhausted_and_leaves_the_list_alone() -> None:
    node = make()
    write(node, labels(schema.MAX_LABELS), ListOperation.REPLACE)
    for value, op in ((labels(schema.MAX_LABELS + 1), ListOperation.REPLACE), ({0: "a", 1: "b"}, ListOperation.APPEND)):
        with pytest.raises(ActionError) as err:
            write(node, value, op)
        assert err.value.status is Status.RESOURCE_EXHAUSTED
    assert node.read_attribute(CTX, PATH) == labels(schema.MAX_LABELS)


def test_overlong_label_is_a_constraint_error() -> None:
    with pytest.raises(ActionError) as err:
        write(make(), [{0: "x" * 17, 1: ""}], ListOperation.REPLACE)
    assert err.value.status is Status.CONSTRAINT_ERROR
