"""The JFDS changes that start a multi-step task (the matter.js Node Manager's built-in tasks, PR #3984 and #4213
@ matter-js/matter.js, packages/node-manager/src/tasks): each function writes the desired state of the task's
first phase and the task's record in the caller's transaction, so both exist or neither does. The reconciler's
task engine (``jfds_device.reconciler.tasks``) then gates, parks, resumes and rolls back; it never writes a node
itself, and the entries keep the spec's statuses (Pending / Committed / DeletePending / CommitFailed) throughout.

* **AddNodeToGroup** (AddGroupIDToEndpointForNode): the node's key set entry, then its endpoint group entry (the
  GroupKeyMap entry and the Groups membership on the node), as one changeset: a part the node refuses rolls the
  others back.
* **RemoveNodeFromGroup** (RemoveGroupIDFromEndpointForNode): the membership, then the key set when no other
  group of the node uses it (dependents first).
* **MoveNodeToGroup** (no JFDS command; the operator's API): the add and the remove under one changeset.
* **RotateGroupKey** (UpdateKeySet of a single-epoch key set that nodes hold, to a new single-epoch key): the
  three gated phases (distribute dormant, activate, clean up) live in the reconciler (``rotation.py``); here
  the new value is stored and the holders' entries renewed, phase one.

A changeset entry records an entry's state before the task first touched it and what the task waits for
(``{"entry": [kind, node, endpoint, key], "prior": null | {"removal": bool}, "want": "committed" | "absent"}``)
or a key set's value (``{"key_set": id, "prior": "<TLV hex>"}``), which is what a rollback restores, by value.
"""

from __future__ import annotations

import time
from typing import Any

from clusters.joint_fabric_datastore.schema import GroupKeySet
from jfds_device.codec.schema import NULL
from jfds_device.datastore.jfds import JfdsStore, matter_epoch_s
from jfds_device.datastore.jfds_records import EntryKind, EntryRef
from jfds_device.datastore.tasks import TaskRecord, TaskType
from jfds_device.errors import ActionError
from jfds_device.im.provider import Status

__all__ = [
    "add_node_to_group",
    "entry_change",
    "key_set_resource",
    "member_resource",
    "move_node_to_group",
    "node_uses_key_set",
    "ref_of_change",
    "remove_node_from_group",
    "rotate_group_key",
    "single_epoch",
]


def member_resource(node_id: int, endpoint_id: int, group_id: int) -> str:
    return f"member:{node_id:016X}:{endpoint_id}:{group_id:04X}"


def key_set_resource(key_set_id: int) -> str:
    return f"key-set:{key_set_id:04X}"


def entry_change(store: JfdsStore, ref: EntryRef, want: str) -> dict[str, Any]:
    """``ref``'s state now, as a changeset entry (call before touching it); ``want``: what the task waits for,
    "committed" or "absent"."""
    existing = store.entry(ref)
    return {"entry": [ref.kind.value, ref.node_id, ref.endpoint_id, ref.key],
            "prior": None if existing is None else {"removal": existing.removal}, "want": want}


def ref_of_change(change: dict[str, Any]) -> EntryRef:
    kind, node_id, endpoint_id, key = change["entry"]
    return EntryRef(EntryKind(kind), node_id, endpoint_id, key)


def _key_set_of(store: JfdsStore, group_id: int) -> int:
    group = store.group(group_id)
    if group is None:
        raise ActionError(Status.CONSTRAINT_ERROR, message=f"group {group_id} is not in GroupList")
    if group.group_key_set_id is NULL:
        raise ActionError(Status.CONSTRAINT_ERROR, message=f"group {group_id} has no key set to map it to on the node")
    key_set_id: int = group.group_key_set_id  # type: ignore[assignment]
    if store.key_set(key_set_id) is None:
        raise ActionError(Status.CONSTRAINT_ERROR,
                          message=f"key set {key_set_id} of group {group_id} is not in GroupKeySetList")
    return key_set_id


def node_uses_key_set(store: JfdsStore, node_id: int, key_set_id: int) -> bool:
    """Whether a live EndpointGroupID entry of the node belongs to a group that uses ``key_set_id``."""
    for entry in store.entries(EntryKind.ENDPOINT_GROUP, node_id=node_id):
        group = store.group(entry.value.group_id)
        if not entry.removal and group is not None and group.group_key_set_id == key_set_id:
            return True
    return False


def _member_task(verb: str, node_id: int, endpoint_id: int, group_id: int) -> str:
    return f"{verb}-node-to-group:{node_id:016X}:{endpoint_id}:{group_id:04X}" if verb == "add" else \
        f"{verb}-node-from-group:{node_id:016X}:{endpoint_id}:{group_id:04X}"


def _add_member(store: JfdsStore, node_id: int, endpoint_id: int, group_id: int) -> list[dict[str, Any]]:
    """The key set before the group (11.24.7.15: the node needs it first; the lower revision is pushed first).
    Returns the changes made (empty when both entries were there and live already)."""
    key_set_id = _key_set_of(store, group_id)
    key_ref = EntryRef.node_key_set(node_id, key_set_id)
    group_ref = EntryRef.endpoint_group(node_id, endpoint_id, group_id)
    changes = [entry_change(store, key_ref, "committed"), entry_change(store, group_ref, "committed")]
    store.add_node_key_set(node_id, key_set_id)
    store.add_endpoint_group(node_id, endpoint_id, group_id)
    return [c for c in changes if c["prior"] is None or c["prior"]["removal"]]


def _remove_member(store: JfdsStore, node_id: int, endpoint_id: int, group_id: int) -> list[dict[str, Any]]:
    """The membership, then the node's key set if no other live group of the node uses it (TC-JFDS-2.5 step 39).
    Absent -> NOT_FOUND; already being removed -> no change."""
    ref = EntryRef.endpoint_group(node_id, endpoint_id, group_id)
    if store.entry(ref) is None:
        raise ActionError(Status.NOT_FOUND, message="the group is not on that endpoint")
    changes = [entry_change(store, ref, "absent")]
    if not store.request_removal(ref):
        return []
    group = store.group(group_id)
    if group is not None and group.group_key_set_id is not NULL:
        key_ref = EntryRef.node_key_set(node_id, group.group_key_set_id)  # type: ignore[arg-type]
        existing = store.entry(key_ref)
        if existing is not None and not existing.removal and not node_uses_key_set(
                store, node_id, group.group_key_set_id):  # type: ignore[arg-type]
            changes.append(entry_change(store, key_ref, "absent"))
            store.request_removal(key_ref)
    return changes


def add_node_to_group(store: JfdsStore, node_id: int, endpoint_id: int, group_id: int) -> TaskRecord | None:
    """AddGroupIDToEndpointForNode's changes; the task when something changed (None: it was all there)."""
    resource, task_id = member_resource(node_id, endpoint_id, group_id), _member_task("add", node_id, endpoint_id,
                                                                                       group_id)
    joined, _ = store.tasks.clear_way((resource,), task_id)
    if joined is not None:
        return joined
    changes = _add_member(store, node_id, endpoint_id, group_id)
    if not changes:
        return None
    return store.tasks.start(TaskRecord(task_id, TaskType.ADD_NODE_TO_GROUP,
        {"node_id": node_id, "endpoint_id": endpoint_id, "group_id": group_id}, (resource,), members=(node_id,),
        changeset=tuple(changes)))


def remove_node_from_group(store: JfdsStore, node_id: int, endpoint_id: int, group_id: int) -> TaskRecord | None:
    """RemoveGroupIDFromEndpointForNode's changes; the task when something changed."""
    resource, task_id = member_resource(node_id, endpoint_id, group_id), _member_task("remove", node_id,
                                                                                       endpoint_id, group_id)
    joined, _ = store.tasks.clear_way((resource,), task_id)
    if joined is not None:
        return joined
    changes = _remove_member(store, node_id, endpoint_id, group_id)
    if not changes:
        return None
    return store.tasks.start(TaskRecord(task_id, TaskType.REMOVE_NODE_FROM_GROUP,
        {"node_id": node_id, "endpoint_id": endpoint_id, "group_id": group_id}, (resource,), members=(node_id,),
        changeset=tuple(changes)))


def move_node_to_group(store: JfdsStore, node_id: int, endpoint_id: int, from_group: int,
                       to_group: int) -> TaskRecord:
    """MoveNodeToGroup: join ``to_group`` and leave ``from_group`` on the endpoint, as one changeset (the node
    is added to the new group before it leaves the old one: no moment in neither). The caller checks the node
    and endpoint; a move to the same group, or from a group the endpoint is not in, is CONSTRAINT_ERROR /
    NOT_FOUND."""
    if from_group == to_group:
        raise ActionError(Status.CONSTRAINT_ERROR, message="the node is already in that group")
    leaving = store.entry(EntryRef.endpoint_group(node_id, endpoint_id, from_group))
    if leaving is None or leaving.removal:
        raise ActionError(Status.NOT_FOUND, message=f"endpoint {endpoint_id} is not in group {from_group}")
    resources = (member_resource(node_id, endpoint_id, from_group), member_resource(node_id, endpoint_id, to_group))
    task_id = f"move-node-to-group:{node_id:016X}:{endpoint_id}:{from_group:04X}:{to_group:04X}"
    joined, _ = store.tasks.clear_way(resources, task_id)
    if joined is not None:
        return joined
    changes = _add_member(store, node_id, endpoint_id, to_group) + _remove_member(store, node_id, endpoint_id,
                                                                                   from_group)
    params = {"node_id": node_id, "endpoint_id": endpoint_id, "from_group": from_group, "to_group": to_group}
    return store.tasks.start(TaskRecord(task_id, TaskType.MOVE_NODE_TO_GROUP, params, resources, members=(node_id,),
                                        changeset=tuple(changes)))


def single_epoch(key_set: GroupKeySet) -> bool:
    """The steady state a rotation starts from and ends in: one epoch key (Node Manager: "multi-epoch keysets are
    unsupported"); a set with several epochs is a schedule its writer made, pushed as it is."""
    return key_set.epoch_key0 is not NULL and key_set.epoch_key1 is NULL and key_set.epoch_key2 is NULL


def rotate_group_key(store: JfdsStore, new: GroupKeySet, *, clock: Any = time.time) -> TaskRecord | None:
    """UpdateKeySet's changes (the caller checked id and existence). When nodes hold the set and both the old and
    the new value are single-epoch with different keys, a RotateGroupKey task; otherwise the new value is pushed
    to every holder as it is. A live rotation not yet activated is superseded (the new one starts from the key
    the nodes still use); one past activation makes this BUSY (``TaskConflictError``)."""
    key_set_id = new.group_key_set_id
    resource, task_id = key_set_resource(key_set_id), f"rotate-group-key:{key_set_id:04X}"
    current = store.key_set(key_set_id)
    assert current is not None
    live = store.tasks.holding((resource,))
    if any(t.task_id == task_id and t.params["new"] == new.encode().hex() for t in live):
        return live[0]  # the same UpdateKeySet again: the rotation in progress
    _, superseded = store.tasks.clear_way((resource,), "")
    in_use = next((GroupKeySet.decode(bytes.fromhex(t.params["old"])) for t in superseded
                   if t.type is TaskType.ROTATE_GROUP_KEY), current)
    holders = [e for e in store.entries(EntryKind.NODE_KEY_SET, key=key_set_id) if not e.removal]
    changed = store.replace_key_set(new)
    if not changed and not superseded:
        return None  # 11.24.7.2 with nothing new: nothing to push
    for entry in holders:
        store.renew(entry.ref)
    if not holders or not single_epoch(in_use) or not single_epoch(new) or in_use.epoch_key0 == new.epoch_key0:
        return None
    return store.tasks.start(TaskRecord(task_id, TaskType.ROTATE_GROUP_KEY,
        {"key_set_id": key_set_id, "old": in_use.encode().hex(), "new": new.encode().hex()}, (resource,),
        members=tuple(sorted(e.ref.node_id for e in holders)),
        changeset=({"key_set": key_set_id, "prior": in_use.encode().hex()},),
        data={"distribute_at_s": matter_epoch_s(clock())}))
