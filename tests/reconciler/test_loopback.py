"""Loopback integration: the reconciler against another of our own stacks, two ``node.stack.Stack`` on a
``VirtualLink`` (MRP, CASE and IM as on the wire; no socket).

The peer is a serving stack over endpoint 0 with our AccessControl and GroupKeyManagement servers; its ACL grants the
reconciler's node id Administer on fabric 1, next to the commissioner's entry. The reconciler side is the stack
``Device`` uses (its peer connections with operational discovery replaced by a fixed address, its IM client) and a
JfdsStore; nothing calls the reconciler: datastore changes trigger it.

Proves: ACL Pending → Committed (read-merge-write keeps the commissioner's entry), DeletePending → erased, a
key set and group map pushed and removed, capacity as RESOURCE_EXHAUSTED, a peer restart (sessions lost)
recovered by the retry, and a conditional ACL write that meets another administrator's change (DataVersion).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from clusters.access_control import schema as ac
from clusters.access_control.server import AccessControlServer
from clusters.group_key_management.server import GroupKeyManagementServer
from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.im.provider import Status
from jfds_device.node.links import VirtualLink
from jfds_device.node.stack import SessionBudget, Stack
from jfds_device.reconciler import OwnIdentity, Reconciler, ReconcilerConfig, RetryPolicy
from tests.node.fabric_support import identity
from tests.reconciler.fakes import group, jace, key_set, new_store

PEER_HOST, OUR_HOST = "fd00:4a46::55", "fd00:4a46::1"
PEER_NODE, US, COMMISSIONER = 0x55, 0x01, 112233
ROOT = DeviceType(device_type=0x0016, revision=3)
P, C, F = DatastoreState.PENDING, DatastoreState.COMMITTED, DatastoreState.COMMIT_FAILED


def admin(subject: int) -> ac.AccessControlEntryStruct:
    return ac.AccessControlEntryStruct(privilege=ac.AccessControlEntryPrivilegeEnum.ADMINISTER,
                                       auth_mode=ac.AccessControlEntryAuthModeEnum.CASE, subjects=[subject],
                                       targets=None)


class PeerNode:
    """A serving stack over AccessControl + GroupKeyManagement, at ``PEER_HOST`` on the link."""

    def __init__(self, link: VirtualLink) -> None:
        self.link = link
        self.acl = AccessControlServer(entries_per_fabric=4)  # the spec minimum: capacity tests fill it
        self.gkm = GroupKeyManagementServer(None, max_group_keys_per_fabric=3)
        self.node = Node()
        self.node.add_endpoint(0, [ROOT], [self.acl, self.gkm])
        self.node.set_acl_source(self.acl)
        self.acl.add_entry(1, admin(COMMISSIONER))
        self.acl.add_entry(1, admin(US))
        self.identity = identity(PEER_NODE)
        self.port = 0

    async def start(self) -> None:
        self.stack = Stack(data_model=self.node, identities=lambda: [self.identity],
                           budget=SessionBudget(rng=random.Random(7)))
        await self.stack.open(self.link.attach(PEER_HOST, self.port))
        self.port = self.stack.endpoint.local_address[1]

    def close(self) -> None:
        self.stack.endpoint.close()  # gone without a word, as a crashed or rebooting node

    def acl_subjects(self) -> list[list[int]]:
        return [list(e.subjects) for e in self.acl.entries(1)]


class Resolver:
    def __init__(self, peer: PeerNode) -> None:
        self.peer = peer

    async def resolve_operational(self, compressed_fabric_id: bytes | int, node_id: int,
                                  timeout: float = 3.0) -> list[tuple[str, int]]:
        return [(PEER_HOST, self.peer.port)] if node_id == PEER_NODE else []


class Side:
    """Our node's stack and the reconciler over it, as node/app.py builds them."""

    def __init__(self, store: JfdsStore, peer: PeerNode) -> None:
        self.store, self.peer = store, peer

    async def start(self) -> Side:
        me = identity(US)
        self.stack = Stack(identities=lambda: [me], resolver=Resolver(self.peer), response_timeout=2.0)
        await self.stack.open(self.peer.link.attach(OUR_HOST))
        self.peers = self.stack.peers
        config = ReconcilerConfig(sweep_interval=0.3, settle_delay=0.0, retry=RetryPolicy(initial=0.1, maximum=0.5),
                                  interaction_timeout=5.0)
        self.reconciler = Reconciler(self.store, self.stack.client, self.peers, fabric_index=lambda: 1,
                                     own_identity=lambda _: OwnIdentity(US), config=config)
        self.reconciler.start()
        return self

    async def close(self) -> None:
        await self.reconciler.stop()
        await self.stack.close()

    def state(self, ref: EntryRef) -> tuple[DatastoreState, int] | None:
        found = self.store.entry(ref)
        return None if found is None else (found.state, found.status.failure_code)

    async def until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)
        await self.reconciler.wait_idle()


@pytest.fixture
async def peer() -> AsyncIterator[PeerNode]:
    node = PeerNode(VirtualLink())
    await node.start()
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
async def side(peer: PeerNode) -> AsyncIterator[Side]:
    store = new_store()
    store.add_node(PEER_NODE, "loopback peer")
    started = await Side(store, peer).start()
    try:
        yield started
    finally:
        await started.close()


async def test_acl_entry_is_pushed_and_removed_over_case(side: Side, peer: PeerNode) -> None:
    ref = side.store.add_acl(PEER_NODE, jace(3, [0x1122], [(6, 1, None)]))  # AddACLToNode
    assert side.state(ref) == (P, 0)
    await side.until(lambda: side.state(ref) == (C, 0))
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0x1122]]
    assert peer.acl.entries(1)[2].targets[0].cluster == 6
    side.store.request_removal(ref)  # RemoveACLFromNode
    await side.until(lambda: side.state(ref) is None)
    assert peer.acl_subjects() == [[COMMISSIONER], [US]]
    stats = side.reconciler.stats
    assert (stats.applied, stats.removed, stats.failures) == (1, 1, 0)


async def test_acl_capacity_on_our_own_server(side: Side, peer: PeerNode) -> None:
    refs = [side.store.add_acl(PEER_NODE, jace(1, [0x100 + i])) for i in range(3)]  # 2 + 3 > 4 per fabric
    await side.until(lambda: all(side.state(r) not in (None, (P, 0)) for r in refs))
    assert [side.state(r) for r in refs] == [(C, 0), (C, 0), (F, Status.RESOURCE_EXHAUSTED)]
    assert len(peer.acl.entries(1)) == 4


async def test_key_set_and_group_map_reach_our_gkm_server(side: Side, peer: PeerNode) -> None:
    store = side.store
    store.sync_endpoints(PEER_NODE, [0])
    store.add_key_set(key_set(0x42))
    store.add_group(group(0x101, 0x42))
    ks = store.add_node_key_set(PEER_NODE, 0x42)
    grp = store.add_endpoint_group(PEER_NODE, 0, 0x101)  # endpoint 0 has no Groups server here
    await side.until(lambda: side.state(ks) == (C, 0) and side.state(grp) not in (None, (P, 0)))
    assert [s.group_key_set_id for s in peer.gkm.key_sets(1)] == [0x42]
    # The map went in, the membership cannot (no Groups cluster): that band's status is the entry's, and the map
    # entry is taken out again (an entry is all or nothing on the node).
    assert side.state(grp) == (F, Status.UNSUPPORTED_CLUSTER)
    assert peer.gkm.fabric_entries(0x0000, 1) == []
    store.request_removal(grp)
    store.request_removal(ks)
    await side.until(lambda: side.state(ks) is None and side.state(grp) is None)
    assert peer.gkm.key_sets(1) == [] and peer.gkm.fabric_entries(0x0000, 1) == []


async def test_peer_restart_is_recovered_by_the_retry(side: Side, peer: PeerNode) -> None:
    first = side.store.add_acl(PEER_NODE, jace(1, [0x77]))
    await side.until(lambda: side.state(first) == (C, 0))
    peer.close()  # the peer goes away: our session is now dead
    second = side.store.add_acl(PEER_NODE, jace(1, [0x78]))
    await side.until(lambda: side.state(second) == (F, Status.TIMEOUT), timeout=30)
    restarted = PeerNode(peer.link)  # back on the same port, without our CASE session (a reboot)
    restarted.port = peer.port
    restarted.acl.add_entry(1, ac.AccessControlEntryStruct(
        privilege=ac.AccessControlEntryPrivilegeEnum.VIEW, auth_mode=ac.AccessControlEntryAuthModeEnum.CASE,
        subjects=[0x77], targets=None))
    await restarted.start()
    side.peer = restarted
    side.peers.resolver = Resolver(restarted)
    try:
        await side.until(lambda: side.state(second) == (C, 0), timeout=30)
        assert restarted.acl_subjects() == [[COMMISSIONER], [US], [0x77], [0x78]]
    finally:
        restarted.close()


async def test_another_administrators_entry_between_our_read_and_write_survives(side: Side, peer: PeerNode) -> None:
    """Our own IM server checks the write's DataVersion (Core spec 8.7.3.2): the reconciler's write meets
    DATA_VERSION_MISMATCH after another administrator's change, reads again and writes both."""
    written: list[tuple[int, int, int]] = []

    async def other_admin_writes(io: Any, path: tuple[int, int, int], data_version: int | None) -> None:
        assert data_version is not None  # our server reports DataVersion: the write is conditioned
        if not written:
            written.append(path)
            peer.acl.add_entry(1, ac.AccessControlEntryStruct(
                privilege=ac.AccessControlEntryPrivilegeEnum.OPERATE,
                auth_mode=ac.AccessControlEntryAuthModeEnum.CASE, subjects=[0xBEEF], targets=None))

    side.reconciler.before_list_write = other_admin_writes
    ref = side.store.add_acl(PEER_NODE, jace(1, [0x55]))
    await side.until(lambda: side.state(ref) == (C, 0))
    assert written == [(0, ac.CLUSTER_ID, ac.ACL)]
    assert peer.acl_subjects() == [[COMMISSIONER], [US], [0xBEEF], [0x55]]
    assert side.reconciler.stats.version_mismatches == 1
