"""The task records (``datastore/tasks.py``): joining, superseding and refusing on shared resources, bounded
history, persistence across a reopen, and no key material in a record's repr."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from jfds_device.datastore.sqlite import Database
from jfds_device.datastore.tasks import HISTORY_LIMIT, TaskRecord, TaskState, TaskStore, TaskType
from jfds_device.errors import TaskConflictError


def record(task_id: str, resource: str, **changes: object) -> TaskRecord:
    base = TaskRecord(task_id, TaskType.ADD_NODE_TO_GROUP, {"node_id": 2}, (resource,), members=(2,))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_same_request_joins_another_supersedes_and_a_held_resource_is_busy(tmp_path: Path) -> None:
    store = TaskStore(Database(tmp_path / "db"))
    first = store.start(record("add:2", "member:2"))
    assert store.clear_way(("member:2",), "add:2") == (first, [])
    joined, superseded = store.clear_way(("member:2",), "remove:2")
    assert joined is None and [t.state for t in superseded] == [TaskState.CANCELLED]
    assert store.get(first.run).error == "superseded by remove:2"  # type: ignore[union-attr]
    store.start(record("rollback:x", "member:3", supersedable=False))
    with pytest.raises(TaskConflictError, match="rollback:x"):
        store.clear_way(("member:3",), "add:3")


def test_history_is_bounded_and_live_tasks_are_kept(tmp_path: Path) -> None:
    db = Database(tmp_path / "db")
    store = TaskStore(db)
    live = store.start(record("live", "member:live"))
    for i in range(HISTORY_LIMIT + 20):
        done = store.start(record(f"t{i}", f"member:{i}"))
        store.save(dataclasses.replace(done, state=TaskState.COMPLETED))
    ended = [r for r in store.recent(1000) if not r.state.live]
    assert len(ended) == HISTORY_LIMIT and ended[0].task_id == f"t{HISTORY_LIMIT + 19}"
    reopened = TaskStore(Database(tmp_path / "db"))
    assert [r.run for r in reopened.live()] == [live.run]


def test_a_record_never_shows_its_parameters() -> None:
    secret = "a0" * 16
    shown = repr(record("rotate", "key-set:1", params={"old": secret, "new": secret}))
    assert secret not in shown and "rotate" in shown
