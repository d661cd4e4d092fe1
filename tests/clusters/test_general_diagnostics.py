"""General Diagnostics 0x0033 (Core spec 11.12): reboot count, uptime, TimeSnapshot, test event triggers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters.general_diagnostics import schema
from clusters.general_diagnostics.schema import BootReasonEnum, InterfaceTypeEnum, NetworkInterface
from clusters.general_diagnostics.server import GeneralDiagnosticsServer
from jfds_device.clock import ManualClock
from jfds_device.codec.model import AuthMode
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError
from jfds_device.im.provider import (
    AttributePath,
    CommandPath,
    CommandResponse,
    RequestContext,
    Status,
    SubjectDescriptor,
)

ROOT = DeviceType(device_type=0x0016, revision=3)
CTX = RequestContext(SubjectDescriptor(AuthMode.CASE, 0x1234, 1))
ETH0 = NetworkInterface(
    name="eth0",
    is_operational=True,
    off_premise_services_reachable_ipv4=NULL,
    off_premise_services_reachable_ipv6=NULL,
    hardware_address=bytes.fromhex("020000000001"),
    ipv4_addresses=[bytes([10, 0, 0, 2])],
    ipv6_addresses=[bytes.fromhex("fd000000000000000000000000000002")],
    type=InterfaceTypeEnum.ETHERNET,
)


def make(db: Database | None = None, **kwargs: Any) -> tuple[Node, GeneralDiagnosticsServer]:
    node = Node(db)
    kwargs.setdefault("monotonic", ManualClock(start=500.0).now)
    server = GeneralDiagnosticsServer(**kwargs)
    node.add_endpoint(0, [ROOT], [server])
    return node, server


def read(node: Node, attribute: int) -> Any:
    return node.read_attribute(CTX, AttributePath(0, schema.CLUSTER_ID, attribute))


def invoke(node: Node, command: int, fields: dict[int, Any]) -> CommandResponse | None:
    return node.invoke(CTX, CommandPath(0, schema.CLUSTER_ID, command), fields)


def test_attributes() -> None:
    node, _ = make(network_interfaces=[ETH0], boot_reason=BootReasonEnum.SOFTWARE_RESET)
    assert read(node, schema.NETWORK_INTERFACES) == [
        {0: "eth0", 1: True, 2: None, 3: None, 4: ETH0.hardware_address, 5: ETH0.ipv4_addresses,
         6: ETH0.ipv6_addresses, 7: 2},
    ]  # fmt: skip
    assert read(node, schema.REBOOT_COUNT) == 1
    assert read(node, schema.BOOT_REASON) == BootReasonEnum.SOFTWARE_RESET
    assert read(node, schema.TEST_EVENT_TRIGGERS_ENABLED) is False
    assert read(node, 0xFFFB) == [0, 1, 2, 4, 8, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]
    assert read(node, 0xFFF9) == [0, 1]
    assert read(node, 0xFFF8) == [2]


def test_uptime_follows_the_injected_clock() -> None:
    clock = ManualClock(start=100.0)
    node, _ = make(monotonic=clock.now)
    assert read(node, schema.UP_TIME) == 0
    clock.tick_to(3700.9)
    assert read(node, schema.UP_TIME) == 3600


def test_reboot_count_increments_per_start(tmp_path: Path) -> None:
    file = tmp_path / "node.sqlite"
    counts = []
    for _ in range(3):
        with Database(file) as db:
            node, server = make(db)
            counts.append(read(node, schema.REBOOT_COUNT))
            assert server.reboot_count == counts[-1]
    assert counts == [1, 2, 3]


def test_reboot_count_saturates() -> None:
    server = GeneralDiagnosticsServer(monotonic=ManualClock(start=0.0).now)
    server.set(schema.REBOOT_COUNT, 0xFFFF)
    server.started()
    assert server.reboot_count == 0xFFFF


def test_time_snapshot() -> None:
    clock = ManualClock(start=10.0)
    node, _ = make(monotonic=clock.now)
    clock.tick_to(12.5)
    assert invoke(node, 0x01, {}) == CommandResponse(0x02, {0: 2500, 1: None})
    node, _ = make(monotonic=clock.now, wall_clock=lambda: 1_700_000_000.25)
    assert invoke(node, 0x01, {}) == CommandResponse(0x02, {0: 0, 1: 1_700_000_000_250})


@pytest.mark.parametrize("key", [bytes(16), bytes(range(16)), bytes(15)])
def test_test_event_trigger_is_refused_without_an_enable_key(key: bytes) -> None:
    node, _ = make()
    with pytest.raises(ActionError) as info:
        invoke(node, 0x00, {0: key, 1: 0xFFFF_FFFF_FFF1_0000})
    assert info.value.status is Status.CONSTRAINT_ERROR


def test_payload_test_request_is_not_supported() -> None:
    node, _ = make()
    with pytest.raises(ActionError) as info:
        invoke(node, 0x03, {0: bytes(16), 1: 0x55, 2: 1})
    assert info.value.status is Status.UNSUPPORTED_COMMAND


def test_network_interface_update_is_reported() -> None:
    node, server = make()
    version = node.data_version(0, schema.CLUSTER_ID)
    server.update_network_interfaces([ETH0])
    assert node.data_version(0, schema.CLUSTER_ID) == (version + 1) & 0xFFFF_FFFF
    server.update_network_interfaces([ETH0])
    assert node.data_version(0, schema.CLUSTER_ID) == (version + 1) & 0xFFFF_FFFF
