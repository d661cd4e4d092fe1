"""Group Key Management 0x003F (Core spec 11.2): key sets, GroupKeyMap, GroupTable, IPK API, persistence."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from clusters.group_key_management import schema
from clusters.group_key_management.schema import GroupInfoMapStruct, GroupKeySetStruct
from clusters.group_key_management.server import GroupKeyManagementServer
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError, LocalProtocolError
from jfds_device.im.provider import (
    AttributePath,
    CommandPath,
    CommandResponse,
    ListOperation,
    RequestContext,
    Status,
    SubjectDescriptor,
)

ROOT = DeviceType(device_type=0x0016, revision=3)
ADMIN_NODE = 0x0000_0000_0001_B669
REPLACE, APPEND = ListOperation.REPLACE, ListOperation.APPEND
MAP_PATH = AttributePath(0, schema.CLUSTER_ID, schema.GROUP_KEY_MAP)
TABLE_PATH = AttributePath(0, schema.CLUSTER_ID, schema.GROUP_TABLE)
WRITE, READ, REMOVE, READ_ALL = (
    schema.KEY_SET_WRITE,
    schema.KEY_SET_READ,
    schema.KEY_SET_REMOVE,
    schema.KEY_SET_READ_ALL_INDICES,
)

# Epoch keys and start times of TC-GRPKEY-2.2; the IPK epoch key is group key set vector 1
# (connectedhomeip src/crypto/tests/TestGroupOperationalCredentials.cpp @ 1851a4bce9e2, theGroupKeySetTestVector[1]).
K0 = bytes.fromhex("d0d1d2d3d4d5d6d7d8d9dadbdcdddedf")
K1 = bytes.fromhex("d1d1d2d3d4d5d6d7d8d9dadbdcdddedf")
K2 = bytes.fromhex("d2d1d2d3d4d5d6d7d8d9dadbdcdddedf")
T0, T1, T2 = 1, 18446744073709551613, 18446744073709551614
IPK = bytes.fromhex("101112131415161718191a1b1c1d1e1f")
CFID = bytes.fromhex("87e1b004e235a130")
IPK_OPERATIONAL = bytes.fromhex("aed95695f375d2ce78556a41730c3f43")
TRUST_FIRST, CACHE_AND_SYNC = 0, 1


def ctx(fabric: int = 1, *, filtered: bool = True) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, ADMIN_NODE, fabric), fabric_filtered=filtered)


def key_set(
    set_id: int = 0x1A,
    *,
    policy: int = TRUST_FIRST,
    k0: bytes | None = K0,
    t0: int | None = T0,
    k1: bytes | None = None,
    t1: int | None = None,
    k2: bytes | None = None,
    t2: int | None = None,
) -> dict[int, Any]:
    """A GroupKeySetStruct as TLV (None = null)."""
    return {0: set_id, 1: policy, 2: k0, 3: t0, 4: k1, 5: t1, 6: k2, 7: t2}


FULL = {"k1": K1, "t1": T1, "k2": K2, "t2": T2}


def make(db: Database | None = None, **limits: int) -> tuple[Node, GroupKeyManagementServer]:
    node = Node(db)
    server = GroupKeyManagementServer(db, **limits)
    node.add_endpoint(0, [ROOT], [server])
    return node, server


@pytest.fixture
def node() -> Node:
    return make()[0]


def invoke(node: Node, command: int, fields: Any = None, fabric: int = 1) -> CommandResponse | None:
    return node.invoke(ctx(fabric), CommandPath(0, schema.CLUSTER_ID, command), fields)


def status_of(node: Node, command: int, fields: Any = None, fabric: int = 1) -> Status:
    with pytest.raises(ActionError) as info:
        invoke(node, command, fields, fabric)
    return info.value.status


def write_set(node: Node, fabric: int = 1, set_id: int = 0x1A, **fields: Any) -> None:
    assert invoke(node, WRITE, {0: key_set(set_id, **fields)}, fabric) is None


def read_set(node: Node, set_id: int, fabric: int = 1) -> dict[int, Any]:
    response = invoke(node, READ, {0: set_id}, fabric)
    assert response is not None and response.command == schema.KEY_SET_READ_RESPONSE
    value: dict[int, Any] = response.fields[0]
    return value


def indices(node: Node, fabric: int = 1) -> list[int]:
    response = invoke(node, READ_ALL, {}, fabric)
    assert response is not None and response.command == schema.KEY_SET_READ_ALL_INDICES_RESPONSE
    ids: list[int] = response.fields[0]
    return ids


def write_map(node: Node, value: Any, fabric: int = 1, op: ListOperation = REPLACE) -> None:
    node.write_attribute(ctx(fabric), MAP_PATH, value, op)


def map_status(node: Node, value: Any, fabric: int = 1, op: ListOperation = REPLACE) -> Status:
    with pytest.raises(ActionError) as info:
        write_map(node, value, fabric, op)
    return info.value.status


def read_map(node: Node, fabric: int = 1, *, filtered: bool = True) -> list[dict[int, Any]]:
    value: list[dict[int, Any]] = node.read_attribute(ctx(fabric, filtered=filtered), MAP_PATH)
    return value


# ---------------------------------------------------------------------------------------------- metadata


def test_globals_and_capacities(node: Node) -> None:
    def read(attribute: int) -> Any:
        return node.read_attribute(ctx(), AttributePath(0, schema.CLUSTER_ID, attribute))

    assert read(schema.MAX_GROUPS_PER_FABRIC_ATTR) == 12
    assert read(schema.MAX_GROUP_KEYS_PER_FABRIC_ATTR) == 8
    assert read(0xFFFB) == [0, 1, 2, 3, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]
    assert read(0xFFF9) == [0, 1, 3, 4]
    assert read(0xFFF8) == [2, 5]
    assert read(0xFFFC) == 0
    assert read(0xFFFD) == 2
    assert read(schema.GROUP_KEY_MAP) == [] and read(schema.GROUP_TABLE) == []


def test_access_in_schema() -> None:
    attrs = schema.CLUSTER.attribute_by_id
    key_map, table = attrs[schema.GROUP_KEY_MAP], attrs[schema.GROUP_TABLE]
    assert key_map.writable and key_map.fabric_scoped and key_map.persistent
    assert (key_map.read_privilege, key_map.write_privilege) == (Privilege.VIEW, Privilege.MANAGE)
    assert not table.writable and table.fabric_scoped and table.read_privilege is Privilege.VIEW
    for command in schema.CLUSTER.commands:
        assert command.privilege is Privilege.ADMINISTER and command.fabric_scoped and not command.timed


def test_limits_are_configurable() -> None:
    _, server = make(max_groups_per_fabric=4, max_group_keys_per_fabric=3)
    assert (server.max_groups_per_fabric, server.max_group_keys_per_fabric) == (4, 3)
    with pytest.raises(LocalProtocolError):
        GroupKeyManagementServer(max_group_keys_per_fabric=0)


# ---------------------------------------------------------------------------------------------- KeySetWrite / Read


def test_write_then_read_hides_keys(node: Node) -> None:
    write_set(node, **FULL)
    assert read_set(node, 0x1A) == {0: 0x1A, 1: TRUST_FIRST, 2: None, 3: T0, 4: None, 5: T1, 6: None, 7: T2}


@pytest.mark.parametrize(
    "fields",
    [
        {},  # epoch 0 only
        {"k1": K1, "t1": T1},  # epochs 0 and 1
        FULL,
        {"t0": 0xFFFF_FFFF_FFFF_FFFF},
    ],
    ids=["epoch0", "epoch01", "epoch012", "max-start"],
)
def test_valid_key_sets(node: Node, fields: dict[str, Any]) -> None:
    write_set(node, **fields)
    assert indices(node) == [0x1A]


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        # 11.2.7.1, in the spec's order; TC-GRPKEY-2.2 steps 6-16b.
        ({"set_id": 0}, Status.INVALID_COMMAND),  # the IPK is not writable through the cluster
        ({"k0": None}, Status.INVALID_COMMAND),
        ({"t0": None}, Status.INVALID_COMMAND),
        ({"t0": 0}, Status.INVALID_COMMAND),
        ({"k0": K0[:1]}, Status.CONSTRAINT_ERROR),
        ({"k0": K0[:15]}, Status.CONSTRAINT_ERROR),
        ({"k0": K0 + b"\xd0"}, Status.CONSTRAINT_ERROR),
        ({"k0": b""}, Status.CONSTRAINT_ERROR),
        ({"k0": None, "k1": K1[:15], "t1": T1}, Status.INVALID_COMMAND),  # null key0 is checked first
        ({"k1": None, "t1": T1}, Status.INVALID_COMMAND),
        ({"k1": K1, "t1": None}, Status.INVALID_COMMAND),
        ({"k1": K1, "t1": T0}, Status.INVALID_COMMAND),  # not later than t0
        ({"k1": K1, "t1": 0, "t0": 5}, Status.INVALID_COMMAND),
        ({"k1": K1[:15], "t1": T1}, Status.CONSTRAINT_ERROR),
        ({"k1": K1 + b"\x00", "t1": T1}, Status.CONSTRAINT_ERROR),
        ({"k2": K2, "t2": T2}, Status.INVALID_COMMAND),  # key2 without key1
        ({"k1": K1, "t1": T1, "k2": None, "t2": T2}, Status.INVALID_COMMAND),
        ({"k1": K1, "t1": T1, "k2": K2, "t2": None}, Status.INVALID_COMMAND),
        ({"k1": K1, "t1": T1, "k2": K2, "t2": T1}, Status.INVALID_COMMAND),  # not later than t1
        ({"k1": K1, "t1": T2, "k2": K2, "t2": T1}, Status.INVALID_COMMAND),
        ({**FULL, "k2": K2[:15]}, Status.CONSTRAINT_ERROR),
        ({**FULL, "k2": K2 + b"\x00"}, Status.CONSTRAINT_ERROR),
        ({"policy": CACHE_AND_SYNC}, Status.INVALID_COMMAND),  # 11.2.5.4.2: CS feature not supported
        ({"policy": 2}, Status.CONSTRAINT_ERROR),  # not a GroupKeySecurityPolicyEnum value
    ],
)
def test_invalid_key_set_write(node: Node, fields: dict[str, Any], status: Status) -> None:
    assert status_of(node, WRITE, {0: key_set(**fields)}) is status
    assert indices(node) == []  # nothing stored


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, Status.INVALID_COMMAND),  # GroupKeySet missing
        ({0: {0: 1, 1: 0, 2: K0, 3: T0}}, Status.INVALID_COMMAND),  # mandatory nullable fields absent
        ({0: {**key_set(), 2: "not bytes"}}, Status.INVALID_COMMAND),
        ({0: {**key_set(), 0: 0x1_0000}}, Status.CONSTRAINT_ERROR),
    ],
)
def test_malformed_key_set_write(node: Node, fields: dict[int, Any], status: Status) -> None:
    assert status_of(node, WRITE, fields) is status


def test_write_replaces_an_existing_set(node: Node) -> None:
    write_set(node, **FULL)
    write_set(node, t0=7)
    assert read_set(node, 0x1A) == {0: 0x1A, 1: TRUST_FIRST, 2: None, 3: 7, 4: None, 5: None, 6: None, 7: None}
    assert indices(node) == [0x1A]


def test_capacity_counts_the_ipk() -> None:
    node, server = make()
    server.install_ipk(1, IPK)
    for set_id in range(1, 8):  # MaxGroupKeysPerFabric 8 = the IPK + 7 (TC-GRPKEY-2.2 steps 21-23)
        write_set(node, set_id=set_id)
    assert status_of(node, WRITE, {0: key_set(9)}) is Status.RESOURCE_EXHAUSTED
    write_set(node, set_id=3, **FULL)  # replacing an existing set needs no room
    assert indices(node) == list(range(8))
    write_set(node, fabric=2, set_id=9)  # capacity is per fabric


def test_capacity_reserves_the_ipk_slot() -> None:
    node, server = make(max_group_keys_per_fabric=3)
    write_set(node, set_id=1)
    write_set(node, set_id=2)
    assert status_of(node, WRITE, {0: key_set(3)}) is Status.RESOURCE_EXHAUSTED
    server.install_ipk(1, IPK)  # AddNOC always finds room for the IPK
    assert indices(node) == [0, 1, 2]


def test_read_unknown_set(node: Node) -> None:
    assert status_of(node, READ, {0: 0x1B}) is Status.NOT_FOUND
    assert status_of(node, READ, {0: "x"}) is Status.INVALID_COMMAND


def test_read_ipk_set() -> None:
    node, server = make()
    server.install_ipk(1, IPK)
    # As AddNOC synthesizes it (11.18.6.8): TrustFirst, EpochStartTime0 0, key hidden.
    assert read_set(node, 0) == {0: 0, 1: TRUST_FIRST, 2: None, 3: 0, 4: None, 5: None, 6: None, 7: None}


# ---------------------------------------------------------------------------------------------- KeySetRemove


def test_remove_rules() -> None:
    node, server = make()
    server.install_ipk(1, IPK)
    assert status_of(node, REMOVE, {0: 0}) is Status.INVALID_COMMAND
    assert status_of(node, REMOVE, {0: 0x1B}) is Status.NOT_FOUND
    write_set(node)
    assert invoke(node, REMOVE, {0: 0x1A}) is None
    assert status_of(node, READ, {0: 0x1A}) is Status.NOT_FOUND
    assert status_of(node, REMOVE, {0: 0x1A}) is Status.NOT_FOUND
    assert indices(node) == [0]
    assert server.ipk_epoch_key(1) == IPK


def test_remove_drops_map_entries_of_that_set_only(node: Node) -> None:
    write_set(node, set_id=1)
    write_set(node, set_id=2)
    write_map(node, [{1: 0x0101, 2: 1}, {1: 0x0102, 2: 2}, {1: 0x0103, 2: 1}])
    write_map(node, [{1: 0x0101, 2: 1}], fabric=2)  # another fabric's entry naming its own set 1
    version = node.data_version(0, schema.CLUSTER_ID)
    invoke(node, REMOVE, {0: 1})
    assert read_map(node) == [{1: 0x0102, 2: 2, 0xFE: 1}]
    assert read_map(node, 2) == [{1: 0x0101, 2: 1, 0xFE: 2}]
    assert node.data_version(0, schema.CLUSTER_ID) != version  # GroupKeyMap changed: reported


# ---------------------------------------------------------------------------------------------- ReadAllIndices


def test_read_all_indices() -> None:
    node, server = make()
    assert indices(node) == []
    server.install_ipk(1, IPK)
    assert indices(node) == [0]  # always includes the IPK once AddNOC ran
    write_set(node, set_id=5)
    write_set(node, set_id=1)
    assert indices(node) == [0, 1, 5]


def test_key_sets_are_per_fabric() -> None:
    node, server = make()
    server.install_ipk(1, IPK)
    server.install_ipk(2, K0)
    write_set(node, fabric=1, set_id=1, **FULL)
    assert indices(node, 2) == [0]
    assert status_of(node, READ, {0: 1}, fabric=2) is Status.NOT_FOUND
    assert status_of(node, REMOVE, {0: 1}, fabric=2) is Status.NOT_FOUND
    write_set(node, fabric=2, set_id=1, t0=9)
    assert read_set(node, 1, fabric=1)[3] == T0 and read_set(node, 1, fabric=2)[3] == 9
    assert (server.ipk_epoch_key(1), server.ipk_epoch_key(2)) == (IPK, K0)


def test_commands_need_a_fabric(node: Node) -> None:
    pase = RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True))
    for command, fields in ((WRITE, {0: key_set()}), (READ, {0: 1}), (REMOVE, {0: 1}), (READ_ALL, {})):
        with pytest.raises(ActionError) as info:
            node.invoke(pase, CommandPath(0, schema.CLUSTER_ID, command), fields)
        assert info.value.status is Status.UNSUPPORTED_ACCESS


# ---------------------------------------------------------------------------------------------- IPK API


def test_install_ipk_api() -> None:
    _, server = make()
    assert server.ipk_epoch_key(1) is None and server.operational_ipk(1, CFID) is None
    server.install_ipk(1, IPK)
    assert server.ipk_epoch_key(1) == IPK
    # theGroupKeySetTestVector[1] (TestGroupOperationalCredentials.cpp): the operational key CASE uses as the IPK.
    assert server.operational_ipk(1, CFID) == IPK_OPERATIONAL
    server.install_ipk(1, K0)  # UpdateNOC / a second AddNOC replaces it
    assert server.ipk_epoch_key(1) == K0
    assert [s.group_key_set_id for s in server.key_sets(1)] == [0]
    for fabric, key in ((0, IPK), (255, IPK), (1, IPK[:15]), (1, bytearray(IPK))):
        with pytest.raises(LocalProtocolError):
            server.install_ipk(fabric, key)  # type: ignore[arg-type]


def test_key_sets_api_returns_keys() -> None:
    node, server = make()
    server.install_ipk(1, IPK)
    write_set(node, set_id=2, **FULL)
    ipk, second = server.key_sets(1)
    assert (ipk.group_key_set_id, ipk.epoch_key0, ipk.epoch_start_time0, ipk.epoch_key1) == (0, IPK, 0, NULL)
    assert (second.epoch_key0, second.epoch_key1, second.epoch_key2) == (K0, K1, K2)
    assert server.key_sets(2) == []


def test_key_material_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    node, server = make()
    server.install_ipk(1, IPK)
    write_set(node, set_id=2, **FULL)
    status_of(node, WRITE, {0: key_set(3, k0=K0[:15])})
    shown = repr(server.key_sets(1)) + str(server.key_sets(1)[1]) + caplog.text
    shown += repr(GroupKeySetStruct.from_tlv(key_set(**FULL)))
    for secret in (IPK, K0, K1, K2):
        assert secret.hex() not in shown and repr(secret) not in shown and secret.hex()[:15] not in shown
    assert "<redacted>" in shown


# ---------------------------------------------------------------------------------------------- GroupKeyMap


def test_map_write_and_read_back_stamped(node: Node) -> None:
    write_map(node, [{1: 0x0101, 2: 1, 0xFE: 9}, {1: 0xFFFF, 2: 0xFFFF}])  # any FabricIndex is overwritten
    assert read_map(node) == [{1: 0x0101, 2: 1, 0xFE: 1}, {1: 0xFFFF, 2: 0xFFFF, 0xFE: 1}]


def test_map_is_fabric_scoped_and_sensitive(node: Node) -> None:
    write_map(node, [{1: 0x0101, 2: 1}], fabric=1)
    write_map(node, [{1: 0x0101, 2: 7}], fabric=2)  # the same group id in another fabric is fine
    assert read_map(node, 2) == [{1: 0x0101, 2: 7, 0xFE: 2}]
    assert read_map(node, 2, filtered=False) == [{0xFE: 1}, {1: 0x0101, 2: 7, 0xFE: 2}]
    write_map(node, [], fabric=2)
    assert read_map(node, 1) == [{1: 0x0101, 2: 1, 0xFE: 1}]


def test_map_append(node: Node) -> None:
    write_map(node, [])
    write_map(node, {1: 0x0101, 2: 1}, op=APPEND)
    write_map(node, {1: 0x0102, 2: 1}, op=APPEND)
    assert len(read_map(node)) == 2
    assert map_status(node, {1: 0x0101, 2: 2}, op=APPEND) is Status.CONSTRAINT_ERROR  # duplicate group
    assert map_status(node, {1: 0x0103, 2: 0}, op=APPEND) is Status.CONSTRAINT_ERROR  # the IPK
    assert len(read_map(node)) == 2


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ([{1: 0, 2: 1}], Status.CONSTRAINT_ERROR),  # group id 0 is the null group
        ([{1: 0x0101, 2: 0}], Status.CONSTRAINT_ERROR),  # 11.2.5.3.2: never the IPK's key set
        ([{1: 0x0101, 2: 1}, {1: 0x0101, 2: 2}], Status.CONSTRAINT_ERROR),  # duplicate group id in the fabric
        ([{1: 0x1_0000, 2: 1}], Status.CONSTRAINT_ERROR),
        ([{1: 0x0101}], Status.CONSTRAINT_ERROR),  # GroupKeySetID missing
        ([{1: 0x0100 + i, 2: 1} for i in range(13)], Status.RESOURCE_EXHAUSTED),  # MaxGroupsPerFabric 12
    ],
)
def test_invalid_map_writes(node: Node, value: Any, status: Status) -> None:
    write_map(node, [{1: 0x0001, 2: 1}])
    assert map_status(node, value) is status
    assert read_map(node) == [{1: 0x0001, 2: 1, 0xFE: 1}]  # unchanged


def test_map_capacity_is_per_fabric(node: Node) -> None:
    write_map(node, [{1: 0x0100 + i, 2: 1} for i in range(12)], fabric=1)
    write_map(node, [{1: 0x0100 + i, 2: 1} for i in range(12)], fabric=2)
    assert map_status(node, {1: 0x0200, 2: 1}, fabric=2, op=APPEND) is Status.RESOURCE_EXHAUSTED


def test_map_write_without_fabric_is_refused(node: Node) -> None:
    pase = RequestContext(SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True))
    with pytest.raises(ActionError) as info:
        node.write_attribute(pase, MAP_PATH, [{1: 1, 2: 1}], REPLACE)
    assert info.value.status is Status.UNSUPPORTED_ACCESS


# ---------------------------------------------------------------------------------------------- GroupTable


def test_group_table_is_read_only_and_fed_by_the_api(node: Node) -> None:
    with pytest.raises(ActionError) as info:
        node.write_attribute(ctx(), TABLE_PATH, [], REPLACE)
    assert info.value.status is Status.UNSUPPORTED_WRITE
    server = node.server_of(0, GroupKeyManagementServer)
    server.set_group_table(1, [GroupInfoMapStruct(group_id=0x0101, endpoints=[1], group_name="Kitchen")])
    server.set_group_table(2, [GroupInfoMapStruct(group_id=0x0101, endpoints=[1, 2])])
    assert node.read_attribute(ctx(1), TABLE_PATH) == [{1: 0x0101, 2: [1], 3: "Kitchen", 0xFE: 1}]
    assert node.read_attribute(ctx(1, filtered=False), TABLE_PATH) == [
        {1: 0x0101, 2: [1], 3: "Kitchen", 0xFE: 1},
        {0xFE: 2},
    ]


@pytest.mark.parametrize(
    ("entries", "status"),
    [
        ([GroupInfoMapStruct(group_id=1, endpoints=[1])] * 2, Status.CONSTRAINT_ERROR),
        ([GroupInfoMapStruct(group_id=1, endpoints=[])], Status.CONSTRAINT_ERROR),
        ([GroupInfoMapStruct(group_id=1, endpoints=[1], group_name="x" * 17)], Status.CONSTRAINT_ERROR),
        ([GroupInfoMapStruct(group_id=i, endpoints=[1]) for i in range(1, 14)], Status.RESOURCE_EXHAUSTED),
    ],
)
def test_invalid_group_table(entries: list[GroupInfoMapStruct], status: Status) -> None:
    node, server = make()
    with pytest.raises(ActionError) as info:
        server.set_group_table(1, entries)
    assert info.value.status is status
    assert node.read_attribute(ctx(), TABLE_PATH) == []


# ---------------------------------------------------------------------------------------------- fabrics, storage


def test_remove_fabric() -> None:
    node, server = make()
    for fabric in (1, 2):
        server.install_ipk(fabric, IPK)
        write_set(node, fabric=fabric, set_id=1)
        write_map(node, [{1: 0x0101, 2: 1}], fabric=fabric)
        server.set_group_table(fabric, [GroupInfoMapStruct(group_id=0x0101, endpoints=[1])])
    server.remove_fabric(1)
    assert server.key_sets(1) == [] and server.ipk_epoch_key(1) is None
    assert read_map(node, 1) == [] and node.read_attribute(ctx(1), TABLE_PATH) == []
    assert indices(node, 2) == [0, 1] and len(read_map(node, 2)) == 1
    assert len(node.read_attribute(ctx(2), TABLE_PATH)) == 1


def test_everything_survives_reopen(tmp_path: Path) -> None:
    file = tmp_path / "node.sqlite"
    with Database(file) as db:
        node, server = make(db)
        server.install_ipk(1, IPK)
        server.install_ipk(3, K2)
        write_set(node, set_id=1, **FULL)
        write_set(node, set_id=2)
        invoke(node, REMOVE, {0: 2})
        write_map(node, [{1: 0x0101, 2: 1}])
        server.set_group_table(1, [GroupInfoMapStruct(group_id=0x0101, endpoints=[1], group_name="g")])
        server.remove_fabric(3)
    with Database(file) as db:
        node, server = make(db)
        assert server.ipk_epoch_key(1) == IPK and server.ipk_epoch_key(3) is None
        assert indices(node) == [0, 1]
        assert read_set(node, 1) == {0: 1, 1: TRUST_FIRST, 2: None, 3: T0, 4: None, 5: T1, 6: None, 7: T2}
        assert server.key_sets(1)[1].epoch_key2 == K2
        assert read_map(node) == [{1: 0x0101, 2: 1, 0xFE: 1}]
        assert node.read_attribute(ctx(), TABLE_PATH) == [{1: 0x0101, 2: [1], 3: "g", 0xFE: 1}]


def test_key_sets_follow_the_node_transaction(tmp_path: Path) -> None:
    with Database(tmp_path / "node.sqlite") as db:
        node, server = make(db)
        with pytest.raises(RuntimeError), node.atomic():
            server.install_ipk(1, IPK)  # e.g. AddNOC, then a later step fails
            raise RuntimeError
        assert server.ipk_epoch_key(1) is None
        with node.atomic():
            server.install_ipk(1, IPK)
        assert server.ipk_epoch_key(1) == IPK


# ---------------------------------------------------------------------------------------------- SDK cross-check


def _norm(name: str) -> str:
    return name.replace("_", "").lower()


@pytest.fixture
def sdk() -> Any:
    objects = pytest.importorskip("chip.clusters.Objects", reason="home-assistant-chip-clusters is not installed")
    return objects.GroupKeyManagement


@pytest.mark.interop
def test_ids_match_the_sdk(sdk: Any) -> None:
    assert schema.CLUSTER.id == sdk.id
    theirs = {
        a.attribute_id: name
        for name, a in vars(sdk.Attributes).items()
        if hasattr(a, "attribute_id") and a.attribute_id < 0xFFF8
    }
    assert {a.id: a.name for a in schema.CLUSTER.attributes} == theirs
    declared = set()
    for command in schema.CLUSTER.commands:
        sdk_command = getattr(sdk.Commands, command.name)
        assert (sdk_command.command_id, sdk_command.is_client) == (command.id, True)
        assert bool(sdk_command.must_use_timed_invoke) == command.timed
        declared.add(command.name)
        if command.response is not None:
            response = getattr(sdk.Commands, command.response.__name__)
            assert sdk_command.response_type == command.response.__name__
            assert (response.command_id, response.is_client) == (command.response_id, False)
            declared.add(command.response.__name__)
        else:
            assert sdk_command.response_type is None
    assert {n for n in dir(sdk.Commands) if not n.startswith("_")} == declared
    enum = sdk.Enums.GroupKeySecurityPolicyEnum
    assert {m.name: int(m) for m in schema.GroupKeySecurityPolicyEnum} == {
        "TRUST_FIRST": int(enum.kTrustFirst),
        "CACHE_AND_SYNC": int(enum.kCacheAndSync),
    }
    assert int(schema.Feature.CACHE_AND_SYNC) == int(sdk.Bitmaps.Feature.kCacheAndSync)


STRUCTS = [
    schema.GroupKeyMapStruct,
    schema.GroupKeySetStruct,
    schema.GroupInfoMapStruct,
    schema.KeySetWrite,
    schema.KeySetRead,
    schema.KeySetReadResponse,
    schema.KeySetRemove,
    schema.KeySetReadAllIndices,
    schema.KeySetReadAllIndicesResponse,
]


@pytest.mark.interop
@pytest.mark.parametrize("ours", STRUCTS, ids=lambda s: s.__name__)
def test_struct_tags_match_the_sdk(sdk: Any, ours: type) -> None:
    theirs = getattr(sdk.Structs, ours.__name__, None) or getattr(sdk.Commands, ours.__name__)
    assert {f.Tag: _norm(f.Label) for f in theirs.descriptor.Fields} == {s.tag: _norm(s.name) for s in ours.FIELDS}


@pytest.mark.interop
def test_same_bytes_as_the_sdk(sdk: Any) -> None:
    null = pytest.importorskip("chip.clusters.Objects").NullValue
    ours = schema.KeySetWrite(
        group_key_set=GroupKeySetStruct(
            group_key_set_id=0x1A,
            group_key_security_policy=schema.GroupKeySecurityPolicyEnum.TRUST_FIRST,
            epoch_key0=K0,
            epoch_start_time0=T0,
            epoch_key1=K1,
            epoch_start_time1=T1,
        )
    )
    theirs = sdk.Commands.KeySetWrite(
        groupKeySet=sdk.Structs.GroupKeySetStruct(
            groupKeySetID=0x1A,
            groupKeySecurityPolicy=sdk.Enums.GroupKeySecurityPolicyEnum.kTrustFirst,
            epochKey0=K0,
            epochStartTime0=T0,
            epochKey1=K1,
            epochStartTime1=T1,
            epochKey2=null,
            epochStartTime2=null,
        )
    )
    assert ours.encode() == bytes(theirs.ToTLV())
    entry = schema.GroupKeyMapStruct(group_id=0x0101, group_key_set_id=0x1A, fabric_index=1)
    assert entry.encode() == bytes(
        sdk.Structs.GroupKeyMapStruct(groupId=0x0101, groupKeySetID=0x1A, fabricIndex=1).ToTLV()
    )
    info = GroupInfoMapStruct(group_id=2, endpoints=[1, 2], group_name="g", fabric_index=3)
    assert info.encode() == bytes(
        sdk.Structs.GroupInfoMapStruct(groupId=2, endpoints=[1, 2], groupName="g", fabricIndex=3).ToTLV()
    )
    assert schema.KeySetReadAllIndicesResponse.decode(
        bytes(sdk.Commands.KeySetReadAllIndicesResponse(groupKeySetIDs=[0, 1, 0x1A]).ToTLV())
    ) == schema.KeySetReadAllIndicesResponse(group_key_set_ids=[0, 1, 0x1A])
