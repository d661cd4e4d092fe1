"""Network Commissioning 0x0031, Ethernet feature (Core spec 11.9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters.network_commissioning import schema
from clusters.network_commissioning.server import EthernetNetworkCommissioningServer
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError
from jfds_device.im.provider import AttributePath, CommandPath, ListOperation, RequestContext, Status, SubjectDescriptor

ROOT = DeviceType(device_type=0x0016, revision=3)
CTX = RequestContext(SubjectDescriptor(AuthMode.CASE, 0x1234, 1))


def make(db: Database | None = None) -> Node:
    node = Node(db)
    node.add_endpoint(0, [ROOT], [EthernetNetworkCommissioningServer("veth0")])
    return node


def read(node: Node, attribute: int) -> Any:
    return node.read_attribute(CTX, AttributePath(0, schema.CLUSTER_ID, attribute))


def test_ethernet_attributes() -> None:
    node = make()
    assert read(node, 0xFFFC) == 0x4
    assert read(node, 0xFFFD) == 2
    assert read(node, schema.MAX_NETWORKS) == 1
    assert read(node, schema.NETWORKS) == [{0: b"veth0", 1: True}]
    assert read(node, schema.INTERFACE_ENABLED) is True
    assert read(node, schema.LAST_NETWORKING_STATUS) is None
    assert read(node, schema.LAST_NETWORK_ID) is None
    assert read(node, schema.LAST_CONNECT_ERROR_VALUE) is None
    assert read(node, 0xFFFB) == [0, 1, 4, 5, 6, 7, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]
    assert read(node, 0xFFF9) == []  # Ethernet has no commands
    assert read(node, 0xFFF8) == []


def test_read_privileges() -> None:
    attrs = schema.CLUSTER.attribute_by_id
    for attribute in (schema.MAX_NETWORKS, schema.NETWORKS, schema.LAST_NETWORKING_STATUS, schema.LAST_NETWORK_ID):
        assert attrs[attribute].read_privilege is Privilege.ADMINISTER
    assert attrs[schema.INTERFACE_ENABLED].read_privilege is Privilege.VIEW
    assert attrs[schema.INTERFACE_ENABLED].write_privilege is Privilege.ADMINISTER


def test_wifi_commands_are_unsupported() -> None:
    with pytest.raises(ActionError) as info:
        make().invoke(CTX, CommandPath(0, schema.CLUSTER_ID, 0x00), {})
    assert info.value.status is Status.UNSUPPORTED_COMMAND


def test_interface_enabled_is_writable_and_persisted(tmp_path: Path) -> None:
    file = tmp_path / "node.sqlite"
    with Database(file) as db:
        node = make(db)
        path = AttributePath(0, schema.CLUSTER_ID, schema.INTERFACE_ENABLED)
        node.write_attribute(CTX, path, False, ListOperation.NOT_A_LIST)
    with Database(file) as db:
        node = make(db)
        assert read(node, schema.INTERFACE_ENABLED) is False
        assert not node.server_of(0, EthernetNetworkCommissioningServer).interface_enabled


def test_networks_is_read_only() -> None:
    node = make()
    with pytest.raises(ActionError) as info:
        node.write_attribute(CTX, AttributePath(0, schema.CLUSTER_ID, schema.NETWORKS), [], ListOperation.REPLACE)
    assert info.value.status is Status.UNSUPPORTED_WRITE
