"""One ACL-entry rule set (``datamodel.acl.validate_acl_entry``): for any entry within a node's capacities,
AccessControl's write and the JFDS's AddACLToNode give the same answer (Core spec 9.10.5; README, JFDS deliberate
difference 5: the datastore refuses up front what a node would refuse)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clusters.access_control import schema as ac
from clusters.access_control.server import AccessControlServer, admin_entry
from clusters.joint_fabric_datastore.schema import AccessControlEntry, AccessControlTarget, AddACLToNode, AddPendingNode
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.acl import cat_subject
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.errors import ActionError
from jfds_device.im.provider import AttributePath, ListOperation, RequestContext, Status, SubjectDescriptor
from tests.clusters.jfds_harness import Jfds

ROOT = DeviceType(device_type=0x0016, revision=3)
ADMIN = 0x0000_0000_0001_B669
PEER_NODE = 0x0000_0000_0000_0002

SUBJECTS = st.sampled_from([
    0, 1, 0x55, 0xFFFF_FFEF_FFFF_FFFF, 0xFFFF_FFF0_0000_0000,  # operational node ids and just past them
    cat_subject(1, 1), cat_subject(1, 0), cat_subject(0xFFFF, 0xFFFF),  # CATs, version 0 invalid
    0x0101, 0xFFFF, 0x1_0000,  # group ids and just past them
])
CLUSTER_IDS = st.one_of(st.none(), st.sampled_from([0, 6, 0x7FFF, 0x8000, 0xFC00, 0xFFFE, 0xFFFF, 0xFFF1_0001,
                                                   0xFFFF_0006]))
ENDPOINTS = st.one_of(st.none(), st.sampled_from([0, 1, 0xFFFE, 0xFFFF]))
DEVICE_TYPES = st.one_of(st.none(), st.sampled_from([0x0016, 0xBFFF, 0xC000, 0xFFF1_0100, 0xFFFF_0016]))
TARGETS = st.tuples(CLUSTER_IDS, ENDPOINTS, DEVICE_TYPES)


def access_control_answer(privilege: int, auth_mode: int, subjects: list[int],
                          targets: list[tuple[Any, Any, Any]] | None) -> Status:
    node = Node()
    server = AccessControlServer()
    node.add_endpoint(0, [ROOT], [server])
    node.set_acl_source(server)
    entry = ac.AccessControlEntryStruct(
        privilege=Privilege(privilege), auth_mode=AuthMode(auth_mode), subjects=subjects,
        targets=NULL if targets is None else [
            ac.AccessControlTargetStruct(cluster=_null(c), endpoint=_null(e), device_type=_null(d))
            for c, e, d in targets])
    ctx = RequestContext(SubjectDescriptor(AuthMode.CASE, ADMIN, 1))
    value = [admin_entry(ADMIN).to_tlv(), entry.to_tlv()]
    try:
        node.write_attribute(ctx, AttributePath(0, ac.CLUSTER_ID, ac.ACL), value, ListOperation.REPLACE)
    except ActionError as exc:
        return Status(exc.status)
    return Status.SUCCESS


def datastore_answer(jf: Jfds, privilege: int, auth_mode: int, subjects: list[int],
                     targets: list[tuple[Any, Any, Any]] | None) -> Status:
    entry = AccessControlEntry(
        privilege=Privilege(privilege), auth_mode=AuthMode(auth_mode), subjects=subjects,
        targets=NULL if targets is None else [
            AccessControlTarget(cluster=_null(c), endpoint=_null(e), device_type=_null(d)) for c, e, d in targets])
    return jf.status(AddACLToNode(node_id=PEER_NODE, acl_entry=entry))


def _null(value: Any) -> Any:
    return NULL if value is None else value


@settings(max_examples=150, deadline=None)
@given(privilege=st.integers(1, 5), auth_mode=st.integers(1, 3),
       subjects=st.lists(SUBJECTS, max_size=ac.SUBJECTS_PER_ENTRY),
       targets=st.one_of(st.none(), st.lists(TARGETS, max_size=ac.TARGETS_PER_ENTRY)))
def test_access_control_and_the_datastore_agree_on_every_entry(privilege: int, auth_mode: int, subjects: list[int],
                                                               targets: list[tuple[Any, Any, Any]] | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        jf = Jfds(Path(tmp) / "node.sqlite")
        jf.invoke(AddPendingNode(node_id=PEER_NODE, friendly_name="light"))
        node_says = access_control_answer(privilege, auth_mode, subjects, targets)
        datastore_says = datastore_answer(jf, privilege, auth_mode, subjects, targets)
    assert node_says in (Status.SUCCESS, Status.CONSTRAINT_ERROR)
    assert datastore_says == node_says, (node_says, datastore_says)
