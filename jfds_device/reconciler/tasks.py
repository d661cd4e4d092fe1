"""The task engine: multi-step, multi-node changes with gates, park/resume and changeset rollback, following the
matter.js Node Manager's task layer (PR #3984, #4213, #4219, #4434 @ matter-js/matter.js, packages/node-manager):
"a Task orchestrates a multi-step, multi-node change by writing desired state and waiting on convergence gates;
it never touches nodes directly; only the Reconciler does."

* A task's record (``datastore.tasks``) is written with its first phase's desired state, by the JFDS command that
  starts it (``clusters/joint_fabric_datastore/logic_tasks.py``) or by ``move_node_to_group``; every phase
  transition writes the next phase's desired state and the record in one transaction, and a task and its rollback
  are written together. So a restart (kill -9 at any point) finds every live task at a phase boundary and resumes
  it by waiting on that phase's gate again.
* A **gate** waits until every target entry is Committed (or gone, for a removal), then has the reconciler verify
  each member afresh (``Reconciler.reconcile(verify=True)``: the node's lists and, for key sets, the epoch start
  times KeySetRead shows) and checks again: a gate resolves only on freshly verified state, never on stored
  statuses alone. While a member is unreachable (its subscription is lost, or its entries failed with TIMEOUT or
  BUSY) the task is **parked**; reachability and datastore changes wake it.
* A target the node refused for good (CommitFailed with any code but TIMEOUT, BUSY, FAILURE or
  DATA_VERSION_MISMATCH), or removed meanwhile, **fails** the task with a reason that names the node, the entry and
  the status; a revertible task then rolls back. **Cancel** (``cancel``) ends a revertible task and starts its
  rollback. A **rollback** walks the changeset in reverse and restores each prior value by value: an entry the task
  added is removed (a node's key set only while no other group of the node needs it), one it removed is added
  again, a key set it rewrote gets its old value back. A rollback is an ordinary task (it parks and resumes); it
  is not itself undone, and the entry whose refusal failed the task keeps its CommitFailed status as the
  operator's record (the node holds nothing of it: ``execute.py`` undoes partial applies).
* RotateGroupKey is revertible until it activates and forward-only after (``rotation.py``).
* Every transition is logged once; ``tasks()`` / ``task()`` give what an operator needs (``TaskView``).

The datastore entries keep the spec's statuses throughout (Core spec 11.24.4: Pending, Committed, DeletePending,
CommitFailed with the IM status).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from clusters.joint_fabric_datastore import logic_tasks
from clusters.joint_fabric_datastore.logic_entries import require_endpoint
from clusters.joint_fabric_datastore.schema import DatastoreState, GroupKeySet
from jfds_device.clock import Clock
from jfds_device.datastore.jfds import JfdsStore, matter_epoch_s
from jfds_device.datastore.jfds_records import DatastoreChange, Entry, EntryKind, EntryRef
from jfds_device.datastore.tasks import TaskRecord, TaskState, TaskType
from jfds_device.errors import ActionError, DatastoreError, TaskNotRevertibleError, status_name
from jfds_device.im.provider import Status
from jfds_device.reconciler import rotation
from jfds_device.reconciler.plan import RetryClass, refused, retry_class
from jfds_device.reconciler.runner import Reconciler

__all__ = ["PHASES", "TaskEngine", "TaskView"]

log = logging.getLogger(__name__)

PHASES: dict[TaskType, tuple[str, ...]] = {
    TaskType.ROTATE_GROUP_KEY: rotation.PHASES,
    TaskType.ADD_NODE_TO_GROUP: ("provision",),
    TaskType.REMOVE_NODE_FROM_GROUP: ("remove",),
    TaskType.MOVE_NODE_TO_GROUP: ("move",),
    TaskType.ROLLBACK: ("restore",),
}
UNREACHABLE_CODES = frozenset({Status.TIMEOUT, Status.BUSY})  # what the reconciler records when it cannot reach


class Want(enum.Enum):
    COMMITTED = "committed"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class TaskView:
    """What an operator sees of a task (no key material)."""

    id: str
    run: int
    type: str
    phase: str
    state: str
    members: tuple[int, ...]
    error: str | None
    rollback_of: int | None
    rollback_run: int | None
    created: float
    updated: float

    @classmethod
    def of(cls, record: TaskRecord) -> TaskView:
        names = PHASES[record.type]
        phase = names[min(record.phase, len(names) - 1)]
        return cls(record.task_id, record.run, record.type.value, phase, record.state.value, record.members,
                   record.error, record.rollback_of, record.rollback_run, record.created, record.updated)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "members": [f"0x{m:016X}" for m in self.members]}


@dataclass(slots=True)
class _Check:
    failure: str | None = None
    ended: str | None = None  # the task has nothing left to do (its node left NodeList)
    unreachable: set[int] = dataclasses.field(default_factory=set)
    waiting: bool = False

    @property
    def satisfied(self) -> bool:
        return not (self.failure or self.ended or self.unreachable or self.waiting)


def _describe(ref: EntryRef) -> str:
    if ref.kind is EntryKind.NODE_KEY_SET:
        return f"key set {ref.key} on node 0x{ref.node_id:016X}"
    if ref.kind is EntryKind.ENDPOINT_GROUP:
        return f"group 0x{ref.key:04X} on node 0x{ref.node_id:016X} endpoint {ref.endpoint_id}"
    return repr(ref)


class TaskEngine:
    """Drives the live tasks of ``store.tasks`` with ``reconciler`` (see the module docstring). ``wall`` is the
    Unix clock a rotation's epoch start times come from; ``recheck`` bounds how long a gate sleeps between
    wake-ups (reachability and datastore changes wake it earlier)."""

    def __init__(self, store: JfdsStore, reconciler: Reconciler, *, wall: Callable[[], float] = time.time,
                 recheck: float = 30.0) -> None:
        self.store, self.reconciler, self.wall, self.recheck = store, reconciler, wall, recheck
        self._drivers: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._cleanup: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.before_transition: Callable[[TaskRecord], Awaitable[None]] | None = None
        """Test seam: awaited after a gate resolved, before the task moves on (next phase, completion)."""
        self._listeners: list[Callable[[TaskView], None]] = []

    @property
    def clock(self) -> Clock:
        return self.reconciler.clock

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Resume every live task (after a restart, at the phase its record names). Call from the running loop,
        after ``reconciler.start()``."""
        self._loop = asyncio.get_running_loop()
        self.reconciler.key_sets = self.key_set_content
        self._cleanup.append(self.store.observe(self._on_change))
        self._cleanup.append(self.reconciler.add_reachability_listener(lambda _node, _up: self._wake_all()))
        self._spawn_live()

    async def stop(self) -> None:
        """Stop driving; live tasks stay live in storage and resume at the next start."""
        for undo in self._cleanup:
            undo()
        self._cleanup.clear()
        drivers = list(self._drivers.values())
        for driver in drivers:
            driver.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
        self.reconciler.key_sets = None

    def _on_change(self, change: DatastoreChange) -> None:
        # Inside the writer's transaction: act once it is over (as the reconciler does). Only a change of intent can
        # come with a new task (a command's first phase); a status change only moves gates.
        if self._loop is not None:
            self._loop.call_soon(self._after_change, bool(change.intent))

    def _after_change(self, may_start: bool) -> None:
        if may_start:
            with contextlib.suppress(Exception):  # the database may be closing
                self._spawn_live()
        self._wake_all()

    def _wake_all(self) -> None:
        for event in self._wake.values():
            event.set()

    def _spawn_live(self) -> None:
        if self._loop is None:
            return
        for record in self.store.tasks.live():
            if record.run not in self._drivers:
                view = TaskView.of(record)
                log.info("task %s (%s, run %d): driving, %s, phase %s, members %s", view.id, view.type, view.run,
                         view.state, view.phase, ", ".join(f"0x{m:016X}" for m in view.members) or "-")
                self._wake[record.run] = asyncio.Event()
                self._drivers[record.run] = self._loop.create_task(self._drive(record.run),
                                                                   name=f"task-{record.run}")

    # --- queries and requests -----------------------------------------------------------------------------

    def tasks(self, limit: int = 100) -> list[TaskView]:
        """Live tasks and the newest ended ones, newest first."""
        return [TaskView.of(r) for r in self.store.tasks.recent(limit)]

    def task(self, task_id: str) -> TaskView | None:
        """The newest run of ``task_id``."""
        record = self.store.tasks.find(task_id)
        return None if record is None else TaskView.of(record)

    def key_set_content(self, key_set_id: int) -> GroupKeySet | None:
        """What key set ``key_set_id`` is pushed as now: a live rotation's phase, else its GroupKeySetList value."""
        for record in self.store.tasks.holding((logic_tasks.key_set_resource(key_set_id),)):
            if record.type is TaskType.ROTATE_GROUP_KEY:
                old, new = (GroupKeySet.decode(bytes.fromhex(record.params[k])) for k in ("old", "new"))
                return rotation.phase_content(old, new, record.phase, record.data)
        return self.store.key_set(key_set_id)

    def move_node_to_group(self, node_id: int, endpoint_id: int, from_group: int, to_group: int) -> TaskView:
        """MoveNodeToGroup: the endpoint leaves ``from_group`` for ``to_group`` as one changeset (a part a node
        refuses rolls the rest back). Raises ``ActionError`` (CONSTRAINT_ERROR, NOT_FOUND, INVALID_IN_STATE)
        or ``TaskConflictError``. The same request while it runs returns the running task."""
        if not self.store.is_bootstrapped:
            raise ActionError(Status.INVALID_IN_STATE, message="the datastore has no anchor yet")
        with self.store.transaction():
            require_endpoint(self.store, node_id, endpoint_id)
            record = logic_tasks.move_node_to_group(self.store, node_id, endpoint_id, from_group, to_group)
        self._spawn_live()
        return TaskView.of(record)

    def cancel(self, task_id: str) -> TaskView:
        """Cancel a live task: it ends ``cancelled`` and its rollback starts (returned). Raises
        ``TaskNotRevertibleError`` for a task that is not live, a rollback, or a rotation past activation."""
        record = next((r for r in self.store.tasks.live() if r.task_id == task_id), None)
        if record is None:
            raise TaskNotRevertibleError(f"no running task {task_id}")
        if record.type is TaskType.ROLLBACK or not record.revertible:
            why = "a rollback is not undone" if record.type is TaskType.ROLLBACK else \
                "a group-key rotation is forward-only once activated: rotate again to a new key instead"
            raise TaskNotRevertibleError(f"{task_id}: {why}")
        with self.store.transaction():
            cancelled = self.store.tasks.save(dataclasses.replace(record, state=TaskState.CANCELLED,
                                                                  error="cancelled by the operator"))
            rollback = self._start_rollback(cancelled, keep_refused=False)
        self._transition(record, cancelled)
        self._spawn_live()
        return TaskView.of(rollback)

    async def wait(self, task_id: str, *, poll: float = 0.05) -> TaskView | None:
        """Until the newest run of ``task_id`` has ended (None: no such task)."""
        while True:
            record = self.store.tasks.find(task_id)
            if record is None or not record.state.live:
                return None if record is None else TaskView.of(record)
            await self.clock.sleep(poll)

    # --- driving ---------------------------------------------------------------------------------------------

    async def _drive(self, run: int) -> None:
        try:
            while True:
                record = self.store.tasks.get(run)
                if record is None or not record.state.live:
                    return
                try:
                    check = await self._gate(run)
                    record = self.store.tasks.get(run)
                    if record is None or not record.state.live or check is None:
                        continue
                    if check.ended:
                        self._end(record, TaskState.CANCELLED, check.ended)
                        return
                    if check.failure:
                        self._fail(record, check.failure)
                        return
                    if self.before_transition is not None:
                        await self.before_transition(record)
                    record = self.store.tasks.get(run)
                    if record is not None and record.state.live:
                        self._advance(record)
                except (asyncio.CancelledError, GeneratorExit):
                    raise
                except Exception:  # keep the task: its record is intact; try again later
                    log.exception("task run %d: driving failed; retrying in %.0f s", run, self.recheck)
                    await self._sleep(run, self.recheck)
        finally:
            self._drivers.pop(run, None)
            self._wake.pop(run, None)

    async def _sleep(self, run: int, seconds: float) -> None:
        event = self._wake.get(run)
        if event is None:
            await self.clock.sleep(seconds)
            return
        timer = self.clock.call_later(seconds, event.set)
        try:
            await event.wait()
        finally:
            timer.cancel()

    def _targets(self, record: TaskRecord) -> list[tuple[EntryRef, Want]]:
        if record.type is TaskType.ROTATE_GROUP_KEY:
            key_set_id = record.params["key_set_id"]
            return [(e.ref, Want.COMMITTED) for e in self.store.entries(EntryKind.NODE_KEY_SET, key=key_set_id)
                    if not e.removal and self.store.node(e.ref.node_id) is not None]
        return [(logic_tasks.ref_of_change(c), Want(c["want"])) for c in record.changeset if "entry" in c]

    def _check(self, targets: list[tuple[EntryRef, Want]]) -> _Check:
        check = _Check()
        for ref, want in targets:
            if self.store.node(ref.node_id) is None:
                check.ended = f"node 0x{ref.node_id:016X} left NodeList"
                continue
            if self.reconciler.reachable(ref.node_id) is False:
                check.unreachable.add(ref.node_id)
            entry = self.store.entry(ref)
            if want is Want.COMMITTED and (entry is None or entry.removal):
                check.failure = f"{_describe(ref)} was removed meanwhile"
            elif want is Want.ABSENT and entry is not None and not entry.removal:
                check.failure = f"{_describe(ref)} was added again meanwhile"
            elif entry is not None and entry.state is DatastoreState.COMMIT_FAILED:
                self._classify_failure(entry, check)
            elif entry is not None and (want is Want.ABSENT or entry.state is not DatastoreState.COMMITTED):
                check.waiting = True
        return check

    @staticmethod
    def _classify_failure(entry: Entry, check: _Check) -> None:
        code = entry.status.failure_code
        if code in UNREACHABLE_CODES:
            check.unreachable.add(entry.ref.node_id)
        elif retry_class(code) is RetryClass.TRANSIENT:
            check.waiting = True  # the reconciler retries it
        else:
            check.failure = f"{_describe(entry.ref)}: refused by the node, {status_name(code)} (0x{code:02X})"

    async def _gate(self, run: int) -> _Check | None:
        """The current phase's gate; the final check (None when the record changed under us)."""
        while True:
            event = self._wake.get(run)
            if event is not None:
                event.clear()
            record = self.store.tasks.get(run)
            if record is None or not record.state.live:
                return None
            targets = self._targets(record)
            self._note_members(record, targets)
            check = self._check(targets)
            if check.failure or check.ended:
                return check
            if check.unreachable:
                self._set_state(record, TaskState.PARKED, "waiting for unreachable node(s) " +
                                ", ".join(f"0x{n:016X}" for n in sorted(check.unreachable)))
                await self._sleep(run, self.recheck)
                continue
            self._set_state(record, TaskState.RUNNING, None)
            if check.waiting:
                await self._sleep(run, self.recheck)
                continue
            missed = set()
            for node_id in sorted({ref.node_id for ref, want in targets if want is Want.COMMITTED}):
                report = await self.reconciler.reconcile(node_id, verify=True)
                if report is None or report.transport is not None:
                    missed.add(node_id)
            check = self._check(targets)
            if not missed and check.satisfied:
                return check
            if missed:
                self._set_state(record, TaskState.PARKED, "could not verify node(s) " +
                                ", ".join(f"0x{n:016X}" for n in sorted(missed)))
                await self._sleep(run, self.recheck)

    def _note_members(self, record: TaskRecord, targets: list[tuple[EntryRef, Want]]) -> None:
        members = tuple(sorted({ref.node_id for ref, _ in targets}))
        if record.type is TaskType.ROTATE_GROUP_KEY and members != record.members:
            self.store.tasks.save(dataclasses.replace(record, members=members))

    def _set_state(self, record: TaskRecord, state: TaskState, why: str | None) -> None:
        fresh = self.store.tasks.get(record.run)
        if fresh is None or fresh.state is state or not fresh.state.live:
            return
        saved = self.store.tasks.save(dataclasses.replace(fresh, state=state, error=why))
        self._transition(fresh, saved)

    # --- transitions (each one transaction) ---------------------------------------------------------------

    def _advance(self, record: TaskRecord) -> None:
        phases = PHASES[record.type]
        with self.store.transaction():
            if record.phase + 1 >= len(phases):
                saved = self.store.tasks.save(dataclasses.replace(record, state=TaskState.COMPLETED, error=None))
                original = None if record.rollback_of is None else self.store.tasks.get(record.rollback_of)
                if original is not None:
                    self.store.tasks.save(dataclasses.replace(original, state=TaskState.ROLLED_BACK))
            else:
                saved = self.store.tasks.save(self._next_phase(record))
                if record.type is TaskType.ROTATE_GROUP_KEY:
                    for ref, _ in self._targets(record):
                        self.store.renew(ref)  # push the next phase's content
        self._transition(record, saved)

    def _next_phase(self, record: TaskRecord) -> TaskRecord:
        phase, data, revertible = record.phase + 1, dict(record.data), record.revertible
        if record.type is TaskType.ROTATE_GROUP_KEY and phase == rotation.ACTIVATE:
            data.update(rotation.activation_data(matter_epoch_s(self.wall())))
            revertible = False  # forward-only from here: a node may send with the new key
        return dataclasses.replace(record, phase=phase, data=data, revertible=revertible, supersedable=revertible,
                                   state=TaskState.RUNNING, error=None)

    def _end(self, record: TaskRecord, state: TaskState, why: str) -> None:
        saved = self.store.tasks.save(dataclasses.replace(record, state=state, error=why))
        self._transition(record, saved)

    def _fail(self, record: TaskRecord, why: str) -> None:
        with self.store.transaction():
            saved = self.store.tasks.save(dataclasses.replace(record, state=TaskState.FAILED, error=why))
            if record.revertible and record.type is not TaskType.ROLLBACK:
                self._start_rollback(saved, keep_refused=True)
        self._transition(record, saved)
        self._spawn_live()

    def _start_rollback(self, original: TaskRecord, *, keep_refused: bool) -> TaskRecord:
        """The rollback of ``original`` (already ended), its first writes included; inside a transaction."""
        changes: list[dict[str, Any]] = []
        for change in reversed(original.changeset):
            if "key_set" in change:
                changes.extend(self._restore_key_set(change))
            else:
                changes.extend(self._restore_entry(change, keep_refused))
        started = self.store.tasks.start(TaskRecord(
            f"rollback:{original.task_id}", TaskType.ROLLBACK, {"of": original.task_id}, original.resources,
            members=original.members, changeset=tuple(changes), supersedable=False, revertible=False,
            rollback_of=original.run))
        self.store.tasks.save(dataclasses.replace(original, rollback_run=started.run))
        log.info("task %s: rollback %s started (run %d), %d change(s) to undo", original.task_id, started.task_id,
                 started.run, len(changes))
        return started

    def _restore_key_set(self, change: dict[str, Any]) -> list[dict[str, Any]]:
        prior = GroupKeySet.decode(bytes.fromhex(change["prior"]))
        current = self.store.key_set(prior.group_key_set_id)
        if current is None:
            return []
        self.store.replace_key_set(prior)
        undone = [{"key_set": prior.group_key_set_id, "prior": current.encode().hex()}]
        for entry in self.store.entries(EntryKind.NODE_KEY_SET, key=prior.group_key_set_id):
            if not entry.removal:
                self.store.renew(entry.ref)
                undone.append(logic_tasks.entry_change(self.store, entry.ref, Want.COMMITTED.value))
        return undone

    def _restore_entry(self, change: dict[str, Any], keep_refused: bool) -> list[dict[str, Any]]:
        ref, prior = logic_tasks.ref_of_change(change), change["prior"]
        entry = self.store.entry(ref)
        if prior is None or prior["removal"]:  # the task added it (or revived it): take it out again
            if entry is None or (keep_refused and refused(entry)) or self._still_needed(ref):
                return []
            undo = logic_tasks.entry_change(self.store, ref, Want.ABSENT.value)
            self.store.request_removal(ref)
            return [undo]
        undo = logic_tasks.entry_change(self.store, ref, Want.COMMITTED.value)
        try:  # it was there: add it again, or cancel its removal (the store revives a DeletePending entry)
            if ref.kind is EntryKind.NODE_KEY_SET:
                self.store.add_node_key_set(ref.node_id, ref.key)  # type: ignore[arg-type]
            elif ref.kind is EntryKind.ENDPOINT_GROUP:
                self.store.add_endpoint_group(ref.node_id, ref.endpoint_id, ref.key)  # type: ignore[arg-type]
        except DatastoreError as exc:  # its node, endpoint or group is gone meanwhile: nothing to restore
            log.info("rollback: %s cannot be restored: %s", _describe(ref), exc)
            return []
        return [undo]

    def _still_needed(self, ref: EntryRef) -> bool:
        """A node's key set stays while a live group of the node (not one it refused) uses it."""
        if ref.kind is not EntryKind.NODE_KEY_SET:
            return False
        for entry in self.store.entries(EntryKind.ENDPOINT_GROUP, node_id=ref.node_id):
            group = self.store.group(entry.value.group_id)
            if not entry.removal and not refused(entry) and group is not None and group.group_key_set_id == ref.key:
                return True
        return False

    def add_listener(self, listener: Callable[[TaskView], None]) -> Callable[[], None]:
        """``listener(view)`` after every transition (the operator's live view); returns its remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _transition(self, before: TaskRecord, after: TaskRecord) -> None:
        """One log line per transition (id, type, phase, state, members, reason), and the listeners."""
        view = TaskView.of(after)
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:  # an observer must not stop a task
                log.exception("task listener %r failed", listener)
        log.info("task %s (%s, run %d): %s -> %s, phase %s, members %s%s", view.id, view.type, view.run,
                 before.state.value, view.state, view.phase, ", ".join(f"0x{m:016X}" for m in view.members) or "-",
                 f": {view.error}" if view.error else "")
