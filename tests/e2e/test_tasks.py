"""Multi-step tasks end to end (issue 11): jfds-device's task engine over matter.js lights, the CHIP controller as
the administrator, each light in a namespace of its own (``group_cast.py``), jfds-device run by ``gated_device``
(its task gate holds each task at its phase boundaries while the test looks at every light) with ``--http``.

* RotateGroupKey (UpdateKeySet): one light offline during distribute parks the task with no light activated;
  kill -9 of jfds-device while parked, restart, the light returns: every light is seen (KeySetRead epoch start
  times) in distribute, then in activate, each phase only once every member holds the previous one; group Toggles
  with the old and with the new key both reach every light in between (gap-free); after the rotation the controller's
  group command with the new key reaches all three and the old key none.
* AddNodeToGroup (AddGroupIDToEndpointForNode) on a light whose group table is full: the entry ends CommitFailed
  RESOURCE_EXHAUSTED and the light holds exactly what it held before (the key set went on and came off again).
* MoveNodeToGroup from the web API, cancelled (web API) while held after its gate: the light is back to its prior
  key sets, GroupKeyMap and GroupTable, compared by value.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jfds_device.status import build_report
from jfds_device.web import read_token
from tests.e2e.gated_device import TaskGate
from tests.e2e.group_cast import (
    ON_OFF,
    GroupCastEnv,
    group_cast_env,
    on_off,
    send_group_command,
    set_controller_key_set,
    toggled_by_group_command,
    wait_on_off,
)
from tests.e2e.reconciler_env import (
    COMMIT_FAILED,
    JF,
    LIGHT_ENDPOINT,
    SUCCESS,
    Clusters,
    NullValue,
    ace_key,
    status_of,
    wait_until,
)
from tests.e2e.test_http_view import HTTP, fetch

pytestmark = [
    pytest.mark.netns, pytest.mark.interop,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="chip_group_keys.py calls the SDK with the x86-64 ABI"),
]

GKM = Clusters.GroupKeyManagement
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum
MEMBERS = (2, 3, 4)
FULL = 5  # a light with room for one group
LIGHTS = {**{n: {"acl_entries": 8} for n in MEMBERS}, FULL: {"acl_entries": 8, "max_groups": 1}}
GROUP, KEY_SET = 0x0201, 0x0301  # the three members' group, rotated
GROUP_B, KEY_SET_B = 0x0202, 0x0302  # light 5's only group; the move's target
GROUP_C, KEY_SET_C = 0x0203, 0x0303  # does not fit light 5
OLD_START, NEW_START = 1_000_000, 2_000_000
DORMANT_AFTER = 3_000_000_000_000_000  # a distribute phase's new key starts 100 years on: later than this (µs)
COMMIT_S, TASK_S = 15, 90
GROUP_ACE = JF.Structs.DatastoreAccessControlEntryStruct(
    privilege=PRIV.kOperate, authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kGroup, subjects=[GROUP],
    targets=NullValue)
SETUP = {"passcode": 20202021, "discriminator": 3840, "vendor_id": 0xFFF1, "product_id": 0x8000}


def single_key_set(key_set_id: int, seed: int, start: int) -> Any:
    return JF.Structs.DatastoreGroupKeySetStruct(
        groupKeySetID=key_set_id, groupKeySecurityPolicy=JF.Enums.DatastoreGroupKeySecurityPolicyEnum.kTrustFirst,
        epochKey0=bytes((seed + i) % 256 for i in range(16)), epochStartTime0=start, epochKey1=NullValue,
        epochStartTime1=NullValue, epochKey2=NullValue, epochStartTime2=NullValue,
        groupKeyMulticastPolicy=JF.Enums.DatastoreGroupKeyMulticastPolicyEnum.kPerGroupID)


OLD_KEYS, NEW_KEYS = single_key_set(KEY_SET, 0x40, OLD_START), single_key_set(KEY_SET, 0x80, NEW_START)


def _launcher(tmp: Path) -> tuple[str, ...]:
    return ("-m", "tests.e2e.gated_device", str(tmp / "gate"), f"--http={HTTP}")


@pytest.fixture(scope="module")
def env() -> Iterator[GroupCastEnv]:
    with group_cast_env("jfds-e2e-tasks-", LIGHTS, device_launcher=_launcher) as built:
        for node_id in LIGHTS:
            built.commit_node(node_id, f"light{node_id}")
        for key_set, group_id, name in ((OLD_KEYS, GROUP, "members"),
                                        (single_key_set(KEY_SET_B, 0x10, OLD_START), GROUP_B, "hall"),
                                        (single_key_set(KEY_SET_C, 0x20, OLD_START), GROUP_C, "porch")):
            assert built.jfds(JF.Commands.AddKeySet(groupKeySet=key_set)) == SUCCESS
            assert built.jfds(JF.Commands.AddGroup(groupID=group_id, friendlyName=name,
                                                   groupKeySetID=key_set.groupKeySetID, groupCAT=NullValue,
                                                   groupCATVersion=NullValue, groupPermission=PRIV.kOperate)) == SUCCESS
        for node_id, group_id in [(n, GROUP) for n in MEMBERS] + [(FULL, GROUP_B)]:
            add_to_group(built, node_id, group_id)
        for node_id in MEMBERS:
            assert built.jfds(JF.Commands.AddACLToNode(nodeID=node_id, ACLEntry=GROUP_ACE)) == SUCCESS
        for node_id in MEMBERS:
            [entry] = [e for e in built.entries(JF.Attributes.NodeACLList, nodeID=node_id)
                       if ace_key(e.ACLEntry) == ace_key(GROUP_ACE)]
            built.wait_committed(JF.Attributes.NodeACLList, COMMIT_S, nodeID=node_id, listID=entry.listID)
        yield built


def add_to_group(env: GroupCastEnv, node_id: int, group_id: int) -> None:
    assert env.jfds(JF.Commands.AddGroupIDToEndpointForNode(nodeID=node_id, endpointID=LIGHT_ENDPOINT,
                                                            groupID=group_id)) == SUCCESS
    env.wait_committed(JF.Attributes.EndpointGroupIDList, COMMIT_S, nodeID=node_id, endpointID=LIGHT_ENDPOINT,
                       groupID=group_id)


def tasks(env: GroupCastEnv) -> list[dict[str, Any]]:
    """The task list as ``jfds-device status`` reads it (the storage, read-only, while the node runs)."""
    return build_report(env.tmp / "jfds", **SETUP)["tasks"]


def task(env: GroupCastEnv, task_id: str) -> dict[str, Any] | None:
    return next((t for t in tasks(env) if t["id"] == task_id), None)


def wait_task(env: GroupCastEnv, task_id: str, states: tuple[str, ...], timeout: float = TASK_S) -> dict[str, Any]:
    def reached() -> Any:
        found = task(env, task_id)
        return found if found is not None and found["state"] in states else None

    try:
        return wait_until(reached, timeout, interval=0.2, message=f"{task_id} in {states}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; tasks: {tasks(env)}\n{env.diagnostics()}") from None


def start_times(env: GroupCastEnv, node_id: int, key_set_id: int = KEY_SET) -> tuple[Any, ...] | None:
    """What the light shows of the key set (KeySetRead, Core spec 11.2.7.2: start times, never keys)."""
    indices = env.invoke_peer(node_id, 0, GKM.Commands.KeySetReadAllIndices()).groupKeySetIDs
    if key_set_id not in indices:
        return None
    held = env.invoke_peer(node_id, 0, GKM.Commands.KeySetRead(groupKeySetID=key_set_id)).groupKeySet
    return tuple(None if isinstance(t, type(NullValue)) or t is NullValue else int(t)
                 for t in (held.epochStartTime0, held.epochStartTime1, held.epochStartTime2))


def phase_seen(times: tuple[Any, ...] | None) -> str:
    """Which rotation phase a light's key set shows (``rotation.py``'s table)."""
    if times is None:
        return "absent"
    start0, start1, start2 = times
    if start1 is None:
        return {OLD_START: "old", NEW_START: "new"}.get(start0, f"steady {start0}")
    if start2 is None:
        return "distribute" if start0 == OLD_START and start1 > DORMANT_AFTER else f"odd {times}"
    return "activate" if start0 == OLD_START < start1 < DORMANT_AFTER < start2 else f"odd {times}"


def groups_of(env: GroupCastEnv, node_id: int) -> Any:
    """What a light holds of groups, by value: key set ids with their start times, GroupKeyMap, GroupTable."""
    indices = sorted(env.invoke_peer(node_id, 0, GKM.Commands.KeySetReadAllIndices()).groupKeySetIDs)
    return ([(k, start_times(env, node_id, k)) for k in indices if k],
            sorted((m.groupId, m.groupKeySetID) for m in env.read_peer(node_id, (0, GKM.Attributes.GroupKeyMap))),
            sorted((t.groupId, tuple(t.endpoints)) for t in env.read_peer(node_id, (0, GKM.Attributes.GroupTable))))


def toggle_members(env: GroupCastEnv, keys: Any) -> None:
    """The controller multicasts OnOff Toggle to the group under ``keys``: every member flips."""
    assert env.ctrl is not None
    set_controller_key_set(env.ctrl, keys, [GROUP])
    before = {n: on_off(env, n) for n in MEMBERS}
    send_group_command(env.ctrl, GROUP, ON_OFF.Commands.Toggle())
    wait_on_off(env, {n: not state for n, state in before.items()}, 5)


def both_keys_reach_every_light(env: GroupCastEnv) -> None:
    """Gap-free: mid-rotation a light takes a group message under the old key and under the new one."""
    for keys in (OLD_KEYS, NEW_KEYS):
        toggle_members(env, keys)


def test_rotate_group_key_parks_resumes_after_kill_9_and_reaches_every_light(env: GroupCastEnv) -> None:
    gate = TaskGate(env.tmp / "gate")
    assert all(phase_seen(start_times(env, n)) == "old" for n in MEMBERS)
    gate.hold()
    env.stop_light(4)
    assert env.jfds(JF.Commands.UpdateKeySet(groupKeySet=NEW_KEYS)) == SUCCESS
    task_id = f"rotate-group-key:{KEY_SET:04X}"
    parked = wait_task(env, task_id, ("parked",))
    assert parked["phase"] == "distribute" and parked["members"] == [f"0x{n:016X}" for n in MEMBERS]
    wait_until(lambda: all(phase_seen(start_times(env, n)) == "distribute" for n in (2, 3)), COMMIT_S,
               message="lights 2 and 3 hold the new key dormant")
    assert task(env, task_id)["state"] == "parked"  # type: ignore[index]

    env.kill_device()  # mid-task
    env.restart_device()
    env.restart_light(4)
    assert gate.wait_held(TASK_S) == (task_id, 0)  # distribute verified on every member
    assert {n: phase_seen(start_times(env, n)) for n in MEMBERS} == {n: "distribute" for n in MEMBERS}
    both_keys_reach_every_light(env)
    gate.release()
    assert gate.wait_held(TASK_S) == (task_id, 1)  # activate verified on every member
    assert {n: phase_seen(start_times(env, n)) for n in MEMBERS} == {n: "activate" for n in MEMBERS}
    both_keys_reach_every_light(env)
    gate.stop_holding()
    done = wait_task(env, task_id, ("completed",))
    assert done["error"] is None
    assert {n: phase_seen(start_times(env, n)) for n in MEMBERS} == {n: "new" for n in MEMBERS}
    for node_id in MEMBERS:
        env.wait_committed(JF.Attributes.NodeKeySetList, COMMIT_S, nodeID=node_id, groupKeySetID=KEY_SET)
    toggle_members(env, NEW_KEYS)
    assert env.ctrl is not None
    set_controller_key_set(env.ctrl, OLD_KEYS, [GROUP])
    assert toggled_by_group_command(env, env.ctrl, GROUP) == []  # the old key is gone from every light


def test_add_node_to_group_that_does_not_fit_leaves_nothing_on_the_light(env: GroupCastEnv) -> None:
    before = groups_of(env, FULL)
    assert before[2] == [(GROUP_B, (LIGHT_ENDPOINT,))]  # its one group
    assert env.jfds(JF.Commands.AddGroupIDToEndpointForNode(nodeID=FULL, endpointID=LIGHT_ENDPOINT,
                                                            groupID=GROUP_C)) == SUCCESS
    task_id = f"add-node-to-group:{FULL:016X}:{LIGHT_ENDPOINT}:{GROUP_C:04X}"
    ended = wait_task(env, task_id, ("rolled_back",))
    assert "RESOURCE_EXHAUSTED (0x89)" in ended["error"]
    wait_task(env, f"rollback:{task_id}", ("completed",))
    [entry] = env.entries(JF.Attributes.EndpointGroupIDList, nodeID=FULL, groupID=GROUP_C)
    assert (status_of(entry).state, status_of(entry).failureCode) == (COMMIT_FAILED, 0x89)
    assert not env.entries(JF.Attributes.NodeKeySetList, nodeID=FULL, groupKeySetID=KEY_SET_C)
    assert groups_of(env, FULL) == before


def test_cancel_of_a_move_puts_the_light_back_by_value(env: GroupCastEnv) -> None:
    gate, token = TaskGate(env.tmp / "gate"), read_token(env.tmp / "jfds")
    before = groups_of(env, 2)
    assert (GROUP, KEY_SET) in before[1]
    gate.hold()
    answer = fetch(env, "/api/tasks/move-node-to-group", method="POST", token=token,
                   body={"node_id": 2, "endpoint_id": LIGHT_ENDPOINT, "from_group": GROUP, "to_group": GROUP_B})
    assert answer["status"] == 202, answer
    task_id = f"move-node-to-group:{2:016X}:{LIGHT_ENDPOINT}:{GROUP:04X}:{GROUP_B:04X}"
    assert gate.wait_held(TASK_S) == (task_id, 0)  # moved on the light, verified, not yet completed
    moved = groups_of(env, 2)
    assert [k for k, _ in moved[0]] == [KEY_SET_B] and moved[2] == [(GROUP_B, (LIGHT_ENDPOINT,))]
    answer = fetch(env, f"/api/tasks/{task_id}/cancel", method="POST", token=token)
    assert answer["status"] == 202, answer
    gate.stop_holding()
    wait_task(env, f"rollback:{task_id}", ("completed",))
    assert task(env, task_id)["state"] == "rolled_back"  # type: ignore[index]
    assert groups_of(env, 2) == before
    assert fetch(env, f"/api/tasks/{task_id}/cancel", method="POST", token=token)["status"] == 409
