"""Durable records of the reconciler's multi-step tasks (the matter.js Node Manager's task layer, PR #3984 and
#4434 @ matter-js/matter.js: a task's record is written before its first phase and after each, and a task and
its rollback are written in one transaction).

This module only stores; what a task does is the reconciler's (``jfds_device.reconciler.tasks``). The JFDS
commands that start a task (UpdateKeySet, AddGroupIDToEndpointForNode, RemoveGroupIDFromEndpointForNode) write
its record here in the same transaction as the datastore entries it watches over, so a crash leaves both or
neither.

A record names the *resources* it works on (``key-set:<id>``, ``member:<node>:<endpoint>:<group>``); two live
tasks never share one (``clear_way``): the same request again joins the live run (ids are derived from the
parameters); a different one supersedes the live task when that one is ``supersedable`` (its effects are what the
new request replaces: it ends ``cancelled``, without a rollback), otherwise it is refused with
``TaskConflictError`` (IM BUSY): a rollback in progress, a key rotation past activation.

Records carry key material (a rotation's old and new epoch keys) as the datastore's key sets do: the storage
directory is private to the node, and nothing here is ever logged (``TaskRecord.__repr__`` shows no params).
Terminal records are kept as bounded history (``HISTORY_LIMIT``, as the Node Manager's ``historyLimit``).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from jfds_device.datastore.sqlite import Database, Migration
from jfds_device.errors import TaskConflictError

__all__ = ["HISTORY_LIMIT", "TaskRecord", "TaskState", "TaskStore", "TaskType"]

MIGRATION_COMPONENT = "tasks"
HISTORY_LIMIT = 100
TASK_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, (
        "CREATE TABLE tasks (run INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, type TEXT NOT NULL,"
        " state TEXT NOT NULL, phase INTEGER NOT NULL, record TEXT NOT NULL, created REAL NOT NULL,"
        " updated REAL NOT NULL)",
        "CREATE INDEX tasks_by_state ON tasks (state)",
    )),
)


class TaskType(enum.Enum):
    ROTATE_GROUP_KEY = "RotateGroupKey"
    ADD_NODE_TO_GROUP = "AddNodeToGroup"
    REMOVE_NODE_FROM_GROUP = "RemoveNodeFromGroup"
    MOVE_NODE_TO_GROUP = "MoveNodeToGroup"
    ROLLBACK = "Rollback"


class TaskState(enum.Enum):
    RUNNING = "running"
    PARKED = "parked"  # a member is unreachable: the task waits for it, nothing moves on
    COMPLETED = "completed"
    FAILED = "failed"  # ended with ``error``; a failed rollback ends here too (no rollback of a rollback)
    CANCELLED = "cancelled"  # by the operator (its rollback follows) or superseded by a newer request
    ROLLED_BACK = "rolled_back"  # cancelled or failed, and its rollback completed

    @property
    def live(self) -> bool:
        return self in (TaskState.RUNNING, TaskState.PARKED)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One run of a task. ``task_id`` is derived from the parameters (the same request gets the same id);
    ``run`` numbers runs (0 until stored). ``changeset``: what the task changed, in order, each with its value
    before the task touched it (first touch wins), for a rollback; ``data``: what phases decided (e.g. when a
    rotation activated), so a resumed phase repeats exactly."""

    task_id: str
    type: TaskType
    params: dict[str, Any]
    resources: tuple[str, ...]
    state: TaskState = TaskState.RUNNING
    phase: int = 0
    members: tuple[int, ...] = ()
    changeset: tuple[dict[str, Any], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    supersedable: bool = True
    revertible: bool = True
    error: str | None = None
    rollback_of: int | None = None
    rollback_run: int | None = None
    run: int = 0
    created: float = 0.0
    updated: float = 0.0

    def __repr__(self) -> str:  # never the params: a rotation's carry epoch keys
        return (f"TaskRecord(run={self.run}, id={self.task_id!r}, {self.type.value}, {self.state.value}, "
                f"phase={self.phase}, members={[f'0x{m:X}' for m in self.members]})")

    def _json(self) -> str:
        return json.dumps({
            "params": self.params, "resources": list(self.resources), "members": list(self.members),
            "changeset": list(self.changeset), "data": self.data, "supersedable": self.supersedable,
            "revertible": self.revertible, "error": self.error, "rollback_of": self.rollback_of,
            "rollback_run": self.rollback_run,
        }, sort_keys=True)

    @classmethod
    def _from_row(cls, row: Any) -> TaskRecord:
        run, task_id, type_, state, phase, text, created, updated = row
        rest = json.loads(text)
        return cls(task_id, TaskType(type_), rest["params"], tuple(rest["resources"]), TaskState(state), int(phase),
                   tuple(rest["members"]), tuple(rest["changeset"]), rest["data"], rest["supersedable"],
                   rest["revertible"], rest["error"], rest["rollback_of"], rest["rollback_run"], int(run),
                   float(created), float(updated))


_COLUMNS = "run, task_id, type, state, phase, record, created, updated"


class TaskStore:
    """The ``tasks`` table on the node's ``Database`` (the datastore's, so a task record and the entries it
    writes share one transaction). Read-only databases (``jfds-device status``) can list records."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db, self.clock = db, clock
        db.migrate(MIGRATION_COMPONENT, TASK_MIGRATIONS)

    def _select(self, where: str, params: Iterable[Any] = (), tail: str = "") -> list[TaskRecord]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM tasks WHERE {where} {tail}", tuple(params)).fetchall()
        return [TaskRecord._from_row(r) for r in rows]

    def get(self, run: int) -> TaskRecord | None:
        found = self._select("run = ?", (run,))
        return found[0] if found else None

    def live(self) -> list[TaskRecord]:
        """Running and parked tasks, oldest first."""
        return self._select("state IN (?, ?)", (TaskState.RUNNING.value, TaskState.PARKED.value), "ORDER BY run")

    def find(self, task_id: str) -> TaskRecord | None:
        """The newest run of ``task_id``."""
        found = self._select("task_id = ?", (task_id,), "ORDER BY run DESC LIMIT 1")
        return found[0] if found else None

    def recent(self, limit: int = HISTORY_LIMIT) -> list[TaskRecord]:
        """Live tasks and the newest ended ones, newest first."""
        return self._select("1", (), f"ORDER BY run DESC LIMIT {int(limit)}")

    def holding(self, resources: Iterable[str]) -> list[TaskRecord]:
        wanted = set(resources)
        return [r for r in self.live() if wanted.intersection(r.resources)]

    def clear_way(self, resources: Iterable[str], task_id: str) -> tuple[TaskRecord | None, list[TaskRecord]]:
        """Make room for a new run of ``task_id`` on ``resources``: a live run of the same id is joined (returned
        first: the request is the one already in progress); other live tasks holding one of them are superseded
        (``cancelled``, no rollback: the new request replaces what they were doing) when ``supersedable``, else
        ``TaskConflictError``. Call inside the transaction of the new task's first phase."""
        holders = self.holding(resources)
        same = next((t for t in holders if t.task_id == task_id), None)
        if same is not None:
            return same, []
        blocking = [t for t in holders if not t.supersedable]
        if blocking:
            other = blocking[0]
            raise TaskConflictError(f"task {other.task_id} ({other.state.value}, phase {other.phase}) holds "
                                    f"{', '.join(sorted(set(other.resources) & set(resources)))}")
        return None, [self.save(replace(t, state=TaskState.CANCELLED, error=f"superseded by {task_id}"))
                      for t in holders]

    def start(self, record: TaskRecord) -> TaskRecord:
        """Store a new live task (after ``clear_way``); returns it with its run."""
        if self.holding(record.resources):
            raise TaskConflictError(f"a live task holds one of {', '.join(record.resources)}")
        now = self.clock()
        with self.db.transaction():
            cursor = self.db.execute(
                "INSERT INTO tasks (task_id, type, state, phase, record, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.task_id, record.type.value, record.state.value, record.phase, record._json(), now, now))
            return replace(record, run=int(cursor.lastrowid or 0), created=now, updated=now)

    def save(self, record: TaskRecord) -> TaskRecord:
        """Write ``record`` over its run; an ended task also prunes the history beyond ``HISTORY_LIMIT``."""
        now = self.clock()
        with self.db.transaction():
            self.db.execute("UPDATE tasks SET state = ?, phase = ?, record = ?, updated = ? WHERE run = ?",
                            (record.state.value, record.phase, record._json(), now, record.run))
            if not record.state.live:
                self.db.execute(
                    "DELETE FROM tasks WHERE state NOT IN (?, ?) AND run NOT IN (SELECT run FROM tasks WHERE "
                    f"state NOT IN (?, ?) ORDER BY run DESC LIMIT {HISTORY_LIMIT})",
                    (TaskState.RUNNING.value, TaskState.PARKED.value) * 2)
        return replace(record, updated=now)

    def clear(self) -> None:
        """Forget every task (the datastore was wiped: the anchor fabric is gone)."""
        with self.db.transaction():
            self.db.execute("DELETE FROM tasks")
