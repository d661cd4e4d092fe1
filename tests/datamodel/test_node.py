"""datamodel.node: the DataModelProvider over an endpoint tree, its transactions and notifications."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from clusters.descriptor import schema as descriptor
from clusters.descriptor.server import DescriptorServer
from jfds_device.codec.model import AttributeDef, AuthMode, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import UINT8, Str, Struct, field, struct
from jfds_device.datamodel.acl import AclEntry, AclTarget
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError, LocalProtocolError, StorageError
from jfds_device.im.provider import AttributePath, CommandPath, ListOperation, RequestContext, Status, SubjectDescriptor

ROOT = DeviceType(device_type=0x0016, revision=3)
LIGHT = DeviceType(device_type=0x0100, revision=3)
VALUE = ListOperation.NOT_A_LIST
NAME, SIZE = 0, 1


@struct
class Grow(Struct):
    by: int = field(0, UINT8)


SETTINGS = ClusterDef(
    id=0xFFF1_FC02,
    name="Settings",
    revision=1,
    attributes=(
        AttributeDef(NAME, "Name", Str(max_length=8), writable=True, persistent=True, default=""),
        AttributeDef(SIZE, "Size", UINT8, writable=True, persistent=True, default=0),
    ),
    commands=(CommandDef(0, "Grow", Grow), CommandDef(1, "GrowThenFail", Grow)),
)


class SettingsServer(ClusterServer):
    CLUSTER = SETTINGS

    def on_grow(self, ctx: RequestContext, request: Grow) -> None:
        self.set(SIZE, self.get(SIZE) + request.by)

    def on_grow_then_fail(self, ctx: RequestContext, request: Grow) -> None:
        self.set(SIZE, self.get(SIZE) + request.by)
        raise ActionError(Status.INVALID_IN_STATE)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[AttributePath]] = []

    def attributes_changed(self, paths: Iterable[AttributePath]) -> None:
        self.batches.append(list(paths))


def ctx(fabric: int = 1) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, 0x1234, fabric))


def path(attribute: int, endpoint: int = 1) -> AttributePath:
    return AttributePath(endpoint, SETTINGS.id, attribute)


def make_node(db: Database | None = None) -> tuple[Node, SettingsServer]:
    node = Node(db, endpoint_servers=lambda tree: [DescriptorServer(tree)])
    node.add_endpoint(0, [ROOT])
    settings = SettingsServer()
    node.add_endpoint(1, [LIGHT], [settings], client_clusters=[0x0006])
    return node, settings


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "node.sqlite")


def status_of(call: Any, *args: Any) -> Status:
    with pytest.raises(ActionError) as info:
        call(*args)
    return info.value.status


# ---------------------------------------------------------------------------------------------- structure


def test_listings_are_ascending() -> None:
    node, _ = make_node()
    node.add_endpoint(5, [LIGHT])
    node.add_endpoint(3, [LIGHT])
    assert list(node.endpoints()) == [0, 1, 3, 5]
    assert [c.id for c in node.clusters(1)] == [descriptor.CLUSTER_ID, SETTINGS.id]
    assert node.clusters(99) == []
    assert node.attribute_ids(1, SETTINGS.id) == [0, 1, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]
    assert node.attribute_ids(1, 0x9999) == []
    assert node.accepted_command_ids(1, SETTINGS.id) == [0, 1]


def test_descriptor_is_derived() -> None:
    node, _ = make_node()
    node.add_endpoint(2, [LIGHT], parent=1)
    node.add_endpoint(3, [LIGHT], parent=2)

    def read(endpoint: int, attribute: int) -> Any:
        return node.read_attribute(ctx(), AttributePath(endpoint, descriptor.CLUSTER_ID, attribute))

    assert read(0, descriptor.DEVICE_TYPE_LIST) == [{0: 0x0016, 1: 3}]
    assert read(0, descriptor.SERVER_LIST) == [descriptor.CLUSTER_ID]
    assert read(0, descriptor.PARTS_LIST) == [1, 2, 3]  # the root lists every endpoint
    assert read(1, descriptor.SERVER_LIST) == [descriptor.CLUSTER_ID, SETTINGS.id]
    assert read(1, descriptor.CLIENT_LIST) == [0x0006]
    assert read(1, descriptor.PARTS_LIST) == [2, 3]  # full family: every descendant
    assert read(2, descriptor.PARTS_LIST) == [3]
    assert read(3, descriptor.PARTS_LIST) == []


def test_adding_a_server_updates_the_descriptor_and_reports_it() -> None:
    node, _ = make_node()
    node.add_endpoint(2, [LIGHT])
    recorder = Recorder()
    node.subscribe_changes(recorder)
    version = node.data_version(2, descriptor.CLUSTER_ID)
    node.add_server(2, SettingsServer())
    assert node.data_version(2, descriptor.CLUSTER_ID) == (version + 1) & 0xFFFF_FFFF
    assert recorder.batches == [[AttributePath(2, descriptor.CLUSTER_ID, descriptor.SERVER_LIST)]]


class StructureWatcher(SettingsServer):
    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def structure_changed(self) -> None:
        self.changes += 1


def test_every_endpoint_gets_the_servers_the_layout_makes_for_it() -> None:
    made: list[int] = []

    def descriptor_for(tree: Node) -> list[ClusterServer]:
        made.append(len(tree.endpoints()))
        return [DescriptorServer(tree)]

    node = Node(endpoint_servers=descriptor_for)
    node.add_endpoint(0, [ROOT])
    node.add_endpoint(1, [LIGHT])
    assert made == [1, 2]  # one fresh set per endpoint, made once the endpoint is in the tree
    assert node.server(0, descriptor.CLUSTER_ID) is not node.server(1, descriptor.CLUSTER_ID)
    assert [c.id for c in node.clusters(1)] == [descriptor.CLUSTER_ID]


def test_a_bare_tree_mounts_only_the_servers_it_is_given() -> None:
    node = Node()
    node.add_endpoint(0, [ROOT])
    settings = SettingsServer()
    node.add_endpoint(1, [LIGHT], [settings])
    assert node.clusters(0) == []
    assert [c.id for c in node.clusters(1)] == [SETTINGS.id]


def test_mounted_servers_hear_every_structure_change() -> None:
    node, _ = make_node()
    watcher = StructureWatcher()
    node.add_endpoint(2, [LIGHT], [watcher])
    assert watcher.changes == 1
    node.add_endpoint(3, [LIGHT], parent=2)
    node.add_server(3, SettingsServer())
    assert watcher.changes == 3


def test_structure_errors() -> None:
    node, _ = make_node()
    with pytest.raises(LocalProtocolError):
        node.add_endpoint(1, [LIGHT])
    with pytest.raises(LocalProtocolError):
        node.add_endpoint(7, [])
    with pytest.raises(LocalProtocolError):
        node.add_endpoint(7, [LIGHT], parent=42)
    with pytest.raises(LocalProtocolError):
        node.add_endpoint(0xFFFF, [LIGHT])
    with pytest.raises(LocalProtocolError):
        node.add_server(1, SettingsServer())
    with pytest.raises(LocalProtocolError):
        node.add_server(42, SettingsServer())
    with pytest.raises(LocalProtocolError):
        node.add_endpoint(8, [LIGHT], [SettingsServer(), SettingsServer()])
    assert 8 not in node.endpoints()  # a failed add leaves nothing behind


def test_server_lookup() -> None:
    node, settings = make_node()
    assert node.server(1, SETTINGS.id) is settings
    assert node.server_of(1, SettingsServer) is settings
    assert node.server(9, SETTINGS.id) is None
    with pytest.raises(LocalProtocolError):
        node.server_of(0, SettingsServer)


# ---------------------------------------------------------------------------------------------- provider


def test_path_errors() -> None:
    node, _ = make_node()
    assert status_of(node.read_attribute, ctx(), AttributePath(9, SETTINGS.id, 0)) is Status.UNSUPPORTED_ENDPOINT
    assert status_of(node.read_attribute, ctx(), AttributePath(0, SETTINGS.id, 0)) is Status.UNSUPPORTED_CLUSTER
    assert status_of(node.read_attribute, ctx(), path(0x55)) is Status.UNSUPPORTED_ATTRIBUTE
    assert status_of(node.write_attribute, ctx(), AttributePath(9, 1, 0), 1, VALUE) is Status.UNSUPPORTED_ENDPOINT
    assert status_of(node.invoke, ctx(), CommandPath(1, 0x9999, 0), {}) is Status.UNSUPPORTED_CLUSTER
    assert status_of(node.invoke, ctx(), CommandPath(1, SETTINGS.id, 7), {}) is Status.UNSUPPORTED_COMMAND
    assert status_of(node.data_version, 1, 0x9999) is Status.UNSUPPORTED_CLUSTER


def test_read_write_invoke() -> None:
    node, settings = make_node()
    node.write_attribute(ctx(), path(NAME), "lamp", VALUE)
    assert node.read_attribute(ctx(), path(NAME)) == "lamp"
    assert node.invoke(ctx(), CommandPath(1, SETTINGS.id, 0), {0: 3}) is None
    assert settings.get(SIZE) == 3


def test_failed_invoke_rolls_back_its_changes() -> None:
    node, settings = make_node()
    recorder = Recorder()
    node.subscribe_changes(recorder)
    version = settings.data_version
    assert status_of(node.invoke, ctx(), CommandPath(1, SETTINGS.id, 1), {0: 3}) is Status.INVALID_IN_STATE
    assert settings.get(SIZE) == 0
    assert settings.data_version == version
    assert recorder.batches == []


def test_changes_outside_a_block_are_reported_at_once() -> None:
    node, settings = make_node()
    recorder = Recorder()
    node.subscribe_changes(recorder)
    settings.set(SIZE, 9)
    assert recorder.batches == [[path(SIZE)]]
    node.unsubscribe_changes(recorder)
    settings.set(SIZE, 10)
    assert len(recorder.batches) == 1


# ---------------------------------------------------------------------------------------------- write interactions


def test_write_interaction_reports_once_at_the_end(db: Database) -> None:
    node, _ = make_node(db)
    recorder = Recorder()
    node.subscribe_changes(recorder)
    node.begin_write()
    node.write_attribute(ctx(), path(NAME), "a", VALUE)
    node.write_attribute(ctx(), path(SIZE), 4, VALUE)
    node.write_attribute(ctx(), path(NAME), "b", VALUE)
    assert recorder.batches == []
    assert db.in_transaction
    node.end_write()
    assert recorder.batches == [[path(NAME), path(SIZE)]]
    assert not db.in_transaction


def test_a_failing_write_does_not_undo_the_others(db: Database) -> None:
    node, settings = make_node(db)
    node.begin_write()
    node.write_attribute(ctx(), path(NAME), "ok", VALUE)
    assert status_of(node.write_attribute, ctx(), path(SIZE), 999, VALUE) is Status.CONSTRAINT_ERROR
    node.end_write()
    assert settings.get(NAME) == "ok"


def test_write_interaction_is_one_transaction(tmp_path: Path) -> None:
    """A crash between two writes of one interaction leaves neither on disk."""
    file = tmp_path / "node.sqlite"
    db = Database(file)
    node, _ = make_node(db)
    node.begin_write()
    node.write_attribute(ctx(), path(NAME), "half", VALUE)
    node.write_attribute(ctx(), path(SIZE), 7, VALUE)
    db.close()  # the process dies before end_write
    _, settings = make_node(Database(file))
    assert settings.get(NAME) == ""
    assert settings.get(SIZE) == 0


def test_abort_write_restores_memory_and_storage(db: Database) -> None:
    node, settings = make_node(db)
    recorder = Recorder()
    node.subscribe_changes(recorder)
    version = settings.data_version
    node.begin_write()
    node.write_attribute(ctx(), path(NAME), "gone", VALUE)
    node.write_attribute(ctx(), path(SIZE), 5, VALUE)
    node.abort_write()
    assert (settings.get(NAME), settings.get(SIZE), settings.data_version) == ("", 0, version)
    assert recorder.batches == []
    assert db.items("attribute") == []


def test_failed_commit_restores_memory(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    node, settings = make_node(db)
    node.begin_write()
    node.write_attribute(ctx(), path(NAME), "lost", VALUE)

    def failing_commit() -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(db, "commit", failing_commit)
    with pytest.raises(StorageError):
        node.end_write()
    assert settings.get(NAME) == ""
    assert not db.in_transaction


def test_nested_blocks_report_only_at_the_outermost_commit(db: Database) -> None:
    node, settings = make_node(db)
    recorder = Recorder()
    node.subscribe_changes(recorder)
    with node.atomic():
        with node.atomic():  # opened before any change: must still not count as the outermost
            settings.set(SIZE, 1)
        assert recorder.batches == []
        settings.set(NAME, "x")
        settings.set(SIZE, 2)
    assert recorder.batches == [[path(SIZE), path(NAME)]]


def test_outer_rollback_undoes_committed_inner_blocks(db: Database) -> None:
    node, settings = make_node(db)
    recorder = Recorder()
    node.subscribe_changes(recorder)
    version = settings.data_version
    with pytest.raises(RuntimeError), node.atomic():
        with node.atomic():
            settings.set(SIZE, 1)
        raise RuntimeError("later step fails")
    assert (settings.get(SIZE), settings.data_version) == (0, version)
    assert recorder.batches == []
    assert db.items("attribute") == []
    assert not db.in_transaction


def test_write_interaction_misuse() -> None:
    node, _ = make_node()
    with pytest.raises(LocalProtocolError):
        node.end_write()
    with pytest.raises(LocalProtocolError):
        node.abort_write()
    node.begin_write()
    with pytest.raises(LocalProtocolError):
        node.begin_write()
    node.end_write()


def test_persisted_attributes_survive_reopen(tmp_path: Path) -> None:
    file = tmp_path / "node.sqlite"
    with Database(file) as db:
        node, _ = make_node(db)
        node.write_attribute(ctx(), path(NAME), "kept", VALUE)
    with Database(file) as db:
        _, settings = make_node(db)
        assert settings.get(NAME) == "kept"


def test_undecodable_stored_value_is_a_storage_error(db: Database) -> None:
    make_node(db)
    db.put("attribute", "0001/fff1fc02/00000000", b"\xff\xff")
    with pytest.raises(StorageError):
        make_node(db)


# ---------------------------------------------------------------------------------------------- access


class FixedAcl:
    def __init__(self, entries: Sequence[AclEntry]) -> None:
        self.entries = entries

    def acl_entries(self) -> Sequence[AclEntry]:
        return self.entries


def test_allowed_delegates_to_the_acl_engine() -> None:
    node, _ = make_node()
    subject = SubjectDescriptor(AuthMode.CASE, 0x1234, 1)
    assert not node.allowed(subject, 1, SETTINGS.id, Privilege.VIEW)
    commissioning = SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True)
    assert node.allowed(commissioning, 0, 0x30, Privilege.ADMINISTER)
    # A device-type target resolves through the node's device types.
    node.set_acl_source(FixedAcl([AclEntry(1, Privilege.OPERATE, AuthMode.CASE, (), (AclTarget(device_type=0x0100),))]))
    assert node.allowed(subject, 1, SETTINGS.id, Privilege.OPERATE)
    assert not node.allowed(subject, 0, descriptor.CLUSTER_ID, Privilege.VIEW)
    assert not node.allowed(subject, 1, SETTINGS.id, Privilege.MANAGE)
