"""Our JFDS/JFA schema against the CHIP SDK's generated objects (home-assistant-chip-clusters 2025.7.0).

For every struct and command: the same values encode to the same TLV bytes, and the SDK's bytes decode to
equal values in ours. The SDK objects are the numbering this project implements (connectedhomeip
examples/jf-admin-app/jfa-common/jfa-app.matter @ f63557fc9d0c: the spec 1.5 numbering except AddAdmin's fields).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters.joint_fabric_administrator import schema as jfa
from clusters.joint_fabric_datastore import schema as jfds
from jfds_device.codec import schema
from tests.strategies import for_struct

Objects = pytest.importorskip("chip.clusters.Objects", reason="home-assistant-chip-clusters is not installed")
pytestmark = pytest.mark.interop

SDK_JFDS = Objects.JointFabricDatastore
SDK_JFA = Objects.JointFabricAdministrator

# Our struct -> the SDK's class. Every SDK struct and command must appear here (checked below).
PAIRS: dict[type[schema.Struct], Any] = {
    jfds.StatusEntry: SDK_JFDS.Structs.DatastoreStatusEntryStruct,
    jfds.GroupKeySet: SDK_JFDS.Structs.DatastoreGroupKeySetStruct,
    jfds.GroupInformationEntry: SDK_JFDS.Structs.DatastoreGroupInformationEntryStruct,
    jfds.NodeInformationEntry: SDK_JFDS.Structs.DatastoreNodeInformationEntryStruct,
    jfds.AdministratorInformationEntry: SDK_JFDS.Structs.DatastoreAdministratorInformationEntryStruct,
    jfds.EndpointEntry: SDK_JFDS.Structs.DatastoreEndpointEntryStruct,
    jfds.EndpointGroupIDEntry: SDK_JFDS.Structs.DatastoreEndpointGroupIDEntryStruct,
    jfds.BindingTarget: SDK_JFDS.Structs.DatastoreBindingTargetStruct,
    jfds.EndpointBindingEntry: SDK_JFDS.Structs.DatastoreEndpointBindingEntryStruct,
    jfds.NodeKeySetEntry: SDK_JFDS.Structs.DatastoreNodeKeySetEntryStruct,
    jfds.AccessControlTarget: SDK_JFDS.Structs.DatastoreAccessControlTargetStruct,
    jfds.AccessControlEntry: SDK_JFDS.Structs.DatastoreAccessControlEntryStruct,
    jfds.ACLEntry: SDK_JFDS.Structs.DatastoreACLEntryStruct,
    **{c.request: getattr(SDK_JFDS.Commands, c.name) for c in jfds.CLUSTER.commands},
    **{c.request: getattr(SDK_JFA.Commands, c.name) for c in jfa.CLUSTER.commands},
    **{c.response: getattr(SDK_JFA.Commands, c.response.__name__) for c in jfa.CLUSTER.commands if c.response},
}


def to_sdk(value: Any) -> Any:
    """Build the SDK object equal to one of our values, matching fields by tag, not by name."""
    if isinstance(value, schema.Struct):
        sdk_class = PAIRS[type(value)]
        by_tag = {f.Tag: f.Label for f in sdk_class.descriptor.Fields}
        kwargs = {by_tag[spec.tag]: to_sdk(getattr(value, spec.name)) for spec in value.FIELDS}
        return sdk_class(**kwargs)
    if value is schema.NULL:
        return Objects.NullValue
    if isinstance(value, list):
        return [to_sdk(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def test_every_sdk_struct_and_command_is_covered() -> None:
    def members(namespace: Any) -> set[str]:
        return {n for n in dir(namespace) if not n.startswith("_")}

    covered = {cls.__name__ for cls in PAIRS.values()}
    missing = (members(SDK_JFDS.Structs) | members(SDK_JFDS.Commands) | members(SDK_JFA.Commands)) - covered
    assert not missing


def test_cluster_ids_match() -> None:
    assert jfds.CLUSTER.id == SDK_JFDS.id
    assert jfa.CLUSTER.id == SDK_JFA.id
    sdk_attributes = {a.attribute_id for a in vars(SDK_JFDS.Attributes).values() if hasattr(a, "attribute_id")}
    assert {a.id for a in jfds.CLUSTER.attributes} == sdk_attributes - {0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD}
    for command in jfds.CLUSTER.commands + jfa.CLUSTER.commands:
        sdk = PAIRS[command.request]
        assert sdk.command_id == command.id, command.name
        assert not sdk.must_use_timed_invoke or command.timed


@pytest.mark.parametrize("ours", list(PAIRS), ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_same_bytes_both_ways(ours: type[schema.Struct], data: st.DataObject) -> None:
    value = data.draw(for_struct(ours))
    our_bytes = value.encode()
    sdk_bytes = bytes(to_sdk(value).ToTLV())
    assert our_bytes == sdk_bytes
    assert ours.decode(sdk_bytes) == value
