"""Our root-endpoint cluster schemas against the CHIP SDK's generated objects (home-assistant-chip-clusters 2025.7.0).

For each cluster: the same cluster id; every attribute id with the same name (and the SDK declares no
attribute we lack); every command id, name and response; every struct's field tags and names. The SDK
commands we deliberately leave undeclared are listed with the reason. For every struct and command the
same values encode to the same TLV bytes both ways.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters.access_control import schema as access_control
from clusters.basic_information import schema as basic_information
from clusters.descriptor import schema as descriptor
from clusters.general_commissioning import schema as general_commissioning
from clusters.general_diagnostics import schema as general_diagnostics
from clusters.network_commissioning import schema as network_commissioning
from clusters.operational_credentials import schema as operational_credentials
from clusters.user_label import schema as user_label
from jfds_device.codec import schema
from tests.strategies import for_struct

Objects = pytest.importorskip("chip.clusters.Objects", reason="home-assistant-chip-clusters is not installed")
pytestmark = pytest.mark.interop

GLOBALS = {0xFFF8, 0xFFF9, 0xFFFA, 0xFFFB, 0xFFFC, 0xFFFD}
MODULES: list[ModuleType] = [
    descriptor,
    basic_information,
    general_commissioning,
    network_commissioning,
    access_control,
    general_diagnostics,
    user_label,
    operational_credentials,
]

# SDK commands we do not declare, and why.
OMITTED_COMMANDS: dict[str, set[str]] = {
    "BasicInformation": {"MfgSpecificPing"},  # a manufacturer-specific test command, not in the spec
    "NetworkCommissioning": {  # Wi-Fi / Thread only; we implement the Ethernet feature
        "ScanNetworks", "ScanNetworksResponse", "AddOrUpdateWiFiNetwork", "AddOrUpdateThreadNetwork",
        "RemoveNetwork", "NetworkConfigResponse", "ConnectNetwork", "ConnectNetworkResponse", "ReorderNetwork",
        "QueryIdentity", "QueryIdentityResponse",
    },
    "AccessControl": {"ReviewFabricRestrictions", "ReviewFabricRestrictionsResponse"},  # ManagedDevice feature
    "GeneralDiagnostics": {"PayloadTestRequest", "PayloadTestResponse"},  # DataModelTest feature
}  # fmt: skip
# SDK structs we do not declare (Wi-Fi/Thread scan results).
OMITTED_STRUCTS: dict[str, set[str]] = {
    "NetworkCommissioning": {"ThreadInterfaceScanResultStruct", "WiFiInterfaceScanResultStruct"},
}


def sdk_cluster(module: ModuleType) -> Any:
    return getattr(Objects, module.CLUSTER.name)


def our_structs(module: ModuleType) -> list[type[schema.Struct]]:
    return [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, schema.Struct)
        and v is not schema.Struct
        and v.__module__ == module.__name__
    ]


def sdk_class(module: ModuleType, ours: type[schema.Struct]) -> Any:
    sdk = sdk_cluster(module)
    return getattr(sdk.Structs, ours.__name__, None) or getattr(sdk.Commands, ours.__name__)


PAIRS = [(m, s) for m in MODULES for s in our_structs(m)]


def norm(name: str) -> str:
    return name.replace("_", "").lower()


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.CLUSTER.name)
def test_attributes_match(module: ModuleType) -> None:
    sdk = sdk_cluster(module)
    assert module.CLUSTER.id == sdk.id
    sdk_attributes = {
        a.attribute_id: name
        for name, a in vars(sdk.Attributes).items()
        if hasattr(a, "attribute_id") and a.attribute_id not in GLOBALS
    }
    ours = {a.id: a.name for a in module.CLUSTER.attributes}
    assert ours == sdk_attributes


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.CLUSTER.name)
def test_commands_match(module: ModuleType) -> None:
    sdk = sdk_cluster(module)
    declared: set[str] = set()
    for command in module.CLUSTER.commands:
        theirs = getattr(sdk.Commands, command.name)
        assert theirs.command_id == command.id, command.name
        assert theirs.is_client
        assert bool(theirs.must_use_timed_invoke) == command.timed
        assert command.request.__name__ == command.name
        declared.add(command.name)
        if command.response is None:
            assert theirs.response_type is None
        else:
            response = getattr(sdk.Commands, command.response.__name__)
            assert theirs.response_type == command.response.__name__
            assert response.command_id == command.response_id
            assert not response.is_client
            declared.add(command.response.__name__)
    namespace = getattr(sdk, "Commands", None)
    sdk_commands = {n for n in dir(namespace) if not n.startswith("_")} if namespace is not None else set()
    assert sdk_commands - declared == OMITTED_COMMANDS.get(module.CLUSTER.name, set())


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.CLUSTER.name)
def test_every_sdk_struct_is_declared(module: ModuleType) -> None:
    sdk = sdk_cluster(module)
    sdk_structs = {n for n in dir(sdk.Structs) if not n.startswith("_")} if hasattr(sdk, "Structs") else set()
    ours = {s.__name__ for s in our_structs(module)}
    assert sdk_structs - ours == OMITTED_STRUCTS.get(module.CLUSTER.name, set())


@pytest.mark.parametrize(("module", "ours"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_struct_fields_match(module: ModuleType, ours: type[schema.Struct]) -> None:
    theirs = sdk_class(module, ours)
    assert {f.Tag: norm(f.Label) for f in theirs.descriptor.Fields} == {s.tag: norm(s.name) for s in ours.FIELDS}


def to_sdk(module: ModuleType, value: Any) -> Any:
    """The SDK object equal to one of our values, fields matched by tag."""
    if isinstance(value, schema.Struct):
        sdk_type = sdk_class(module, type(value))
        by_tag = {f.Tag: f.Label for f in sdk_type.descriptor.Fields}
        return sdk_type(**{by_tag[s.tag]: to_sdk(module, getattr(value, s.name)) for s in value.FIELDS})
    if value is schema.NULL:
        return Objects.NullValue
    if isinstance(value, list):
        return [to_sdk(module, v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def _with_fabric_index(value: Any) -> Any:
    # The SDK treats FabricIndex as mandatory on the wire (reads always carry it); ours is optional
    # only because writes may omit it.
    if isinstance(value, schema.Struct):
        changes = {s.name: _with_fabric_index(getattr(value, s.name)) for s in value.FIELDS}
        for spec in value.FIELDS:
            if spec.tag == 0xFE and changes[spec.name] is None:
                changes[spec.name] = 1
        return type(value)(**changes)
    if isinstance(value, list):
        return [_with_fabric_index(v) for v in value]
    return value


@pytest.mark.parametrize(("module", "ours"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_same_bytes_both_ways(module: ModuleType, ours: type[schema.Struct], data: st.DataObject) -> None:
    value = _with_fabric_index(data.draw(for_struct(ours)))
    # We decode NewRegulatoryConfig as a plain uint8 (unknown values answer ValueOutsideRange); the SDK
    # folds unknown enum values into kUnknownEnumValue, so only known values compare byte for byte.
    if isinstance(value, general_commissioning.SetRegulatoryConfig):
        value = dataclasses.replace(value, new_regulatory_config=value.new_regulatory_config % 3)
    our_bytes = value.encode()
    assert our_bytes == bytes(to_sdk(module, value).ToTLV())
    assert ours.decode(our_bytes) == value
