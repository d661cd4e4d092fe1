"""The task engine (``reconciler/tasks.py``) on virtual time (``ManualClock``) over a fleet of fake peers: gates on
freshly verified state, park/resume on reachability, rollback by value, the three rotation phases, and persistence
across a crash (a copy of the committed database, as kill -9 leaves it) at every write to a node."""

from __future__ import annotations

import copy
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from clusters.joint_fabric_datastore import logic_tasks
from clusters.joint_fabric_datastore.schema import DatastoreState, GroupKeySet
from jfds_device.clock import ManualClock
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.datastore.tasks import TaskState
from jfds_device.errors import TaskConflictError, TaskNotRevertibleError
from jfds_device.im.provider import Status
from jfds_device.reconciler import OwnIdentity, Reconciler, ReconcilerConfig, RetryPolicy, rotation
from jfds_device.reconciler.ports import PeerId, PeerState, PeerUnreachableError
from jfds_device.reconciler.tasks import TaskEngine
from tests.reconciler.fakes import FABRIC, US, FakePeer, group, key_set, new_store

NODES = (2, 3, 4)
KS, KS_B, GROUP, GROUP_B = 0x42, 0x43, 0x101, 0x102
OLD_KEY, NEW_KEY = b"\xa0" * 16, b"\xb1" * 16
CONFIG = ReconcilerConfig(sweep_interval=0.5, settle_delay=0.0, retry=RetryPolicy(initial=0.1, maximum=0.5),
                          verify_interval=None, live=False)
WRITES = ("KeySetWrite", "KeySetRemove", "AddGroup", "RemoveGroup", "write:map", "write:acl")


class Fleet:
    """Several ``FakePeer``s behind one client and one session provider, routed by session (as the node's
    PeerConnections and IM client are); ``log`` orders every peer operation across the fleet."""

    def __init__(self, peers: dict[int, FakePeer]) -> None:
        self.peers = peers
        self.listeners: list[Any] = []
        self.log: list[tuple[int, str, Any]] = []
        self.before_op: Callable[[int, str], None] | None = None
        for node_id, peer in peers.items():
            peer.hooks = _Recorder(self, node_id, peer)  # type: ignore[assignment]

    def _peer(self, session: Any) -> FakePeer:
        return next(p for p in self.peers.values() if p.session is session)

    async def connect(self, peer: PeerId, *, ignore_backoff: bool = False) -> object:
        found = self.peers.get(peer.node_id)
        if found is None or not found.reachable:
            raise PeerUnreachableError(peer, "no operational address")
        return found.session

    def session_failed(self, peer: PeerId) -> None:
        pass

    def add_listener(self, listener: Any) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: None

    def announce(self, node_id: int) -> None:
        for listener in self.listeners:
            listener(PeerId(FABRIC, node_id), PeerState.REACHABLE)

    async def read(self, session: Any, paths: Any, **kwargs: Any) -> Any:
        return await self._peer(session).read(session, paths, **kwargs)

    async def write_attribute(self, session: Any, *args: Any, **kwargs: Any) -> None:
        await self._peer(session).write_attribute(session, *args, **kwargs)

    async def invoke(self, session: Any, *args: Any) -> Any:
        return await self._peer(session).invoke(session, *args)


class _Recorder(dict):  # type: ignore[type-arg]
    """FakePeer's ``hooks`` (op name -> awaitable), turned into a log of every operation of the fleet."""

    def __init__(self, fleet: Fleet, node_id: int, peer: FakePeer) -> None:
        super().__init__()
        self.fleet, self.node_id, self.peer = fleet, node_id, peer

    def pop(self, op: str, default: Any = None) -> Any:
        if self.fleet.before_op is not None:
            self.fleet.before_op(self.node_id, op)
        self.fleet.log.append((self.node_id, op, copy.deepcopy(self.peer.key_sets.get(KS))))
        return None


def start_times(peer: FakePeer, key_set_id: int = KS) -> tuple[Any, Any, Any] | None:
    held = peer.key_sets.get(key_set_id)
    return None if held is None else (held.get(3), held.get(5), held.get(7))


def single(key_set_id: int, key: bytes, start: int = 2_220_000) -> GroupKeySet:
    return dataclasses.replace(key_set(key_set_id, key), epoch_start_time0=start)


def peer_state(peer: FakePeer) -> Any:
    """What a node holds of groups, by value (the key bytes included: the fake keeps them)."""
    return (copy.deepcopy(peer.key_sets), sorted(repr(e) for e in peer.group_map), copy.deepcopy(peer.memberships))


class Bench:
    def __init__(self, path: Path, peers: dict[int, FakePeer], clock: ManualClock | None = None) -> None:
        self.path, self.clock = path, clock or ManualClock()
        self.store = new_store(path)
        self.fleet = Fleet(peers)
        self.reconciler = Reconciler(self.store, self.fleet, self.fleet, fabric_index=lambda: FABRIC,
                                     own_identity=lambda _: OwnIdentity(US), clock=self.clock, config=CONFIG)
        self.engine = TaskEngine(self.store, self.reconciler, wall=lambda: 1_800_000_000.0, recheck=1.0)

    def start(self) -> None:
        self.reconciler.start()
        self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()
        await self.reconciler.stop()

    def state(self, task_id: str) -> TaskState | None:
        record = self.store.tasks.find(task_id)
        return None if record is None else record.state

    async def until(self, predicate: Callable[[], Any], within: float = 30.0) -> None:
        await self.clock.run_until(predicate, within)

    async def ended(self, task_id: str, within: float = 30.0) -> TaskState:
        await self.until(lambda: self.state(task_id) not in (None, TaskState.RUNNING, TaskState.PARKED), within)
        state = self.state(task_id)
        assert state is not None
        return state


def seed(store: JfdsStore, nodes: tuple[int, ...] = NODES) -> None:
    with store.transaction():
        store.bootstrap_anchor(b"rcac", US, 0xFFF1, "anchor", key_set(0))
        store.add_key_set(single(KS, OLD_KEY))
        store.add_key_set(single(KS_B, b"\xc2" * 16))
        store.add_group(group(GROUP, KS))
        store.add_group(group(GROUP_B, KS_B, "Hall"))
        for node_id in nodes:
            store.add_node(node_id, f"light {node_id}")
            store.sync_endpoints(node_id, [0, 1])


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(tmp_path / "jfds.sqlite3", {n: FakePeer(n) for n in NODES})
    seed(b.store)
    b.start()
    try:
        yield b
    finally:
        await b.stop()


async def grouped(b: Bench, nodes: tuple[int, ...] = NODES, group_id: int = GROUP) -> None:
    """Every node's endpoint 1 in ``group_id`` (AddGroupIDToEndpointForNode), all tasks completed."""
    for node_id in nodes:
        with b.store.transaction():
            record = logic_tasks.add_node_to_group(b.store, node_id, 1, group_id)
        assert record is not None
        assert await b.ended(record.task_id) is TaskState.COMPLETED


def key_set_entries(b: Bench) -> list[Any]:
    return [(e.ref.node_id, e.state) for e in b.store.entries_for_node(2) + b.store.entries_for_node(3)
            + b.store.entries_for_node(4) if e.ref.kind.value == "node_key_set" and e.ref.key == KS]


# ---------------------------------------------------------------------------------------------- group membership


async def test_add_node_to_group_completes_only_after_a_fresh_verify(bench: Bench) -> None:
    with bench.store.transaction():
        record = logic_tasks.add_node_to_group(bench.store, 2, 1, GROUP)
    assert record is not None and record.task_id == "add-node-to-group:0000000000000002:1:0101"
    verified_at = []
    bench.engine.before_transition = lambda r: _note(verified_at, len(bench.fleet.log))
    assert await bench.ended(record.task_id) is TaskState.COMPLETED
    peer = bench.fleet.peers[2]
    assert KS in peer.key_sets and peer.memberships[1] == {GROUP: "Kitchen"}
    last_write = max(i for i, (_, op, _) in enumerate(bench.fleet.log) if op in WRITES)
    reads_after = [op for _, op, _ in bench.fleet.log[last_write + 1:verified_at[0]]]
    assert "KeySetRead" in reads_after and "read" in reads_after  # verified afresh, after the last write
    view = bench.engine.task(record.task_id)
    assert view is not None and (view.state, view.phase, view.members) == ("completed", "provision", (2,))


async def _note(into: list[int], value: int) -> None:
    into.append(value)


async def test_add_node_to_group_refused_by_a_full_group_table_leaves_nothing(tmp_path: Path) -> None:
    b = Bench(tmp_path / "jfds.sqlite3", {2: FakePeer(2, max_groups=2)})
    seed(b.store, (2,))
    peer = b.fleet.peers[2]
    peer.group_map = [{1: 0x7001, 2: 0x77, 0xFE: FABRIC}, {1: 0x7002, 2: 0x77, 0xFE: FABRIC}]  # full
    before = peer_state(peer)
    b.start()
    try:
        with b.store.transaction():
            record = logic_tasks.add_node_to_group(b.store, 2, 1, GROUP)
        assert record is not None
        assert await b.ended(f"rollback:{record.task_id}") is TaskState.COMPLETED
        failed = b.store.tasks.find(record.task_id)  # failed, then rolled back; the reason stays
        assert failed is not None and failed.state is TaskState.ROLLED_BACK
        assert failed.error == "group 0x0101 on node 0x0000000000000002 endpoint 1: refused by the node, " \
            "RESOURCE_EXHAUSTED (0x89)"
        assert peer_state(peer) == before  # the key set went on and came off again
        group_entry = b.store.entry(EntryRef.endpoint_group(2, 1, GROUP))
        assert group_entry is not None and (group_entry.state, group_entry.status.failure_code) == (
            DatastoreState.COMMIT_FAILED, Status.RESOURCE_EXHAUSTED)  # the operator's record of why
        assert b.store.entry(EntryRef.node_key_set(2, KS)) is None
    finally:
        await b.stop()


async def test_cancel_of_a_move_restores_every_prior_value(bench: Bench) -> None:
    await grouped(bench, (2,))
    peer = bench.fleet.peers[2]
    before = peer_state(peer)
    held: list[Any] = []

    async def hold(record: Any) -> None:
        held.append(record.task_id)
        await bench.clock.sleep(3600)  # the move is done on the node and waits here: cancel now

    bench.engine.before_transition = hold
    view = bench.engine.move_node_to_group(2, 1, GROUP, GROUP_B)
    await bench.until(lambda: held)
    assert KS_B in peer.key_sets and GROUP_B in peer.memberships[1] and GROUP not in peer.memberships[1]
    rollback = bench.engine.cancel(view.id)
    assert rollback.id == f"rollback:{view.id}" and bench.state(view.id) is TaskState.CANCELLED
    bench.engine.before_transition = None
    assert await bench.ended(rollback.id) is TaskState.COMPLETED
    assert bench.state(view.id) is TaskState.ROLLED_BACK
    assert peer_state(peer) == before
    with pytest.raises(TaskNotRevertibleError):
        bench.engine.cancel(view.id)


async def test_a_task_parks_while_its_node_is_unreachable_and_resumes(bench: Bench) -> None:
    peer = bench.fleet.peers[3]
    peer.reachable = False
    with bench.store.transaction():
        record = logic_tasks.add_node_to_group(bench.store, 3, 1, GROUP)
    assert record is not None
    await bench.until(lambda: bench.state(record.task_id) is TaskState.PARKED)
    assert "0x0000000000000003" in (bench.store.tasks.find(record.task_id).error or "")  # type: ignore[union-attr]
    await bench.clock.advance(10)
    assert bench.state(record.task_id) is TaskState.PARKED and KS not in peer.key_sets
    peer.reachable = True
    bench.fleet.announce(3)
    assert await bench.ended(record.task_id) is TaskState.COMPLETED
    assert GROUP in peer.memberships[1]


async def test_remove_node_from_group_goes_dependents_first_and_keeps_shared_key_sets(bench: Bench) -> None:
    await grouped(bench, (2,))
    with bench.store.transaction():
        record = logic_tasks.remove_node_from_group(bench.store, 2, 1, GROUP)
    assert record is not None
    assert await bench.ended(record.task_id) is TaskState.COMPLETED
    ops = [op for node, op, _ in bench.fleet.log if node == 2 and op in WRITES]
    assert ops[-3:] == ["RemoveGroup", "write:map", "KeySetRemove"]
    assert KS not in bench.fleet.peers[2].key_sets


async def test_a_newer_request_supersedes_and_the_same_request_joins(bench: Bench) -> None:
    bench.fleet.peers[2].reachable = False
    with bench.store.transaction():
        first = logic_tasks.add_node_to_group(bench.store, 2, 1, GROUP)
        again = logic_tasks.add_node_to_group(bench.store, 2, 1, GROUP)
    assert first is not None and again is not None and again.run == first.run  # joined
    with bench.store.transaction():
        removal = logic_tasks.remove_node_from_group(bench.store, 2, 1, GROUP)
    assert removal is not None
    superseded = bench.store.tasks.get(first.run)
    assert superseded is not None and superseded.state is TaskState.CANCELLED
    assert superseded.error == f"superseded by {removal.task_id}"


# ---------------------------------------------------------------------------------------------- rotation


def update_key_set(b: Bench, new: GroupKeySet) -> Any:
    with b.store.transaction():
        return logic_tasks.rotate_group_key(b.store, new, clock=lambda: 1_800_000_000.0)


def phase_of(times: tuple[Any, Any, Any] | None, old_start: int = 2_220_000) -> str:
    if times is None:
        return "absent"
    if times[1] is None:
        return "steady"
    return "distribute" if times[2] is None else "activate"


async def test_rotation_runs_three_gated_phases_on_every_member(bench: Bench) -> None:
    await grouped(bench)
    seen: list[dict[int, str]] = []

    async def at_gate(record: Any) -> None:  # every member holds this phase, verified; nobody holds the next
        seen.append({n: phase_of(start_times(p)) for n, p in bench.fleet.peers.items()})

    bench.engine.before_transition = at_gate
    record = update_key_set(bench, single(KS, NEW_KEY, start=5_000_000))
    assert record is not None and record.task_id == "rotate-group-key:0042" and record.members == NODES
    assert await bench.ended(record.task_id) is TaskState.COMPLETED
    assert seen == [{n: "distribute" for n in NODES}, {n: "activate" for n in NODES},
                    {n: "steady" for n in NODES}]
    for peer in bench.fleet.peers.values():
        assert peer.key_sets[KS][2] == NEW_KEY and start_times(peer) == (5_000_000, None, None)
    # Across the fleet, no write of a phase precedes a write of the phase before it (after the grouping's pushes).
    order = ["steady", "distribute", "activate", "steady"]
    written = {n: iter(f[0] for op, _, f in p.ops("KeySetWrite")) for n, p in bench.fleet.peers.items()}
    phases = [phase_of((f.get(3), f.get(5), f.get(7))) for f in
              (next(written[node]) for node, op, _ in bench.fleet.log if op == "KeySetWrite")]
    rank, ranks = 0, []
    for phase in phases[len(NODES):]:
        rank = order.index(phase, rank)
        ranks.append(rank)
    assert ranks == sorted(ranks) and set(ranks) == {1, 2, 3}
    distribute = rotation.phase_content(single(KS, OLD_KEY), single(KS, NEW_KEY), 0, {"distribute_at_s": 0})
    assert distribute.epoch_start_time1 > 3_000_000_000_000_000  # dormant: 100 years on


async def test_rotation_parks_in_distribute_while_a_member_is_away(bench: Bench) -> None:
    await grouped(bench)
    away = bench.fleet.peers[4]
    away.reachable = False
    record = update_key_set(bench, single(KS, NEW_KEY))
    await bench.until(lambda: bench.state(record.task_id) is TaskState.PARKED)
    await bench.clock.advance(20)
    phases = {n: phase_of(start_times(p)) for n, p in bench.fleet.peers.items()}
    assert phases == {2: "distribute", 3: "distribute", 4: "steady"}  # nobody activated
    assert bench.store.tasks.find(record.task_id).phase == rotation.DISTRIBUTE  # type: ignore[union-attr]
    away.reachable = True
    bench.fleet.announce(4)
    assert await bench.ended(record.task_id) is TaskState.COMPLETED
    assert all(p.key_sets[KS][2] == NEW_KEY for p in bench.fleet.peers.values())


async def test_rotation_is_revertible_until_it_activates_then_forward_only(bench: Bench) -> None:
    await grouped(bench)
    before = {n: peer_state(p) for n, p in bench.fleet.peers.items()}
    bench.fleet.peers[4].reachable = False
    record = update_key_set(bench, single(KS, NEW_KEY))
    await bench.until(lambda: bench.state(record.task_id) is TaskState.PARKED)
    bench.fleet.peers[4].reachable = True
    rollback = bench.engine.cancel(record.task_id)  # parked in distribute: nobody sends with the new key yet
    bench.fleet.announce(4)
    assert await bench.ended(rollback.id) is TaskState.COMPLETED
    assert {n: peer_state(p) for n, p in bench.fleet.peers.items()} == before
    assert bench.store.key_set(KS) == single(KS, OLD_KEY)  # GroupKeySetList has its old value back

    held: list[int] = []

    async def hold_once_activated(r: Any) -> None:
        if r.phase == rotation.ACTIVATE:
            held.append(r.run)
            await bench.clock.sleep(3600)

    bench.engine.before_transition = hold_once_activated
    record = update_key_set(bench, single(KS, NEW_KEY))
    await bench.until(lambda: held)
    assert all(phase_of(start_times(p)) == "activate" for p in bench.fleet.peers.values())
    with pytest.raises(TaskNotRevertibleError, match="forward-only"):
        bench.engine.cancel(record.task_id)
    with pytest.raises(TaskConflictError):  # no other UpdateKeySet of the set meanwhile: BUSY
        update_key_set(bench, single(KS, b"\xe4" * 16))
    await bench.clock.advance(3600)
    assert await bench.ended(record.task_id) is TaskState.COMPLETED


async def test_a_member_that_refuses_the_new_key_fails_the_rotation_with_a_reason(bench: Bench) -> None:
    await grouped(bench)
    original = bench.fleet.peers[3]._KeySetWrite

    def refuse_the_new_key(endpoint: int, fields: dict[int, Any]) -> int:
        return Status.CONSTRAINT_ERROR if NEW_KEY in fields[0].values() else original(endpoint, fields)

    bench.fleet.peers[3]._KeySetWrite = refuse_the_new_key  # type: ignore[method-assign]
    record = update_key_set(bench, single(KS, NEW_KEY))
    assert await bench.ended(f"rollback:{record.task_id}") is TaskState.COMPLETED
    failed = bench.store.tasks.find(record.task_id)  # failed in distribute, then rolled back
    assert failed is not None and failed.state is TaskState.ROLLED_BACK and failed.phase == rotation.DISTRIBUTE
    assert failed.error == "key set 66 on node 0x0000000000000003: refused by the node, CONSTRAINT_ERROR (0x87)"
    assert all(phase_of(start_times(p)) == "steady" for p in bench.fleet.peers.values())


def test_key_set_zero_and_multi_epoch_sets_never_start_a_rotation(tmp_path: Path) -> None:
    store = new_store(tmp_path / "db.sqlite3")
    seed(store, (2,))
    with store.transaction():
        store.add_node_key_set(2, KS)
        multi = dataclasses.replace(single(KS, NEW_KEY), epoch_key1=b"\x01" * 16, epoch_start_time1=9_000_000)
        assert logic_tasks.rotate_group_key(store, multi) is None  # a schedule its writer made: pushed as is
    assert store.entry(EntryRef.node_key_set(2, KS)).state is DatastoreState.PENDING  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------- crash safety


def _snapshot(path: Path, into: Path) -> None:
    """The database as a kill -9 leaves it: what is committed (a separate connection sees nothing else)."""
    source, target = sqlite3.connect(path), sqlite3.connect(into)
    with target:
        source.backup(target)
    source.close()
    target.close()


@pytest.mark.parametrize("scenario", ["rotation", "move"])
async def test_a_crash_at_every_write_to_a_node_resumes_to_the_same_end(tmp_path: Path, scenario: str) -> None:
    """Run the task once, copying the committed database and the peers before every write to a node; then, from
    each copy, start afresh (a new store, reconciler and engine): the task completes, every peer ends holding the
    same, and no peer ever held a later phase before every member held the earlier one."""
    reference = Bench(tmp_path / "ref.sqlite3", {n: FakePeer(n) for n in NODES})
    seed(reference.store)
    reference.start()
    await grouped(reference)
    crashes: list[tuple[Path, dict[int, FakePeer]]] = []

    def before_op(node_id: int, op: str) -> None:
        if op in WRITES:
            copy_path = tmp_path / f"crash{len(crashes)}.sqlite3"
            _snapshot(reference.path, copy_path)
            crashes.append((copy_path, {n: _clone(p) for n, p in reference.fleet.peers.items()}))

    reference.fleet.before_op = before_op
    if scenario == "rotation":
        task_id = update_key_set(reference, single(KS, NEW_KEY)).task_id
    else:
        task_id = reference.engine.move_node_to_group(2, 1, GROUP, GROUP_B).id
    assert await reference.ended(task_id) is TaskState.COMPLETED
    reference.fleet.before_op = None
    await reference.stop()
    final = {n: peer_state(p) for n, p in reference.fleet.peers.items()}
    assert len(crashes) >= 3
    for copy_path, peers in crashes:
        restarted = Bench(copy_path, peers)
        restarted.start()
        try:
            assert await restarted.ended(task_id, within=120) is TaskState.COMPLETED, copy_path.name
            assert {n: peer_state(p) for n, p in restarted.fleet.peers.items()} == final, copy_path.name
        finally:
            await restarted.stop()


def _clone(peer: FakePeer) -> FakePeer:
    clone = FakePeer(peer.node_id)
    clone.acl, clone.key_sets = copy.deepcopy(peer.acl), copy.deepcopy(peer.key_sets)
    clone.group_map, clone.memberships = copy.deepcopy(peer.group_map), copy.deepcopy(peer.memberships)
    clone.bindings, clone.limits = copy.deepcopy(peer.bindings), dict(peer.limits)
    return clone
