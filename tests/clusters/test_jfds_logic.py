"""JFDS command rules through the provider API (Core spec 11.24.7): every command's success and error statuses,
the spec checks the reference SDK skips, per-entry status semantics and the propagation rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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
from jfds_device.datamodel.acl import cat_subject
from jfds_device.datastore.jfds_records import EntryKind, EntryRef
from jfds_device.im.provider import Status
from tests.clusters.jfds_harness import (
    ADMINISTER,
    ANCHOR_NODE,
    CASE,
    GROUP,
    ICAC,
    MANAGE,
    OPERATE,
    VIEW,
    Jfds,
    ace,
    key_set,
    target,
)

SUCCESS, CONSTRAINT, NOT_FOUND = Status.SUCCESS, Status.CONSTRAINT_ERROR, Status.NOT_FOUND
PENDING, COMMITTED = DatastoreState.PENDING, DatastoreState.COMMITTED
DELETE_PENDING, COMMIT_FAILED = DatastoreState.DELETE_PENDING, DatastoreState.COMMIT_FAILED
NODE, OTHER = 2, 3
G1, G2, G3 = 0x0101, 0x0102, 0x0103
K1, K2 = 0x0042, 0x0043


def add_group(group_id: int, key_set_id: Any = K1, cat: Any = NULL, version: Any = NULL, **kw: Any) -> AddGroup:
    fields: dict[str, Any] = {
        "group_id": group_id,
        "friendly_name": f"g{group_id:x}",
        "group_key_set_id": key_set_id,
        "group_cat": cat,
        "group_cat_version": version,
        "group_permission": VIEW,
    }
    fields.update(kw)
    return AddGroup(**fields)


def update_group(group_id: int, **kw: Any) -> UpdateGroup:
    fields: dict[str, Any] = {
        "group_id": group_id,
        "friendly_name": NULL,
        "group_key_set_id": NULL,
        "group_cat": NULL,
        "group_cat_version": NULL,
        "group_permission": VIEW,
    }
    fields.update(kw)
    return UpdateGroup(**fields)


@pytest.fixture
def jf(tmp_path: Path) -> Jfds:
    return Jfds(tmp_path / "node.sqlite")


@pytest.fixture
def peers(jf: Jfds) -> Jfds:
    """Key sets K1/K2, groups G1 (K1), G2 (K1), G3 (K2), nodes 2 and 3 with endpoints 0..2."""
    jf.invoke(AddKeySet(group_key_set=key_set(K1)))
    jf.invoke(AddKeySet(group_key_set=key_set(K2)))
    for group_id, key_set_id in ((G1, K1), (G2, K1), (G3, K2)):
        jf.invoke(add_group(group_id, key_set_id))
    for node_id in (NODE, OTHER):
        jf.invoke(AddPendingNode(node_id=node_id, friendly_name=f"n{node_id}"))
        jf.store.sync_endpoints(node_id, [0, 1, 2])
    return jf


def state(jf: Jfds, ref: EntryRef) -> DatastoreState | None:
    entry = jf.store.entry(ref)
    return None if entry is None else entry.state


# ---------------------------------------------------------------------------------------------------- general


def test_commands_before_the_anchor_bootstrap_are_invalid_in_state(tmp_path: Path) -> None:
    jf = Jfds(tmp_path / "n.sqlite", bootstrap=False)
    assert jf.status(AddKeySet(group_key_set=key_set(K1))) is Status.INVALID_IN_STATE
    assert jf.status(AddPendingNode(node_id=NODE, friendly_name="n")) is Status.INVALID_IN_STATE
    assert jf.read(s.STATUS).state is PENDING and jf.read(s.ANCHOR_ROOT_CA) == b""
    jf.bootstrap()
    assert jf.status(AddKeySet(group_key_set=key_set(K1))) is SUCCESS


def test_every_command_is_accepted_and_none_generates_a_response(jf: Jfds) -> None:
    assert jf.server.accepted_command_ids() == list(range(0x14))
    assert jf.server.generated_command_ids() == []
    assert jf.read_raw(0xFFFB) == [*range(0x0E), 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]


def test_missing_fields_are_invalid_command(jf: Jfds) -> None:
    assert jf.invoke_tlv(0x09, {0: NODE}) is Status.INVALID_COMMAND  # AddPendingNode without FriendlyName
    assert jf.invoke_tlv(0x09, {0: NODE, 1: "x" * 33}) is CONSTRAINT  # FriendlyName is at most 32 bytes


# ---------------------------------------------------------------------------------------------------- key sets


def test_key_set_commands(jf: Jfds) -> None:
    assert jf.status(AddKeySet(group_key_set=key_set(K1))) is SUCCESS
    assert jf.status(AddKeySet(group_key_set=key_set(K1))) is CONSTRAINT
    assert jf.status(AddKeySet(group_key_set=key_set(0))) is CONSTRAINT
    assert jf.status(UpdateKeySet(group_key_set=key_set(K1, starts=(5,), keys=(b"\x05" * 16,)))) is SUCCESS
    assert jf.store.key_set(K1) == key_set(K1, starts=(5,), keys=(b"\x05" * 16,))
    assert jf.status(UpdateKeySet(group_key_set=key_set(0))) is CONSTRAINT  # the IPK is not pushed from here
    assert jf.status(UpdateKeySet(group_key_set=key_set(K2))) is NOT_FOUND
    assert jf.status(RemoveKeySet(group_key_set_id=K2)) is NOT_FOUND
    assert jf.status(RemoveKeySet(group_key_set_id=0)) is CONSTRAINT
    assert jf.status(RemoveKeySet(group_key_set_id=K1)) is SUCCESS
    assert [k.group_key_set_id for k in jf.read(s.GROUP_KEY_SET_LIST)] == [0]


@pytest.mark.parametrize(
    ("slot", "field"),
    [(0, "epoch_key0"), (0, "epoch_start_time0"), (1, "epoch_key1"), (1, "epoch_start_time1"),
     (2, "epoch_key2"), (2, "epoch_start_time2")],
)  # fmt: skip
def test_a_key_set_nodes_would_refuse_is_constraint_error(jf: Jfds, slot: int, field: str) -> None:
    """KeySetWrite needs EpochKey0 with its start time, and each key with its start (Core spec 11.2.7.1): a
    null EpochKey0, or half a pair, is refused before it reaches the datastore (and so any node)."""
    broken = dataclasses.replace(key_set(K1), **{field: NULL})
    assert jf.status(AddKeySet(group_key_set=broken)) is CONSTRAINT
    assert jf.status(AddKeySet(group_key_set=key_set(K1))) is SUCCESS
    assert jf.status(UpdateKeySet(group_key_set=broken)) is CONSTRAINT
    assert jf.store.key_set(K1) == key_set(K1)


def test_epoch_keys_are_exactly_16_bytes(jf: Jfds) -> None:
    for length in (0, 15, 17, 32):
        fields = AddKeySet(group_key_set=key_set(K1)).to_tlv()
        fields[0][4] = b"k" * length
        assert jf.invoke_tlv(0x00, fields) is CONSTRAINT
    nulls = AddKeySet(group_key_set=key_set(K1, keys=(b"k" * 16,), starts=(1,)))
    assert jf.status(nulls) is SUCCESS  # null keys are fine


def test_key_set_list_is_limited_to_254_including_the_ipk(jf: Jfds) -> None:
    with jf.store.transaction():
        for set_id in range(1, s.MAX_KEY_SETS):
            jf.store.add_key_set(key_set(set_id))
    assert jf.status(AddKeySet(group_key_set=key_set(0x1000))) is Status.RESOURCE_EXHAUSTED


def test_update_key_set_pushes_it_again_to_every_node_holding_it(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    jf.invoke(AddGroupIDToEndpointForNode(node_id=OTHER, endpoint_id=1, group_id=G1))
    node_ref, other_ref = EntryRef.node_key_set(NODE, K1), EntryRef.node_key_set(OTHER, K1)
    jf.store.set_status(node_ref, COMMITTED)
    jf.store.set_status(other_ref, COMMIT_FAILED, Status.TIMEOUT)
    before = jf.store.entry(node_ref).revision  # type: ignore[union-attr]
    jf.invoke(UpdateKeySet(group_key_set=key_set(K1)))  # same content: nothing to push
    assert state(jf, node_ref) is COMMITTED
    jf.invoke(UpdateKeySet(group_key_set=key_set(K1, starts=(9,), keys=(b"\x09" * 16,))))
    assert state(jf, node_ref) is PENDING and state(jf, other_ref) is PENDING
    assert jf.store.entry(node_ref).revision > before  # type: ignore[union-attr]
    assert jf.store.entry(other_ref).status.failure_code == 0  # type: ignore[union-attr]


def test_remove_key_set_in_use_guard(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G3))
    assert jf.status(RemoveKeySet(group_key_set_id=K2)) is CONSTRAINT  # the node holds it
    jf.store.set_status(EntryRef.node_key_set(NODE, K2), COMMIT_FAILED, Status.BUSY)
    assert jf.status(RemoveKeySet(group_key_set_id=K2)) is CONSTRAINT  # a failed add is still in use
    jf.invoke(RemoveGroupIDFromEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G3))
    assert state(jf, EntryRef.node_key_set(NODE, K2)) is DELETE_PENDING
    jf.store.set_status(EntryRef.node_key_set(NODE, K2), COMMIT_FAILED, Status.TIMEOUT)  # removal failed
    assert jf.status(RemoveKeySet(group_key_set_id=K2)) is SUCCESS  # being removed is not "in use"


# ---------------------------------------------------------------------------------------------------- groups


def test_group_commands(jf: Jfds) -> None:
    assert jf.status(add_group(G1, NULL)) is SUCCESS
    assert jf.status(add_group(G1, NULL)) is CONSTRAINT
    assert jf.status(add_group(0, NULL)) is CONSTRAINT
    assert jf.status(update_group(G1, friendly_name="new", group_permission=MANAGE)) is SUCCESS
    group = jf.store.group(G1)
    assert group is not None and (group.friendly_name, group.group_permission) == ("new", MANAGE)
    assert jf.status(update_group(G2)) is CONSTRAINT  # unknown group: CONSTRAINT_ERROR, as the reference
    assert jf.status(RemoveGroup(group_id=G2)) is CONSTRAINT
    assert jf.status(RemoveGroup(group_id=G1)) is SUCCESS


@pytest.mark.parametrize(
    ("cat", "version", "expected"),
    [
        (NULL, NULL, SUCCESS),
        (1, 1, SUCCESS),
        (0xFFFD, 0xFFFE, SUCCESS),
        (1, NULL, CONSTRAINT),  # a CAT needs its version
        (NULL, 1, CONSTRAINT),  # a version needs a CAT
        (0, 1, CONSTRAINT),
        (0xFFFF, 1, CONSTRAINT),  # Administrator CAT
        (0xFFFE, 1, CONSTRAINT),  # Anchor CAT
    ],
)
def test_add_group_cat_rules(jf: Jfds, cat: Any, version: Any, expected: Status) -> None:
    assert jf.status(add_group(G1, NULL, cat, version)) is expected


def test_add_group_cat_version_range_is_checked_on_decode(jf: Jfds) -> None:
    for version in (0, 0xFFFF):
        fields = add_group(G1, NULL, 1, 1).to_tlv()
        fields[4] = version
        assert jf.invoke_tlv(0x03, fields) is CONSTRAINT


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"group_cat": 2}, SUCCESS),
        ({"group_cat_version": 7}, SUCCESS),
        ({"group_cat": 0xFFFF}, CONSTRAINT),
        ({"group_cat": 0}, CONSTRAINT),
        ({"group_key_set_id": 0xFFFF}, CONSTRAINT),  # UpdateGroup decodes 1..65535; stored entries are 1..65534
        ({"group_cat_version": 0xFFFF}, CONSTRAINT),
    ],
)
def test_update_group_rules(jf: Jfds, change: dict[str, Any], expected: Status) -> None:
    jf.invoke(add_group(G1, NULL, 1, 1))
    assert jf.status(update_group(G1, **change)) is expected


def test_update_group_null_fields_keep_values_and_a_lone_cat_needs_a_version(jf: Jfds) -> None:
    jf.invoke(add_group(G1, K1))
    assert jf.status(update_group(G1, group_cat=5)) is CONSTRAINT  # CAT without version after merging
    assert jf.status(update_group(G1, group_cat=5, group_cat_version=1)) is SUCCESS
    group = jf.store.group(G1)
    assert group is not None
    assert (group.friendly_name, group.group_key_set_id, group.group_cat, group.group_cat_version) == (
        "g101",
        K1,
        5,
        1,
    )


def test_group_list_is_limited_to_254_including_the_cat_groups(jf: Jfds) -> None:
    for group_id in range(1, s.MAX_GROUPS - 1):
        jf.invoke(add_group(group_id, NULL))
    assert jf.status(add_group(0x2000, NULL)) is Status.RESOURCE_EXHAUSTED


def test_remove_group_in_use_guard(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    assert jf.status(RemoveGroup(group_id=G1)) is CONSTRAINT
    jf.invoke(RemoveGroupIDFromEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    assert jf.status(RemoveGroup(group_id=G1)) is SUCCESS  # the entry is being removed


def test_update_group_key_set_change_adds_the_new_before_removing_the_old(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    jf.invoke(AddGroupIDToEndpointForNode(node_id=OTHER, endpoint_id=1, group_id=G1))
    jf.invoke(AddGroupIDToEndpointForNode(node_id=OTHER, endpoint_id=2, group_id=G2))  # OTHER still needs K1
    for entry in jf.store.entries_for_node(NODE) + jf.store.entries_for_node(OTHER):
        if entry.ref.kind is not EntryKind.ENDPOINT:
            jf.store.set_status(entry.ref, COMMITTED)
    jf.changes.clear()
    jf.invoke(update_group(G1, group_key_set_id=K2))
    assert state(jf, EntryRef.node_key_set(NODE, K2)) is PENDING
    assert state(jf, EntryRef.node_key_set(OTHER, K2)) is PENDING
    assert state(jf, EntryRef.node_key_set(NODE, K1)) is DELETE_PENDING
    assert state(jf, EntryRef.node_key_set(OTHER, K1)) is COMMITTED  # G2 on OTHER still uses K1
    assert state(jf, EntryRef.endpoint_group(NODE, 1, G1)) is PENDING  # GroupKeyMap must change
    assert state(jf, EntryRef.endpoint_group(OTHER, 2, G2)) is COMMITTED
    intent = jf.changes[-1].intent
    assert intent.index(EntryRef.node_key_set(NODE, K2)) < intent.index(EntryRef.node_key_set(NODE, K1))
    revisions = {e.ref: e.revision for e in jf.store.pending_entries(NODE)}
    assert revisions[EntryRef.node_key_set(NODE, K2)] < revisions[EntryRef.node_key_set(NODE, K1)]


def test_update_group_to_a_missing_key_set_is_refused_while_on_nodes(peers: Jfds) -> None:
    jf = peers
    jf.invoke(update_group(G1, group_key_set_id=0x0777))  # no node uses G1: fine (TC-JFDS-2.3 step 4)
    jf.invoke(update_group(G1, group_key_set_id=K1))
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    assert jf.status(update_group(G1, group_key_set_id=0x0777)) is CONSTRAINT


def test_update_group_name_change_pushes_the_group_again(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    ref = EntryRef.endpoint_group(NODE, 1, G1)
    jf.store.set_status(ref, COMMITTED)
    jf.invoke(update_group(G1, group_permission=VIEW))  # nothing changed
    assert state(jf, ref) is COMMITTED
    jf.invoke(update_group(G1, friendly_name="renamed"))
    assert state(jf, ref) is PENDING


def test_update_group_cat_change_rewrites_acl_subjects(peers: Jfds) -> None:
    jf = peers
    jf.invoke(add_group(0x0200, NULL, 7, 1, group_permission=OPERATE))
    old_cat = cat_subject(7, 1)
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(OPERATE, CASE, [old_cat, 0x55])))
    jf.invoke(AddACLToNode(node_id=OTHER, acl_entry=ace(VIEW, CASE, [cat_subject(7, 3)])))
    jf.invoke(AddACLToNode(node_id=OTHER, acl_entry=ace(VIEW, CASE, [0x66])))  # untouched
    for node_id in (NODE, OTHER):
        for entry in jf.store.entries(EntryKind.ACL, node_id=node_id):
            jf.store.set_status(entry.ref, COMMITTED)
    jf.invoke(update_group(0x0200, group_cat=8, group_cat_version=2, group_permission=OPERATE))
    node_acl = jf.store.entries(EntryKind.ACL, node_id=NODE)[0]
    assert node_acl.value.acl_entry.subjects == [cat_subject(8, 2), 0x55]
    assert node_acl.state is PENDING and node_acl.superseded == (ace(OPERATE, CASE, [old_cat, 0x55]),)
    other = jf.store.entries(EntryKind.ACL, node_id=OTHER)
    assert [e.value.acl_entry.subjects for e in other] == [[cat_subject(8, 2)], [0x66]]
    assert [e.state for e in other] == [PENDING, COMMITTED]
    jf.store.set_status(node_acl.ref, COMMITTED)
    assert jf.store.entry(node_acl.ref).superseded == ()  # type: ignore[union-attr]


def test_update_group_permission_change_splits_shared_entries(peers: Jfds) -> None:
    jf = peers
    jf.invoke(add_group(0x0200, NULL, 7, 1, group_permission=VIEW))
    group_subject = cat_subject(7, 1)
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [group_subject, 0x55], [target(cluster=6)])))
    jf.invoke(AddACLToNode(node_id=OTHER, acl_entry=ace(VIEW, CASE, [group_subject])))
    jf.invoke(AddACLToNode(node_id=OTHER, acl_entry=ace(MANAGE, CASE, [group_subject])))  # not the group's grant
    jf.changes.clear()
    jf.invoke(update_group(0x0200, group_permission=OPERATE))
    node_acls = [e.value.acl_entry for e in jf.store.entries(EntryKind.ACL, node_id=NODE)]
    assert node_acls == [
        ace(VIEW, CASE, [0x55], [target(cluster=6)]),  # the original keeps the other subject
        ace(OPERATE, CASE, [group_subject], [target(cluster=6)]),  # the group's subjects move to a new entry
    ]
    other_acls = [e.value.acl_entry for e in jf.store.entries(EntryKind.ACL, node_id=OTHER)]
    assert other_acls == [ace(OPERATE, CASE, [group_subject]), ace(MANAGE, CASE, [group_subject])]
    intent = [r for r in jf.changes[-1].intent if r.node_id == NODE]
    assert [r.key for r in intent] == sorted(r.key for r in intent)  # edited original first, then the new entry


def test_update_group_permission_split_that_does_not_fit_is_resource_exhausted(peers: Jfds) -> None:
    jf = peers
    jf.invoke(add_group(0x0200, NULL, 7, 1, group_permission=VIEW))
    shared = ace(VIEW, CASE, [cat_subject(7, 1), 0x55])
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=shared))
    with jf.store.transaction():
        for i in range(s.MAX_PER_NODE_ENTRIES - 1):
            jf.store.add_acl(OTHER, ace(VIEW, CASE, [0x1000 + i]))
    assert jf.status(update_group(0x0200, group_permission=OPERATE)) is Status.RESOURCE_EXHAUSTED
    assert jf.store.group(0x0200).group_permission is VIEW  # type: ignore[union-attr]
    assert jf.store.entries(EntryKind.ACL, node_id=NODE)[0].value.acl_entry == shared


def test_rewrite_onto_an_existing_equal_entry_removes_the_duplicate(peers: Jfds) -> None:
    jf = peers
    jf.invoke(add_group(0x0200, NULL, 7, 1, group_permission=VIEW))
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [cat_subject(7, 1)])))
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [cat_subject(7, 2)])))
    jf.invoke(update_group(0x0200, group_cat_version=2))
    first, second = jf.store.entries(EntryKind.ACL, node_id=NODE)
    assert first.removal and first.value.acl_entry == ace(VIEW, CASE, [cat_subject(7, 1)])
    assert not second.removal


# ---------------------------------------------------------------------------------------------------- admins


def test_admin_commands(jf: Jfds) -> None:
    assert jf.status(AddAdmin(node_id=0x10, friendly_name="a", vendor_id=0xFFF2, icac=ICAC)) is SUCCESS
    assert jf.status(AddAdmin(node_id=0x10, friendly_name="a", vendor_id=0xFFF2, icac=ICAC)) is CONSTRAINT
    assert jf.status(AddAdmin(node_id=ANCHOR_NODE, friendly_name="a", vendor_id=1, icac=b"")) is CONSTRAINT
    assert jf.status(AddAdmin(node_id=0, friendly_name="a", vendor_id=1, icac=b"")) is CONSTRAINT
    assert jf.status(UpdateAdmin(node_id=0x10, friendly_name=NULL, icac=b"new")) is SUCCESS
    assert jf.store.admin(0x10).friendly_name == "a" and jf.store.admin(0x10).icac == b"new"  # type: ignore[union-attr]
    assert jf.status(UpdateAdmin(node_id=0x11, friendly_name="x", icac=NULL)) is NOT_FOUND  # reference: FAILURE
    assert jf.status(UpdateAdmin(node_id=NULL, friendly_name="x", icac=NULL)) is CONSTRAINT
    assert jf.status(RemoveAdmin(node_id=0x11)) is NOT_FOUND  # reference: FAILURE
    assert jf.status(RemoveAdmin(node_id=ANCHOR_NODE)) is CONSTRAINT  # the anchor stays at index 0
    assert jf.status(RemoveAdmin(node_id=0x10)) is SUCCESS


def test_admin_list_keeps_the_anchor_at_index_0_and_holds_32(jf: Jfds) -> None:
    for node_id in range(0x10, 0x10 + s.MAX_ADMINS - 1):
        jf.invoke(AddAdmin(node_id=node_id, friendly_name="a", vendor_id=1, icac=b""))
    assert jf.status(AddAdmin(node_id=0x99, friendly_name="a", vendor_id=1, icac=b"")) is Status.RESOURCE_EXHAUSTED
    jf.invoke(RemoveAdmin(node_id=0x10))
    jf.invoke(AddAdmin(node_id=0x99, friendly_name="a", vendor_id=1, icac=b""))
    admins = [a.node_id for a in jf.read(s.ADMIN_LIST)]
    assert admins[0] == ANCHOR_NODE and admins[-1] == 0x99 and len(admins) == s.MAX_ADMINS


# ---------------------------------------------------------------------------------------------------- nodes


def test_node_commands(jf: Jfds) -> None:
    assert jf.status(AddPendingNode(node_id=NODE, friendly_name="n")) is SUCCESS
    assert jf.status(AddPendingNode(node_id=NODE, friendly_name="n")) is CONSTRAINT
    assert jf.status(AddPendingNode(node_id=0xFFFF_FFFD_0001_0001, friendly_name="cat")) is CONSTRAINT
    assert jf.status(UpdateNode(node_id=NODE, friendly_name="m")) is SUCCESS
    assert jf.status(UpdateNode(node_id=OTHER, friendly_name="m")) is CONSTRAINT
    assert jf.status(RefreshNode(node_id=NODE)) is SUCCESS
    assert jf.status(RefreshNode(node_id=NODE)) is SUCCESS  # again while "refreshing": no BUSY
    assert jf.status(RefreshNode(node_id=OTHER)) is CONSTRAINT  # as every command naming an unknown node
    assert jf.status(RemoveNode(node_id=OTHER)) is CONSTRAINT
    assert jf.status(RemoveNode(node_id=NODE)) is SUCCESS
    assert jf.read(s.NODE_LIST) == []


def test_refresh_node_marks_the_node_pending_and_tells_the_reconciler(peers: Jfds) -> None:
    jf = peers
    ref = EntryRef.node(NODE)
    jf.store.set_status(ref, COMMITTED)
    before = jf.store.entry(ref).status.update_timestamp  # type: ignore[union-attr]
    jf.clock.tick(30)
    jf.changes.clear()
    jf.invoke(RefreshNode(node_id=NODE))
    entry = jf.store.entry(ref)
    assert entry is not None and entry.state is PENDING and entry.status.update_timestamp == before + 30
    assert jf.changes[-1].refresh == (NODE,)


def test_node_list_is_limited_to_1024(jf: Jfds) -> None:
    with jf.store.transaction():
        for node_id in range(1, s.MAX_NODES + 1):
            jf.store.add_node(0x1000 + node_id, "n")
    assert jf.status(AddPendingNode(node_id=0x9000, friendly_name="n")) is Status.RESOURCE_EXHAUSTED


def test_update_node_keeps_the_status_but_stamps_the_time(peers: Jfds) -> None:
    jf = peers
    jf.store.set_status(EntryRef.node(NODE), COMMITTED)
    jf.clock.tick(100)
    jf.invoke(UpdateNode(node_id=NODE, friendly_name="renamed"))
    node = jf.store.node(NODE)
    assert node is not None and node.commissioning_status_entry.state is COMMITTED
    assert node.commissioning_status_entry.update_timestamp == int(jf.clock.wall()) - 946_684_800


# ---------------------------------------------------------------------------------------------------- endpoints


def test_update_endpoint_for_node(peers: Jfds) -> None:
    jf = peers
    assert jf.status(UpdateEndpointForNode(endpoint_id=1, node_id=NODE, friendly_name="lamp")) is SUCCESS
    assert jf.status(UpdateEndpointForNode(endpoint_id=9, node_id=NODE, friendly_name="x")) is CONSTRAINT
    assert jf.status(UpdateEndpointForNode(endpoint_id=1, node_id=0x77, friendly_name="x")) is CONSTRAINT
    entry = next(e for e in jf.read(s.NODE_ENDPOINT_LIST) if (e.node_id, e.endpoint_id) == (NODE, 1))
    assert entry.friendly_name == "lamp" and entry.status_entry.state is COMMITTED  # adopted by the refresh


def test_group_on_endpoint_commands(peers: Jfds) -> None:
    jf = peers
    add = AddGroupIDToEndpointForNode
    assert jf.status(add(node_id=0x77, endpoint_id=1, group_id=G1)) is CONSTRAINT
    assert jf.status(add(node_id=NODE, endpoint_id=9, group_id=G1)) is CONSTRAINT
    assert jf.status(add(node_id=NODE, endpoint_id=1, group_id=0x0999)) is CONSTRAINT
    assert jf.status(add(node_id=NODE, endpoint_id=1, group_id=G1)) is SUCCESS
    assert jf.status(add(node_id=NODE, endpoint_id=1, group_id=G1)) is SUCCESS  # already there: no-op
    remove = RemoveGroupIDFromEndpointForNode
    assert jf.status(remove(node_id=0x77, endpoint_id=1, group_id=G1)) is CONSTRAINT
    assert jf.status(remove(node_id=NODE, endpoint_id=9, group_id=G1)) is CONSTRAINT
    assert jf.status(remove(node_id=NODE, endpoint_id=2, group_id=G1)) is NOT_FOUND
    assert jf.status(remove(node_id=NODE, endpoint_id=1, group_id=G1)) is SUCCESS
    assert jf.status(remove(node_id=NODE, endpoint_id=1, group_id=G1)) is SUCCESS  # already being removed


def test_add_group_to_endpoint_needs_a_group_key_set_that_exists(peers: Jfds) -> None:
    jf = peers
    jf.invoke(add_group(0x0300, NULL))
    jf.invoke(add_group(0x0301, 0x0777))
    add = AddGroupIDToEndpointForNode
    assert jf.status(add(node_id=NODE, endpoint_id=1, group_id=0x0300)) is CONSTRAINT  # no key set to map to
    assert jf.status(add(node_id=NODE, endpoint_id=1, group_id=0x0301)) is CONSTRAINT  # key set unknown


def test_adding_a_group_to_an_endpoint_adds_the_node_key_set_first(peers: Jfds) -> None:
    jf = peers
    jf.changes.clear()
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    assert jf.changes[-1].intent == (EntryRef.node_key_set(NODE, K1), EntryRef.endpoint_group(NODE, 1, G1))
    pending = [e.ref for e in jf.store.pending_entries(NODE) if e.ref.kind is not EntryKind.NODE]
    assert pending == [EntryRef.node_key_set(NODE, K1), EntryRef.endpoint_group(NODE, 1, G1)]
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=2, group_id=G2))  # same key set: one entry
    assert [e.group_key_set_id for e in jf.read(s.NODE_KEY_SET_LIST)] == [K1]


def test_removing_the_last_group_of_a_key_set_removes_the_node_key_set(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=2, group_id=G1))
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=2, group_id=G2))
    key_ref = EntryRef.node_key_set(NODE, K1)
    jf.invoke(RemoveGroupIDFromEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    jf.invoke(RemoveGroupIDFromEndpointForNode(node_id=NODE, endpoint_id=2, group_id=G1))
    assert state(jf, key_ref) is PENDING  # G2 still uses K1
    jf.changes.clear()
    jf.invoke(RemoveGroupIDFromEndpointForNode(node_id=NODE, endpoint_id=2, group_id=G2))
    assert state(jf, key_ref) is DELETE_PENDING
    assert jf.changes[-1].intent == (EntryRef.endpoint_group(NODE, 2, G2), key_ref)  # group before its key set


def test_re_adding_a_group_being_removed_cancels_both_removals(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    jf.invoke(RemoveGroupIDFromEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    group_ref, key_ref = EntryRef.endpoint_group(NODE, 1, G1), EntryRef.node_key_set(NODE, K1)
    jf.store.set_status(group_ref, COMMIT_FAILED, Status.TIMEOUT)
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=G1))
    for ref in (group_ref, key_ref):
        entry = jf.store.entry(ref)
        assert entry is not None and entry.state is PENDING and not entry.removal
        assert entry.status.failure_code == 0


# ---------------------------------------------------------------------------------------------------- bindings


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        (BindingTarget(node=OTHER, endpoint=1), SUCCESS),
        (BindingTarget(node=OTHER, endpoint=1, cluster=6), SUCCESS),
        (BindingTarget(group=G1), SUCCESS),
        (BindingTarget(group=G1, cluster=6), SUCCESS),
        (BindingTarget(endpoint=1), CONSTRAINT),  # Endpoint needs Node
        (BindingTarget(node=OTHER), CONSTRAINT),  # Node needs Endpoint
        (BindingTarget(group=G1, endpoint=1, node=OTHER), CONSTRAINT),  # Group only without Endpoint
        (BindingTarget(group=G1, node=OTHER), CONSTRAINT),
        (BindingTarget(), CONSTRAINT),  # Endpoint required without Group
        (BindingTarget(cluster=6), CONSTRAINT),
        (BindingTarget(node=0, endpoint=1), CONSTRAINT),  # not an operational node id
        (BindingTarget(group=G1, cluster=0xFFFF_0000), CONSTRAINT),  # not a cluster id
    ],
)
def test_binding_target_presence_rules(peers: Jfds, binding: BindingTarget, expected: Status) -> None:
    assert peers.status(AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=binding)) is expected


def test_binding_group_0_fails_to_decode(peers: Jfds) -> None:
    fields = AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=BindingTarget(group=1)).to_tlv()
    fields[2][2] = 0
    assert peers.invoke_tlv(0x10, fields) is CONSTRAINT


def test_binding_commands(peers: Jfds) -> None:
    jf = peers
    binding = BindingTarget(node=OTHER, endpoint=1)
    assert jf.status(AddBindingToEndpointForNode(node_id=0x77, endpoint_id=1, binding=binding)) is CONSTRAINT
    assert jf.status(AddBindingToEndpointForNode(node_id=NODE, endpoint_id=9, binding=binding)) is CONSTRAINT
    assert jf.status(AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=binding)) is SUCCESS
    assert jf.status(AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=binding)) is SUCCESS
    assert len(jf.read(s.ENDPOINT_BINDING_LIST)) == 1  # identical binding: no second entry
    list_id = jf.read(s.ENDPOINT_BINDING_LIST)[0].list_id
    remove = RemoveBindingFromEndpointForNode
    assert jf.status(remove(list_id=list_id, endpoint_id=1, node_id=0x77)) is CONSTRAINT
    assert jf.status(remove(list_id=list_id, endpoint_id=9, node_id=NODE)) is CONSTRAINT
    assert jf.status(remove(list_id=list_id, endpoint_id=2, node_id=NODE)) is NOT_FOUND  # not on that endpoint
    assert jf.status(remove(list_id=0x7777, endpoint_id=1, node_id=NODE)) is NOT_FOUND  # reference: FAILURE
    assert jf.status(remove(list_id=list_id, endpoint_id=1, node_id=NODE)) is SUCCESS
    assert jf.read(s.ENDPOINT_BINDING_LIST)[0].status_entry.state is DELETE_PENDING


# ---------------------------------------------------------------------------------------------------- ACLs


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (ace(ADMINISTER, CASE, [NODE, cat_subject(0xFFFF, 1)]), SUCCESS),
        (ace(VIEW, CASE, None, None), SUCCESS),
        (ace(OPERATE, GROUP, [G1]), SUCCESS),
        (ace(MANAGE, CASE, [NODE], [target(endpoint=0)]), SUCCESS),
        (ace(MANAGE, CASE, [NODE], [target(cluster=6, device_type=0x0100)]), SUCCESS),
        (ace(VIEW, 1, [NODE]), CONSTRAINT),  # PASE entries are implicit only
        (ace(ADMINISTER, GROUP, [G1]), CONSTRAINT),  # Group cannot grant Administer
        (ace(VIEW, CASE, [0]), CONSTRAINT),
        (ace(VIEW, CASE, [cat_subject(5, 0)]), CONSTRAINT),  # CAT version 0
        (ace(VIEW, GROUP, [0x1_0000]), CONSTRAINT),
        (ace(VIEW, CASE, [NODE], [target()]), CONSTRAINT),  # an empty target
        (ace(VIEW, CASE, [NODE], [target(endpoint=1, device_type=0x0100)]), CONSTRAINT),
        (ace(VIEW, CASE, [NODE], [target(cluster=0xFFFF_0000)]), CONSTRAINT),
    ],
)
def test_acl_entry_rules(peers: Jfds, entry: Any, expected: Status) -> None:
    assert peers.status(AddACLToNode(node_id=NODE, acl_entry=entry)) is expected


def test_acl_commands(peers: Jfds) -> None:
    jf = peers
    entry = ace(MANAGE, CASE, [NODE, 7], [target(endpoint=0)])
    assert jf.status(AddACLToNode(node_id=0x77, acl_entry=entry)) is CONSTRAINT
    assert jf.status(AddACLToNode(node_id=NODE, acl_entry=entry)) is SUCCESS
    same = ace(MANAGE, CASE, [7, NODE], [target(endpoint=0)])  # equal by value (subjects as a multiset)
    assert jf.status(AddACLToNode(node_id=NODE, acl_entry=same)) is SUCCESS
    assert len(jf.read(s.NODE_ACL_LIST)) == 1
    assert jf.status(AddACLToNode(node_id=OTHER, acl_entry=entry)) is SUCCESS  # per node
    (first, second) = jf.read(s.NODE_ACL_LIST)
    assert first.list_id != second.list_id
    assert jf.status(RemoveACLFromNode(list_id=first.list_id, node_id=0x77)) is CONSTRAINT
    assert jf.status(RemoveACLFromNode(list_id=second.list_id, node_id=NODE)) is NOT_FOUND  # OTHER's ListID
    assert jf.status(RemoveACLFromNode(list_id=first.list_id, node_id=NODE)) is SUCCESS
    assert jf.status(RemoveACLFromNode(list_id=first.list_id, node_id=NODE)) is SUCCESS  # already being removed


def test_null_and_empty_acl_lists_are_equal(peers: Jfds) -> None:
    jf = peers
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, None, None)))
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [], [])))
    assert len(jf.read(s.NODE_ACL_LIST)) == 1


def test_list_ids_are_unique_while_live_and_the_lowest_free_is_reused(peers: Jfds) -> None:
    jf = peers
    seen = []
    for i in range(5):
        jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [0x100 + i])))
        jf.invoke(AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=BindingTarget(group=0x10 + i)))
    seen = [e.list_id for e in jf.read(s.NODE_ACL_LIST)] + [e.list_id for e in jf.read(s.ENDPOINT_BINDING_LIST)]
    assert len(set(seen)) == 10
    for entry in jf.store.entries(EntryKind.ACL) + jf.store.entries(EntryKind.BINDING):
        jf.store.request_removal(entry.ref)
        assert jf.store.confirm_removed(entry.ref)
    assert jf.read(s.NODE_ACL_LIST) == [] and jf.read(s.ENDPOINT_BINDING_LIST) == []
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [0x100])))  # the same value again
    jf.invoke(AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=BindingTarget(group=0x10)))
    fresh = [jf.read(s.NODE_ACL_LIST)[0].list_id, jf.read(s.ENDPOINT_BINDING_LIST)[0].list_id]
    assert fresh == sorted(seen)[:2]  # the lowest free ids, one space for both lists


def test_per_node_lists_hold_8192_entries_in_total(peers: Jfds) -> None:
    jf = peers
    with jf.store.transaction():
        for i in range(s.MAX_PER_NODE_ENTRIES):
            jf.store.add_acl(NODE if i % 2 else OTHER, ace(VIEW, CASE, [0x1000 + i]))
    full = AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [0x9999]))
    assert jf.status(full) is Status.RESOURCE_EXHAUSTED
    removed = jf.store.entries(EntryKind.ACL, node_id=NODE)[0]
    jf.invoke(RemoveACLFromNode(list_id=removed.ref.key, node_id=NODE))  # type: ignore[arg-type]
    assert jf.status(full) is Status.RESOURCE_EXHAUSTED  # a DeletePending entry still counts
    jf.store.confirm_removed(removed.ref)
    assert jf.status(full) is SUCCESS
