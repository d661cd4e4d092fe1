"""datamodel.root: endpoint 0 (Root Node) and endpoint 1 (Joint Fabric Administrator) as a whole node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clusters.access_control import schema as access_control
from clusters.basic_information import schema as basic_information
from clusters.descriptor import schema as descriptor
from clusters.general_commissioning import schema as general_commissioning
from clusters.general_diagnostics import schema as general_diagnostics
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.datastore.sqlite import Database
from jfds_device.im.provider import (
    AttributePath,
    CommandPath,
    ListOperation,
    RequestContext,
    SubjectDescriptor,
)
from jfds_device.node.root import JFA_ENDPOINT, ROOT_ENDPOINT, RootNode, build_root_node

ADMIN = 0x0000_0000_0001_B669
CASE_CTX = RequestContext(SubjectDescriptor(AuthMode.CASE, ADMIN, 1))


def build(db: Database | None = None) -> RootNode:
    return build_root_node(db, monotonic=lambda: 0.0)


def read(root: RootNode, endpoint: int, cluster: int, attribute: int) -> Any:
    return root.node.read_attribute(CASE_CTX, AttributePath(endpoint, cluster, attribute))


def test_layout() -> None:
    root = build()
    assert list(root.node.endpoints()) == [ROOT_ENDPOINT, JFA_ENDPOINT]
    assert read(root, 0, descriptor.CLUSTER_ID, descriptor.DEVICE_TYPE_LIST) == [{0: 0x0016, 1: 3}]
    servers = [0x1D, 0x1F, 0x28, 0x30, 0x31, 0x33, 0x3C, 0x3E, 0x3F, 0x41]
    assert read(root, 0, descriptor.CLUSTER_ID, descriptor.SERVER_LIST) == servers
    assert read(root, 0, descriptor.CLUSTER_ID, descriptor.PARTS_LIST) == [1]
    assert read(root, 1, descriptor.CLUSTER_ID, descriptor.DEVICE_TYPE_LIST) == [{0: 0x0130, 1: 1}]
    assert read(root, 1, descriptor.CLUSTER_ID, descriptor.SERVER_LIST) == [0x1D]
    assert read(root, 1, descriptor.CLUSTER_ID, descriptor.PARTS_LIST) == []


def test_every_attribute_reads() -> None:
    """A wildcard read of the whole node succeeds: every listed attribute has a value."""
    root = build()
    node = root.node
    for endpoint in node.endpoints():
        for cluster in node.clusters(endpoint):
            for attribute in node.attribute_ids(endpoint, cluster.id):
                read(root, endpoint, cluster.id, attribute)


def test_acl_drives_access() -> None:
    root = build()
    subject = CASE_CTX.subject
    assert not root.node.allowed(subject, 0, basic_information.CLUSTER_ID, Privilege.VIEW)
    entry = {1: 5, 2: 2, 3: [ADMIN], 4: None}
    path = AttributePath(0, access_control.CLUSTER_ID, access_control.ACL)
    root.node.write_attribute(CASE_CTX, path, [entry], ListOperation.REPLACE)
    assert root.node.allowed(subject, 0, basic_information.CLUSTER_ID, Privilege.ADMINISTER)
    assert root.node.allowed(subject, 1, descriptor.CLUSTER_ID, Privilege.VIEW)


def test_state_survives_restart(tmp_path: Path) -> None:
    file = tmp_path / "node.sqlite"
    with Database(file) as db:
        root = build(db)
        unique_id = read(root, 0, basic_information.CLUSTER_ID, basic_information.UNIQUE_ID)
        label = AttributePath(0, basic_information.CLUSTER_ID, basic_information.NODE_LABEL)
        root.node.write_attribute(CASE_CTX, label, "jf admin", ListOperation.NOT_A_LIST)
        assert read(root, 0, general_diagnostics.CLUSTER_ID, general_diagnostics.REBOOT_COUNT) == 1
    with Database(file) as db:
        root = build(db)
        assert read(root, 0, basic_information.CLUSTER_ID, basic_information.UNIQUE_ID) == unique_id
        assert read(root, 0, basic_information.CLUSTER_ID, basic_information.NODE_LABEL) == "jf admin"
        assert read(root, 0, general_diagnostics.CLUSTER_ID, general_diagnostics.REBOOT_COUNT) == 2


def test_fail_safe_timer_through_the_root() -> None:
    clock = [0.0]
    root = build_root_node(None, monotonic=lambda: clock[0])
    assert root.get_timer() is None
    pase = RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True), session_id=1)
    arm = CommandPath(0, general_commissioning.CLUSTER_ID, 0x00)
    root.node.invoke(pase, arm, {0: 60, 1: 9})
    assert root.get_timer() == 60.0
    assert read(root, 0, general_commissioning.CLUSTER_ID, general_commissioning.BREADCRUMB) == 9
    root.handle_timer(60.0)
    assert root.get_timer() is None
    assert read(root, 0, general_commissioning.CLUSTER_ID, general_commissioning.BREADCRUMB) == 0
