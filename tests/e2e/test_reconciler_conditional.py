"""Conditional peer writes, end to end: another administrator (the CHIP SDK controller) writes a matter.js light's
list between the reconciler's read and its write, and nothing is lost.

The environment is ``reconciler_env.py``'s (jfds-device is node 1, the CHIP controller the commissioner and the
other administrator) with one light, node 2, and jfds-device started through ``gated_device.py``: a test-support
launcher that runs the unchanged node and sets the reconciler's ``before_list_write`` seam to a file-driven gate,
so the test can hold the reconciler after its read, write through the controller, then let the reconciler write.
The reconciler's write is conditioned on the DataVersion it read (Core spec 8.7.3.2): the light answers
DATA_VERSION_MISMATCH, the reconciler logs it, reads again, merges again and writes again.

* the ACL (a single-message write; the acceptance case), and an ACL that changes under each of the 3 writes a
  pass may make: CommitFailed(DATA_VERSION_MISMATCH), then a later pass commits it;
* the Binding list, long enough that the write is chunked: the conditioned replace-all is refused and no append
  of ours lands on the light's list (the IM client stops the write), then the retry's chunked write goes through;
* the GroupKeyMap (pushed with a group membership);
* kill -9 while the write is held, another administrator's write, restart: the restarted node reads again before
  it writes (no list from before the crash is written back).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gated_device import WriteGate
from tests.e2e.reconciler_env import (
    AC,
    COMMIT_FAILED,
    CONTROLLER_NODE_ID,
    JF,
    JFDS_NODE_ID,
    LIGHT_ENDPOINT,
    SUCCESS,
    Clusters,
    NullValue,
    ReconcilerEnv,
    ace_key,
    binding_key,
    reconciler_env,
)

pytestmark = [pytest.mark.netns, pytest.mark.interop]

BINDING = Clusters.Binding
GKM = Clusters.GroupKeyManagement
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum
CASE = JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase
LIGHT = 2
ACL_PATH = (0, AC.id, AC.Attributes.Acl.attribute_id)
BINDING_PATH = (LIGHT_ENDPOINT, BINDING.id, BINDING.Attributes.Binding.attribute_id)
GROUP_KEY_MAP_PATH = (0, GKM.id, GKM.Attributes.GroupKeyMap.attribute_id)
COMMIT_S = 10  # as test_reconciler.py: an added entry is Committed within 10 s
PARK_S = 10  # the reconciler reaches the armed write
RESTART_S = 30  # after a restart of jfds-device, its pending entries commit
DATA_VERSION_MISMATCH = 0x92
ADMINS = Counter({(5, 2, (CONTROLLER_NODE_ID,), ()): 1, (5, 2, (JFDS_NODE_ID,), ()): 1})


def gate_dir(tmp: Path) -> Path:
    return tmp / "write-gate"


@pytest.fixture(scope="module")
def env() -> Iterator[ReconcilerEnv]:
    launcher = lambda tmp: ("-m", "tests.e2e.gated_device", str(gate_dir(tmp)))  # noqa: E731
    with reconciler_env("jfds-e2e-conditional-", {LIGHT: {"acl_entries": 16}}, device_launcher=launcher) as built:
        print("TIMING environment", {k: round(v, 2) for k, v in built.timings.items()})
        built.commit_node(LIGHT, "conditional")
        yield built


@pytest.fixture
def gate(env: ReconcilerEnv) -> Iterator[WriteGate]:
    held = WriteGate(gate_dir(env.tmp))
    held.reset()
    try:
        yield held
    finally:
        held.release()  # never leave the reconciler parked (the gate also gives up by itself after 60 s)
        time.sleep(0.1)
        held.reset()


def jf_ace(privilege: Any, subjects: list[int]) -> Any:
    return JF.Structs.DatastoreAccessControlEntryStruct(privilege=privilege, authMode=CASE, subjects=subjects,
                                                        targets=NullValue)


def ac_ace(privilege: int, subjects: list[int]) -> Any:
    return AC.Structs.AccessControlEntryStruct(
        privilege=privilege, authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase, subjects=subjects,
        targets=NullValue)


def acl_list_id(env: ReconcilerEnv, ace: Any) -> int:
    [entry] = [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=LIGHT) if ace_key(e.ACLEntry) == ace_key(ace)]
    return int(entry.listID)


def log_since(env: ReconcilerEnv, mark: int) -> str:
    assert env.device is not None
    return env.device.output()[mark:]


def log_mark(env: ReconcilerEnv) -> int:
    assert env.device is not None
    return len(env.device.output())


def mismatch_lines(text: str, path: str) -> list[str]:
    node = f"on node 0x{LIGHT:016X}"
    return [line for line in text.splitlines()
            if f"list {path} {node}: DataVersion mismatch" in line and " INFO " in line]


# ---------------------------------------------------------------------------------------------- ACL


def test_foreign_acl_entry_written_between_read_and_write_survives_and_ours_commits(
    env: ReconcilerEnv, gate: WriteGate,
) -> None:
    mark = log_mark(env)
    ours = jf_ace(PRIV.kView, [0xC0DE])
    theirs = ac_ace(AC.Enums.AccessControlEntryPrivilegeEnum.kOperate, [0xF0F0])
    gate.arm(LIGHT, ACL_PATH)
    assert env.jfds(JF.Commands.AddACLToNode(nodeID=LIGHT, ACLEntry=ours)) == SUCCESS
    read_version = gate.wait_parked(PARK_S)  # the reconciler has read the light's ACL and merged ours in
    assert read_version is not None  # matter.js reports DataVersion: the write is conditioned
    env.write_peer(LIGHT, 0, AC.Attributes.Acl([*env.peer_acl(LIGHT), theirs]))  # the other administrator
    started = time.monotonic()
    gate.release()
    env.wait_committed(JF.Attributes.NodeACLList, COMMIT_S, nodeID=LIGHT, listID=acl_list_id(env, ours))
    print(f"TIMING release -> Committed {time.monotonic() - started:.2f} s")
    assert Counter(ace_key(e) for e in env.peer_acl(LIGHT)) == ADMINS + Counter([ace_key(theirs), ace_key(ours)])
    text = log_since(env, mark)
    print("\n".join(ln for ln in text.splitlines() if "DataVersion" in ln or "write gate" in ln))
    [mismatch] = mismatch_lines(text, "0/0x001F/0x0000")
    assert "re-reading and merging again (attempt 2 of 3)" in mismatch, mismatch
    assert re.search(r"INFO .*list 0/0x001F/0x0000 on node 0x0*2: written on attempt 2, after 1 DataVersion", text)
    assert f"(DataVersion {read_version}) waits for release" in text


def test_acl_changing_under_every_write_is_commit_failed_0x92_then_commits_on_a_later_pass(
    env: ReconcilerEnv, gate: WriteGate,
) -> None:
    """The other administrator writes before each of the reconciler's 3 writes of one pass (the bound): the entry
    becomes CommitFailed(DATA_VERSION_MISMATCH), a transient code, and a later pass (backoff) commits it."""
    mark = log_mark(env)
    ours = jf_ace(PRIV.kView, [0xC0DF])
    theirs = [ac_ace(AC.Enums.AccessControlEntryPrivilegeEnum.kView, [0xF100 + i]) for i in range(3)]
    gate.arm(LIGHT, ACL_PATH)
    assert env.jfds(JF.Commands.AddACLToNode(nodeID=LIGHT, ACLEntry=ours)) == SUCCESS
    for ace in theirs:
        gate.wait_parked(PARK_S)
        env.write_peer(LIGHT, 0, AC.Attributes.Acl([*env.peer_acl(LIGHT), ace]))
        gate.arm(LIGHT, ACL_PATH)  # held again: the third time, the write of the retry pass
        gate.release()
    gate.wait_parked(PARK_S)  # the later pass, held while we look at the status the first one left
    status = env.entry_state(JF.Attributes.NodeACLList, nodeID=LIGHT, listID=acl_list_id(env, ours))
    assert (status.state, status.failureCode) == (COMMIT_FAILED, DATA_VERSION_MISMATCH)
    assert ace_key(ours) not in [ace_key(e) for e in env.peer_acl(LIGHT)]
    gate.release()
    env.wait_committed(JF.Attributes.NodeACLList, COMMIT_S, nodeID=LIGHT, listID=acl_list_id(env, ours))
    keys = Counter(ace_key(e) for e in env.peer_acl(LIGHT))
    assert keys[ace_key(ours)] == 1 and all(keys[ace_key(a)] == 1 for a in theirs)
    text = log_since(env, mark)
    lines = mismatch_lines(text, "0/0x001F/0x0000")
    assert len(lines) == 3 and "giving up after 3 attempts" in lines[-1], lines
    assert re.search(r"WARNING .*list 0/0x001F/0x0000 on node 0x0*2: changed under each of our 3 writes", text)


# ---------------------------------------------------------------------------------------------- chunked Binding

FILLERS = 100  # a Binding list this long does not fit one message: the write is replace-all, then appends


def test_chunked_binding_write_meeting_a_foreign_write_stops_then_retries_whole(
    env: ReconcilerEnv, gate: WriteGate,
) -> None:
    # Group targets: matter.js resolves a node target into a peer (CASE), which this test has no use for.
    theirs = [BINDING.Structs.TargetStruct(group=0x7000 + i, cluster=0x0006) for i in range(FILLERS)]
    env.write_peer(LIGHT, LIGHT_ENDPOINT, BINDING.Attributes.Binding([*env.peer_bindings(LIGHT), *theirs]))
    before = [binding_key(b) for b in env.peer_bindings(LIGHT)]
    mark = log_mark(env)
    ours = JF.Structs.DatastoreBindingTargetStruct(node=0x0C0D, endpoint=1, cluster=0x0006)
    late = BINDING.Structs.TargetStruct(node=0x0BAD, endpoint=2, cluster=0x0008)
    gate.arm(LIGHT, BINDING_PATH)
    assert env.jfds(JF.Commands.AddBindingToEndpointForNode(nodeID=LIGHT, endpointID=LIGHT_ENDPOINT,
                                                            binding=ours)) == SUCCESS
    assert gate.wait_parked(PARK_S) is not None
    env.write_peer(LIGHT, LIGHT_ENDPOINT, BINDING.Attributes.Binding([*env.peer_bindings(LIGHT), late]))
    gate.release()
    [entry] = [e for e in env.entries(JF.Attributes.EndpointBindingList, nodeID=LIGHT, endpointID=LIGHT_ENDPOINT)
               if binding_key(e.binding) == binding_key(ours)]
    env.wait_committed(JF.Attributes.EndpointBindingList, COMMIT_S, nodeID=LIGHT, endpointID=LIGHT_ENDPOINT,
                       listID=entry.listID)
    after = [binding_key(b) for b in env.peer_bindings(LIGHT)]
    assert after == [*before, binding_key(late), binding_key(ours)]  # theirs all kept, in order, ours once
    text = log_since(env, mark)
    assert len(mismatch_lines(text, "1/0x001E/0x0000")) == 1, text[-3000:]
    assert re.search(r"list 1/0x001E/0x0000 on node 0x0*2: written on attempt 2", text)
    # The refused write was chunked, and the IM client sent none of its appends (debug log of im/client.py).
    [stopped] = re.findall(r"write of AttributePath\(endpoint=1, cluster=30, attribute=0\) refused \(0x92\); "
                           r"the (\d+) chunk\(s\) left are not sent", text) or [None]
    assert stopped is not None and int(stopped) >= 2, [ln for ln in text.splitlines() if "refused" in ln]


# ---------------------------------------------------------------------------------------------- GroupKeyMap


def epoch_key_set(gkm_or_jf: Any, set_id: int, **fields: Any) -> Any:
    """Three epoch keys; matter.js wants EpochStartTime0 > 0 and increasing starts."""
    return gkm_or_jf(groupKeySetID=set_id, epochKey0=bytes(range(16)), epochStartTime0=1,
                     epochKey1=bytes(range(16, 32)), epochStartTime1=100000,
                     epochKey2=bytes(range(32, 48)), epochStartTime2=200000, **fields)


def test_foreign_group_key_map_entry_written_between_read_and_write_survives(
    env: ReconcilerEnv, gate: WriteGate,
) -> None:
    """The third read-merge-write kind: GroupKeyMap (pushed with an endpoint's group membership)."""
    # The other administrator's own key set and group mapping on the light (their group, not the datastore's).
    env.invoke_peer(LIGHT, 0, GKM.Commands.KeySetWrite(groupKeySet=epoch_key_set(
        GKM.Structs.GroupKeySetStruct, 0x0061,
        groupKeySecurityPolicy=GKM.Enums.GroupKeySecurityPolicyEnum.kTrustFirst)))
    theirs = GKM.Structs.GroupKeyMapStruct(groupId=0x0161, groupKeySetID=0x0061)
    # Ours: a key set and a group in the datastore, then the group on the light's endpoint.
    assert env.jfds(JF.Commands.AddKeySet(groupKeySet=epoch_key_set(
        JF.Structs.DatastoreGroupKeySetStruct, 0x0051,
        groupKeySecurityPolicy=JF.Enums.DatastoreGroupKeySecurityPolicyEnum.kTrustFirst,
        groupKeyMulticastPolicy=JF.Enums.DatastoreGroupKeyMulticastPolicyEnum.kPerGroupID))) == SUCCESS
    assert env.jfds(JF.Commands.AddGroup(groupID=0x0151, friendlyName="conditional", groupKeySetID=0x0051,
                                         groupCAT=NullValue, groupCATVersion=NullValue,
                                         groupPermission=PRIV.kOperate)) == SUCCESS
    mark = log_mark(env)
    gate.arm(LIGHT, GROUP_KEY_MAP_PATH)
    assert env.jfds(JF.Commands.AddGroupIDToEndpointForNode(nodeID=LIGHT, endpointID=LIGHT_ENDPOINT,
                                                            groupID=0x0151)) == SUCCESS
    assert gate.wait_parked(PARK_S) is not None
    env.write_peer(LIGHT, 0, GKM.Attributes.GroupKeyMap([*env.read_peer(LIGHT, (0, GKM.Attributes.GroupKeyMap)),
                                                         theirs]))
    gate.release()
    env.wait_committed(JF.Attributes.EndpointGroupIDList, COMMIT_S, nodeID=LIGHT, endpointID=LIGHT_ENDPOINT,
                       groupID=0x0151)
    mapped = sorted((m.groupId, m.groupKeySetID) for m in env.read_peer(LIGHT, (0, GKM.Attributes.GroupKeyMap)))
    assert mapped == [(0x0151, 0x0051), (0x0161, 0x0061)]
    text = log_since(env, mark)
    assert len(mismatch_lines(text, "0/0x003F/0x0000")) == 1, text[-3000:]
    assert re.search(r"list 0/0x003F/0x0000 on node 0x0*2: written on attempt 2", text)


# ---------------------------------------------------------------------------------------------- crash


def test_kill_9_while_the_write_is_held_then_restart_reads_again_before_writing(
    env: ReconcilerEnv, gate: WriteGate,
) -> None:
    """Last in the module: it kills and restarts jfds-device. The killed run read the light's ACL and holds its
    write; the other administrator writes; the restarted run must not write what the dead one read."""
    ours = jf_ace(PRIV.kView, [0xDEAD])
    theirs = ac_ace(AC.Enums.AccessControlEntryPrivilegeEnum.kView, [0xFEED])
    gate.arm(LIGHT, ACL_PATH)
    assert env.jfds(JF.Commands.AddACLToNode(nodeID=LIGHT, ACLEntry=ours)) == SUCCESS
    stale_version = gate.wait_parked(PARK_S)
    env.kill_device()
    gate.reset()
    env.write_peer(LIGHT, 0, AC.Attributes.Acl([*env.peer_acl(LIGHT), theirs]))
    expected = Counter(ace_key(e) for e in env.peer_acl(LIGHT)) + Counter([ace_key(ours)])
    mark = log_mark(env)
    started = time.monotonic()
    env.restart_device()
    env.wait_committed(JF.Attributes.NodeACLList, RESTART_S, nodeID=LIGHT, listID=acl_list_id(env, ours))
    print(f"TIMING restart -> Committed {time.monotonic() - started:.2f} s (stale DataVersion {stale_version})")
    assert Counter(ace_key(e) for e in env.peer_acl(LIGHT)) == expected
    assert mismatch_lines(log_since(env, mark), "0/0x001F/0x0000") == []  # it read afresh: nothing to mismatch
