"""A group command reaches every light once jfds-device's reconciler has pushed the group's configuration.

The CHIP controller adds to the datastore (on jfds-device, node 1) a key set, a group using it, the group on
endpoint 1 of every light and, per light, an ACL entry {Operate, AuthMode Group, subjects [group id]}; the
reconciler pushes them (KeySetWrite, GroupKeyMap, Groups.AddGroup, the ACL) and every entry becomes Committed.
The controller is then given the same key set in its own group data and multicasts OnOff Toggle to the group:
every light's OnOff (read over CASE) flips. With another key on the controller side no light toggles (each logs that
it had no key for the message), and with the right key again they all do. Each light runs in a namespace of its own
on port 5540, where group messages go. Topology and helpers: ``group_cast.py``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.group_cast import (
    GroupCastEnv,
    group_cast_env,
    group_key_refusals,
    light_states,
    set_controller_key_set,
    toggle_and_wait,
    toggled_by_group_command,
)
from tests.e2e.reconciler_env import AC, JF, LIGHT_ENDPOINT, SUCCESS, Clusters, NullValue, ace_key

pytestmark = [
    pytest.mark.netns, pytest.mark.interop,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="chip_group_keys.py calls the SDK with the x86-64 ABI"),
]

GKM = Clusters.GroupKeyManagement
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum
GROUP_AUTH = JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kGroup

LIGHTS = {2: {"acl_entries": 8}, 3: {"acl_entries": 8}, 4: {"acl_entries": 8}}
GROUP_ID, KEY_SET_ID = 0x0201, 0x0301
COMMIT_S = 10  # a pushed entry is Committed (as test_reconciler.py)
TOGGLE_S = 5  # every light shows the toggled state


def key_set(seed: int) -> Any:
    """A TrustFirst key set of three epoch keys derived from ``seed`` (matter.js wants increasing start times)."""
    return JF.Structs.DatastoreGroupKeySetStruct(
        groupKeySetID=KEY_SET_ID, groupKeySecurityPolicy=JF.Enums.DatastoreGroupKeySecurityPolicyEnum.kTrustFirst,
        epochKey0=bytes((seed + i) % 256 for i in range(16)), epochStartTime0=1,
        epochKey1=bytes((seed + 16 + i) % 256 for i in range(16)), epochStartTime1=100000,
        epochKey2=bytes((seed + 32 + i) % 256 for i in range(16)), epochStartTime2=200000,
        groupKeyMulticastPolicy=JF.Enums.DatastoreGroupKeyMulticastPolicyEnum.kPerGroupID,
    )


PUSHED_KEYS = key_set(0x40)
OTHER_KEYS = key_set(0x90)  # same key set id, no epoch key in common with PUSHED_KEYS
GROUP_ACE = JF.Structs.DatastoreAccessControlEntryStruct(
    privilege=PRIV.kOperate, authMode=GROUP_AUTH, subjects=[GROUP_ID], targets=NullValue)


@pytest.fixture(scope="module")
def env() -> Iterator[GroupCastEnv]:
    with group_cast_env("jfds-e2e-group-cast-", LIGHTS) as built:
        print("TIMING environment", {k: round(v, 2) for k, v in built.timings.items()})
        yield built


@pytest.fixture(scope="module")
def pushed(env: GroupCastEnv) -> GroupCastEnv:
    """Every light a Committed node with the group on endpoint 1 and the group's ACL entry, all Committed."""
    for node_id in env.lights:
        env.commit_node(node_id, f"light{node_id}")
    assert env.jfds(JF.Commands.AddKeySet(groupKeySet=PUSHED_KEYS)) == SUCCESS
    assert env.jfds(JF.Commands.AddGroup(groupID=GROUP_ID, friendlyName="all lights", groupKeySetID=KEY_SET_ID,
                                         groupCAT=NullValue, groupCATVersion=NullValue,
                                         groupPermission=PRIV.kOperate)) == SUCCESS
    for node_id in env.lights:
        assert env.jfds(JF.Commands.AddGroupIDToEndpointForNode(nodeID=node_id, endpointID=LIGHT_ENDPOINT,
                                                                groupID=GROUP_ID)) == SUCCESS
        assert env.jfds(JF.Commands.AddACLToNode(nodeID=node_id, ACLEntry=GROUP_ACE)) == SUCCESS
    for node_id in env.lights:
        env.wait_committed(JF.Attributes.EndpointGroupIDList, COMMIT_S, nodeID=node_id, endpointID=LIGHT_ENDPOINT,
                           groupID=GROUP_ID)
        env.wait_committed(JF.Attributes.NodeKeySetList, COMMIT_S, nodeID=node_id, groupKeySetID=KEY_SET_ID)
        [entry] = [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=node_id)
                   if ace_key(e.ACLEntry) == ace_key(GROUP_ACE)]
        env.wait_committed(JF.Attributes.NodeACLList, COMMIT_S, nodeID=node_id, listID=entry.listID)
    return env


def test_reconciler_pushed_the_group_to_every_light(pushed: GroupCastEnv) -> None:
    """What each light holds after the push: the key set, the GroupKeyMap entry, endpoint 1 in the group and the
    Group-auth ACL entry; no group command has been sent yet."""
    for node_id in pushed.lights:
        assert (GROUP_ID, KEY_SET_ID) in [(m.groupId, m.groupKeySetID)
                                          for m in pushed.read_peer(node_id, (0, GKM.Attributes.GroupKeyMap))]
        table = pushed.read_peer(node_id, (0, GKM.Attributes.GroupTable))
        assert [list(t.endpoints) for t in table if t.groupId == GROUP_ID] == [[LIGHT_ENDPOINT]], table
        group_entries = [e for e in pushed.peer_acl(node_id)
                         if e.authMode == AC.Enums.AccessControlEntryAuthModeEnum.kGroup]
        assert [ace_key(e) for e in group_entries] == [ace_key(GROUP_ACE)], group_entries
        assert not pushed.lights[node_id].device.events("onOff")


def test_group_toggle_reaches_every_light(pushed: GroupCastEnv) -> None:
    """With the pushed key set on the controller, two group Toggles flip every light twice."""
    assert pushed.ctrl is not None
    set_controller_key_set(pushed.ctrl, PUSHED_KEYS, [GROUP_ID])
    first = toggle_and_wait(pushed, pushed.ctrl, GROUP_ID, TOGGLE_S)
    second = toggle_and_wait(pushed, pushed.ctrl, GROUP_ID, TOGGLE_S)
    assert second == {node_id: not state for node_id, state in first.items()}


def test_group_toggle_with_another_key_is_ignored(pushed: GroupCastEnv) -> None:
    """The controller sends with a key set the lights do not hold: no light toggles. Then with the pushed key set
    again every light does (the network and the lights were fine all along)."""
    assert pushed.ctrl is not None
    set_controller_key_set(pushed.ctrl, OTHER_KEYS, [GROUP_ID])
    before = light_states(pushed)
    refusals = {node_id: group_key_refusals(pushed, node_id) for node_id in pushed.lights}
    assert toggled_by_group_command(pushed, pushed.ctrl, GROUP_ID) == []
    assert light_states(pushed) == before
    # The datagram did reach every light, which dropped it for its key (not for want of a route).
    assert all(group_key_refusals(pushed, node_id) > refusals[node_id] for node_id in pushed.lights), refusals
    set_controller_key_set(pushed.ctrl, PUSHED_KEYS, [GROUP_ID])
    toggle_and_wait(pushed, pushed.ctrl, GROUP_ID, TOGGLE_S)
