"""Issue 5 end to end: TC-JFDS-2.1 .. 2.4, TC-JFDS-2.5 steps 1-8 and its negative steps, against a commissioned
jfds-device driven by the real CHIP controller (chip.clusters.Objects.JointFabricDatastore, 2025.7.0).

The steps follow connectedhomeip src/python_testing/TC_JFDS_2_1.py @ 0403703cc141, TC_JFDS_2_2.py @ 03cad0d96da7,
TC_JFDS_2_3.py @ 296ed92eaddf, TC_JFDS_2_4.py @ 3090fae466a3 and TC_JFDS_2_5.py @ 06c102d19d89; epoch keys are 16
bytes as the spec requires (TC_JFDS_2_2.py sends 32).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, Topology, topology, workdir

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters import Attribute  # noqa: E402
from chip.clusters.Types import NullValue  # noqa: E402

JF = Clusters.JointFabricDatastore
OC = Clusters.OperationalCredentials
PASSCODE = 20202021
NODE_ID = 1  # the DUT's node id, as in the cert tests
ADMIN_VENDOR_ID = 0xFFF1
EP = 1
SUCCESS, CONSTRAINT_ERROR, NOT_FOUND, UNSUPPORTED_ACCESS = 0x00, 0x87, 0x8B, 0x7E
STATES = {JF.Enums.DatastoreStateEnum.kPending, JF.Enums.DatastoreStateEnum.kCommitted,
          JF.Enums.DatastoreStateEnum.kDeletePending, JF.Enums.DatastoreStateEnum.kCommitFailed}


@dataclass
class Env:
    net: Topology
    tmp: Path
    device: DeviceProcess
    ctrl: ChipController


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with topology() as net, workdir("jfds-e2e-jfds-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname, "--friendly-name", "jfds-e2e")
        ctrl = ChipController(net.ctl, tmp / "ctrl")
        try:
            assert ctrl.call("CommissionOnNetwork", NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840,
                             timeout=90) == NODE_ID
            yield Env(net, tmp, device, ctrl)
        finally:
            ctrl.close()
            device.stop()


def read(env: Env, attribute: Any, endpoint: int = EP, **kwargs: Any) -> Any:
    result = env.ctrl.call("ReadAttribute", NODE_ID, [(endpoint, attribute)], **kwargs)
    value = result[endpoint][attribute.cluster_type if hasattr(attribute, "cluster_type") else _cluster(attribute)]
    data = value[attribute]
    if isinstance(data, Attribute.ValueDecodeFailure):
        raise AssertionError(f"read of {attribute.__name__} failed: {data.Reason}")
    return data


def _cluster(attribute: Any) -> Any:
    for cluster in (JF, OC, Clusters.AccessControl, Clusters.BasicInformation):
        if attribute.cluster_id == cluster.id:
            return cluster
    raise KeyError(attribute)


def invoke(env: Env, command: Any, **kwargs: Any) -> int:
    """The command's IM status: SUCCESS, or the status of the InteractionModelError the controller raised."""
    try:
        env.ctrl.call("SendCommand", NODE_ID, EP, command, **kwargs)
    except RemoteError as err:
        assert err.status is not None, err
        return err.status
    return SUCCESS


def tlv_struct(fields: dict[int, Any]) -> bytes:
    from jfds_device.codec import tlv

    return tlv.encode({k: tlv.SInt(v) if isinstance(v, int) and v < 0 else v for k, v in fields.items()})


def key_set(set_id: int, *, starts: tuple[int, int, int] = (2220000, 2220001, 2220002), key2: bytes = b"c" * 16,
            policy: int = 0) -> Any:
    return JF.Structs.DatastoreGroupKeySetStruct(
        groupKeySetID=set_id, groupKeySecurityPolicy=policy,
        epochKey0=b"a" * 16, epochStartTime0=starts[0],
        epochKey1=b"b" * 16, epochStartTime1=starts[1],
        epochKey2=key2, epochStartTime2=starts[2],
        groupKeyMulticastPolicy=JF.Enums.DatastoreGroupKeyMulticastPolicyEnum.kPerGroupID,
    )


# ---------------------------------------------------------------------------------------------- TC-JFDS-2.1


def test_tc_jfds_2_1_anchor_attributes(env: Env) -> None:
    root = read(env, JF.Attributes.AnchorRootCA)
    assert len(root) >= 1
    assert root in read(env, OC.Attributes.TrustedRootCertificates, endpoint=0)
    assert read(env, JF.Attributes.AnchorNodeID) == NODE_ID
    assert read(env, JF.Attributes.AnchorVendorID) == ADMIN_VENDOR_ID
    name = read(env, JF.Attributes.FriendlyName)
    assert name == "jfds-e2e" and 1 <= len(name) <= 32
    assert read(env, JF.Attributes.Status).state == JF.Enums.DatastoreStateEnum.kCommitted


# ---------------------------------------------------------------------------------------------- TC-JFDS-2.2


def test_tc_jfds_2_2_key_sets(env: Env) -> None:
    assert 0 in [k.groupKeySetID for k in read(env, JF.Attributes.GroupKeySetList)]
    added = key_set(0x000A)
    assert invoke(env, JF.Commands.AddKeySet(groupKeySet=added)) == SUCCESS
    assert added in read(env, JF.Attributes.GroupKeySetList)
    assert invoke(env, JF.Commands.AddKeySet(groupKeySet=key_set(0x000A, key2=b"d" * 16))) == CONSTRAINT_ERROR
    updated = key_set(0x000A, starts=(3330000, 3330001, 3330002), key2=b"e" * 16)
    assert invoke(env, JF.Commands.UpdateKeySet(groupKeySet=updated)) == SUCCESS
    assert invoke(env, JF.Commands.UpdateKeySet(groupKeySet=key_set(0x000A, policy=2))) == CONSTRAINT_ERROR
    assert [k for k in read(env, JF.Attributes.GroupKeySetList) if k.groupKeySetID == 0x000A] == [updated]
    assert invoke(env, JF.Commands.UpdateKeySet(groupKeySet=key_set(0x0FFF))) == NOT_FOUND
    assert invoke(env, JF.Commands.RemoveKeySet(groupKeySetID=0x0FFF)) == NOT_FOUND
    assert invoke(env, JF.Commands.RemoveKeySet(groupKeySetID=0x0000)) == CONSTRAINT_ERROR
    assert invoke(env, JF.Commands.RemoveKeySet(groupKeySetID=0x000A)) == SUCCESS
    assert 0x000A not in [k.groupKeySetID for k in read(env, JF.Attributes.GroupKeySetList)]
    assert invoke(env, JF.Commands.AddKeySet(groupKeySet=key_set(0x0000))) == CONSTRAINT_ERROR
    assert invoke(env, JF.Commands.RemoveKeySet(groupKeySetID=0x0000)) == CONSTRAINT_ERROR


# ---------------------------------------------------------------------------------------------- TC-JFDS-2.3


def test_tc_jfds_2_3_groups(env: Env) -> None:
    groups = read(env, JF.Attributes.GroupList)
    admin_group = next(g.groupID for g in groups if g.groupCAT == 0xFFFF)
    anchor_group = next(g.groupID for g in groups if g.groupCAT == 0xFFFE)
    view = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kView
    operate = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kOperate
    assert invoke(env, JF.Commands.AddGroup(groupID=0x000A, friendlyName="tc-jf-2.3", groupKeySetID=0x000B,
                                            groupCAT=1, groupCATVersion=1, groupPermission=view)) == SUCCESS
    entry = next(g for g in read(env, JF.Attributes.GroupList) if g.groupID == 0x000A)
    assert (entry.friendlyName, entry.groupKeySetID, entry.groupCAT, entry.groupCATVersion, entry.groupPermission) == (
        "tc-jf-2.3", 0x000B, 1, 1, view)
    assert invoke(env, JF.Commands.UpdateGroup(groupID=0x000A, friendlyName="tc-jf-2.3-update", groupKeySetID=0x000C,
                                               groupCAT=1, groupCATVersion=2, groupPermission=operate)) == SUCCESS
    entry = next(g for g in read(env, JF.Attributes.GroupList) if g.groupID == 0x000A)
    assert (entry.friendlyName, entry.groupKeySetID, entry.groupCATVersion, entry.groupPermission) == (
        "tc-jf-2.3-update", 0x000C, 2, operate)
    assert invoke(env, JF.Commands.RemoveGroup(groupID=0x000A)) == SUCCESS
    assert 0x000A not in [g.groupID for g in read(env, JF.Attributes.GroupList)]
    for cat, group in ((0xFFFF, admin_group), (0xFFFE, anchor_group)):
        add = JF.Commands.AddGroup(groupID=0x00B0, friendlyName="cat", groupKeySetID=NullValue, groupCAT=cat,
                                   groupCATVersion=1, groupPermission=view)
        assert invoke(env, add) == CONSTRAINT_ERROR
        assert invoke(env, JF.Commands.UpdateGroup(groupID=group, friendlyName="x", groupKeySetID=NullValue,
                                                   groupCAT=NullValue, groupCATVersion=NullValue,
                                                   groupPermission=view)) == CONSTRAINT_ERROR
        assert invoke(env, JF.Commands.RemoveGroup(groupID=group)) == CONSTRAINT_ERROR


# ---------------------------------------------------------------------------------------------- TC-JFDS-2.4


def test_tc_jfds_2_4_admins(env: Env) -> None:
    assert NODE_ID in [a.nodeID for a in read(env, JF.Attributes.AdminList)]
    icac = bytes(range(200))  # an opaque ICAC blob; its byte order must come back unchanged
    add = JF.Commands.AddAdmin(nodeID=0xA, friendlyName="tc-jf-2.4", vendorID=0x000C, icac=icac)
    assert invoke(env, add) == SUCCESS
    admin = next(a for a in read(env, JF.Attributes.AdminList) if a.nodeID == 0xA)
    assert (admin.friendlyName, admin.vendorID, admin.icac) == ("tc-jf-2.4", 0x000C, icac)
    root = read(env, JF.Attributes.AnchorRootCA)
    assert invoke(env, JF.Commands.UpdateAdmin(nodeID=0xA, friendlyName="tc-jf-2.4-update", icac=root)) == SUCCESS
    admin = next(a for a in read(env, JF.Attributes.AdminList) if a.nodeID == 0xA)
    assert (admin.friendlyName, admin.icac) == ("tc-jf-2.4-update", root)
    assert invoke(env, JF.Commands.AddAdmin(nodeID=0xA, friendlyName="dup", vendorID=0x000C, icac=icac)) == (
        CONSTRAINT_ERROR)
    assert invoke(env, JF.Commands.RemoveAdmin(nodeID=0xA)) == SUCCESS
    assert 0xA not in [a.nodeID for a in read(env, JF.Attributes.AdminList)]


# ---------------------------------------------------------------------------------------------- TC-JFDS-2.5


def test_tc_jfds_2_5_steps_1_to_8_and_negative_steps(env: Env) -> None:
    assert 2 not in [n.nodeID for n in read(env, JF.Attributes.NodeList)]
    assert invoke(env, JF.Commands.AddPendingNode(nodeID=2, friendlyName="tc-jf-2.5")) == SUCCESS
    assert invoke(env, JF.Commands.AddPendingNode(nodeID=2, friendlyName="tc-jf-2.5")) == CONSTRAINT_ERROR
    node = next(n for n in read(env, JF.Attributes.NodeList) if n.nodeID == 2)
    assert node.friendlyName == "tc-jf-2.5"
    assert node.commissioningStatusEntry.state == JF.Enums.DatastoreStateEnum.kPending
    assert invoke(env, JF.Commands.UpdateNode(nodeID=2, friendlyName="tc-jf-2.5-update")) == SUCCESS
    node = next(n for n in read(env, JF.Attributes.NodeList) if n.nodeID == 2)
    assert node.friendlyName == "tc-jf-2.5-update"
    assert node.commissioningStatusEntry.state == JF.Enums.DatastoreStateEnum.kPending
    assert invoke(env, JF.Commands.UpdateNode(nodeID=0xA, friendlyName="x")) == CONSTRAINT_ERROR
    assert invoke(env, JF.Commands.RefreshNode(nodeID=2)) == SUCCESS

    acl = JF.Structs.DatastoreAccessControlEntryStruct(
        privilege=JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kManage,
        authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase,
        subjects=[2],
        targets=[JF.Structs.DatastoreAccessControlTargetStruct(cluster=NullValue, endpoint=0, deviceType=NullValue)],
    )
    assert invoke(env, JF.Commands.AddACLToNode(nodeID=0xA, ACLEntry=acl)) == CONSTRAINT_ERROR  # step 15
    assert invoke(env, JF.Commands.AddACLToNode(nodeID=2, ACLEntry=acl)) == SUCCESS
    [entry] = [e for e in read(env, JF.Attributes.NodeACLList) if e.nodeID == 2]
    assert entry.ACLEntry == acl and entry.statusEntry.state in STATES
    assert invoke(env, JF.Commands.RemoveACLFromNode(listID=entry.listID, nodeID=0xA)) == CONSTRAINT_ERROR  # 22
    assert invoke(env, JF.Commands.UpdateEndpointForNode(endpointID=1, nodeID=0xA, friendlyName="ep")) == (
        CONSTRAINT_ERROR)  # step 25
    assert invoke(env, JF.Commands.AddGroupIDToEndpointForNode(nodeID=0xA, endpointID=1, groupID=0x0101)) == (
        CONSTRAINT_ERROR)  # step 28
    assert invoke(env, JF.Commands.RemoveGroupIDFromEndpointForNode(nodeID=0xA, endpointID=1, groupID=0x0101)) == (
        CONSTRAINT_ERROR)  # step 35
    binding = JF.Structs.DatastoreBindingTargetStruct(node=2, endpoint=1)
    assert invoke(env, JF.Commands.AddBindingToEndpointForNode(nodeID=0xA, endpointID=1, binding=binding)) == (
        CONSTRAINT_ERROR)  # step 40
    assert invoke(env, JF.Commands.RemoveBindingFromEndpointForNode(listID=1, endpointID=1, nodeID=0xA)) == (
        CONSTRAINT_ERROR)  # step 43
    assert invoke(env, JF.Commands.RemoveNode(nodeID=0xA)) == CONSTRAINT_ERROR  # step 46


def test_non_admin_identity_is_refused(env: Env) -> None:
    viewer = env.ctrl.call("new_controller", 0x2222)
    admin_entry = env.ctrl.call("ReadAttribute", NODE_ID, [(0, Clusters.AccessControl.Attributes.Acl)])[0][
        Clusters.AccessControl][Clusters.AccessControl.Attributes.Acl][0]
    view = Clusters.AccessControl.Structs.AccessControlEntryStruct(
        privilege=Clusters.AccessControl.Enums.AccessControlEntryPrivilegeEnum.kOperate,
        authMode=Clusters.AccessControl.Enums.AccessControlEntryAuthModeEnum.kCase,
        subjects=[0x2222], targets=NullValue,
    )
    env.ctrl.call("WriteAttribute", NODE_ID, [(0, Clusters.AccessControl.Attributes.Acl([admin_entry, view]))])
    result = env.ctrl.call("ReadAttribute", NODE_ID, [(EP, JF.Attributes.NodeList)], _controller=viewer)
    failure = result[EP][JF][JF.Attributes.NodeList]
    assert isinstance(failure, Attribute.ValueDecodeFailure) and int(failure.Reason.status) == UNSUPPORTED_ACCESS
    with pytest.raises(RemoteError) as err:
        env.ctrl.call("SendCommand", NODE_ID, EP, JF.Commands.AddPendingNode(nodeID=9, friendlyName="no"),
                      _controller=viewer)
    assert err.value.status == UNSUPPORTED_ACCESS


# ---------------------------------------------------------------------------------------------- reports, raw TLV


def test_subscription_to_node_acl_list_reports_an_add(env: Env) -> None:
    env.ctrl.call("SendCommand", NODE_ID, EP, JF.Commands.AddPendingNode(nodeID=3, friendlyName="sub"))
    key = env.ctrl.call("subscribe", NODE_ID, [(EP, JF.Attributes.NodeACLList)], 0, 30)
    try:
        acl = JF.Structs.DatastoreAccessControlEntryStruct(
            privilege=JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kOperate,
            authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase,
            subjects=[0x33], targets=NullValue,
        )
        assert invoke(env, JF.Commands.AddACLToNode(nodeID=3, ACLEntry=acl)) == SUCCESS
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reports = env.ctrl.call("reports", key)
            if any(any(e.nodeID == 3 for e in value) for _, value in reports if isinstance(value, list)):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no NodeACLList report after AddACLToNode: {reports}")
    finally:
        env.ctrl.call("cancel", key)


# Raw TLV (bypassing the controller's own encoder): each payload breaks one rule of AddPendingNode / AddKeySet.
RAW_CASES = [
    ("node id as a string", 0x09, tlv_struct({0: "two", 1: "x"}), 0x85),  # INVALID_COMMAND: wrong type
    ("missing friendly name", 0x09, tlv_struct({0: 5}), 0x85),
    ("friendly name over 32 bytes", 0x09, tlv_struct({0: 5, 1: "x" * 33}), CONSTRAINT_ERROR),
    ("signed node id", 0x09, tlv_struct({0: -5, 1: "x"}), 0x85),
    ("epoch key of 15 bytes", 0x00, tlv_struct({0: {0: 0x77, 1: 0, 2: b"k" * 15, 3: 1, 4: None, 5: None, 6: None,
                                                    7: None, 8: 0}}), CONSTRAINT_ERROR),
    ("security policy out of range", 0x00, tlv_struct({0: {0: 0x77, 1: 9, 2: b"k" * 16, 3: 1, 4: None, 5: None,
                                                           6: None, 7: None, 8: 0}}), CONSTRAINT_ERROR),
    ("privilege out of range", 0x12, tlv_struct({0: 3, 1: {1: 9, 2: 2, 3: None, 4: None}}), CONSTRAINT_ERROR),
]


@pytest.mark.parametrize(("name", "command_id", "fields", "status"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_tlv_is_refused_with_the_spec_status_and_changes_nothing(
    env: Env, name: str, command_id: int, fields: bytes, status: int
) -> None:
    lists = (JF.Attributes.NodeList, JF.Attributes.GroupKeySetList, JF.Attributes.NodeACLList)
    before = [read(env, attribute) for attribute in lists]
    with pytest.raises(RemoteError) as err:
        env.ctrl.call("invoke_raw", NODE_ID, EP, JF.id, command_id, fields)
    assert err.value.status == status, name
    assert [read(env, attribute) for attribute in lists] == before


# ---------------------------------------------------------------------------------------------- durability


def kill_after_invokes(device: DeviceProcess, mark: int, count: int) -> None:
    deadline = time.monotonic() + 60
    while device.output()[mark:].count("Type 0001:08") < count and time.monotonic() < deadline:
        time.sleep(0.005)
    device.stop(sig=signal.SIGKILL)


def test_kill_9_during_a_burst_of_add_acl_to_node_loses_nothing_acknowledged(env: Env) -> None:
    """Runs after the others in this module: it kills and restarts the shared device."""
    assert invoke(env, JF.Commands.AddPendingNode(nodeID=4, friendlyName="burst")) == SUCCESS
    commands = [
        JF.Commands.AddACLToNode(nodeID=4, ACLEntry=JF.Structs.DatastoreAccessControlEntryStruct(
            privilege=JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kView,
            authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase,
            subjects=[0x1000 + i], targets=NullValue))
        for i in range(200)
    ]
    # SIGKILL once the device has received a quarter of the burst (counted in its debug log), wherever that falls.
    mark = len(env.device.output())
    killer = threading.Thread(target=kill_after_invokes, args=(env.device, mark, 50), daemon=True)
    killer.start()
    try:
        answers = env.ctrl.call("invoke_many", NODE_ID, EP, commands, 2000, timeout=120)
    finally:
        killer.join(timeout=60)
    acknowledged = sum(1 for a in answers if a is None)
    assert 0 < acknowledged < 200, "the kill must land inside the burst"
    env.device.start()
    entries = [e for e in read(env, JF.Attributes.NodeACLList) if e.nodeID == 4]
    subjects = sorted(e.ACLEntry.subjects[0] - 0x1000 for e in entries)
    # Every acknowledged command is there; at most the one in flight when the device died got committed too.
    assert subjects[:acknowledged] == list(range(acknowledged))
    assert len(subjects) in (acknowledged, acknowledged + 1)
    assert len({e.listID for e in read(env, JF.Attributes.NodeACLList)}) == len(read(env, JF.Attributes.NodeACLList))


def test_removing_the_anchor_fabric_wipes_the_datastore(env: Env) -> None:
    index = env.ctrl.call("ReadAttribute", NODE_ID, [(0, OC.Attributes.CurrentFabricIndex)])[0][OC][
        OC.Attributes.CurrentFabricIndex]
    response = env.ctrl.call("SendCommand", NODE_ID, 0, OC.Commands.RemoveFabric(fabricIndex=index))
    assert response.statusCode == OC.Enums.NodeOperationalCertStatusEnum.kOk
    env.device.stop()
    from jfds_device.datastore.jfds import JfdsStore
    from jfds_device.datastore.sqlite import Database

    db = Database(env.tmp / "state" / "jfds.sqlite3")
    try:
        store = JfdsStore(db)
        assert not store.is_bootstrapped and store.nodes() == []
    finally:
        db.close()
