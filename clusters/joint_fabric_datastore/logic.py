"""Joint Fabric Datastore command rules (Core spec 11.24.7) against ``JfdsStore``; ``server.py`` is the thin
ClusterServer on top. Every command runs in one datastore transaction (a savepoint inside the node's invoke
transaction): it changes everything or nothing, and a failure answers one IM status.

Status codes follow the reference SDK and the cert tests (connectedhomeip src/app/server/JointFabricDatastore.cpp,
src/python_testing/TC_JFDS_2_1.py .. TC_JFDS_2_5.py): unknown node or endpoint -> CONSTRAINT_ERROR; unknown key
set on Update/RemoveKeySet -> NOT_FOUND; duplicates -> CONSTRAINT_ERROR; key set 0 (the IPK) and the
Administrator/Anchor CAT groups -> CONSTRAINT_ERROR; a full list -> RESOURCE_EXHAUSTED. Field ranges, enum values
and epoch-key lengths are checked when the request decodes (CONSTRAINT_ERROR; missing fields INVALID_COMMAND).

Deliberate differences from the reference SDK (connectedhomeip ``JointFabricDatastore.cpp`` and the
``joint-fabric-datastore-server`` handlers):

Not-found cases the reference answers with FAILURE (CHIP_ERROR_NOT_FOUND):
  1. UpdateAdmin / RemoveAdmin with a NodeID not in AdminList -> NOT_FOUND, as intended.
  2. RemoveBindingFromEndpointForNode with a ListID not on that node's endpoint -> NOT_FOUND.
  3. RemoveACLFromNode with a ListID the node does not have -> NOT_FOUND.
  4. RefreshNode with a NodeID not in NodeList -> CONSTRAINT_ERROR, as every command naming a node that is not
     in NodeList answers (TC-JFDS-2.5): "the node must exist" is one rule, ``logic_entries.require_node``.
Spec checks the reference skips (issues #73767, #73768):
  5. RemoveKeySet while a NodeKeySetList entry for the set is not being removed -> CONSTRAINT_ERROR (11.24.7.3;
     an entry whose removal failed, CommitFailed with removal intent, counts as being removed).
  6. RemoveGroup while an EndpointGroupIDList entry for the group is not being removed -> CONSTRAINT_ERROR.
  7. AdminList anchor rule (11.24.6.8): the anchor stays at index 0 (RemoveAdmin of it -> CONSTRAINT_ERROR),
     every other administrator is at index 1 or greater.
  8. BindingTarget presence rules: {Node, Endpoint[, Cluster]} or {Group >= 1[, Cluster]}, else CONSTRAINT_ERROR.
  9. GroupCAT and GroupCATVersion are both null or both set (AddGroup, and UpdateGroup after merging), else
     CONSTRAINT_ERROR; UpdateGroup's GroupKeySetID / GroupCATVersion 0xFFFF (its wider 1..65535 range) ->
     CONSTRAINT_ERROR, because the stored GroupInformationEntry allows 1..65534.
Other differences:
 10. Limits are the spec maxima (NodeList 1024, AdminList 32, GroupKeySetList and GroupList 254 including the
     bootstrap entries, each per-node list 8192 entries in total) and answer RESOURCE_EXHAUSTED; the reference
     has 256 nodes, 16 groups/bindings, 64 ACLs, 256 key sets and answers NO_MEMORY, i.e. FAILURE.
 11. BUSY only for a resource a multi-step task holds that it may not hand over (a rollback in progress, a group-key
     rotation past activation): the datastore is durable and the reconciler works from it asynchronously, so there
     is no per-node sync queue to fill; RefreshNode during a refresh answers SUCCESS (the reconciler coalesces)
     instead of FAILURE (INCORRECT_STATE).
 12. UpdateKeySet on key set 0 -> CONSTRAINT_ERROR (the reference would push a new IPK to every node); an
     UpdateKeySet that changes nothing pushes nothing; a new key for a single-epoch set that nodes hold is rotated
     in three gated phases (RotateGroupKey, ``logic_tasks.py``), not written to each node independently.
 13. Inputs a node would reject unrecoverably are rejected up front with CONSTRAINT_ERROR: NodeIDs that are not
     operational node ids (AddPendingNode, AddAdmin, a binding's Node); group id 0 (AddGroup); ACL entries the
     node's AccessControl refuses (PASE, Group + Administer, invalid subjects or targets, Core spec 9.10.5);
     AddGroupIDToEndpointForNode for a group without a key set or whose key set is not in GroupKeySetList;
     UpdateGroup to a key set not in GroupKeySetList while the group is on a node's endpoint.
 14. UpdateAdmin with a null NodeID -> CONSTRAINT_ERROR (nothing identifies the administrator).
 15. Commands before the anchor bootstrap (or after a wipe) -> INVALID_IN_STATE; the reference accepts them on
     an empty datastore.
 16. Bootstrap: Status is Committed ("ready for use", 11.24.6.9; the reference app sets Pending); the Admin/Anchor
     CAT groups are group ids 0xFEFF/0xFEFE with a null GroupKeySetID (the reference uses group ids 0 and 1,
     0 being no valid group id, and key set 0, outside GroupKeySetID's 1..65534).
 17. Every attribute reports on change, on the cluster's endpoint (the reference reports only NodeList, on
     endpoint 0); UpdateTimestamp is set on every change (never in the reference); everything persists.
 18. UpdateGroup's permission rewrite only touches ACL entries that grant the group's CAT the group's *old*
     permission (the reference rewrites every entry naming the CAT).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from clusters.joint_fabric_datastore import logic_entries as entries
from clusters.joint_fabric_datastore import logic_tasks as tasks
from clusters.joint_fabric_datastore import schema as s
from clusters.joint_fabric_datastore.schema import (
    AddACLToNode,
    AddAdmin,
    AddBindingToEndpointForNode,
    AddGroup,
    AddGroupIDToEndpointForNode,
    AddKeySet,
    AddPendingNode,
    AdministratorInformationEntry,
    GroupInformationEntry,
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
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryKind
from jfds_device.errors import (
    ActionError,
    DatastoreError,
)
from jfds_device.im.provider import Status

__all__ = ["DatastoreLogic"]

_CAT_GROUPS = (s.ADMIN_CAT_ID, s.ANCHOR_CAT_ID)
_STORED_MAX = 0xFFFE  # GroupInformationEntry's GroupKeySetID / GroupCATVersion range is 1..65534

def _constraint(message: str) -> ActionError:
    return ActionError(Status.CONSTRAINT_ERROR, message=message)


class DatastoreLogic:
    """One method per JFDS command, taking the decoded request; raises ``ActionError`` with the status."""

    def __init__(self, store: JfdsStore) -> None:
        self.store = store

    @contextlib.contextmanager
    def command(self) -> Iterator[JfdsStore]:
        """One command: bootstrapped datastore, one transaction, datastore refusals mapped to statuses."""
        if not self.store.is_bootstrapped:
            raise ActionError(Status.INVALID_IN_STATE, message="the datastore has no anchor yet")
        try:
            with self.store.transaction():
                yield self.store
        except DatastoreError as exc:  # a refusal the rules did not anticipate: the status its error carries
            raise ActionError(exc.status, message=str(exc)) from exc

    # ------------------------------------------------------------------------------------------ key sets

    def add_key_set(self, request: AddKeySet) -> None:
        """11.24.7.1: an existing GroupKeySetID (0, the IPK, always exists) -> CONSTRAINT_ERROR (TC-JFDS-2.2 4, 13)."""
        key_set = request.group_key_set
        with self.command() as store:
            if store.key_set(key_set.group_key_set_id) is not None:
                raise _constraint(f"key set {key_set.group_key_set_id} exists")
            store.add_key_set(key_set)

    def update_key_set(self, request: UpdateKeySet) -> None:
        """11.24.7.2: key set 0 -> CONSTRAINT_ERROR; absent -> NOT_FOUND (TC-JFDS-2.2 step 8). New content is
        pushed again to every node holding the set (its NodeKeySet entries become Pending); a new single-epoch key
        for a single-epoch set goes as a RotateGroupKey task (``logic_tasks.rotate_group_key``): gap-free, in
        three gated phases; during a rotation past activation -> BUSY."""
        key_set = request.group_key_set
        with self.command() as store:
            if key_set.group_key_set_id == s.IPK_KEY_SET_ID:
                raise _constraint("the IPK (key set 0) is not updated through the datastore")
            if store.key_set(key_set.group_key_set_id) is None:
                raise ActionError(Status.NOT_FOUND, message=f"key set {key_set.group_key_set_id}")
            tasks.rotate_group_key(store, key_set)

    def remove_key_set(self, request: RemoveKeySet) -> None:
        """11.24.7.3: key set 0 -> CONSTRAINT_ERROR (TC-JFDS-2.2 10, 14); absent -> NOT_FOUND (step 9); in use by
        a node entry not being removed -> CONSTRAINT_ERROR (step 2 of the command, #73767)."""
        key_set_id = request.group_key_set_id
        with self.command() as store:
            if key_set_id == s.IPK_KEY_SET_ID:
                raise _constraint("the IPK (key set 0) cannot be removed")
            if store.key_set(key_set_id) is None:
                raise ActionError(Status.NOT_FOUND, message=f"key set {key_set_id}")
            if any(not e.removal for e in store.entries(EntryKind.NODE_KEY_SET, key=key_set_id)):
                raise _constraint(f"key set {key_set_id} is in use by a node")
            store.remove_key_set(key_set_id)

    # ------------------------------------------------------------------------------------------ groups

    @staticmethod
    def _check_group(group: GroupInformationEntry) -> None:
        if group.group_cat is not NULL and group.group_cat in (0, *_CAT_GROUPS):
            raise _constraint("GroupCAT 0 and the Administrator/Anchor CATs are not available (11.24.7.4)")
        if (group.group_cat is NULL) != (group.group_cat_version is NULL):
            raise _constraint("GroupCAT and GroupCATVersion are both null or both set")
        for value in (group.group_key_set_id, group.group_cat_version):
            if value is not NULL and not 1 <= value <= _STORED_MAX:  # type: ignore[operator]
                raise _constraint("GroupKeySetID and GroupCATVersion are 1..65534")

    def add_group(self, request: AddGroup) -> None:
        """11.24.7.4: an existing GroupID, or GroupCAT 0 / 0xFFFF / 0xFFFE -> CONSTRAINT_ERROR (TC-JFDS-2.3 8,
        11). The key set need not exist yet (TC-JFDS-2.3 step 2); nothing is pushed."""
        group = GroupInformationEntry(
            group_id=request.group_id,
            friendly_name=request.friendly_name,
            group_key_set_id=request.group_key_set_id,
            group_cat=request.group_cat,
            group_cat_version=request.group_cat_version,
            group_permission=request.group_permission,
        )
        with self.command() as store:
            if request.group_id == 0:
                raise _constraint("group id 0 is not a group (Core spec 2.5.4)")
            self._check_group(group)
            if store.group(request.group_id) is not None:
                raise _constraint(f"group {request.group_id} exists")
            store.add_group(group)

    def update_group(self, request: UpdateGroup) -> None:
        """11.24.7.5: a null field keeps its value. Unknown group, a CAT group, or a reserved new CAT ->
        CONSTRAINT_ERROR (TC-JFDS-2.3 9, 12). Changes propagate to the group's nodes (``propagate_group_update``)."""
        with self.command() as store:
            old = store.group(request.group_id)
            if old is None:
                raise _constraint(f"group {request.group_id} is not in GroupList")
            if old.group_cat in _CAT_GROUPS:
                raise _constraint("the Administrator and Anchor CAT groups cannot be changed")

            def merged(value: object, current: object) -> object:
                return current if value is NULL else value

            new = GroupInformationEntry(
                group_id=old.group_id,
                friendly_name=merged(request.friendly_name, old.friendly_name),  # type: ignore[arg-type]
                group_key_set_id=merged(request.group_key_set_id, old.group_key_set_id),
                group_cat=merged(request.group_cat, old.group_cat),
                group_cat_version=merged(request.group_cat_version, old.group_cat_version),
                group_permission=request.group_permission,
            )
            self._check_group(new)
            in_use = any(not e.removal for e in store.entries(EntryKind.ENDPOINT_GROUP, key=old.group_id))
            key_set_id = new.group_key_set_id
            if in_use and key_set_id is not NULL and store.key_set(key_set_id) is None:  # type: ignore[arg-type]
                raise _constraint(f"key set {key_set_id} is not in GroupKeySetList")
            if store.replace_group(new):
                entries.propagate_group_update(store, old, new)

    def remove_group(self, request: RemoveGroup) -> None:
        """11.24.7.6: unknown or a CAT group -> CONSTRAINT_ERROR (TC-JFDS-2.3 10, 13); still on a node's
        endpoint (an entry not being removed) -> CONSTRAINT_ERROR (#73767)."""
        with self.command() as store:
            group = store.group(request.group_id)
            if group is None:
                raise _constraint(f"group {request.group_id} is not in GroupList")
            if group.group_cat in _CAT_GROUPS:
                raise _constraint("the Administrator and Anchor CAT groups cannot be removed")
            if any(not e.removal for e in store.entries(EntryKind.ENDPOINT_GROUP, key=request.group_id)):
                raise _constraint(f"group {request.group_id} is in use on a node")
            store.remove_group(request.group_id)

    # ------------------------------------------------------------------------------------------ admins

    def add_admin(self, request: AddAdmin) -> None:
        """11.24.7.7: a NodeID already in AdminList -> CONSTRAINT_ERROR (TC-JFDS-2.4 step 6); index >= 1."""
        with self.command() as store:
            entries.check_node_id(request.node_id)
            if store.admin(request.node_id) is not None:
                raise _constraint(f"admin 0x{request.node_id:X} exists")
            store.add_admin(
                AdministratorInformationEntry(
                    node_id=request.node_id,
                    friendly_name=request.friendly_name,
                    vendor_id=request.vendor_id,
                    icac=request.icac,
                )
            )

    def update_admin(self, request: UpdateAdmin) -> None:
        """11.24.7.8: null fields keep their value; unknown NodeID -> NOT_FOUND."""
        with self.command() as store:
            if request.node_id is NULL:
                raise _constraint("UpdateAdmin needs the administrator's NodeID")
            node_id: int = request.node_id  # type: ignore[assignment]
            old = store.admin(node_id)
            if old is None:
                raise ActionError(Status.NOT_FOUND, message=f"admin 0x{node_id:X}")
            store.replace_admin(
                AdministratorInformationEntry(
                    node_id=node_id,
                    friendly_name=old.friendly_name if request.friendly_name is NULL else request.friendly_name,  # type: ignore[arg-type]
                    vendor_id=old.vendor_id,
                    icac=old.icac if request.icac is NULL else request.icac,  # type: ignore[arg-type]
                )
            )

    def remove_admin(self, request: RemoveAdmin) -> None:
        """11.24.7.9: unknown NodeID -> NOT_FOUND; the anchor (index 0) -> CONSTRAINT_ERROR (11.24.6.8)."""
        with self.command() as store:
            if store.admin(request.node_id) is None:
                raise ActionError(Status.NOT_FOUND, message=f"admin 0x{request.node_id:X}")
            if store.is_anchor_admin(request.node_id):
                raise _constraint("the anchor administrator stays at index 0")
            store.remove_admin(request.node_id)

    # ------------------------------------------------------------------------------------------ nodes

    def add_pending_node(self, request: AddPendingNode) -> None:
        """11.24.7.10: a duplicate -> CONSTRAINT_ERROR (TC-JFDS-2.5 step 3); the node starts Pending (step 4)."""
        with self.command() as store:
            entries.check_node_id(request.node_id)
            if store.node(request.node_id) is not None:
                raise _constraint(f"node 0x{request.node_id:X} exists")
            store.add_node(request.node_id, request.friendly_name)

    def refresh_node(self, request: RefreshNode) -> None:
        """11.24.7.11: SUCCESS at once; the node's CommissioningStatusEntry becomes Pending and the reconciler,
        told through ``DatastoreChange.refresh``, reads the node and commits it. Unknown node -> CONSTRAINT_ERROR
        (``require_node``, as for every command naming a node)."""
        with self.command() as store:
            entries.require_node(store, request.node_id)
            store.request_refresh(request.node_id)

    def update_node(self, request: UpdateNode) -> None:
        """11.24.7.12: unknown node -> CONSTRAINT_ERROR (TC-JFDS-2.5 step 7); the status is kept (step 6)."""
        with self.command() as store:
            entries.require_node(store, request.node_id)
            store.rename_node(request.node_id, request.friendly_name)

    def remove_node(self, request: RemoveNode) -> None:
        """11.24.7.13: unknown node -> CONSTRAINT_ERROR (TC-JFDS-2.5 step 46); the node and its entries are gone
        from every list at once (step 48)."""
        with self.command() as store:
            entries.require_node(store, request.node_id)
            store.remove_node(request.node_id)

    # ------------------------------------------------------------------------------------------ per-node lists

    def update_endpoint_for_node(self, request: UpdateEndpointForNode) -> None:
        with self.command() as store:
            entries.update_endpoint_for_node(store, request)

    def add_group_id_to_endpoint_for_node(self, request: AddGroupIDToEndpointForNode) -> None:
        with self.command() as store:
            entries.add_group_id_to_endpoint_for_node(store, request)

    def remove_group_id_from_endpoint_for_node(self, request: RemoveGroupIDFromEndpointForNode) -> None:
        with self.command() as store:
            entries.remove_group_id_from_endpoint_for_node(store, request)

    def add_binding_to_endpoint_for_node(self, request: AddBindingToEndpointForNode) -> None:
        with self.command() as store:
            entries.add_binding_to_endpoint_for_node(store, request)

    def remove_binding_from_endpoint_for_node(self, request: RemoveBindingFromEndpointForNode) -> None:
        with self.command() as store:
            entries.remove_binding_from_endpoint_for_node(store, request)

    def add_acl_to_node(self, request: AddACLToNode) -> None:
        with self.command() as store:
            entries.add_acl_to_node(store, request)

    def remove_acl_from_node(self, request: RemoveACLFromNode) -> None:
        with self.command() as store:
            entries.remove_acl_from_node(store, request)
