"""An in-memory peer node for the reconciler tests, checking what a matter.js 0.17.9 peer checks (its
AccessControlServer, GroupKeyManagementServer and GroupsServer in packages/node/src/behaviors/, and the model's
Binding conformance), and a datastore helper.

``FakePeer`` implements the reconciler's ``PeerClient`` (the ``InteractionClient`` calls it makes) and its
``PeerSessions`` (``connect``, ``session_failed``, reachability listeners: ``announce`` tells them a state); values
are plain TLV as the real client returns them. Rules modelled:

* ACL: CONSTRAINT_ERROR for PASE entries and Group+Administer; RESOURCE_EXHAUSTED above the subjects / targets /
  entries-per-fabric limits (4/4/4 by default, the admin entry included); a refused write changes nothing.
* Binding: per-entry presence rules (CONSTRAINT_ERROR); with ``partial_writes`` a refused write keeps the valid
  entries and drops the rest, or with ``"clear"`` leaves the list empty (the matter.js chunked-write clobber).
* GroupKeyManagement: KeySetWrite needs EpochKey0 (INVALID_COMMAND), a full table is RESOURCE_EXHAUSTED (the IPK
  counts), id 0 is *accepted* (so the tests can prove it is never sent); KeySetRemove(0) INVALID_COMMAND, unknown
  NOT_FOUND, and drops the set's map entries; GroupKeyMap duplicates CONSTRAINT_ERROR, over MaxGroupsPerFabric
  RESOURCE_EXHAUSTED.
* Groups: AddGroup answers UNSUPPORTED_ACCESS without a map entry; RemoveGroup of an unknown group NOT_FOUND.
* DataVersion per cluster instance (Core spec 7.10.3): reads report it; it moves on every successful write and on
  any change of the cluster's state however made (a test assigning ``peer.acl`` is another administrator); a
  write carrying a DataVersion other than the current one is DATA_VERSION_MISMATCH and changes nothing
  (matter.js ``AttributeWriteResponse``, the CHIP SDK's ``WriteAttribute``).

``log`` records every operation (a write as ``(name, endpoint, value, data_version)``); ``fail(op, error)`` queues
an injected failure (an ``IMStatusError``, an
``InteractionError``, ...) for the next operation named ``op``; ``hooks[op]`` runs (awaited) before ``op``.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from clusters.access_control import schema as ac
from clusters.binding import schema as binding
from clusters.descriptor import schema as descriptor
from clusters.group_key_management import schema as gkm
from clusters.groups import schema as groups
from clusters.joint_fabric_datastore import schema as jfds
from clusters.operational_credentials import schema as oc
from jfds_device.codec.schema import NULL
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import IMStatusError
from jfds_device.im.client_messages import InvokeResult, ReadResult
from jfds_device.im.provider import AttributePath, CommandPath, Status
from jfds_device.reconciler.ports import PeerId, PeerListener, PeerState, PeerUnreachableError

US = 0x0000_0000_0000_0001  # the reconciler's node id (the anchor, node 1 in the cert tests)
COMMISSIONER = 112233
FABRIC = 1
ADMINISTER, MANAGE, OPERATE, VIEW = 5, 4, 3, 1
CASE, GROUP, PASE = 2, 3, 1

Hook = Callable[[], Awaitable[None]]


def ace(privilege: int, subjects: list[int] | None, targets: list[dict[int, Any]] | None = None,
        auth: int = CASE) -> dict[int, Any]:
    return {1: privilege, 2: auth, 3: subjects, 4: targets, 0xFE: FABRIC}


def admin_entries() -> list[dict[int, Any]]:
    """The commissioner's admin entry and the one granting us (the reconciler) Administer."""
    return [ace(ADMINISTER, [COMMISSIONER]), ace(ADMINISTER, [US])]


class FakePeer:
    def __init__(self, node_id: int = 2, *, acl: list[dict[int, Any]] | None = None, acl_limit: int = 4,
                 subjects_limit: int = 4, targets_limit: int = 4, max_groups: int = 22, max_group_keys: int = 20,
                 endpoints: dict[int, list[int]] | None = None, partial_writes: bool | str = False) -> None:
        self.node_id = node_id
        self.acl = copy.deepcopy(acl if acl is not None else admin_entries())
        self.limits = {"acl": acl_limit, "subjects": subjects_limit, "targets": targets_limit,
                       "groups": max_groups, "keys": max_group_keys}
        # endpoint -> server clusters; endpoint 1 is a light with Groups and Binding (device.mjs)
        self.endpoints = endpoints or {0: [descriptor.CLUSTER_ID, ac.CLUSTER_ID, gkm.CLUSTER_ID],
                                       1: [descriptor.CLUSTER_ID, groups.CLUSTER_ID, binding.CLUSTER_ID, 0x0006]}
        self.bindings: dict[int, list[dict[int, Any]]] = {
            ep: [] for ep, clusters in self.endpoints.items() if binding.CLUSTER_ID in clusters}
        self.key_sets: dict[int, dict[int, Any]] = {0: {0: 0, 1: 0, 2: None, 3: 1}}
        self.group_map: list[dict[int, Any]] = []
        self.memberships: dict[int, dict[int, str]] = {
            ep: {} for ep, clusters in self.endpoints.items() if groups.CLUSTER_ID in clusters}
        self.partial_writes = partial_writes
        self.reachable = True
        self.session = object()
        self.connects = 0
        self.contacted: list[int] = []  # node ids passed to connect (the fake does not model session reuse)
        self.failed_sessions: list[PeerId] = []  # session_failed calls
        self.listeners: list[PeerListener] = []
        self.log: list[tuple[Any, ...]] = []
        self.failures: dict[str, list[Exception]] = {}
        self.hooks: dict[str, Hook] = {}
        self.versions: dict[tuple[int, int], int] = {}
        self._seen: dict[tuple[int, int], str] = {}  # the state each version was given for

    # --- test controls -----------------------------------------------------------------------------------

    def fail(self, op: str, error: Exception) -> None:
        self.failures.setdefault(op, []).append(error)

    def ops(self, *names: str) -> list[tuple[Any, ...]]:
        return [entry for entry in self.log if not names or entry[0] in names]

    async def _enter(self, op: str) -> None:
        hook = self.hooks.pop(op, None)
        if hook is not None:
            await hook()
        queued = self.failures.get(op)
        if queued:
            raise queued.pop(0)

    # --- DataVersion -------------------------------------------------------------------------------------

    def _state(self, endpoint: int, cluster: int) -> str:
        if cluster == ac.CLUSTER_ID:
            return repr(self.acl)
        if cluster == binding.CLUSTER_ID:
            return repr(self.bindings.get(endpoint))
        if cluster == gkm.CLUSTER_ID:
            return repr((self.group_map, self._group_table()))
        return ""

    def version(self, endpoint: int, cluster: int) -> int:
        """The cluster's DataVersion now: moved once for every change since it was last asked for."""
        key, state = (endpoint, cluster), self._state(endpoint, cluster)
        if key not in self.versions:
            self.versions[key] = 0x5000 + 0x100 * endpoint
        elif self._seen.get(key) != state:
            self.versions[key] = (self.versions[key] + 1) & 0xFFFF_FFFF
        self._seen[key] = state
        return self.versions[key]

    def bump(self, endpoint: int, cluster: int) -> None:
        """A successful write moves the version even when the value did not change."""
        self.version(endpoint, cluster)
        self.versions[(endpoint, cluster)] = (self.versions[(endpoint, cluster)] + 1) & 0xFFFF_FFFF

    # --- connect -----------------------------------------------------------------------------------------

    async def connect(self, peer: PeerId, *, ignore_backoff: bool = False) -> object:
        self.connects += 1
        self.contacted.append(peer.node_id)
        if not self.reachable or peer.node_id != self.node_id:
            raise PeerUnreachableError(peer, "no operational address")
        return self.session

    def session_failed(self, peer: PeerId) -> None:
        self.failed_sessions.append(peer)

    def add_listener(self, listener: PeerListener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def announce(self, state: PeerState = PeerState.REACHABLE, node_id: int | None = None) -> None:
        """Tell the listeners ``node_id`` (default: this peer) is now ``state``, as PeerConnections does."""
        for listener in list(self.listeners):
            listener(PeerId(FABRIC, self.node_id if node_id is None else node_id), state)

    # --- PeerClient ----------------------------------------------------------------------------------------

    async def read(self, session: Any, paths: Any, *, fabric_filtered: bool = True) -> ReadResult:
        assert session is self.session
        await self._enter("read")
        self.log.append(("read", tuple(paths)))
        result = ReadResult()
        for endpoint, cluster, attribute in paths:
            targets = [endpoint] if endpoint is not None else sorted(self.endpoints)
            for ep in targets:
                path = AttributePath(ep, cluster, attribute)
                try:
                    result.attributes[path] = copy.deepcopy(self._attribute(ep, cluster, attribute))
                    result.data_versions[(ep, cluster)] = self.version(ep, cluster)
                except IMStatusError as exc:
                    if endpoint is not None:  # a wildcard leaves out what does not exist (Core spec 8.9.2.3)
                        from jfds_device.im.client_messages import AttributeStatus

                        result.statuses[path] = AttributeStatus(path, exc.status)
        return result

    def _attribute(self, ep: int, cluster: int, attribute: int) -> Any:
        if ep not in self.endpoints:
            raise IMStatusError(Status.UNSUPPORTED_ENDPOINT)
        if cluster not in self.endpoints[ep] and not (ep == 0 and cluster == oc.CLUSTER_ID):
            raise IMStatusError(Status.UNSUPPORTED_CLUSTER)
        table: dict[tuple[int, int], Callable[[], Any]] = {
            (ac.CLUSTER_ID, ac.ACL): lambda: self.acl,
            (ac.CLUSTER_ID, ac.ACCESS_CONTROL_ENTRIES_PER_FABRIC): lambda: self.limits["acl"],
            (ac.CLUSTER_ID, ac.SUBJECTS_PER_ACCESS_CONTROL_ENTRY): lambda: self.limits["subjects"],
            (ac.CLUSTER_ID, ac.TARGETS_PER_ACCESS_CONTROL_ENTRY): lambda: self.limits["targets"],
            (gkm.CLUSTER_ID, gkm.MAX_GROUPS_PER_FABRIC_ATTR): lambda: self.limits["groups"],
            (gkm.CLUSTER_ID, gkm.MAX_GROUP_KEYS_PER_FABRIC_ATTR): lambda: self.limits["keys"],
            (gkm.CLUSTER_ID, gkm.GROUP_KEY_MAP): lambda: self.group_map,
            (gkm.CLUSTER_ID, gkm.GROUP_TABLE): self._group_table,
            (oc.CLUSTER_ID, oc.CURRENT_FABRIC_INDEX): lambda: FABRIC,
            (descriptor.CLUSTER_ID, descriptor.PARTS_LIST): lambda: sorted(e for e in self.endpoints if e) if ep == 0
            else [],
            (descriptor.CLUSTER_ID, descriptor.SERVER_LIST): lambda: list(self.endpoints[ep]),
            (binding.CLUSTER_ID, binding.BINDING): lambda: self.bindings[ep],
        }
        getter = table.get((cluster, attribute))
        if getter is None:
            raise IMStatusError(Status.UNSUPPORTED_ATTRIBUTE)
        return getter()

    def _group_table(self) -> list[dict[int, Any]]:
        found: dict[int, dict[int, Any]] = {}
        for ep, members in sorted(self.memberships.items()):
            for group_id, name in members.items():
                found.setdefault(group_id, {1: group_id, 2: [], 3: name, 0xFE: FABRIC})[2].append(ep)
        return [found[g] for g in sorted(found)]

    async def write_attribute(self, session: Any, endpoint: int, cluster: int, attribute: int, value: Any, *,
                              data_version: int | None = None) -> None:
        assert session is self.session
        name = {ac.CLUSTER_ID: "write:acl", binding.CLUSTER_ID: "write:binding", gkm.CLUSTER_ID: "write:map"}[cluster]
        await self._enter(name)
        value = [self._plain(v) for v in value]
        self.log.append((name, endpoint, copy.deepcopy(value), data_version))
        if data_version is not None and data_version != self.version(endpoint, cluster):
            raise IMStatusError(Status.DATA_VERSION_MISMATCH)
        if cluster == ac.CLUSTER_ID:
            self._write_acl(value)
        elif cluster == binding.CLUSTER_ID:
            self._write_binding(endpoint, value)
        else:
            self._write_map(value)
        self.bump(endpoint, cluster)

    @staticmethod
    def _plain(value: Any) -> Any:
        return value.to_tlv() if hasattr(value, "to_tlv") else dict(value)

    def _write_acl(self, entries: list[dict[int, Any]]) -> None:
        for e in entries:
            if e[2] == PASE or (e[2] == GROUP and e[1] == ADMINISTER):
                raise IMStatusError(Status.CONSTRAINT_ERROR)
            if len(e.get(3) or ()) > self.limits["subjects"] or len(e.get(4) or ()) > self.limits["targets"]:
                raise IMStatusError(Status.RESOURCE_EXHAUSTED)
        if len(entries) > self.limits["acl"]:
            raise IMStatusError(Status.RESOURCE_EXHAUSTED)
        self.acl = [{**e, 0xFE: FABRIC} for e in entries]

    def _write_binding(self, endpoint: int, entries: list[dict[int, Any]]) -> None:
        if endpoint not in self.bindings:
            raise IMStatusError(Status.UNSUPPORTED_CLUSTER)

        def valid(e: dict[int, Any]) -> bool:
            node, group, ep = e.get(1), e.get(2), e.get(3)
            if ep is not None:
                return node is not None and group is None
            return group is not None and group >= 1 and node is None

        if all(valid(e) for e in entries):
            self.bindings[endpoint] = [{**e, 0xFE: FABRIC} for e in entries]
            return
        if self.partial_writes == "clear":  # chunked, the refused item was the first append: only the clear stays
            self.bindings[endpoint] = []
        elif self.partial_writes:  # chunked: the clear and the valid appends stay
            self.bindings[endpoint] = [{**e, 0xFE: FABRIC} for e in entries if valid(e)]
        raise IMStatusError(Status.CONSTRAINT_ERROR)

    def _write_map(self, entries: list[dict[int, Any]]) -> None:
        ids = [e[1] for e in entries]
        if any(g == 0 for g in ids) or any(e[2] == 0 for e in entries) or len(set(ids)) != len(ids):
            raise IMStatusError(Status.CONSTRAINT_ERROR)
        if len(entries) > self.limits["groups"]:
            raise IMStatusError(Status.RESOURCE_EXHAUSTED)
        self.group_map = [{**e, 0xFE: FABRIC} for e in entries]

    async def invoke(self, session: Any, endpoint: int, cluster: int, command: int, fields: Any = None
                     ) -> InvokeResult:
        assert session is self.session
        fields = self._plain(fields) if fields is not None else {}
        name = {(gkm.CLUSTER_ID, gkm.KEY_SET_WRITE): "KeySetWrite",
                (gkm.CLUSTER_ID, gkm.KEY_SET_REMOVE): "KeySetRemove",
                (gkm.CLUSTER_ID, gkm.KEY_SET_READ_ALL_INDICES): "KeySetReadAllIndices",
                (gkm.CLUSTER_ID, gkm.KEY_SET_READ): "KeySetRead",
                (groups.CLUSTER_ID, groups.ADD_GROUP): "AddGroup",
                (groups.CLUSTER_ID, groups.REMOVE_GROUP): "RemoveGroup"}[(cluster, command)]
        await self._enter(name)
        self.log.append((name, endpoint, copy.deepcopy(fields)))
        if cluster not in self.endpoints.get(endpoint, ()):
            raise IMStatusError(Status.UNSUPPORTED_CLUSTER)
        path = CommandPath(endpoint, cluster, command)
        response = getattr(self, f"_{name}")(endpoint, fields)
        if isinstance(response, int):
            if response:
                raise IMStatusError(response)
            return InvokeResult(path)
        return InvokeResult(path, fields=response)

    def _KeySetWrite(self, _: int, fields: dict[int, Any]) -> int:
        key_set = fields[0]
        if key_set.get(2) is None or not key_set.get(3):
            return Status.INVALID_COMMAND
        if key_set[0] not in self.key_sets and len(self.key_sets) >= self.limits["keys"]:
            return Status.RESOURCE_EXHAUSTED
        self.key_sets[key_set[0]] = key_set  # id 0 accepted: matter.js would overwrite the IPK
        return Status.SUCCESS

    def _KeySetRemove(self, _: int, fields: dict[int, Any]) -> int:
        key_set_id = fields[0]
        if key_set_id == 0:
            return Status.INVALID_COMMAND
        if self.key_sets.pop(key_set_id, None) is None:
            return Status.NOT_FOUND
        self.group_map = [e for e in self.group_map if e[2] != key_set_id]
        return Status.SUCCESS

    def _KeySetRead(self, _: int, fields: dict[int, Any]) -> dict[int, Any] | int:
        """11.2.7.2: the set without its keys (EpochKey0..2 null), the start times as written."""
        stored = self.key_sets.get(fields[0])
        if stored is None:
            return Status.NOT_FOUND
        return {0: {**stored, 2: None, 4: None, 6: None}}

    def _KeySetReadAllIndices(self, _: int, fields: dict[int, Any]) -> dict[int, Any]:
        return {0: sorted(self.key_sets)}

    def _AddGroup(self, endpoint: int, fields: dict[int, Any]) -> dict[int, Any]:
        group_id, name = fields[0], fields[1]
        if group_id not in {e[1] for e in self.group_map}:
            return {0: Status.UNSUPPORTED_ACCESS, 1: group_id}
        if group_id not in self.memberships[endpoint] and len(self._group_table()) >= self.limits["groups"]:
            return {0: Status.RESOURCE_EXHAUSTED, 1: group_id}
        self.memberships[endpoint][group_id] = name
        return {0: Status.SUCCESS, 1: group_id}

    def _RemoveGroup(self, endpoint: int, fields: dict[int, Any]) -> dict[int, Any]:
        if self.memberships[endpoint].pop(fields[0], None) is None:
            return {0: Status.NOT_FOUND, 1: fields[0]}
        return {0: Status.SUCCESS, 1: fields[0]}

    # --- views -------------------------------------------------------------------------------------------

    def acl_subjects(self) -> list[list[int] | None]:
        return [e.get(3) for e in self.acl]


# ---------------------------------------------------------------------------------------------- datastore


def new_store(path: Path | str = ":memory:") -> JfdsStore:
    return JfdsStore(Database(path), clock=lambda: 1_800_000_000.0)


def key_set(set_id: int, key: bytes = b"\xa0" * 16) -> jfds.GroupKeySet:
    return jfds.GroupKeySet(
        group_key_set_id=set_id, group_key_security_policy=jfds.GroupKeySecurityPolicy.TRUST_FIRST,
        epoch_key0=key, epoch_start_time0=2220000, epoch_key1=NULL, epoch_start_time1=NULL,
        epoch_key2=NULL, epoch_start_time2=NULL,
        group_key_multicast_policy=jfds.GroupKeyMulticastPolicy.PER_GROUP_ID)


def group(group_id: int, key_set_id: int, name: str = "Kitchen") -> jfds.GroupInformationEntry:
    return jfds.GroupInformationEntry(group_id=group_id, friendly_name=name, group_key_set_id=key_set_id,
                                      group_cat=NULL, group_cat_version=NULL,
                                      group_permission=jfds.AccessControlEntryPrivilege.VIEW)


def jace(privilege: int, subjects: list[int] | None, targets: list[tuple[Any, Any, Any]] | None = None,
         auth: int = CASE) -> jfds.AccessControlEntry:
    return jfds.AccessControlEntry(
        privilege=jfds.AccessControlEntryPrivilege(privilege), auth_mode=jfds.AccessControlEntryAuthMode(auth),
        subjects=NULL if subjects is None else subjects,
        targets=NULL if targets is None else [
            jfds.AccessControlTarget(cluster=NULL if c is None else c, endpoint=NULL if e is None else e,
                                     device_type=NULL if d is None else d) for c, e, d in targets])
