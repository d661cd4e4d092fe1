"""Joint Fabric Datastore cluster server 0x0752 (Core spec 11.24): a thin ClusterServer over ``JfdsStore``.

Commands go to ``logic.DatastoreLogic`` (one datastore transaction each, inside the node's invoke
transaction). Attributes are computed from the datastore: ``read_<attribute>`` hooks give the Python values,
and ``read`` serves the IM from a per-attribute cache of each list's entries, already TLV-encoded (``tlv.Raw``),
so reading an 8192-entry list costs one encode per entry per change, not per read; the IM engine chunks it.
The cache is dropped when the datastore reports a change, and only filled outside transactions, so it never
holds uncommitted content.

Reports (11.24.6): every attribute whose content changes is touched (DataVersion bump, change notification)
when the datastore reports the change, on this cluster's endpoint; the node holds notifications until its
transaction commits and undoes the DataVersion on rollback. The reference SDK reports only NodeList.

Mount it on the Joint Fabric Administrator endpoint (device type 0x0130, endpoint 1 in jf-admin-app) with the
store built over the same ``Database`` as the ``Node``; call ``close()`` when unmounting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clusters.joint_fabric_datastore import schema as s
from clusters.joint_fabric_datastore.logic import DatastoreLogic
from clusters.joint_fabric_datastore.schema import (
    AddACLToNode,
    AddAdmin,
    AddBindingToEndpointForNode,
    AddGroup,
    AddGroupIDToEndpointForNode,
    AddKeySet,
    AddPendingNode,
    AdministratorInformationEntry,
    EndpointBindingEntry,
    EndpointEntry,
    EndpointGroupIDEntry,
    GroupInformationEntry,
    GroupKeySet,
    NodeInformationEntry,
    NodeKeySetEntry,
    RefreshNode,
    RemoveACLFromNode,
    RemoveAdmin,
    RemoveBindingFromEndpointForNode,
    RemoveGroup,
    RemoveGroupIDFromEndpointForNode,
    RemoveKeySet,
    RemoveNode,
    StatusEntry,
    UpdateAdmin,
    UpdateEndpointForNode,
    UpdateGroup,
    UpdateKeySet,
    UpdateNode,
)
from jfds_device.codec import tlv
from jfds_device.codec.model import AuthMode
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import DatastoreChange, EntryKind, Table
from jfds_device.im.provider import RequestContext, SubjectDescriptor

__all__ = ["ATTRIBUTES_OF", "JointFabricDatastoreServer"]

# Which attributes show each datastore table.
ATTRIBUTES_OF: dict[Table, tuple[int, ...]] = {
    Table.ANCHOR: (s.ANCHOR_ROOT_CA, s.ANCHOR_NODE_ID, s.ANCHOR_VENDOR_ID, s.FRIENDLY_NAME_ATTRIBUTE),
    Table.STATUS: (s.STATUS,),
    Table.KEY_SETS: (s.GROUP_KEY_SET_LIST,),
    Table.GROUPS: (s.GROUP_LIST,),
    Table.ADMINS: (s.ADMIN_LIST,),
    Table.NODES: (s.NODE_LIST,),
    Table.ENDPOINTS: (s.NODE_ENDPOINT_LIST,),
    Table.ENDPOINT_GROUPS: (s.ENDPOINT_GROUP_ID_LIST,),
    Table.NODE_KEY_SETS: (s.NODE_KEY_SET_LIST,),
    Table.BINDINGS: (s.ENDPOINT_BINDING_LIST,),
    Table.ACLS: (s.NODE_ACL_LIST,),
}
_LIST_TABLE = {attrs[0]: table for table, attrs in ATTRIBUTES_OF.items() if table not in (Table.ANCHOR, Table.STATUS)}


class JointFabricDatastoreServer(ClusterServer):
    CLUSTER = s.CLUSTER

    def __init__(self, store: JfdsStore, *, anchor_fabric: Callable[[], int | None]) -> None:
        """``anchor_fabric()``: the local index of the fabric the datastore was bootstrapped from (None before
        the bootstrap and after that fabric's removal)."""
        super().__init__()
        self.store = store
        self._anchor_fabric = anchor_fabric
        self.logic = DatastoreLogic(store)
        self._cache: dict[int, list[tlv.Raw]] = {}
        self._unsubscribe = store.observe(self._on_change)

    def close(self) -> None:
        """Stop following the datastore (unmount)."""
        self._unsubscribe()

    def serves(self, subject: SubjectDescriptor) -> bool:
        """The datastore belongs to the anchor fabric: only CASE sessions of that fabric reach it (the ACL then asks
        for Administer). Another fabric's admin, a PASE commissioner and a group message are treated as the ACL
        treats a denied subject, so the anchor's entries and epoch keys never leave the anchor fabric and nobody
        else can make the reconciler act with the anchor's credentials. Before the bootstrap nobody is served."""
        anchor = self._anchor_fabric()
        return anchor is not None and subject.auth_mode is AuthMode.CASE and subject.fabric_index == anchor

    def _on_change(self, change: DatastoreChange) -> None:
        for table in change.tables:
            for attribute in ATTRIBUTES_OF[table]:
                self._cache.pop(attribute, None)
                self.touch(attribute)

    # ------------------------------------------------------------------------------------------ reads (IM)

    def read(self, ctx: RequestContext | None, attribute: int) -> Any:
        table = _LIST_TABLE.get(attribute)
        if table is None:
            return super().read(ctx, attribute)
        cached = self._cache.get(attribute)
        if cached is None:
            cached = [tlv.Raw(item) for item in self.store.encoded_list(table)]
            if not self.store.in_transaction:  # never cache what a rollback could take back
                self._cache[attribute] = cached
        return cached

    # ------------------------------------------------------------------------------------------ attributes

    def read_anchor_root_ca(self, ctx: RequestContext | None) -> bytes:
        anchor = self.store.anchor()
        return b"" if anchor is None else anchor.root_ca

    def read_anchor_node_id(self, ctx: RequestContext | None) -> int:
        anchor = self.store.anchor()
        return 0 if anchor is None else anchor.node_id

    def read_anchor_vendor_id(self, ctx: RequestContext | None) -> int:
        anchor = self.store.anchor()
        return 0 if anchor is None else anchor.vendor_id

    def read_friendly_name(self, ctx: RequestContext | None) -> str:
        anchor = self.store.anchor()
        return "" if anchor is None else anchor.friendly_name

    def read_status(self, ctx: RequestContext | None) -> StatusEntry:
        return self.store.datastore_status()

    def read_group_key_set_list(self, ctx: RequestContext | None) -> list[GroupKeySet]:
        return self.store.key_sets()

    def read_group_list(self, ctx: RequestContext | None) -> list[GroupInformationEntry]:
        return self.store.groups()

    def read_node_list(self, ctx: RequestContext | None) -> list[NodeInformationEntry]:
        return self.store.nodes()

    def read_admin_list(self, ctx: RequestContext | None) -> list[AdministratorInformationEntry]:
        return self.store.admins()

    def read_endpoint_group_id_list(self, ctx: RequestContext | None) -> list[EndpointGroupIDEntry]:
        return [e.value for e in self.store.entries(EntryKind.ENDPOINT_GROUP)]

    def read_endpoint_binding_list(self, ctx: RequestContext | None) -> list[EndpointBindingEntry]:
        return [e.value for e in self.store.entries(EntryKind.BINDING)]

    def read_node_key_set_list(self, ctx: RequestContext | None) -> list[NodeKeySetEntry]:
        return [e.value for e in self.store.entries(EntryKind.NODE_KEY_SET)]

    def read_node_acl_list(self, ctx: RequestContext | None) -> list[s.ACLEntry]:
        return [e.value for e in self.store.entries(EntryKind.ACL)]

    def read_node_endpoint_list(self, ctx: RequestContext | None) -> list[EndpointEntry]:
        return [e.value for e in self.store.entries(EntryKind.ENDPOINT)]

    # ------------------------------------------------------------------------------------------ commands

    def on_add_key_set(self, ctx: RequestContext, request: AddKeySet) -> None:
        self.logic.add_key_set(request)

    def on_update_key_set(self, ctx: RequestContext, request: UpdateKeySet) -> None:
        self.logic.update_key_set(request)

    def on_remove_key_set(self, ctx: RequestContext, request: RemoveKeySet) -> None:
        self.logic.remove_key_set(request)

    def on_add_group(self, ctx: RequestContext, request: AddGroup) -> None:
        self.logic.add_group(request)

    def on_update_group(self, ctx: RequestContext, request: UpdateGroup) -> None:
        self.logic.update_group(request)

    def on_remove_group(self, ctx: RequestContext, request: RemoveGroup) -> None:
        self.logic.remove_group(request)

    def on_add_admin(self, ctx: RequestContext, request: AddAdmin) -> None:
        self.logic.add_admin(request)

    def on_update_admin(self, ctx: RequestContext, request: UpdateAdmin) -> None:
        self.logic.update_admin(request)

    def on_remove_admin(self, ctx: RequestContext, request: RemoveAdmin) -> None:
        self.logic.remove_admin(request)

    def on_add_pending_node(self, ctx: RequestContext, request: AddPendingNode) -> None:
        self.logic.add_pending_node(request)

    def on_refresh_node(self, ctx: RequestContext, request: RefreshNode) -> None:
        self.logic.refresh_node(request)

    def on_update_node(self, ctx: RequestContext, request: UpdateNode) -> None:
        self.logic.update_node(request)

    def on_remove_node(self, ctx: RequestContext, request: RemoveNode) -> None:
        self.logic.remove_node(request)

    def on_update_endpoint_for_node(self, ctx: RequestContext, request: UpdateEndpointForNode) -> None:
        self.logic.update_endpoint_for_node(request)

    def on_add_group_id_to_endpoint_for_node(self, ctx: RequestContext, request: AddGroupIDToEndpointForNode) -> None:
        self.logic.add_group_id_to_endpoint_for_node(request)

    def on_remove_group_id_from_endpoint_for_node(
        self, ctx: RequestContext, request: RemoveGroupIDFromEndpointForNode
    ) -> None:
        self.logic.remove_group_id_from_endpoint_for_node(request)

    def on_add_binding_to_endpoint_for_node(self, ctx: RequestContext, request: AddBindingToEndpointForNode) -> None:
        self.logic.add_binding_to_endpoint_for_node(request)

    def on_remove_binding_from_endpoint_for_node(
        self, ctx: RequestContext, request: RemoveBindingFromEndpointForNode
    ) -> None:
        self.logic.remove_binding_from_endpoint_for_node(request)

    def on_add_acl_to_node(self, ctx: RequestContext, request: AddACLToNode) -> None:
        self.logic.add_acl_to_node(request)

    def on_remove_acl_from_node(self, ctx: RequestContext, request: RemoveACLFromNode) -> None:
        self.logic.remove_acl_from_node(request)
