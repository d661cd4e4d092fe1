"""The JFDS cluster server: attributes through the IM engine (chunked 8192-entry lists), change reports for
every attribute, atomicity of a command (a failure or a crash mid-command leaves nothing), durability."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
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
    UpdateEndpointForNode,
)
from jfds_device.codec import tlv
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL
from jfds_device.datamodel import acl
from jfds_device.datamodel.acl import AclEntry
from jfds_device.datamodel.cluster import snake_case
from jfds_device.datastore.jfds_records import EntryKind, EntryRef
from jfds_device.errors import ActionError
from jfds_device.im.messages import AttributePathIB, ReportData
from jfds_device.im.provider import RequestContext, Status, SubjectDescriptor
from jfds_device.im.read import AttributeReader, build_report
from tests.clusters.jfds_harness import ANCHOR_FABRIC, CASE, TH_NODE, VIEW, Jfds, ace, key_set

NODE = 2
ALL_ATTRIBUTES = [a.id for a in s.CLUSTER.attributes]


@pytest.fixture
def jf(tmp_path: Path) -> Jfds:
    return Jfds(tmp_path / "node.sqlite")


def populate(jf: Jfds) -> None:
    jf.invoke(AddKeySet(group_key_set=key_set(0x42)))
    jf.invoke(
        AddGroup(
            group_id=0x0101,
            friendly_name="g",
            group_key_set_id=0x42,
            group_cat=NULL,
            group_cat_version=NULL,
            group_permission=VIEW,
        )
    )
    jf.invoke(AddPendingNode(node_id=NODE, friendly_name="n"))
    jf.store.sync_endpoints(NODE, [0, 1])
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=0x0101))
    jf.invoke(AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=BindingTarget(group=0x0101)))
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [NODE])))


# ---------------------------------------------------------------------------------------------------- reads


def test_all_14_attributes_need_administer_and_match_the_python_view(jf: Jfds) -> None:
    populate(jf)
    assert all(a.read_privilege.name == "ADMINISTER" and not a.writable for a in s.CLUSTER.attributes)
    for attribute in ALL_ATTRIBUTES:
        name = s.CLUSTER.attribute_by_id[attribute].name
        reader = getattr(jf.server, f"read_{snake_case(name)}")
        assert jf.read(attribute) == reader(None), name  # the cached TLV path equals the schema path


def test_reads_of_the_whole_cluster_through_the_im_engine(jf: Jfds) -> None:
    populate(jf)
    reader = AttributeReader(jf.node, jf.ctx)
    payloads = build_report(
        reader, [AttributePathIB(endpoint=1, cluster=s.CLUSTER_ID)], [], 1024, None, suppress_last=True
    )
    reports = [r for p in payloads for r in ReportData.decode(p).attribute_reports]
    got = {r.attribute_data.path.attribute for r in reports if r.attribute_data is not None}
    assert set(ALL_ATTRIBUTES) <= got
    assert all(r.attribute_status is None for r in reports)


def _report(jf: Jfds, subject: SubjectDescriptor, path: AttributePathIB) -> list[Any]:
    reader = AttributeReader(jf.node, RequestContext(subject))
    payloads = build_report(reader, [path], [], 1024, None, suppress_last=True)
    return [r for p in payloads for r in ReportData.decode(p).attribute_reports or []]


class _EveryoneAdministers:
    """An ACL that grants every outsider below Administer, so only the datastore's own rule can refuse them."""

    def acl_entries(self) -> list[AclEntry]:
        return [
            AclEntry(ANCHOR_FABRIC, Privilege.ADMINISTER, AuthMode.CASE, (TH_NODE,)),
            AclEntry(ANCHOR_FABRIC + 1, Privilege.ADMINISTER, AuthMode.CASE, (TH_NODE,)),
            AclEntry(ANCHOR_FABRIC, Privilege.ADMINISTER, AuthMode.GROUP, (0x0101,)),
        ]


OUTSIDERS = {
    "another fabric's admin": SubjectDescriptor(AuthMode.CASE, TH_NODE, ANCHOR_FABRIC + 1, cats=(0xFFFF_0001,)),
    "a PASE commissioner": SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True),
    "a PASE session bound to the anchor fabric": SubjectDescriptor(
        AuthMode.PASE, 0, ANCHOR_FABRIC, is_commissioning=True
    ),
    "a group": SubjectDescriptor(AuthMode.GROUP, 0x0101, ANCHOR_FABRIC),
}


@pytest.mark.parametrize("who", OUTSIDERS)
def test_the_datastore_is_served_only_to_the_anchor_fabric(jf: Jfds, who: str) -> None:
    """Denied like the ACL denies: UNSUPPORTED_ACCESS on a concrete path, nothing on a wildcard path."""
    populate(jf)
    jf.node.set_acl_source(_EveryoneAdministers())
    subject = OUTSIDERS[who]
    assert acl.check(_EveryoneAdministers().acl_entries(), subject, 1, s.CLUSTER_ID, Privilege.ADMINISTER)
    for attribute in ALL_ATTRIBUTES:
        [report] = _report(jf, subject, AttributePathIB(endpoint=1, cluster=s.CLUSTER_ID, attribute=attribute))
        assert report.attribute_data is None and report.attribute_status is not None
        assert report.attribute_status.status.status == Status.UNSUPPORTED_ACCESS
    everything = _report(jf, subject, AttributePathIB())
    assert everything, "the rest of the node stays readable"
    assert all(r.attribute_data.path.cluster != s.CLUSTER_ID for r in everything if r.attribute_data is not None)
    assert all(r.attribute_status is None for r in everything)
    assert _report(jf, subject, AttributePathIB(endpoint=1, cluster=s.CLUSTER_ID)) == []
    for privilege in Privilege:
        assert not jf.node.allowed(subject, 1, s.CLUSTER_ID, privilege)
    assert jf.node.allowed(jf.ctx.subject, 1, s.CLUSTER_ID, Privilege.ADMINISTER)


def test_before_the_bootstrap_nobody_is_served(tmp_path: Path) -> None:
    jf = Jfds(tmp_path / "db.sqlite", bootstrap=False)
    jf.server._anchor_fabric = lambda: None  # what AnchorRole reports before the first committed fabric
    try:
        assert not jf.node.allowed(jf.ctx.subject, 1, s.CLUSTER_ID, Privilege.VIEW)
    finally:
        jf.close()


def _read_chunked(jf: Jfds, attribute: int, max_payload: int = 1200) -> tuple[list[Any], int]:
    reader = AttributeReader(jf.node, jf.ctx)
    path = AttributePathIB(endpoint=1, cluster=s.CLUSTER_ID, attribute=attribute)
    payloads = build_report(reader, [path], [], max_payload, None, suppress_last=True)
    items: list[Any] = []
    for payload in payloads:
        for report in ReportData.decode(payload).attribute_reports:
            data = report.attribute_data
            assert data is not None
            if data.path.list_index is NULL:
                items.append(data.data)  # an appended item (Core spec 8.4.3.3 chunked lists)
            else:
                items = list(data.data)
    return items, len(payloads)


def test_8192_entry_acl_list_builds_and_reads_through_im_chunking(jf: Jfds, capsys: pytest.CaptureFixture[str]) -> None:
    jf.invoke(AddPendingNode(node_id=NODE, friendly_name="n"))
    started = time.perf_counter()
    with jf.store.transaction():
        for i in range(s.MAX_PER_NODE_ENTRIES):
            jf.store.add_acl(NODE, ace(VIEW, CASE, [0x1000 + i, 0xFFFF_FFFD_0001_0001]))
    built = time.perf_counter() - started
    started = time.perf_counter()
    items, messages = _read_chunked(jf, s.NODE_ACL_LIST)
    first_read = time.perf_counter() - started
    started = time.perf_counter()
    again, _ = _read_chunked(jf, s.NODE_ACL_LIST)
    cached_read = time.perf_counter() - started
    jf.store.set_status(jf.store.entries(EntryKind.ACL)[0].ref, DatastoreState.COMMITTED)  # drops the cache
    started = time.perf_counter()
    jf.read_raw(s.NODE_ACL_LIST)
    provider_build = time.perf_counter() - started
    started = time.perf_counter()
    jf.read_raw(s.NODE_ACL_LIST)
    provider_cached = time.perf_counter() - started
    assert len(items) == s.MAX_PER_NODE_ENTRIES and messages > 100
    entries = [s.ACLEntry.from_tlv(item) for item in items]
    assert [e.list_id for e in entries] == sorted({e.list_id for e in entries})
    assert entries[10].acl_entry.subjects == [0x1000 + 10, 0xFFFF_FFFD_0001_0001]
    assert again == items
    assert items[0] != jf.read(s.NODE_ACL_LIST)[0].to_tlv()  # the status change is visible
    with capsys.disabled():
        print(
            f"\n[jfds] 8192 NodeACLList entries: build {built * 1000:.0f} ms, first chunked read "
            f"{first_read * 1000:.0f} ms ({messages} messages), cached read {cached_read * 1000:.0f} ms; "
            f"provider value: built {provider_build * 1000:.0f} ms, cached {provider_cached * 1000:.2f} ms"
        )


def test_cache_is_dropped_on_change(jf: Jfds) -> None:
    populate(jf)
    assert len(jf.read(s.NODE_ACL_LIST)) == 1
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [3])))
    assert len(jf.read(s.NODE_ACL_LIST)) == 2
    jf.store.set_status(jf.store.entries(EntryKind.ACL)[0].ref, DatastoreState.COMMITTED)
    assert jf.read(s.NODE_ACL_LIST)[0].status_entry.state is DatastoreState.COMMITTED


# ---------------------------------------------------------------------------------------------------- reports


def test_every_attribute_reports_its_changes(tmp_path: Path) -> None:
    jf = Jfds(tmp_path / "n.sqlite", bootstrap=False)
    jf.reported.clear()
    jf.bootstrap()
    assert jf.reported_attributes() == {
        s.ANCHOR_ROOT_CA,
        s.ANCHOR_NODE_ID,
        s.ANCHOR_VENDOR_ID,
        s.FRIENDLY_NAME_ATTRIBUTE,
        s.STATUS,
        s.GROUP_KEY_SET_LIST,
        s.GROUP_LIST,
        s.ADMIN_LIST,
    }
    steps: list[tuple[Any, set[int]]] = [
        (AddKeySet(group_key_set=key_set(0x42)), {s.GROUP_KEY_SET_LIST}),
        (
            AddGroup(
                group_id=0x0101,
                friendly_name="g",
                group_key_set_id=0x42,
                group_cat=NULL,
                group_cat_version=NULL,
                group_permission=VIEW,
            ),
            {s.GROUP_LIST},
        ),
        (AddAdmin(node_id=0x10, friendly_name="a", vendor_id=1, icac=b""), {s.ADMIN_LIST}),
        (AddPendingNode(node_id=NODE, friendly_name="n"), {s.NODE_LIST}),
    ]
    for request, expected in steps:
        jf.invoke(request)
        assert jf.reported_attributes() == expected, request
    jf.store.sync_endpoints(NODE, [0, 1])
    assert jf.reported_attributes() == {s.NODE_ENDPOINT_LIST}
    more: list[tuple[Any, set[int]]] = [
        (UpdateEndpointForNode(endpoint_id=1, node_id=NODE, friendly_name="e"), {s.NODE_ENDPOINT_LIST}),
        (
            AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=0x0101),
            {s.ENDPOINT_GROUP_ID_LIST, s.NODE_KEY_SET_LIST},
        ),
        (
            AddBindingToEndpointForNode(node_id=NODE, endpoint_id=1, binding=BindingTarget(group=1)),
            {s.ENDPOINT_BINDING_LIST},
        ),
        (AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [NODE])), {s.NODE_ACL_LIST}),
    ]
    for request, expected in more:
        jf.invoke(request)
        assert jf.reported_attributes() == expected, request
    jf.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [NODE])))  # no change: no report
    assert jf.reported_attributes() == set()
    jf.store.set_status(EntryRef.node(NODE), DatastoreState.COMMITTED)  # the reconciler's outcomes report too
    assert jf.reported_attributes() == {s.NODE_LIST}
    jf.store.set_datastore_status(DatastoreState.PENDING)
    assert jf.reported_attributes() == {s.STATUS}
    jf.store.wipe()
    assert jf.reported_attributes() == set(ALL_ATTRIBUTES)


def test_a_change_bumps_the_data_version_once_and_a_failure_changes_nothing(jf: Jfds) -> None:
    before = jf.data_version()
    jf.invoke(AddKeySet(group_key_set=key_set(0x42)))
    assert jf.data_version() == (before + 1) & 0xFFFF_FFFF
    jf.reported.clear()
    version = jf.data_version()
    assert jf.status(AddKeySet(group_key_set=key_set(0x42))) is Status.CONSTRAINT_ERROR
    assert jf.data_version() == version and jf.reported_attributes() == set()


# ---------------------------------------------------------------------------------------------------- atomicity


def test_a_failure_mid_command_leaves_nothing_half_applied(jf: Jfds, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(jf)
    jf.invoke(
        AddGroup(
            group_id=0x0102,
            friendly_name="g2",
            group_key_set_id=0x43,
            group_cat=NULL,
            group_cat_version=NULL,
            group_permission=VIEW,
        )
    )
    jf.invoke(AddKeySet(group_key_set=key_set(0x43)))
    version, changes = jf.data_version(), len(jf.changes)
    jf.reported.clear()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("power cut")  # after the command added the node's key set entry

    monkeypatch.setattr(jf.store, "add_endpoint_group", crash)
    with pytest.raises(RuntimeError):
        jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=0x0102))
    assert jf.store.entry(EntryRef.node_key_set(NODE, 0x43)) is None
    assert jf.data_version() == version and jf.reported_attributes() == set() and len(jf.changes) == changes
    monkeypatch.undo()
    jf.invoke(AddGroupIDToEndpointForNode(node_id=NODE, endpoint_id=1, group_id=0x0102))
    assert jf.store.entry(EntryRef.node_key_set(NODE, 0x43)) is not None


_CRASHER = """
import os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from clusters.joint_fabric_datastore.schema import AddGroupIDToEndpointForNode
from tests.clusters.jfds_harness import Jfds
jf = Jfds(Path({path!r}), bootstrap=False)
real = jf.store.add_endpoint_group
def die(*args, **kwargs):
    os._exit(17)  # the process dies after the key set entry was written, inside the open transaction
jf.store.add_endpoint_group = die
jf.invoke(AddGroupIDToEndpointForNode(node_id=2, endpoint_id=1, group_id=0x0102))
"""


def test_a_process_crash_mid_command_leaves_exactly_the_committed_commands(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    jf = Jfds(path)
    populate(jf)
    jf.invoke(AddKeySet(group_key_set=key_set(0x43)))
    jf.invoke(
        AddGroup(
            group_id=0x0102,
            friendly_name="g2",
            group_key_set_id=0x43,
            group_cat=NULL,
            group_cat_version=NULL,
            group_permission=VIEW,
        )
    )
    before = {a: jf.read(a) for a in ALL_ATTRIBUTES}
    jf.close()
    root = str(Path(__file__).resolve().parents[2])
    code = textwrap.dedent(_CRASHER).format(root=root, path=str(path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 17, result.stderr
    reopened = Jfds(path, bootstrap=False)
    after = {a: reopened.read(a) for a in ALL_ATTRIBUTES}
    assert after == before
    assert reopened.store.entry(EntryRef.node_key_set(NODE, 0x43)) is None


def test_reopening_shows_exactly_the_committed_commands(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    jf = Jfds(path)
    populate(jf)
    jf.store.set_status(EntryRef.node(NODE), DatastoreState.COMMITTED)
    with pytest.raises(ActionError):
        jf.invoke(AddPendingNode(node_id=NODE, friendly_name="again"))
    before = {a: jf.read(a) for a in ALL_ATTRIBUTES}
    revisions = [e.revision for e in jf.store.entries_for_node(NODE)]
    jf.close()
    reopened = Jfds(path, bootstrap=False)
    assert reopened.store.is_bootstrapped
    assert {a: reopened.read(a) for a in ALL_ATTRIBUTES} == before
    assert [e.revision for e in reopened.store.entries_for_node(NODE)] == revisions
    reopened.invoke(AddACLToNode(node_id=NODE, acl_entry=ace(VIEW, CASE, [7])))
    list_ids = [e.list_id for e in reopened.read(s.NODE_ACL_LIST)]
    assert list_ids[-1] > max([e.list_id for e in before[s.ENDPOINT_BINDING_LIST]] + list_ids[:-1])
    assert max(e.revision for e in reopened.store.entries_for_node(NODE)) > max(revisions)


def test_raw_list_items_are_tlv_raw(jf: Jfds) -> None:
    raw = jf.read_raw(s.GROUP_KEY_SET_LIST)
    assert all(isinstance(item, tlv.Raw) for item in raw)
