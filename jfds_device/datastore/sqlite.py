"""One SQLite connection with numbered migrations, explicit transactions and a small key/value table.

This module knows nothing about Matter (the storage layer of the README's Architecture table): callers choose
namespaces and keys, and store bytes. It is synchronous and never awaits; SQLite calls on a local file are short
enough to run inline on the event loop, and a single connection means a single writer, so there is nothing to
lock.

Durability choice: WAL journal with ``synchronous=FULL``. In WAL mode ``NORMAL`` is crash-safe for the
application but may lose the last committed transactions on power loss. Two things we store must never
go backwards: message-counter reservations (Core spec 4.6.1.1: a counter value reused after a restart
reuses an AES-CCM nonce) and commissioning results the commissioner has already been told about (fabric
table, ACL). Writes are rare (counters are reserved in windows, attributes change on admin action), so the
extra fsync per commit costs nothing measurable.

Transactions: ``with db.transaction():`` opens ``BEGIN IMMEDIATE`` at depth 0 and a SAVEPOINT when nested,
so an inner block that fails rolls back only its own work. ``begin()``/``commit()``/``rollback()`` are the
same operations for callers whose unit of work spans calls (the IM write interaction).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jfds_device.errors import LocalProtocolError, StorageError

__all__ = ["CORE_MIGRATIONS", "Database", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. ``version`` numbers start at 1 and increase by one per component."""

    version: int
    statements: tuple[str, ...]


CORE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            "CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
            " PRIMARY KEY (namespace, key)) WITHOUT ROWID",
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        ),
    ),
)


class Database:
    """The node's single SQLite connection. Not thread-safe by design: use it from one thread (the loop)."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL", read_only: bool = False) -> None:
        """``read_only``: for tools beside a running node (``jfds-device status``): the file is opened with SQLite's
        ``mode=ro`` (a WAL reader never blocks the node's writer), must exist and be current; nothing is written
        (a pending migration is an error instead)."""
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise LocalProtocolError(f"unsupported synchronous mode {synchronous!r}")
        self.read_only = read_only
        try:
            if read_only:
                uri = Path(os.fspath(path)).resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)
                self._conn.execute("SELECT version FROM schema_migrations LIMIT 1").fetchall()
            else:
                # isolation_level=None: the sqlite3 module must not open transactions behind our back.
                self._conn = sqlite3.connect(os.fspath(path), isolation_level=None)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(f"PRAGMA synchronous={synchronous}")
                self._conn.execute("PRAGMA foreign_keys=ON")
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY,"
                    " version INTEGER NOT NULL)"
                )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {os.fspath(path)!r}: {exc}") from exc
        self._savepoints: list[str] = []
        self.path = os.fspath(path)
        self.migrate("core", CORE_MIGRATIONS)

    # ------------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._savepoints:
            self._execute("ROLLBACK")
            self._savepoints.clear()
        self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ migrations

    def schema_version(self, component: str) -> int:
        row = self._execute("SELECT version FROM schema_migrations WHERE component = ?", (component,)).fetchone()
        return 0 if row is None else int(row[0])

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Apply ``component``'s migrations newer than its stored version, each in its own transaction.

        Other storage modules (fabrics, JFDS tables) own their component name and migration list, so they
        can evolve without editing this module. Returns the resulting version.
        """
        expected = list(range(1, len(migrations) + 1))
        if [m.version for m in migrations] != expected:
            raise LocalProtocolError(f"{component}: migrations must be numbered 1..{len(migrations)}")
        current = self.schema_version(component)
        if current > len(migrations):
            raise StorageError(f"{component}: database is at version {current}, code knows {len(migrations)}")
        if self.read_only and current < len(migrations):
            raise StorageError(f"{component}: database is at version {current}, older than this code's; start the node")
        for migration in migrations[current:]:
            with self.transaction():
                for statement in migration.statements:
                    self._execute(statement)
                self._execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, migration.version),
                )
        return len(migrations)

    # ------------------------------------------------------------------------------------------ transactions

    @property
    def in_transaction(self) -> bool:
        return bool(self._savepoints)

    @property
    def transaction_depth(self) -> int:
        """0 outside a transaction, 1 inside one, +1 per open savepoint."""
        return len(self._savepoints)

    def begin(self) -> None:
        """Open a transaction, or a savepoint inside the current one."""
        if not self._savepoints:
            # IMMEDIATE takes the write lock now, so a commit never fails on a lock taken by someone else.
            self._execute("BEGIN IMMEDIATE")
            self._savepoints.append("")
        else:
            name = f"sp{len(self._savepoints)}"
            self._execute(f"SAVEPOINT {name}")
            self._savepoints.append(name)

    def commit(self) -> None:
        """Commit the innermost level (release its savepoint, or commit the outer transaction)."""
        if not self._savepoints:
            raise LocalProtocolError("commit() without begin()")
        name = self._savepoints[-1]
        if name:
            self._execute(f"RELEASE {name}")
            self._savepoints.pop()
            return
        try:
            self._execute("COMMIT")
        except StorageError:
            # A failed COMMIT may leave the transaction open; drop it so nothing half-applied survives.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self._savepoints.pop()

    def rollback(self) -> None:
        """Undo the innermost level and close it."""
        if not self._savepoints:
            raise LocalProtocolError("rollback() without begin()")
        name = self._savepoints.pop()
        if name:
            self._execute(f"ROLLBACK TO {name}")
            self._execute(f"RELEASE {name}")
        else:
            self._execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``with db.transaction():`` — commit on normal exit, roll back (only this level) on an exception."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # ------------------------------------------------------------------------------------------ key/value

    def get(self, namespace: str, key: str) -> bytes | None:
        row = self._execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self._execute(
            "INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            (namespace, key, bytes(value)),
        )

    def delete(self, namespace: str, key: str) -> None:
        self._execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))

    def items(self, namespace: str, prefix: str = "") -> list[tuple[str, bytes]]:
        """``(key, value)`` pairs of ``namespace`` whose key starts with ``prefix``, ordered by key."""
        rows = self._execute(
            "SELECT key, value FROM kv WHERE namespace = ? AND substr(key, 1, ?) = ? ORDER BY key",
            (namespace, len(prefix), prefix),
        ).fetchall()
        return [(str(k), bytes(v)) for k, v in rows]

    def clear(self, namespace: str) -> None:
        self._execute("DELETE FROM kv WHERE namespace = ?", (namespace,))

    # ------------------------------------------------------------------------------------------ counters

    def counter_limit(self, name: str) -> int | None:
        """The last limit ``reserve`` stored for ``name`` (every value below it may have been used)."""
        row = self._execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def reserve(self, name: str, current: int, window: int, *, modulus: int | None = None) -> int:
        """Durably store ``current + window`` (reduced modulo ``modulus`` if given) as ``name``'s limit.

        The caller may use values from ``current`` up to the returned limit only after this returns;
        after a restart it resumes at ``counter_limit(name)``, so no value is handed out twice (Core spec
        4.6.1.1). It commits at once and therefore refuses to run inside a transaction, whose rollback
        would silently undo the reservation. A wrapping counter (the global unencrypted counter rolls
        over at 2^32) passes ``modulus``; the stored limit then legitimately moves back at the wrap.

        The transport's ``MessageCounter(reserve=...)`` callback, which receives the new limit itself,
        maps onto this as ``lambda upto: db.reserve(name, upto, 0)``.
        """
        if window < 0:
            raise LocalProtocolError("reservation window must not be negative")
        if self._savepoints:
            raise LocalProtocolError("reserve() inside a transaction could be rolled back; call it outside")
        limit = current + window if modulus is None else (current + window) % modulus
        with self.transaction():
            self._execute(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, limit),
            )
        return limit

    # ------------------------------------------------------------------------------------------ raw access

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement (for storage modules with their own tables); errors become ``StorageError``."""
        return self._execute(sql, params)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"{exc} (in {sql.split(maxsplit=3)[:3]})") from exc
