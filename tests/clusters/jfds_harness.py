"""Test harness for the Joint Fabric Datastore: a Node over a Database in tmp_path with the JFDS server on
endpoint 1, invoked and read through the provider API (what the IM engine calls), plus value builders."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clusters.descriptor.server import DescriptorServer
from clusters.joint_fabric_datastore import schema as s
from clusters.joint_fabric_datastore.schema import (
    AccessControlEntry,
    AccessControlEntryAuthMode,
    AccessControlEntryPrivilege,
    AccessControlTarget,
    GroupKeyMulticastPolicy,
    GroupKeySecurityPolicy,
    GroupKeySet,
)
from clusters.joint_fabric_datastore.server import JointFabricDatastoreServer
from jfds_device.clock import ManualClock
from jfds_device.codec import tlv
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL, Struct
from jfds_device.datamodel.acl import AclEntry
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import DatastoreChange
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError
from jfds_device.im.provider import AttributePath, CommandPath, RequestContext, Status, SubjectDescriptor

ROOT = DeviceType(device_type=0x0016, revision=3)
JF_ADMIN = DeviceType(device_type=0x0130, revision=1)
ENDPOINT = 1
ANCHOR_NODE = 1  # the DUT's node id in the cert tests
ANCHOR_VENDOR = 0xFFF1
TH_NODE = 101  # the TH controller (TC-JFDS harness)
ANCHOR_FABRIC = 1  # the local index of the fabric the harness bootstraps the datastore from
ROOT_CA = bytes.fromhex("1530010100") + b"rcac" * 40
ICAC = b"\x30\x82" + b"icac" * 50
IPK = bytes.fromhex("101112131415161718191a1b1c1d1e1f")
START_UNIX = 1_800_000_000.0  # 2027-01-15, so Matter-epoch seconds are 853_315_200
COMMAND_IDS = {c.request: c.id for c in s.CLUSTER.commands}

VIEW = AccessControlEntryPrivilege.VIEW
OPERATE = AccessControlEntryPrivilege.OPERATE
MANAGE = AccessControlEntryPrivilege.MANAGE
ADMINISTER = AccessControlEntryPrivilege.ADMINISTER
CASE = AccessControlEntryAuthMode.CASE
GROUP = AccessControlEntryAuthMode.GROUP


class _Acl:
    def acl_entries(self) -> list[AclEntry]:
        return [AclEntry(1, Privilege.ADMINISTER, AuthMode.CASE, (TH_NODE,))]


def ipk_key_set() -> GroupKeySet:
    return key_set(s.IPK_KEY_SET_ID, keys=(IPK,), starts=(0,))


def key_set(
    set_id: int,
    keys: Iterable[bytes] = (b"\xa0" * 16, b"\xa1" * 16, b"\xa2" * 16),
    starts: Iterable[int] = (2220000, 2220001, 2220002),
    policy: int = GroupKeySecurityPolicy.TRUST_FIRST,
) -> GroupKeySet:
    ks, ts = list(keys), list(starts)
    fields: dict[str, Any] = {}
    for i in range(3):
        fields[f"epoch_key{i}"] = ks[i] if i < len(ks) else NULL
        fields[f"epoch_start_time{i}"] = ts[i] if i < len(ts) else NULL
    return GroupKeySet(
        group_key_set_id=set_id,
        group_key_security_policy=policy,  # type: ignore[arg-type]
        group_key_multicast_policy=GroupKeyMulticastPolicy.PER_GROUP_ID,
        **fields,
    )


def ace(privilege: int = MANAGE, auth: int = CASE, subjects: Any = (2,), targets: Any = None) -> AccessControlEntry:
    return AccessControlEntry(
        privilege=privilege,  # type: ignore[arg-type]
        auth_mode=auth,  # type: ignore[arg-type]
        subjects=NULL if subjects is None else list(subjects),
        targets=NULL if targets is None else list(targets),
    )


def target(cluster: Any = NULL, endpoint: Any = NULL, device_type: Any = NULL) -> AccessControlTarget:
    return AccessControlTarget(cluster=cluster, endpoint=endpoint, device_type=device_type)


class Jfds:
    """A node with the JFDS server on endpoint 1 over ``path``; bootstrapped as the anchor unless told not to."""

    def __init__(self, path: Path, *, bootstrap: bool = True, clock: ManualClock | None = None) -> None:
        self.path = path
        self.clock = clock or ManualClock(wall_start=START_UNIX)
        self.db = Database(path, synchronous="NORMAL")
        self.store = JfdsStore(self.db, clock=self.clock.wall)
        self.node = Node(self.db)
        self.server = JointFabricDatastoreServer(self.store, anchor_fabric=lambda: ANCHOR_FABRIC)
        self.node.add_endpoint(0, [ROOT], [DescriptorServer(self.node)])  # as the root layout mounts them
        self.node.add_endpoint(ENDPOINT, [JF_ADMIN], [DescriptorServer(self.node), self.server])
        self.node.set_acl_source(_Acl())
        self.reported: list[AttributePath] = []
        self.changes: list[DatastoreChange] = []
        self.node.subscribe_changes(self)
        self.store.observe(self.changes.append)
        self.ctx = RequestContext(SubjectDescriptor(AuthMode.CASE, TH_NODE, ANCHOR_FABRIC, cats=(0xFFFF_0001,)))
        if bootstrap:
            self.bootstrap()

    def bootstrap(self) -> None:
        self.store.bootstrap_anchor(
            ROOT_CA, ANCHOR_NODE, ANCHOR_VENDOR, "jf-anchor", ipk_key_set(), self.clock.wall(), icac=ICAC
        )

    def close(self) -> None:
        self.server.close()
        self.db.close()

    # ChangeListener
    def attributes_changed(self, paths: Iterable[AttributePath]) -> None:
        self.reported.extend(paths)

    def reported_attributes(self) -> set[int]:
        found = {p.attribute for p in self.reported if p.endpoint == ENDPOINT and p.cluster == s.CLUSTER_ID}
        self.reported.clear()
        return found

    # ------------------------------------------------------------------------------------------ IM-facing

    def invoke(self, request: Struct) -> None:
        path = CommandPath(ENDPOINT, s.CLUSTER_ID, COMMAND_IDS[type(request)])
        assert self.node.invoke(self.ctx, path, request.to_tlv()) is None

    def invoke_tlv(self, command: int, fields: Any) -> Status:
        try:
            self.node.invoke(self.ctx, CommandPath(ENDPOINT, s.CLUSTER_ID, command), fields)
        except ActionError as exc:
            return exc.status
        return Status.SUCCESS

    def status(self, request: Struct) -> Status:
        """SUCCESS, or the status the command fails with."""
        try:
            self.invoke(request)
        except ActionError as exc:
            return exc.status
        return Status.SUCCESS

    def read_raw(self, attribute: int) -> Any:
        return self.node.read_attribute(self.ctx, AttributePath(ENDPOINT, s.CLUSTER_ID, attribute))

    def read(self, attribute: int) -> Any:
        """The attribute as the IM would send it, decoded back into schema values."""
        value = self.read_raw(attribute)
        attr = s.CLUSTER.attribute_by_id[attribute]
        if isinstance(value, list):
            value = [tlv.decode(item) if isinstance(item, tlv.Raw) else item for item in value]
        return attr.type.from_tlv(value)

    def data_version(self) -> int:
        return self.node.data_version(ENDPOINT, s.CLUSTER_ID)
