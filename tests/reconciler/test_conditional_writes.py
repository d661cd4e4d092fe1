"""Conditional read-merge-write against the fake peer, which models DataVersion (tests/reconciler/fakes.py): every
write of a peer's list carries the DataVersion read with it (Core spec 8.7.3.2); another administrator's write
between our read and our write is answered DATA_VERSION_MISMATCH, and the reconciler reads, merges and writes
again (ACL, bindings, GroupKeyMap), within a bound, then leaves the entry CommitFailed(DATA_VERSION_MISMATCH) for a
later pass; a restart (or the next pass) never writes a list read before it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters.access_control import schema as ac
from clusters.binding import schema as binding
from clusters.group_key_management import schema as gkm
from clusters.joint_fabric_datastore.schema import BindingTarget, DatastoreState
from jfds_device.clock import ManualClock
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.im.client_messages import ReadResult
from jfds_device.im.provider import Status
from jfds_device.reconciler import OwnIdentity, Reconciler, ReconcilerConfig, RetryPolicy
from jfds_device.reconciler.execute import execute
from jfds_device.reconciler.facet_registry import default_facets
from jfds_device.reconciler.lists import ListOp, ListPath, write_merged
from jfds_device.reconciler.peer import Capacities, PeerContext, PeerIO
from jfds_device.reconciler.plan import RetryClass, plan_node, retry_class
from tests.reconciler.fakes import (
    ADMINISTER,
    COMMISSIONER,
    GROUP,
    OPERATE,
    US,
    VIEW,
    FakePeer,
    ace,
    admin_entries,
    group,
    jace,
    key_set,
    new_store,
)

NODE = 2
P, C, F = DatastoreState.PENDING, DatastoreState.COMMITTED, DatastoreState.COMMIT_FAILED
MISMATCH = Status.DATA_VERSION_MISMATCH
OTHER_ADMIN = ace(OPERATE, [0xBEEF])  # another administrator writes it on the peer between our read and write
LOGGER = "jfds_device.reconciler"


async def one_pass(store: JfdsStore, peer: FakePeer, attempts: int = 3) -> dict[EntryRef, int]:
    """Plan and execute one pass (no runner); the IM status per entry."""
    entries = store.entries_for_node(NODE)
    groups = {e.ref.key: store.group(e.ref.key).group_key_set_id for e in entries  # type: ignore[arg-type,union-attr]
              if e.ref.kind.value == "endpoint_group" and store.group(e.ref.key) is not None}  # type: ignore[arg-type]
    io = PeerIO(peer, peer.session, node_id=NODE)
    ctx = PeerContext(io, NODE, store, entries, await Capacities.read(io), OwnIdentity(US),
                      list_write_attempts=attempts)
    execution = await execute(plan_node(NODE, entries, key_set_of_group=groups), ctx, default_facets())
    return {ref: outcome.status for ref, outcome in execution.outcomes.items()}


def writes(peer: FakePeer, name: str) -> list[tuple[Any, ...]]:
    return peer.ops(name)


def reads_of(peer: FakePeer, endpoint: int, cluster: int, attribute: int) -> list[int]:
    """Positions in the peer's log of the reads of one attribute."""
    return [i for i, op in enumerate(peer.log) if op[0] == "read" and op[1] == ((endpoint, cluster, attribute),)]


def positions(peer: FakePeer, name: str) -> list[int]:
    return [i for i, op in enumerate(peer.log) if op[0] == name]


def mismatch_lines(caplog: Any) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "DataVersion mismatch, it changed" in r.getMessage()]


# ---------------------------------------------------------------------------------------------- one mismatch


async def test_acl_write_is_conditioned_on_the_version_it_read(store: JfdsStore) -> None:
    peer = FakePeer()
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    version = peer.version(0, ac.CLUSTER_ID)
    assert (await one_pass(store, peer))[ref] == Status.SUCCESS
    [write] = writes(peer, "write:acl")
    assert write[3] == version  # the DataVersion of the read, not a blind write
    assert peer.version(0, ac.CLUSTER_ID) != version  # the write moved it


async def test_foreign_acl_entry_written_between_read_and_write_survives(store: JfdsStore, caplog: Any) -> None:
    """mismatch → re-read → merge → retry: the other administrator's entry and ours both end on the node."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    peer = FakePeer(acl_limit=8)
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))

    async def other_admin_writes() -> None:
        peer.acl = [*peer.acl, OTHER_ADMIN]

    peer.hooks["write:acl"] = other_admin_writes
    before = peer.version(0, ac.CLUSTER_ID)
    assert (await one_pass(store, peer))[ref] == Status.SUCCESS
    first, second = writes(peer, "write:acl")
    assert first[3] == before and second[3] != before and OTHER_ADMIN not in first[2] and OTHER_ADMIN in second[2]
    acl_reads = reads_of(peer, 0, ac.CLUSTER_ID, ac.ACL)
    [w1, w2] = positions(peer, "write:acl")
    assert any(w1 < r < w2 for r in acl_reads)  # re-read between the refused write and the retry
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0xBEEF], [0x55]]  # merged again: nothing lost
    [line] = mismatch_lines(caplog)
    assert line.levelno == logging.INFO and "list 0/0x001F/0x0000 on node 0x0000000000000002" in line.getMessage()
    assert "attempt 2 of 3" in line.getMessage()
    assert any("written on attempt 2, after 1 DataVersion mismatch" in r.getMessage() for r in caplog.records)


async def test_removal_meeting_a_mismatch_removes_ours_and_keeps_theirs(store: JfdsStore) -> None:
    peer = FakePeer(acl=[*admin_entries(), ace(VIEW, [0x55])], acl_limit=8)
    ref = store.add_acl(NODE, jace(VIEW, [0x55]), committed=True)
    store.request_removal(ref)

    async def other_admin_writes() -> None:
        peer.acl = [*peer.acl, OTHER_ADMIN]

    peer.hooks["write:acl"] = other_admin_writes
    assert (await one_pass(store, peer))[ref] == Status.SUCCESS
    assert peer.acl == [*admin_entries(), OTHER_ADMIN] and len(writes(peer, "write:acl")) == 2


async def test_foreign_binding_written_between_read_and_write_survives(store: JfdsStore) -> None:
    peer = FakePeer()
    theirs = {1: 0x9999, 3: 2, 0xFE: 1}
    ref = store.add_binding(NODE, 1, BindingTarget(node=0x3344, endpoint=1, cluster=6))

    async def other_admin_writes() -> None:
        peer.bindings[1] = [*peer.bindings[1], theirs]

    peer.hooks["write:binding"] = other_admin_writes
    assert (await one_pass(store, peer))[ref] == Status.SUCCESS
    assert peer.bindings[1] == [theirs, {1: 0x3344, 3: 1, 4: 6, 0xFE: 1}]
    assert [w[3] is not None for w in writes(peer, "write:binding")] == [True, True]


async def test_foreign_group_key_map_entry_written_between_read_and_write_survives(store: JfdsStore) -> None:
    peer = FakePeer()
    store.add_key_set(key_set(5))
    store.add_group(group(0x101, 5))
    ks = store.add_node_key_set(NODE, 5)
    grp = store.add_endpoint_group(NODE, 1, 0x101)
    theirs = {1: 0x200, 2: 9, 0xFE: 1}

    async def other_admin_writes() -> None:
        peer.group_map = [*peer.group_map, theirs]

    peer.hooks["write:map"] = other_admin_writes
    codes = await one_pass(store, peer)
    assert (codes[ks], codes[grp]) == (Status.SUCCESS, Status.SUCCESS)
    assert peer.group_map == [theirs, {1: 0x101, 2: 5, 0xFE: 1}] and len(writes(peer, "write:map")) == 2
    assert peer.memberships[1] == {0x101: "Kitchen"}


# ---------------------------------------------------------------------------------------------- the bound


async def test_a_list_changing_under_every_write_gives_up_after_the_bound(store: JfdsStore, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    peer = FakePeer(acl_limit=16)
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    written: list[int] = []

    async def other_admin_writes_every_time() -> None:
        written.append(0xB000 + len(written))
        peer.acl = [*peer.acl, ace(VIEW, [written[-1]])]
        peer.hooks["write:acl"] = other_admin_writes_every_time

    peer.hooks["write:acl"] = other_admin_writes_every_time
    assert (await one_pass(store, peer, attempts=3))[ref] == MISMATCH
    assert len(writes(peer, "write:acl")) == 3  # the bound, and not one more
    assert peer.acl_subjects() == [[COMMISSIONER], [US], *([s] for s in written)]  # theirs all kept, ours not in
    assert len(mismatch_lines(caplog)) == 3 and "giving up after 3 attempts" in mismatch_lines(caplog)[-1].getMessage()
    assert any(r.levelno == logging.WARNING and "left for a later pass" in r.getMessage() for r in caplog.records)
    assert retry_class(MISMATCH) is RetryClass.TRANSIENT  # the runner retries it with backoff


async def test_write_merged_bound_is_at_least_one_write(store: JfdsStore) -> None:
    peer = FakePeer()
    io = PeerIO(peer, peer.session)
    op = ListOp(EntryRef.acl(NODE, 1), key="k", raw=ace(VIEW, [0x77]))

    async def other_admin_writes() -> None:
        peer.acl = [*peer.acl, OTHER_ADMIN]

    peer.hooks["write:acl"] = other_admin_writes
    codes, held = await write_merged(io, ListPath(0, ac.CLUSTER.attribute(ac.ACL)), [op], lambda e: None, attempts=0)
    assert codes == {op.ref: MISMATCH} and held == [*admin_entries()] and len(writes(peer, "write:acl")) == 1


def subject_key(raw: Any) -> Any:
    return tuple(raw.get(3) or ())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.lists(st.integers(0x100, 0x10F), max_size=4, unique=True), max_size=5),
    attempts=st.integers(1, 4),
    removing=st.booleans(),
)
async def test_interleaved_foreign_writes_never_lose_theirs(edits: list[list[int]], attempts: int,
                                                            removing: bool) -> None:
    """Another administrator rewrites the list's foreign part before each of our first ``len(edits)`` writes. If
    that is fewer writes than the bound, we end with exactly their last list plus our edit; else we wrote nothing
    and say DATA_VERSION_MISMATCH. Never is one of their elements lost or ours applied twice."""
    ours = ace(VIEW, [0x55])
    peer = FakePeer(acl=[*admin_entries(), *([ours] if removing else [])], acl_limit=64)
    pending = [[ace(VIEW, [s]) for s in subjects] for subjects in edits]

    async def other_admin_rewrites() -> None:
        own = [e for e in peer.acl if e[3] == [0x55]]
        peer.acl = [*admin_entries(), *pending.pop(0), *own]
        peer.bump(0, ac.CLUSTER_ID)  # their write moves the version even if it changed nothing
        if pending:
            peer.hooks["write:acl"] = other_admin_rewrites

    if pending:
        peer.hooks["write:acl"] = other_admin_rewrites
    ref = EntryRef.acl(NODE, 1)
    op = ListOp(ref, drop=frozenset({(0x55,)})) if removing else ListOp(ref, key=(0x55,), raw=ours)
    io = PeerIO(peer, peer.session)
    applied = edits[:attempts]  # they write before each of our writes, and we make at most ``attempts``
    theirs = [ace(VIEW, [s]) for s in applied[-1]] if applied else []
    acl = ListPath(0, ac.CLUSTER.attribute(ac.ACL))
    codes, held = await write_merged(io, acl, [op], subject_key, attempts=attempts)
    if len(edits) < attempts:
        assert codes == {ref: Status.SUCCESS}
        assert peer.acl == [*admin_entries(), *theirs, *([] if removing else [ours])] == held
        assert len(writes(peer, "write:acl")) == len(edits) + 1
    else:
        assert codes == {ref: MISMATCH} and len(writes(peer, "write:acl")) == attempts
        assert peer.acl == [*admin_entries(), *theirs, *([ours] if removing else [])]


# ---------------------------------------------------------------------------------------------- other writes


async def test_per_entry_attribution_writes_are_conditioned_too(store: JfdsStore) -> None:
    peer = FakePeer(acl_limit=8)
    good = store.add_acl(NODE, jace(VIEW, [0x55]))
    bad = store.add_acl(NODE, jace(ADMINISTER, [0x0101], auth=GROUP))  # the node refuses Group + Administer
    codes = await one_pass(store, peer)
    assert (codes[good], codes[bad]) == (Status.SUCCESS, Status.CONSTRAINT_ERROR)
    assert all(w[3] is not None for w in writes(peer, "write:acl"))


@pytest.mark.parametrize("mode", [True, "clear"])
async def test_restore_after_a_half_done_write_is_conditioned_on_the_read_back(store: JfdsStore, mode: Any) -> None:
    peer = FakePeer(partial_writes=mode)
    theirs = {1: 0x9999, 3: 2, 0xFE: 1}
    peer.bindings[1] = [dict(theirs)]
    good = store.add_binding(NODE, 1, BindingTarget(node=0x3344, endpoint=1, cluster=6))
    bad = store.add_binding(NODE, 1, BindingTarget(node=0x3344, group=0x101))  # node + group: refused
    codes = await one_pass(store, peer)
    assert (codes[good], codes[bad]) == (Status.SUCCESS, Status.CONSTRAINT_ERROR)
    assert peer.bindings[1] == [theirs, {1: 0x3344, 3: 1, 4: 6, 0xFE: 1}]
    assert all(w[3] is not None for w in writes(peer, "write:binding"))


async def test_a_peer_without_data_versions_gets_plain_writes(store: JfdsStore) -> None:
    """Every Matter server reports DataVersion (Core spec 10.6.4); one that does not is written unconditionally."""

    class NoVersions(FakePeer):
        async def read(self, session: Any, paths: Any, *, fabric_filtered: bool = True) -> ReadResult:
            result = await super().read(session, paths, fabric_filtered=fabric_filtered)
            result.data_versions.clear()
            return result

    peer = NoVersions()
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    assert (await one_pass(store, peer))[ref] == Status.SUCCESS
    assert [w[3] for w in writes(peer, "write:acl")] == [None]


async def test_read_list_gives_the_clusters_version(store: JfdsStore) -> None:
    peer = FakePeer()
    io = PeerIO(peer, peer.session)
    value, version = await io.read_list(0, gkm.CLUSTER.attribute(gkm.GROUP_KEY_MAP))
    assert (value, version) == ([], peer.version(0, gkm.CLUSTER_ID))
    value, version = await io.read_list(1, binding.CLUSTER.attribute(binding.BINDING))
    assert (value, version) == ([], peer.version(1, binding.CLUSTER_ID))


async def test_a_list_attribute_that_is_not_a_list_fails_the_batch_without_a_write(store: JfdsStore) -> None:
    class Garbled(FakePeer):
        def _attribute(self, ep: int, cluster: int, attribute: int) -> Any:
            return 7 if (cluster, attribute) == (ac.CLUSTER_ID, ac.ACL) else super()._attribute(ep, cluster, attribute)

    peer = Garbled()
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    assert (await one_pass(store, peer))[ref] == Status.FAILURE  # transient: retried by a later pass
    assert writes(peer, "write:acl") == []


# ---------------------------------------------------------------------------------------------- runner, restarts

CONFIG = ReconcilerConfig(sweep_interval=0.2, settle_delay=0.0, verify_interval=None,
                          retry=RetryPolicy(initial=0.05, maximum=0.2))


def reconciler(store: JfdsStore, peer: FakePeer, config: ReconcilerConfig = CONFIG) -> Reconciler:
    """A reconciler on virtual time (``ManualClock``): ``until`` jumps from one of its timers to the next."""
    return Reconciler(store, peer, peer, fabric_index=lambda: 1, own_identity=lambda _: OwnIdentity(US),
                      config=config, clock=ManualClock())


def state(store: JfdsStore, ref: EntryRef) -> tuple[DatastoreState, int] | None:
    found = store.entry(ref)
    return None if found is None else (found.state, found.status.failure_code)


async def until(rec: Reconciler, predicate: Callable[[], Any], within: float = 5.0) -> None:
    """Virtual time runs until ``predicate`` holds, then until no pass runs (TimeoutError after ``within`` virtual
    seconds)."""
    clock = rec.clock
    assert isinstance(clock, ManualClock)
    await clock.run_until(predicate, within)
    idle = asyncio.ensure_future(rec.wait_idle())
    try:
        await clock.run_until(idle.done, within)
    finally:
        idle.cancel()


@pytest.fixture
async def running(store: JfdsStore) -> AsyncIterator[tuple[Reconciler, FakePeer]]:
    peer = FakePeer(acl_limit=16)
    rec = reconciler(store, peer)
    rec.start()
    try:
        yield rec, peer
    finally:
        await rec.stop()


async def test_runner_records_the_mismatch_and_commits_once_the_list_settles(
    store: JfdsStore, running: tuple[Reconciler, FakePeer],
) -> None:
    rec, peer = running
    busy_admin = {"writes": 0}

    async def other_admin_writes_every_time() -> None:
        busy_admin["writes"] += 1
        peer.acl = [*peer.acl, ace(VIEW, [0xB000 + busy_admin["writes"]])]
        if busy_admin["writes"] < 3:  # the other administrator stops after three writes
            peer.hooks["write:acl"] = other_admin_writes_every_time

    peer.hooks["write:acl"] = other_admin_writes_every_time
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    await until(rec, lambda: state(store, ref) == (F, MISMATCH))  # the bound was hit: CommitFailed, retried later
    await until(rec, lambda: state(store, ref) == (C, 0))  # backoff, then a fresh read-merge-write
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0xB001], [0xB002], [0xB003], [0x55]]
    assert rec.stats.failures >= 1 and rec.stats.version_mismatches == 3
    assert "version_mismatches=3" in rec.stats.line()


async def test_next_pass_reads_afresh_instead_of_reusing_a_list(store: JfdsStore,
                                                                running: tuple[Reconciler, FakePeer]) -> None:
    rec, peer = running
    first = store.add_acl(NODE, jace(VIEW, [0x55]))
    await until(rec, lambda: state(store, first) == (C, 0))
    peer.acl = [*peer.acl, OTHER_ADMIN]  # another administrator, between two of our passes
    moved = peer.version(0, ac.CLUSTER_ID)
    peer.log.clear()
    second = store.add_acl(NODE, jace(VIEW, [0x56]))
    await until(rec, lambda: state(store, second) == (C, 0))
    [write] = writes(peer, "write:acl")
    assert write[3] == moved and OTHER_ADMIN in write[2]  # written from a read made in this pass
    assert reads_of(peer, 0, ac.CLUSTER_ID, ac.ACL)[0] < positions(peer, "write:acl")[0]
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0x55], [0xBEEF], [0x56]]


async def test_crash_between_read_and_write_then_restart_re_reads_before_writing(tmp_path: Path) -> None:
    """The reconciler dies after its read, before its write (the process is gone: nothing but the datastore
    survives); another administrator writes the peer's ACL meanwhile. After the restart the first write is
    preceded by a read of this run and is conditioned on it: their entry and ours are both on the node, and the
    list read before the crash was never written."""
    path = tmp_path / "jfds.sqlite3"
    store = new_store(path)
    store.add_node(NODE, "peer")
    peer = FakePeer(acl_limit=8)
    parked = asyncio.Event()

    async def crash_here() -> None:
        parked.set()
        await asyncio.Event().wait()  # never returns: the process dies here

    peer.hooks["write:acl"] = crash_here
    before = reconciler(store, peer)
    before.start()
    ref = store.add_acl(NODE, jace(VIEW, [0x55]))
    clock = before.clock
    assert isinstance(clock, ManualClock)
    await clock.run_until(parked.is_set)
    stale_version = peer.version(0, ac.CLUSTER_ID)  # what the dead run read
    await before.stop()  # cancels the pass inside the hook: the write never left
    store._db.close()
    assert peer.ops("write:acl") == [] and state(new_store(path), ref) == (P, 0)

    peer.acl = [*peer.acl, OTHER_ADMIN]
    peer.log.clear()
    store = new_store(path)
    after = reconciler(store, peer)
    after.start()
    try:
        await until(after, lambda: state(store, ref) == (C, 0))
    finally:
        await after.stop()
    [write] = writes(peer, "write:acl")
    assert write[3] != stale_version and write[3] is not None
    assert reads_of(peer, 0, ac.CLUSTER_ID, ac.ACL)[0] < positions(peer, "write:acl")[0]
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0xBEEF], [0x55]]
