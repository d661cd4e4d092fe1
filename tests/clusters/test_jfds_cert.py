"""The cert tests' datastore logic as unit tests: TC-JFDS-2.1..2.4, TC-JFDS-2.5 steps 1-8 and the negative
steps 15, 22, 25, 28, 35, 40, 43, 46 (connectedhomeip src/python_testing/TC_JFDS_2_1.py @ 0403703cc141,
TC_JFDS_2_2.py @ 03cad0d96da7, TC_JFDS_2_3.py @ 296ed92eaddf, TC_JFDS_2_4.py @ 3090fae466a3, TC_JFDS_2_5.py
@ 06c102d19d89). Steps that need a real peer (RefreshNode reaching Committed, pushes) are the reconciler's; here
the datastore side of each step is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusters.joint_fabric_datastore import schema as s
from clusters.joint_fabric_datastore.schema import (
    AddACLToNode,
    AddAdmin,
    AddBindingToEndpointForNode,
    AddGroup,
    AddGroupIDToEndpointForNode,
    AddKeySet,
    AddPendingNode,
    BindingTarget,
    DatastoreState,
    RefreshNode,
    RemoveACLFromNode,
    RemoveAdmin,
    RemoveBindingFromEndpointForNode,
    RemoveGroup,
    RemoveGroupIDFromEndpointForNode,
    RemoveKeySet,
    RemoveNode,
    UpdateAdmin,
    UpdateEndpointForNode,
    UpdateGroup,
    UpdateKeySet,
    UpdateNode,
)
from jfds_device.codec.schema import NULL
from jfds_device.im.provider import Status
from tests.clusters.jfds_harness import (
    ADMINISTER,
    ANCHOR_NODE,
    ANCHOR_VENDOR,
    CASE,
    ICAC,
    MANAGE,
    OPERATE,
    ROOT_CA,
    VIEW,
    Jfds,
    ace,
    key_set,
    target,
)

SUCCESS, CONSTRAINT, NOT_FOUND = Status.SUCCESS, Status.CONSTRAINT_ERROR, Status.NOT_FOUND
TH2 = 2
UNKNOWN = 0xA


@pytest.fixture
def jf(tmp_path: Path) -> Jfds:
    return Jfds(tmp_path / "node.sqlite")


def test_tc_jfds_2_1_simple_attributes(jf: Jfds) -> None:
    assert jf.read(s.ANCHOR_ROOT_CA) == ROOT_CA  # step 1 (the TH also finds it in TrustedRootCertificates)
    assert len(jf.read(s.ANCHOR_ROOT_CA)) >= 1
    assert jf.read(s.ANCHOR_NODE_ID) == ANCHOR_NODE  # step 2
    assert jf.read(s.ANCHOR_VENDOR_ID) == ANCHOR_VENDOR  # step 3
    assert 1 <= len(jf.read(s.FRIENDLY_NAME_ATTRIBUTE)) <= 32  # step 4
    status = jf.read(s.STATUS)  # step 5
    assert status.state in set(DatastoreState)
    assert status.state is DatastoreState.COMMITTED and status.failure_code == 0
    assert status.update_timestamp == int(jf.clock.wall()) - 946_684_800


def test_tc_jfds_2_2_key_sets(jf: Jfds) -> None:
    ids = [k.group_key_set_id for k in jf.read(s.GROUP_KEY_SET_LIST)]  # step 1
    assert len(ids) >= 1 and 0 in ids
    step2 = key_set(0x000A)
    assert jf.status(AddKeySet(group_key_set=step2)) is SUCCESS  # step 2
    listed = jf.read(s.GROUP_KEY_SET_LIST)  # step 3: one more entry, equal field for field, keys in plain
    assert len(listed) == len(ids) + 1
    assert next(k for k in listed if k.group_key_set_id == 0x000A) == step2
    again = key_set(0x000A, keys=(b"\xa0" * 16, b"\xa1" * 16, b"\xb2" * 16))
    assert jf.status(AddKeySet(group_key_set=again)) is CONSTRAINT  # step 4
    step5 = key_set(0x000A, keys=(b"\xa0" * 16, b"\xa1" * 16, b"\xc2" * 16), starts=(2220010, 2220011, 2220012))
    assert jf.status(UpdateKeySet(group_key_set=step5)) is SUCCESS  # step 5
    # step 6: policy 2 is not a GroupKeySecurityPolicy; the request does not decode -> CONSTRAINT_ERROR
    bad = UpdateKeySet(group_key_set=step5).to_tlv()
    bad[0][1] = 2
    assert jf.invoke_tlv(s.CLUSTER.command_by_id[0x01].id, bad) is CONSTRAINT
    assert next(k for k in jf.read(s.GROUP_KEY_SET_LIST) if k.group_key_set_id == 0x000A) == step5  # step 7
    assert jf.status(UpdateKeySet(group_key_set=key_set(0x0FFF))) is NOT_FOUND  # step 8
    assert jf.status(RemoveKeySet(group_key_set_id=0x0FFF)) is NOT_FOUND  # step 9
    assert jf.status(RemoveKeySet(group_key_set_id=0x0000)) is CONSTRAINT  # step 10
    assert jf.status(RemoveKeySet(group_key_set_id=0x000A)) is SUCCESS  # step 11
    assert 0x000A not in [k.group_key_set_id for k in jf.read(s.GROUP_KEY_SET_LIST)]  # step 12
    assert jf.status(AddKeySet(group_key_set=key_set(0x0000))) is CONSTRAINT  # step 13
    assert jf.status(RemoveKeySet(group_key_set_id=0x0000)) is CONSTRAINT  # step 14


def test_tc_jfds_2_2_step_2_with_the_scripts_32_byte_keys_is_rejected(jf: Jfds) -> None:
    # TC_JFDS_2_2.py sends 32-byte ASCII keys; epoch keys are exactly 16 bytes (Core spec 11.2.5.4.3; the newest
    # connectedhomeip JointFabricDatastore.cpp agrees).
    fields = AddKeySet(group_key_set=key_set(0x000A)).to_tlv()
    fields[0][2] = b"0" * 32
    assert jf.invoke_tlv(0x00, fields) is CONSTRAINT


def test_tc_jfds_2_3_groups(jf: Jfds) -> None:
    groups = jf.read(s.GROUP_LIST)  # step 1
    admin_cat_group = next(g.group_id for g in groups if g.group_cat == 0xFFFF)
    anchor_cat_group = next(g.group_id for g in groups if g.group_cat == 0xFFFE)
    step2 = AddGroup(
        group_id=0x000A,
        friendly_name="tc-jf-2.3",
        group_key_set_id=0x000B,  # does not exist: AddGroup must not check it
        group_cat=1,
        group_cat_version=1,
        group_permission=VIEW,
    )
    assert jf.status(step2) is SUCCESS  # step 2
    found = next(g for g in jf.read(s.GROUP_LIST) if g.group_id == 0x000A)  # step 3
    assert (found.friendly_name, found.group_key_set_id, found.group_cat, found.group_cat_version) == (
        "tc-jf-2.3",
        0x000B,
        1,
        1,
    )
    assert found.group_permission is VIEW
    step4 = UpdateGroup(
        group_id=0x000A,
        friendly_name="tc-jf-2.3-update",
        group_key_set_id=0x000C,
        group_cat=1,
        group_cat_version=2,
        group_permission=OPERATE,
    )
    assert jf.status(step4) is SUCCESS  # step 4
    found = next(g for g in jf.read(s.GROUP_LIST) if g.group_id == 0x000A)  # step 5
    assert (found.friendly_name, found.group_key_set_id, found.group_cat_version, found.group_permission) == (
        "tc-jf-2.3-update",
        0x000C,
        2,
        OPERATE,
    )
    assert jf.status(RemoveGroup(group_id=0x000A)) is SUCCESS  # step 6
    assert 0x000A not in [g.group_id for g in jf.read(s.GROUP_LIST)]  # step 7
    for cat in (0xFFFF, 0xFFFE):  # steps 8 and 11 (the script sends 0xFFFE in step 8)
        add = AddGroup(
            group_id=0x000B,
            friendly_name="cat",
            group_key_set_id=NULL,
            group_cat=cat,
            group_cat_version=1,
            group_permission=VIEW,
        )
        assert jf.status(add) is CONSTRAINT
    for group_id in (admin_cat_group, anchor_cat_group):  # steps 9, 10, 12, 13
        update = UpdateGroup(
            group_id=group_id,
            friendly_name="x",
            group_key_set_id=NULL,
            group_cat=NULL,
            group_cat_version=NULL,
            group_permission=VIEW,
        )
        assert jf.status(update) is CONSTRAINT
        assert jf.status(RemoveGroup(group_id=group_id)) is CONSTRAINT
    assert len(jf.read(s.GROUP_LIST)) == len(groups)


def test_tc_jfds_2_4_admins(jf: Jfds) -> None:
    admins = jf.read(s.ADMIN_LIST)  # step 1
    assert admins[0].node_id == ANCHOR_NODE and admins[0].icac == ICAC
    step2 = AddAdmin(node_id=0xA, friendly_name="tc-jf-2.4", vendor_id=0x000C, icac=ICAC)
    assert jf.status(step2) is SUCCESS  # step 2
    found = next(a for a in jf.read(s.ADMIN_LIST) if a.node_id == 0xA)  # step 3: all fields, bytes not reversed
    assert (found.friendly_name, found.vendor_id, found.icac) == ("tc-jf-2.4", 0x000C, ICAC)
    assert jf.status(UpdateAdmin(node_id=0xA, friendly_name="tc-jf-2.4-update", icac=ROOT_CA)) is SUCCESS  # 4
    found = next(a for a in jf.read(s.ADMIN_LIST) if a.node_id == 0xA)  # step 5
    assert (found.friendly_name, found.vendor_id, found.icac) == ("tc-jf-2.4-update", 0x000C, ROOT_CA)
    assert jf.status(step2) is CONSTRAINT  # step 6
    assert jf.status(RemoveAdmin(node_id=0xA)) is SUCCESS  # step 7
    assert [a.node_id for a in jf.read(s.ADMIN_LIST)] == [ANCHOR_NODE]  # step 8


def _nodes(jf: Jfds) -> dict[int, s.NodeInformationEntry]:
    return {n.node_id: n for n in jf.read(s.NODE_LIST)}


def test_tc_jfds_2_5_steps_1_to_8(jf: Jfds) -> None:
    # Setup: the key set and group the script creates first.
    assert jf.status(AddKeySet(group_key_set=key_set(0x0042, starts=(1, 100000, 200000)))) is SUCCESS
    add_group = AddGroup(
        group_id=0x0101,
        friendly_name="TestGroup",
        group_key_set_id=0x0042,
        group_cat=1,
        group_cat_version=1,
        group_permission=VIEW,
    )
    assert jf.status(add_group) is SUCCESS
    assert TH2 not in _nodes(jf)  # step 1
    assert jf.status(AddPendingNode(node_id=TH2, friendly_name="tc-jf-2.5")) is SUCCESS  # step 2
    assert jf.status(AddPendingNode(node_id=TH2, friendly_name="tc-jf-2.5")) is CONSTRAINT  # step 3
    node = _nodes(jf)[TH2]  # step 4
    assert node.friendly_name == "tc-jf-2.5"
    assert node.commissioning_status_entry.state is DatastoreState.PENDING
    jf.clock.tick(5)
    assert jf.status(UpdateNode(node_id=TH2, friendly_name="tc-jf-2.5-update")) is SUCCESS  # step 5
    node = _nodes(jf)[TH2]  # step 6
    assert node.friendly_name == "tc-jf-2.5-update"
    assert node.commissioning_status_entry.state is DatastoreState.PENDING
    assert jf.status(UpdateNode(node_id=UNKNOWN, friendly_name="x")) is CONSTRAINT  # step 7
    jf.changes.clear()
    assert jf.status(RefreshNode(node_id=TH2)) is SUCCESS  # step 8: answered at once
    assert jf.changes[-1].refresh == (TH2,)  # the reconciler is told; it takes the node to Committed (step 9)
    assert _nodes(jf)[TH2].commissioning_status_entry.state is DatastoreState.PENDING


def test_tc_jfds_2_5_negative_steps(jf: Jfds) -> None:
    jf.invoke(AddKeySet(group_key_set=key_set(0x0042)))
    jf.invoke(
        AddGroup(
            group_id=0x0101,
            friendly_name="TestGroup",
            group_key_set_id=0x0042,
            group_cat=1,
            group_cat_version=1,
            group_permission=VIEW,
        )
    )
    jf.invoke(AddPendingNode(node_id=TH2, friendly_name="tc-jf-2.5"))
    jf.store.sync_endpoints(TH2, [0, 1])  # what RefreshNode's stage 1 adopts from TH2's PartsList (step 12)
    step16 = ace(MANAGE, CASE, [TH2], [target(endpoint=0)])
    assert jf.status(AddACLToNode(node_id=UNKNOWN, acl_entry=step16)) is CONSTRAINT  # step 15
    assert jf.status(AddACLToNode(node_id=TH2, acl_entry=step16)) is SUCCESS  # step 16
    entry = next(e for e in jf.read(s.NODE_ACL_LIST) if e.acl_entry == step16)  # step 17
    list_id = entry.list_id
    assert jf.status(RemoveACLFromNode(list_id=list_id, node_id=UNKNOWN)) is CONSTRAINT  # step 22
    assert jf.status(RemoveACLFromNode(list_id=list_id, node_id=TH2)) is SUCCESS  # step 23
    assert next(e for e in jf.read(s.NODE_ACL_LIST) if e.list_id == list_id).status_entry.state is (
        DatastoreState.DELETE_PENDING
    )
    ep = 1
    assert jf.status(UpdateEndpointForNode(endpoint_id=ep, node_id=UNKNOWN, friendly_name="x")) is CONSTRAINT  # 25
    assert jf.status(UpdateEndpointForNode(endpoint_id=ep, node_id=TH2, friendly_name="tc-jf-2.5-ep")) is SUCCESS
    assert next(e for e in jf.read(s.NODE_ENDPOINT_LIST) if e.endpoint_id == ep).friendly_name == "tc-jf-2.5-ep"
    add = AddGroupIDToEndpointForNode(node_id=UNKNOWN, endpoint_id=ep, group_id=0x0101)
    assert jf.status(add) is CONSTRAINT  # step 28
    assert jf.status(AddGroupIDToEndpointForNode(node_id=TH2, endpoint_id=ep, group_id=0x0101)) is SUCCESS  # 29
    assert [(e.node_id, e.endpoint_id, e.group_id) for e in jf.read(s.ENDPOINT_GROUP_ID_LIST)] == [(TH2, ep, 0x0101)]
    assert [(e.node_id, e.group_key_set_id) for e in jf.read(s.NODE_KEY_SET_LIST)] == [(TH2, 0x0042)]  # pushed too
    remove = RemoveGroupIDFromEndpointForNode(node_id=UNKNOWN, endpoint_id=ep, group_id=0x0101)
    assert jf.status(remove) is CONSTRAINT  # step 35
    assert jf.status(RemoveGroupIDFromEndpointForNode(node_id=TH2, endpoint_id=ep, group_id=0x0101)) is SUCCESS
    assert {e.status_entry.state for e in jf.read(s.NODE_KEY_SET_LIST)} == {DatastoreState.DELETE_PENDING}  # 39
    binding = BindingTarget(node=TH2, endpoint=1)
    add_binding = AddBindingToEndpointForNode(node_id=UNKNOWN, endpoint_id=ep, binding=binding)
    assert jf.status(add_binding) is CONSTRAINT  # step 40
    assert jf.status(AddBindingToEndpointForNode(node_id=TH2, endpoint_id=ep, binding=binding)) is SUCCESS  # 41
    binding_id = jf.read(s.ENDPOINT_BINDING_LIST)[0].list_id
    assert binding_id != list_id  # one ListID space, never reused
    remove_binding = RemoveBindingFromEndpointForNode(list_id=binding_id, endpoint_id=ep, node_id=UNKNOWN)
    assert jf.status(remove_binding) is CONSTRAINT  # step 43
    remove_binding = RemoveBindingFromEndpointForNode(list_id=binding_id, endpoint_id=ep, node_id=TH2)
    assert jf.status(remove_binding) is SUCCESS  # step 44
    assert jf.status(RemoveNode(node_id=UNKNOWN)) is CONSTRAINT  # step 46
    assert jf.status(RemoveNode(node_id=TH2)) is SUCCESS  # step 47
    assert TH2 not in _nodes(jf)  # step 48
    for attribute in (s.NODE_ACL_LIST, s.ENDPOINT_GROUP_ID_LIST, s.ENDPOINT_BINDING_LIST, s.NODE_KEY_SET_LIST):
        assert jf.read(attribute) == []
    assert jf.read(s.NODE_ENDPOINT_LIST) == []


def test_tc_jfds_2_5_admin_cat_group_for_steps_19_to_21(jf: Jfds) -> None:
    admin_group = next(g for g in jf.read(s.GROUP_LIST) if g.group_cat == s.ADMIN_CAT_ID)  # step 20
    assert admin_group.group_cat_version == 1 and admin_group.group_permission is ADMINISTER
    assert admin_group.group_key_set_id is NULL
