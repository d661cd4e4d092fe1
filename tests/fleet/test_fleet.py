"""The fleet simulator (jfds_device/fleet) in process: simulated nodes on a VirtualLink, fast-provisioned from a
test CA, reached over CASE by our own client stack, their capacities enforced, and the reconciler converging them.

Proves: every node of a fleet comes up with its own operational key and NOC and answers CASE and IM as a node
(BasicInformation, the ACL the provisioning wrote: the CaseAdminSubject's and jfds-device's Administer entries);
ACL entries, group keys, groups and bindings beyond the configured capacities are RESOURCE_EXHAUSTED; AddGroup
without a GroupKeyMap entry is UNSUPPORTED_ACCESS; our reconciler pushes an ACL entry, a key set, a group map
entry and a group membership to several nodes at once and gets them Committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from clusters.access_control import schema as ac
from clusters.basic_information import schema as bi
from clusters.binding import schema as binding
from clusters.group_key_management import schema as gkm
from clusters.groups import schema as groups
from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.errors import IMStatusError
from jfds_device.fleet import FAST_PROVISIONING, FabricCA, Fleet, FleetConfig, NodeCapacities, provision
from jfds_device.im.provider import Status
from jfds_device.node.links import VirtualLink
from jfds_device.node.peer_connections import PeerId
from jfds_device.node.stack import Stack
from jfds_device.reconciler import OwnIdentity, Reconciler, ReconcilerConfig, RetryPolicy
from jfds_device.transport.sessions import SecureSession
from tests.reconciler.fakes import group, jace, key_set, new_store

NODES = 6
FIRST_NODE_ID = 0x100
JFDS, ADMIN = 0x01, 112233
CAPACITIES = NodeCapacities(acl_entries_per_fabric=4, max_groups_per_fabric=2, max_group_keys_per_fabric=3,
                            binding_entries=2)


def host(index: int) -> str:
    return f"fd00:f1ee::{index + 1:x}"


class FleetResolver:
    """Operational discovery over the VirtualLink: node id -> the node's address and port."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def resolve_operational(self, compressed_fabric_id: bytes | int, node_id: int,
                                  timeout: float = 3.0) -> list[tuple[str, int]]:
        node = self.fleet.by_node_id(node_id)
        return [] if node is None else [(host(node.index), node.port)]


class Env:
    def __init__(self, link: VirtualLink, fleet: Fleet, ca: FabricCA, client: Stack) -> None:
        self.link, self.fleet, self.ca, self.client = link, fleet, ca, client

    async def session(self, index: int) -> SecureSession:
        return await self.client.peers.connect(PeerId(1, FIRST_NODE_ID + index))


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    link, ca = VirtualLink(), FabricCA(admin_subject=ADMIN)
    fleet = Fleet(FleetConfig(nodes=NODES, capacities=CAPACITIES, advertise=False),
                  link_for=lambda i: link.attach(host(i)))
    await fleet.start()
    await provision(((node, FIRST_NODE_ID + node.index) for node in fleet), ca.issue, administrators=[JFDS])
    me = ca.identity(ADMIN)
    client = Stack(identities=lambda: [me], resolver=FleetResolver(fleet), response_timeout=2.0)
    await client.open(link.attach("fd00:f1ee::ad"))
    try:
        yield Env(link, fleet, ca, client)
    finally:
        await client.close()
        await fleet.stop()


async def test_every_node_answers_case_with_its_own_noc(env: Env) -> None:
    assert env.fleet.joined() == {FAST_PROVISIONING: NODES}
    assert len({node.fabric.noc for node in env.fleet if node.fabric}) == NODES  # one key and NOC each
    for index in range(NODES):
        session = await env.session(index)
        assert session.peer_node_id == FIRST_NODE_ID + index
        serial = await env.client.client.read_value(session, 0, bi.CLUSTER.attribute(bi.SERIAL_NUMBER))
        assert serial == f"SIM-{index:05d}"
        acl = await env.client.client.read_value(session, 0, ac.CLUSTER.attribute(ac.ACL))
        assert [(e.privilege, list(e.subjects)) for e in acl] == [(ac.AccessControlEntryPrivilegeEnum.ADMINISTER,
                                                                   [ADMIN]),
                                                                  (ac.AccessControlEntryPrivilegeEnum.ADMINISTER,
                                                                   [JFDS])]
        capacity = await env.client.client.read_value(session, 0,
                                                      ac.CLUSTER.attribute(ac.ACCESS_CONTROL_ENTRIES_PER_FABRIC))
        assert capacity == CAPACITIES.acl_entries_per_fabric
    described = [node.describe() for node in env.fleet]
    assert {d["joined_by"] for d in described} == {FAST_PROVISIONING}
    assert [d["node_id"] for d in described] == [f"0x{FIRST_NODE_ID + i:016X}" for i in range(NODES)]


async def test_acl_capacity_is_enforced(env: Env) -> None:
    session = await env.session(0)
    acl_attr = ac.CLUSTER.attribute(ac.ACL)
    current = await env.client.client.read_value(session, 0, acl_attr)
    view = ac.AccessControlEntryStruct(privilege=ac.AccessControlEntryPrivilegeEnum.VIEW,
                                       auth_mode=ac.AccessControlEntryAuthModeEnum.CASE, subjects=[0x77], targets=None)
    await env.client.client.write_value(session, 0, acl_attr, [*current, view, view])  # 4: at capacity
    with pytest.raises(IMStatusError) as refused:
        await env.client.client.write_value(session, 0, acl_attr, [*current, view, view, view])
    assert refused.value.status == Status.RESOURCE_EXHAUSTED
    assert len(env.fleet.nodes[0].root.access_control.entries(1)) == 4


async def test_group_keys_groups_and_bindings_capacities(env: Env) -> None:
    session = await env.session(1)
    client = env.client.client

    def keys(key_set_id: int) -> gkm.KeySetWrite:
        return gkm.KeySetWrite(group_key_set=gkm.GroupKeySetStruct(
            group_key_set_id=key_set_id, group_key_security_policy=gkm.GroupKeySecurityPolicyEnum.TRUST_FIRST,
            epoch_key0=bytes(range(16)), epoch_start_time0=1, epoch_key1=None, epoch_start_time1=None,
            epoch_key2=None, epoch_start_time2=None))

    await client.send_command(session, 0, keys(0x41))
    await client.send_command(session, 0, keys(0x42))  # with the IPK: 3 = MaxGroupKeysPerFabric
    with pytest.raises(IMStatusError) as refused:
        await client.send_command(session, 0, keys(0x43))
    assert refused.value.status == Status.RESOURCE_EXHAUSTED

    # AddGroup needs the group's key map entry first (Application Cluster spec 1.3.7.1).
    answer = await client.send_command(session, 1, groups.AddGroup(group_id=0x101, group_name="one"))
    assert answer.status == Status.UNSUPPORTED_ACCESS
    key_map = [gkm.GroupKeyMapStruct(group_id=g, group_key_set_id=0x41) for g in (0x101, 0x102, 0x103)]
    with pytest.raises(IMStatusError) as refused:  # 3 groups > MaxGroupsPerFabric 2
        await client.write_value(session, 0, gkm.CLUSTER.attribute(gkm.GROUP_KEY_MAP), key_map)
    assert refused.value.status == Status.RESOURCE_EXHAUSTED
    await client.write_value(session, 0, gkm.CLUSTER.attribute(gkm.GROUP_KEY_MAP), key_map[:2])
    for group_id in (0x101, 0x102):
        answer = await client.send_command(session, 1, groups.AddGroup(group_id=group_id, group_name="g"))
        assert answer.status == Status.SUCCESS
    membership = await client.send_command(session, 1, groups.GetGroupMembership(group_list=[]))
    assert membership.group_list == [0x101, 0x102]
    table = await client.read_value(session, 0, gkm.CLUSTER.attribute(gkm.GROUP_TABLE))
    assert [(e.group_id, list(e.endpoints)) for e in table] == [(0x101, [1]), (0x102, [1])]
    answer = await client.send_command(session, 1, groups.RemoveGroup(group_id=0x101))
    assert answer.status == Status.SUCCESS
    answer = await client.send_command(session, 1, groups.RemoveGroup(group_id=0x101))
    assert answer.status == Status.NOT_FOUND

    targets = [binding.TargetStruct(node=0x200 + i, endpoint=1, cluster=6) for i in range(3)]
    await client.write_value(session, 1, binding.CLUSTER.attribute(binding.BINDING), targets[:2])
    with pytest.raises(IMStatusError) as refused:
        await client.write_value(session, 1, binding.CLUSTER.attribute(binding.BINDING), targets)
    assert refused.value.status == Status.RESOURCE_EXHAUSTED
    with pytest.raises(IMStatusError) as refused:  # a Node target needs an Endpoint (Core spec 9.6.5.1)
        await client.write_value(session, 1, binding.CLUSTER.attribute(binding.BINDING),
                                 [binding.TargetStruct(node=0x200)])
    assert refused.value.status == Status.CONSTRAINT_ERROR
    stored = await client.read_value(session, 1, binding.CLUSTER.attribute(binding.BINDING))
    assert [t.node for t in stored] == [0x200, 0x201]


async def test_the_reconciler_converges_several_nodes(env: Env) -> None:
    """jfds-device's reconciler (its stack and IM client, with jfds-device's NOC on the fleet's fabric) pushes an
    ACL entry to every node, and a key set, group map entry and membership to one, and sees them Committed."""
    me = env.ca.identity(JFDS)
    stack = Stack(identities=lambda: [me], resolver=FleetResolver(env.fleet), response_timeout=2.0)
    await stack.open(env.link.attach("fd00:f1ee::1f"))
    store = new_store()
    config = ReconcilerConfig(sweep_interval=0.3, settle_delay=0.0, retry=RetryPolicy(initial=0.1, maximum=0.5),
                              interaction_timeout=5.0)
    reconciler = Reconciler(store, stack.client, stack.peers, fabric_index=lambda: 1,
                            own_identity=lambda _: OwnIdentity(JFDS), config=config)
    reconciler.start()
    try:
        refs = []
        for index in range(NODES):
            node_id = FIRST_NODE_ID + index
            store.add_node(node_id, f"sim{index}")
            refs.append(store.add_acl(node_id, jace(3, [0x1122], [(6, 1, None)])))
        first = FIRST_NODE_ID
        store.sync_endpoints(first, [0, 1])
        store.add_key_set(key_set(0x42))
        store.add_group(group(0x101, 0x42))
        refs.append(store.add_node_key_set(first, 0x42))
        refs.append(store.add_endpoint_group(first, 1, 0x101))

        def state(ref: Any) -> Any:
            found = store.entry(ref)
            return None if found is None else (found.state, found.status.failure_code)

        await until(lambda: all(state(r) == (DatastoreState.COMMITTED, 0) for r in refs), 30)
        for node in env.fleet:
            assert [list(e.subjects) for e in node.root.access_control.entries(1)] == [[ADMIN], [JFDS], [0x1122]]
        assert set(env.fleet.nodes[0].groups.memberships(1)) == {0x101}
    finally:
        await reconciler.stop()
        await stack.close()


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)
