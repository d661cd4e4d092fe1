"""The drift repairs table (jfds_device/datastore/drift_repairs.py): durable across a reopen of the database file,
keyed by entry and revision, inside the caller's transaction, and pruned so it stays bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from jfds_device.datastore.drift_repairs import MIGRATION_COMPONENT, DriftRepairStore
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.datastore.sqlite import Database

ACL = EntryRef.acl(2, 7)
BINDING = EntryRef.binding(2, 1, 7)  # same node and key as ACL, another kind and an endpoint
KEY_SET = EntryRef.node_key_set(2, 7)


def test_repairs_survive_a_reopen_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with Database(path) as db:
        store = DriftRepairStore(db)
        store.record(ACL, 5, 100.0)
        store.record(ACL, 5, 50.0)
    with Database(path) as db:  # a restart: a new connection, a new store object
        store = DriftRepairStore(db)
        assert db.schema_version(MIGRATION_COMPONENT) == 1
        assert store.repairs(ACL, 5) == [50.0, 100.0] and store.repairs(ACL, 6) == []


def test_entries_are_told_apart_by_kind_endpoint_and_key() -> None:
    store = DriftRepairStore(Database(":memory:"))
    store.record(ACL, 5, 1.0)
    store.record(BINDING, 5, 2.0)
    store.record(KEY_SET, 5, 3.0)
    assert (store.repairs(ACL, 5), store.repairs(BINDING, 5), store.repairs(KEY_SET, 5)) == ([1.0], [2.0], [3.0])
    assert store.repairs(EntryRef.binding(2, 2, 7), 5) == []


def test_a_rolled_back_transaction_records_nothing() -> None:
    db = Database(":memory:")
    store = DriftRepairStore(db)
    with pytest.raises(RuntimeError), db.transaction():
        store.record(ACL, 5, 1.0)
        raise RuntimeError("the status write failed")
    assert store.repairs(ACL, 5) == [] and store.count() == 0


def test_pruning_keeps_the_table_bounded() -> None:
    store = DriftRepairStore(Database(":memory:"))
    other = EntryRef.acl(3, 1)
    for revision in range(1, 51):  # an entry renewed 50 times, repaired each time; another node's entry too
        store.record(ACL, revision, float(revision))
        store.record(other, revision, float(revision))
    assert store.count() == 100
    assert store.keep_only(2, [(ACL, 50), (BINDING, 1)]) == 49  # older revisions of node 2 go
    assert store.count(2) == 1 and store.count(3) == 50
    assert store.expire(before=40.0, latest=60.0) == 40  # node 3's repairs older than the window go (40 of them)
    assert store.count(3) == 10 and store.repairs(ACL, 50) == [50.0]
    store.record(ACL, 50, 90.0)  # stamped before the clock went back to 70
    assert store.expire(before=0.0, latest=70.0) == 0 and store.repairs(ACL, 50) == [50.0, 70.0]
    assert store.keep_only(2, []) == 2 and store.count(2) == 0  # the node's entries are all erased
