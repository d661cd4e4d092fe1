"""Durable record of the reconciler's drift repairs: one row per re-apply of an entry revision the peer had lost.

The reconciler bounds how often it repairs one entry revision within a time window (``reconciler.plan.DriftBook``),
so that a node or another administrator that keeps undoing an entry does not start a write fight that never ends.
The spent budget lives here, in the node's database, so a restart (or a kill -9) does not hand out a new one.

Rows are keyed by the entry's identity (``EntryRef``) and its revision. Revisions are datastore-wide and never
reused (they survive a wipe), so a row can never be mistaken for another entry's. The table stays bounded:
``keep_only`` drops a node's rows of erased entries and older revisions, ``expire`` every row older than the
window (a removed node's included). Times are whatever the caller passes (the reconciler passes wall-clock
seconds, which, unlike the loop's monotonic clock, still mean something after a reboot).

Its own migration component, so the JFDS tables (``jfds_tables``) and the status tool's read-only open are not
touched by it. It knows nothing about the reconciler: it stores numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.datastore.sqlite import Database, Migration

__all__ = ["DRIFT_MIGRATIONS", "MIGRATION_COMPONENT", "DriftRepairStore"]

MIGRATION_COMPONENT = "drift_repairs"
DRIFT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            # endpoint_id / entry_key are NULL where the kind has none (EntryRef); compared with IS.
            "CREATE TABLE drift_repairs (node_id INTEGER NOT NULL, kind TEXT NOT NULL, endpoint_id INTEGER,"
            " entry_key INTEGER, revision INTEGER NOT NULL, repaired_at REAL NOT NULL)",
            "CREATE INDEX drift_repairs_entry ON drift_repairs (node_id, kind, endpoint_id, entry_key, revision)",
            "CREATE INDEX drift_repairs_time ON drift_repairs (repaired_at)",
        ),
    ),
)

_ENTRY = "node_id = ? AND kind = ? AND endpoint_id IS ? AND entry_key IS ?"


def _columns(ref: EntryRef) -> tuple[int, str, int | None, int | None]:
    return ref.node_id, ref.kind.value, ref.endpoint_id, ref.key


class DriftRepairStore:
    """Drift repairs per (entry, revision) in ``db`` (the node's database; the caller's transaction, if one is open,
    covers every write here, so a repair is recorded together with the status write it made)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.migrate(MIGRATION_COMPONENT, DRIFT_MIGRATIONS)

    def repairs(self, ref: EntryRef, revision: int) -> list[float]:
        """When ``ref`` at ``revision`` was repaired (the rows not pruned yet), oldest first."""
        rows = self._db.execute(f"SELECT repaired_at FROM drift_repairs WHERE {_ENTRY} AND revision = ?"
                                " ORDER BY repaired_at", (*_columns(ref), revision)).fetchall()
        return [float(row[0]) for row in rows]

    def record(self, ref: EntryRef, revision: int, at: float) -> None:
        self._db.execute("INSERT INTO drift_repairs (node_id, kind, endpoint_id, entry_key, revision, repaired_at)"
                         " VALUES (?, ?, ?, ?, ?, ?)", (*_columns(ref), revision, float(at)))

    def keep_only(self, node_id: int, keep: Iterable[tuple[EntryRef, int]]) -> int:
        """Drop ``node_id``'s rows of entries or revisions not in ``keep`` (the node's entries as they are now).
        Returns how many rows went."""
        live = {(*_columns(ref), revision) for ref, revision in keep}
        rows = self._db.execute("SELECT rowid, node_id, kind, endpoint_id, entry_key, revision FROM drift_repairs"
                                " WHERE node_id = ?", (node_id,)).fetchall()
        stale = [(row[0],) for row in rows if tuple(row[1:]) not in live]
        if stale:
            with self._db.transaction():
                for rowid in stale:
                    self._db.execute("DELETE FROM drift_repairs WHERE rowid = ?", rowid)
        return len(stale)

    def expire(self, before: float, latest: float) -> int:
        """Drop every row repaired at or before ``before`` (outside any window that still counts it). A row stamped
        after ``latest`` (the clock went backwards since) is moved to ``latest``, so such a jump never holds a
        budget for longer than one window from now. Returns how many rows went."""
        with self._db.transaction():
            gone = self._db.execute("DELETE FROM drift_repairs WHERE repaired_at <= ?", (float(before),)).rowcount
            self._db.execute("UPDATE drift_repairs SET repaired_at = ? WHERE repaired_at > ?",
                             (float(latest), float(latest)))
        return int(gone)

    def count(self, node_id: int | None = None) -> int:
        """Rows held (of ``node_id``, or all): what the pruning keeps bounded."""
        if node_id is None:
            row = self._db.execute("SELECT COUNT(*) FROM drift_repairs").fetchone()
        else:
            row = self._db.execute("SELECT COUNT(*) FROM drift_repairs WHERE node_id = ?", (node_id,)).fetchone()
        return int(row[0])

