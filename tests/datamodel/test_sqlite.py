"""datastore.sqlite: migrations, transactions and savepoints, key/value, counter reservations."""

from __future__ import annotations

from pathlib import Path

import pytest

from jfds_device.datastore.sqlite import Database, Migration
from jfds_device.errors import LocalProtocolError, StorageError

WIDGETS = (
    Migration(1, ("CREATE TABLE widget (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",)),
    Migration(2, ("ALTER TABLE widget ADD COLUMN size INTEGER NOT NULL DEFAULT 0",)),
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "node.sqlite"


@pytest.fixture
def db(db_path: Path) -> Database:
    return Database(db_path)


def test_wal_and_full_sync(db: Database) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_rejects_unknown_synchronous_mode(db_path: Path) -> None:
    with pytest.raises(LocalProtocolError):
        Database(db_path, synchronous="OFF")


def test_core_migration_applied_once(db_path: Path) -> None:
    with Database(db_path) as db:
        assert db.schema_version("core") == 1
    with Database(db_path) as db:  # reopening must not re-run CREATE TABLE
        assert db.schema_version("core") == 1


def test_component_migrations_are_incremental(db_path: Path) -> None:
    with Database(db_path) as db:
        assert db.migrate("widgets", WIDGETS[:1]) == 1
        db.execute("INSERT INTO widget (name) VALUES ('a')")
    with Database(db_path) as db:
        assert db.migrate("widgets", WIDGETS) == 2
        assert db.execute("SELECT name, size FROM widget").fetchall() == [("a", 0)]


def test_migration_numbering_is_checked(db: Database) -> None:
    with pytest.raises(LocalProtocolError):
        db.migrate("bad", (Migration(2, ("SELECT 1",)),))


def test_database_newer_than_code_is_refused(db: Database) -> None:
    db.migrate("widgets", WIDGETS)
    with pytest.raises(StorageError):
        db.migrate("widgets", WIDGETS[:1])


def test_failed_migration_leaves_version(db: Database) -> None:
    broken = (Migration(1, ("CREATE TABLE t (x)", "THIS IS NOT SQL")),)
    with pytest.raises(StorageError):
        db.migrate("broken", broken)
    assert db.schema_version("broken") == 0
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchall() == []


def test_key_value_round_trip(db: Database) -> None:
    assert db.get("ns", "k") is None
    db.put("ns", "k", b"one")
    db.put("ns", "k", b"two")
    db.put("ns", "k2", b"x")
    db.put("other", "k", b"y")
    assert db.get("ns", "k") == b"two"
    assert db.items("ns") == [("k", b"two"), ("k2", b"x")]
    assert db.items("ns", prefix="k2") == [("k2", b"x")]
    db.delete("ns", "k")
    assert db.get("ns", "k") is None
    db.clear("ns")
    assert db.items("ns") == []
    assert db.get("other", "k") == b"y"


def test_values_survive_reopen(db_path: Path) -> None:
    with Database(db_path) as db:
        db.put("ns", "k", b"\x00\xff")
    with Database(db_path) as db:
        assert db.get("ns", "k") == b"\x00\xff"


def test_transaction_commits(db_path: Path) -> None:
    with Database(db_path) as db, db.transaction():
        db.put("ns", "a", b"1")
        db.put("ns", "b", b"2")
    with Database(db_path) as db:
        assert [k for k, _ in db.items("ns")] == ["a", "b"]


def test_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.put("ns", "a", b"1")
        raise RuntimeError("boom")
    assert db.get("ns", "a") is None
    assert not db.in_transaction


def test_nested_transaction_rolls_back_only_inner(db: Database) -> None:
    with db.transaction():
        db.put("ns", "outer", b"1")
        with pytest.raises(RuntimeError), db.transaction():
            db.put("ns", "inner", b"2")
            raise RuntimeError("inner fails")
        with db.transaction():
            db.put("ns", "inner2", b"3")
    assert [k for k, _ in db.items("ns")] == ["inner2", "outer"]


def test_uncommitted_transaction_is_lost_on_crash(db_path: Path) -> None:
    db = Database(db_path)
    db.begin()
    db.put("ns", "a", b"1")
    db.close()  # process dies before commit
    with Database(db_path) as again:
        assert again.get("ns", "a") is None


def test_explicit_begin_commit_rollback(db: Database) -> None:
    with pytest.raises(LocalProtocolError):
        db.commit()
    with pytest.raises(LocalProtocolError):
        db.rollback()
    db.begin()
    db.put("ns", "a", b"1")
    db.begin()
    db.put("ns", "b", b"2")
    db.rollback()
    db.commit()
    assert db.items("ns") == [("a", b"1")]


def test_sql_errors_become_storage_errors(db: Database) -> None:
    with pytest.raises(StorageError):
        db.execute("SELECT * FROM no_such_table")


def test_reserve_persists_limit(db_path: Path) -> None:
    with Database(db_path) as db:
        assert db.counter_limit("c") is None
        assert db.reserve("c", 100, 50) == 150
    with Database(db_path) as db:
        assert db.counter_limit("c") == 150


def test_reserve_refuses_inside_transaction(db: Database) -> None:
    with pytest.raises(LocalProtocolError), db.transaction():
        db.reserve("c", 0, 10)


def test_reserve_rejects_negative_window(db: Database) -> None:
    with pytest.raises(LocalProtocolError):
        db.reserve("c", 10, -1)


def test_reserve_wraps_modulo(db: Database) -> None:
    assert db.reserve("c", 0xFFFF_FFF0, 0x20, modulus=1 << 32) == 0x10
    assert db.counter_limit("c") == 0x10


class Counter:
    """The transport's usage pattern (Core spec 4.6.1.1): reserve a window before handing out its values."""

    def __init__(self, db: Database, *, initial: int, window: int) -> None:
        self.db, self.window = db, window
        stored = db.counter_limit("global")
        self.value = initial if stored is None else stored
        self.limit = db.reserve("global", self.value, window)

    def next(self) -> int:
        if self.value >= self.limit:
            self.limit = self.db.reserve("global", self.value, self.window)
        self.value += 1
        return self.value - 1


def test_counter_values_never_repeat_across_restarts(db_path: Path) -> None:
    seen: list[int] = []
    for _restart in range(3):
        with Database(db_path) as db:
            counter = Counter(db, initial=1000, window=8)
            seen.extend(counter.next() for _ in range(10))  # crosses one window, then "crashes"
    assert len(set(seen)) == len(seen)
    assert seen == sorted(seen)
    assert seen[:10] == list(range(1000, 1010))
    assert seen[10] == 1016  # resumed at the stored limit, skipping the unused rest of the window
