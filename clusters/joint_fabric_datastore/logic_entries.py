"""JFDS rules for the per-node lists (Core spec 11.24.7.14-11.24.7.20) and the propagation of group changes to
them (11.24.4.8). Pure rules against ``JfdsStore``; ``logic.py`` wraps each command in one transaction and
maps leftover datastore errors to statuses. See ``logic.py`` for the differences from the reference SDK.
"""

from __future__ import annotations

from clusters.joint_fabric_datastore import logic_tasks as tasks
from clusters.joint_fabric_datastore.schema import (
    AccessControlEntry,
    AddACLToNode,
    AddBindingToEndpointForNode,
    AddGroupIDToEndpointForNode,
    BindingTarget,
    GroupInformationEntry,
    RemoveACLFromNode,
    RemoveBindingFromEndpointForNode,
    RemoveGroupIDFromEndpointForNode,
    UpdateEndpointForNode,
)
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL
from jfds_device.datamodel import acl
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.errors import ActionError
from jfds_device.im.provider import Status

__all__ = [
    "MAX_ENDPOINT",
    "add_acl_to_node",
    "add_binding_to_endpoint_for_node",
    "add_group_id_to_endpoint_for_node",
    "check_access_control_entry",
    "check_binding_target",
    "check_node_id",
    "propagate_group_update",
    "remove_acl_from_node",
    "remove_binding_from_endpoint_for_node",
    "remove_group_id_from_endpoint_for_node",
    "require_endpoint",
    "require_node",
    "update_endpoint_for_node",
]

MAX_ENDPOINT = acl.MAX_ENDPOINT


def _constraint(message: str) -> ActionError:
    return ActionError(Status.CONSTRAINT_ERROR, message=message)


# ---------------------------------------------------------------------------------------------------- checks


def check_node_id(node_id: int) -> None:
    """Nodes and admins are addressed by operational node ids (Core spec 2.5.5); anything else is unreachable."""
    if not acl.is_operational_node_id(node_id):
        raise _constraint(f"0x{node_id:X} is not an operational node id")


def require_node(store: JfdsStore, node_id: int) -> None:
    """"The node must exist", decided here for every command that names a node (UpdateNode, RemoveNode,
    RefreshNode and the per-node list commands): an unknown node answers CONSTRAINT_ERROR, the status the spec's
    cert tests expect for it (TC-JFDS-2.5 steps 7, 15, 22, 25, 28, 35, 40, 43, 46) and the reference SDK gives.
    The datastore's own check behind it (``EntryNotFoundError``) is an invariant no command reaches."""
    if store.node(node_id) is None:
        raise _constraint(f"node 0x{node_id:X} is not in NodeList")


def require_endpoint(store: JfdsStore, node_id: int, endpoint_id: int) -> None:
    require_node(store, node_id)
    if store.entry(EntryRef.endpoint(node_id, endpoint_id)) is None:
        raise _constraint(f"endpoint {endpoint_id} of node 0x{node_id:X} is not in NodeEndpointList")


def check_binding_target(target: BindingTarget) -> None:
    """DatastoreBindingTargetStruct conformance (11.24.5, issue #73768): Node is mandatory when Endpoint is
    present, Group only without Endpoint, Endpoint mandatory without Group, Group at least 1; so a target is
    either {Node, Endpoint[, Cluster]} or {Group[, Cluster]}."""
    if target.endpoint is not None:
        if target.node is None or target.group is not None:
            raise _constraint("a binding to an endpoint names its node and no group")
        check_node_id(target.node)
        if target.endpoint > MAX_ENDPOINT:
            raise _constraint("binding endpoint out of range")
    elif target.group is None or target.node is not None:
        raise _constraint("a binding without an endpoint names a group and no node")
    elif target.group < 1:
        raise _constraint("group id 0 is not a group")
    if target.cluster is not None and not acl.is_valid_cluster_id(target.cluster):
        raise _constraint(f"0x{target.cluster:X} is not a cluster id")


def check_access_control_entry(ace: AccessControlEntry) -> None:
    """The rules a node's AccessControl applies on write (``acl.validate_acl_entry``, Core spec 9.10.5): what the
    node would reject with CONSTRAINT_ERROR, an unrecoverable CommitFailed that refresh drops, is refused here."""
    targets = [acl.AclTarget(*(None if v is NULL else v for v in (t.cluster, t.endpoint, t.device_type)))
               for t in ace.targets or ()]
    acl.validate_acl_entry(ace.privilege, ace.auth_mode, [int(s) for s in ace.subjects or ()], targets)


# ---------------------------------------------------------------------------------------------------- endpoints


def update_endpoint_for_node(store: JfdsStore, request: UpdateEndpointForNode) -> None:
    """11.24.7.14: (node, endpoint) not in NodeEndpointList -> CONSTRAINT_ERROR."""
    require_endpoint(store, request.node_id, request.endpoint_id)
    store.rename_endpoint(request.node_id, request.endpoint_id, request.friendly_name)


def _live(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if not e.removal]


def add_group_id_to_endpoint_for_node(store: JfdsStore, request: AddGroupIDToEndpointForNode) -> None:
    """11.24.7.15. The node needs the group's key set before the group (the reference's rule): the NodeKeySet
    entry is added (or its removal cancelled) first, so it has the lower revision and is pushed first. An entry
    already present is SUCCESS; one being removed is revived. Both under one AddNodeToGroup task
    (``logic_tasks``): a part the node refuses rolls the other back."""
    require_endpoint(store, request.node_id, request.endpoint_id)
    tasks.add_node_to_group(store, request.node_id, request.endpoint_id, request.group_id)


def remove_group_id_from_endpoint_for_node(store: JfdsStore, request: RemoveGroupIDFromEndpointForNode) -> None:
    """11.24.7.16. Entry absent -> NOT_FOUND. The group entry becomes DeletePending; if it was the node's last
    group using that key set, the node's key set entry becomes DeletePending after it ("the group is removed
    before its key set"; TC-JFDS-2.5 step 39), under one RemoveNodeFromGroup task."""
    require_endpoint(store, request.node_id, request.endpoint_id)
    tasks.remove_node_from_group(store, request.node_id, request.endpoint_id, request.group_id)


# ---------------------------------------------------------------------------------------------------- bindings, ACLs


def add_binding_to_endpoint_for_node(store: JfdsStore, request: AddBindingToEndpointForNode) -> None:
    """11.24.7.17: a new ListID; an identical binding on the endpoint is SUCCESS (revived if being removed)."""
    require_endpoint(store, request.node_id, request.endpoint_id)
    check_binding_target(request.binding)
    store.add_binding(request.node_id, request.endpoint_id, request.binding)


def remove_binding_from_endpoint_for_node(store: JfdsStore, request: RemoveBindingFromEndpointForNode) -> None:
    """11.24.7.18: unknown node/endpoint -> CONSTRAINT_ERROR; ListID not on that endpoint -> NOT_FOUND."""
    require_endpoint(store, request.node_id, request.endpoint_id)
    ref = EntryRef.binding(request.node_id, request.endpoint_id, request.list_id)
    if store.entry(ref) is None:
        raise ActionError(Status.NOT_FOUND, message=f"no binding with ListID {request.list_id} there")
    store.request_removal(ref)


def add_acl_to_node(store: JfdsStore, request: AddACLToNode) -> None:
    """11.24.7.19: a new ListID; an entry equal by value is SUCCESS (revived if being removed)."""
    require_node(store, request.node_id)
    check_access_control_entry(request.acl_entry)
    store.add_acl(request.node_id, request.acl_entry)


def remove_acl_from_node(store: JfdsStore, request: RemoveACLFromNode) -> None:
    """11.24.7.20: unknown node -> CONSTRAINT_ERROR (TC-JFDS-2.5 step 22); ListID not the node's -> NOT_FOUND."""
    require_node(store, request.node_id)
    ref = EntryRef.acl(request.node_id, request.list_id)
    if store.entry(ref) is None:
        raise ActionError(Status.NOT_FOUND, message=f"node has no ACL entry with ListID {request.list_id}")
    store.request_removal(ref)


# ---------------------------------------------------------------------------------------------------- UpdateGroup


def propagate_group_update(store: JfdsStore, old: GroupInformationEntry, new: GroupInformationEntry) -> None:
    """11.24.4.8 / 11.24.7.5: push a group change to the group's nodes (the stored group is already ``new``).

    * key set change: the new key set is added to every node of the group *before* the old one is removed
      (revision order), the old one only where no other group of the node still uses it;
    * friendly name or key set change: the group's EndpointGroupID entries are pushed again (Groups.AddGroup
      carries the name, the GroupKeyMap the key set);
    * CAT or version change: CASE subjects with the old CAT identifier (any version) become the new CAT subject;
    * permission change: entries granting the group's CAT the old permission get the new one; an entry that
      also names other subjects is split, the original edited before the new entry is added, so a node never
      grants more than before. A split that does not fit answers RESOURCE_EXHAUSTED (the transaction rolls back).
    """
    members = _live(store.entries(EntryKind.ENDPOINT_GROUP, key=new.group_id))
    nodes = sorted({e.ref.node_id for e in members})
    if new.group_key_set_id != old.group_key_set_id and new.group_key_set_id is not NULL:
        for node_id in nodes:
            store.add_node_key_set(node_id, new.group_key_set_id)  # type: ignore[arg-type]
    if new.group_key_set_id != old.group_key_set_id or new.friendly_name != old.friendly_name:
        for entry in members:
            store.renew(entry.ref)
    if new.group_key_set_id != old.group_key_set_id and old.group_key_set_id is not NULL:
        old_key: int = old.group_key_set_id  # type: ignore[assignment]
        for node_id in nodes:
            ref = EntryRef.node_key_set(node_id, old_key)
            found = store.entry(ref)
            if found is not None and not found.removal and not tasks.node_uses_key_set(store, node_id, old_key):
                store.request_removal(ref)
    if old.group_cat is not NULL and (old.group_cat, old.group_cat_version) != (new.group_cat, new.group_cat_version):
        _rewrite_cat_subjects(store, old.group_cat, acl.cat_subject(new.group_cat, new.group_cat_version))  # type: ignore[arg-type]
    if new.group_cat is not NULL and old.group_permission != new.group_permission:
        _change_cat_permission(store, new.group_cat, old.group_permission, new.group_permission)  # type: ignore[arg-type]


def _is_cat_of(subject: int, identifier: int) -> bool:
    return acl.is_cat_subject(subject) and (subject >> 16) & 0xFFFF == identifier


def _case_entries_naming(store: JfdsStore, identifier: int) -> list[Entry]:
    return [
        e
        for e in _live(store.entries(EntryKind.ACL))
        if e.value.acl_entry.auth_mode == AuthMode.CASE
        and any(_is_cat_of(int(x), identifier) for x in e.value.acl_entry.subjects or ())
    ]


def _set_acl(store: JfdsStore, entry: Entry, ace: AccessControlEntry) -> None:
    """Edit an entry by value; if the node already has an entry equal to the new value, that one stays (or is
    revived) and this one is removed instead."""
    other = store.find_acl(entry.ref.node_id, ace)
    if other is None or other.ref == entry.ref:
        store.edit_acl(entry.ref, ace)
    else:
        store.add_acl(entry.ref.node_id, ace)
        store.request_removal(entry.ref)


def _rewrite_cat_subjects(store: JfdsStore, old_identifier: int, new_subject: int) -> None:
    for entry in _case_entries_naming(store, old_identifier):
        ace = entry.value.acl_entry
        subjects = [int(x) for x in ace.subjects or ()]
        rewritten = [new_subject if _is_cat_of(x, old_identifier) else x for x in subjects]
        rewritten = list(dict.fromkeys(rewritten))
        if rewritten != subjects:
            _set_acl(store, entry, AccessControlEntry(**{**_fields(ace), "subjects": rewritten}))


def _change_cat_permission(
    store: JfdsStore, identifier: int, old: Privilege, new: Privilege
) -> None:
    for entry in _case_entries_naming(store, identifier):
        ace = entry.value.acl_entry
        if ace.privilege != old:
            continue
        subjects = [int(x) for x in ace.subjects or ()]
        mine = [x for x in subjects if _is_cat_of(x, identifier)]
        others = [x for x in subjects if x not in mine]
        if not others:
            _set_acl(store, entry, AccessControlEntry(**{**_fields(ace), "privilege": new}))
            continue
        _set_acl(store, entry, AccessControlEntry(**{**_fields(ace), "subjects": others}))
        store.add_acl(entry.ref.node_id, AccessControlEntry(**{**_fields(ace), "privilege": new, "subjects": mine}))


def _fields(ace: AccessControlEntry) -> dict[str, object]:
    return {f.name: getattr(ace, f.name) for f in ace.FIELDS}
