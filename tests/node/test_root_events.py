"""The root node's own events: StartUp (11.1.6.1), ShutDown (11.1.6.2), Leave (11.1.6.3), BootReason (11.12.8.4)."""

from __future__ import annotations

from clusters.basic_information import schema as basic
from clusters.general_diagnostics import schema as diagnostics
from jfds_device.codec.model import EventPriority
from jfds_device.im.events import EventStore
from jfds_device.node.root import build_root_node


def test_start_up_shut_down_leave_and_boot_reason_carry_their_fields() -> None:
    root = build_root_node(None, monotonic=lambda: 0.0)
    store = EventStore()
    root.node.attach_events(store, lambda: 50)
    root.basic_information.emit_start_up()
    root.general_diagnostics.emit_boot_reason()
    root.basic_information.emit_leave(3)
    root.basic_information.emit_shut_down()
    got = [(r.cluster, r.event, r.priority, r.data, r.fabric_index) for r in store.records()]
    software_version = root.basic_information.get(basic.SOFTWARE_VERSION)
    boot_reason = int(root.general_diagnostics.get(diagnostics.BOOT_REASON))
    assert got == [
        (basic.CLUSTER_ID, basic.EVENT_START_UP, EventPriority.CRITICAL, {0: software_version}, None),
        (diagnostics.CLUSTER_ID, diagnostics.EVENT_BOOT_REASON, EventPriority.CRITICAL, {0: boot_reason}, None),
        (basic.CLUSTER_ID, basic.EVENT_LEAVE, EventPriority.INFO, {0: 3}, None),
        (basic.CLUSTER_ID, basic.EVENT_SHUT_DOWN, EventPriority.CRITICAL, {}, None),
    ]


def test_every_served_cluster_declares_exactly_its_mandatory_and_emitted_events() -> None:
    """Core 1.4.2 data model: StartUp (M), ShutDown and Leave (O, emitted), BootReason (M),
    AccessControlEntryChanged (M); Extension/ARL events need attributes and features we do not serve."""
    root = build_root_node(None, monotonic=lambda: 0.0)
    declared = {
        c.name: sorted(e.name for e in c.events) for c in root.node.clusters(0) if c.events
    }
    assert declared == {
        "AccessControl": ["AccessControlEntryChanged"],
        "BasicInformation": ["Leave", "ShutDown", "StartUp"],
        "GeneralDiagnostics": ["BootReason"],
    }


def test_remove_fabric_is_wired_to_the_leave_event() -> None:
    root = build_root_node(None, monotonic=lambda: 0.0)
    assert root.operational_credentials._fabric_leaving == root.basic_information.emit_leave
