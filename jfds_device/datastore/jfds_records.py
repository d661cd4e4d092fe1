"""Value types of the Joint Fabric Datastore storage (Core spec 11.24): entry references, entries, the change
event, and the error tree. ``jfds.py`` holds the store itself; both know nothing about the Interaction Model.

An *entry* is one row of a per-node list (NodeList's commissioning status, NodeEndpointList,
EndpointGroupIDList, NodeKeySetList, EndpointBindingList, NodeACLList): it has a DatastoreStatusEntry (state,
UpdateTimestamp in Matter-epoch seconds, FailureCode) plus two things the wire does not show:

* ``removal``: the removal intent. It survives a CommitFailed, because CommitFailed alone does not say whether
  an add or a removal failed (the reference SDK keeps the same flag);
* ``revision``: a datastore-wide monotonically increasing number, renewed whenever the entry's *intent*
  changes (added, edited, re-pushed, removal requested or cancelled), never on a mere status outcome. A
  reconciler remembers the revision it pushed and passes it back to ``set_status`` / ``confirm_removed``; a
  stale completion (the entry was re-marked meanwhile) is then ignored. Ascending revision is also the order
  in which intents were made, e.g. a node's key set before the group that needs it (11.24.7.15).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from clusters.joint_fabric_datastore.schema import AccessControlEntry, DatastoreState, StatusEntry
from jfds_device.errors import (  # the datastore's refusals live in the one error tree; re-exported for datastore/
    CapacityError,
    DatastoreError,
    DuplicateEntryError,
    EntryNotFoundError,
    InvalidEntryError,
    NotBootstrappedError,
    WrongStateError,
)

__all__ = [
    "Anchor",
    "CapacityError",
    "DatastoreChange",
    "DatastoreError",
    "DuplicateEntryError",
    "Entry",
    "EntryKind",
    "EntryNotFoundError",
    "EntryRef",
    "InvalidEntryError",
    "NotBootstrappedError",
    "Table",
    "WrongStateError",
]


class Table(enum.Enum):
    """What changed, one member per JFDS attribute group (the cluster server maps them to attribute ids)."""

    ANCHOR = "anchor"  # AnchorRootCA, AnchorNodeID, AnchorVendorID, FriendlyName
    STATUS = "status"  # the datastore's own Status
    KEY_SETS = "key_sets"  # GroupKeySetList
    GROUPS = "groups"  # GroupList
    ADMINS = "admins"  # AdminList
    NODES = "nodes"  # NodeList
    ENDPOINTS = "endpoints"  # NodeEndpointList
    ENDPOINT_GROUPS = "endpoint_groups"  # EndpointGroupIDList
    NODE_KEY_SETS = "node_key_sets"  # NodeKeySetList
    BINDINGS = "bindings"  # EndpointBindingList
    ACLS = "acls"  # NodeACLList


class EntryKind(enum.Enum):
    """The kinds of per-node entries that carry a status."""

    NODE = "node"
    ENDPOINT = "endpoint"
    ENDPOINT_GROUP = "endpoint_group"
    NODE_KEY_SET = "node_key_set"
    BINDING = "binding"
    ACL = "acl"

    @property
    def table(self) -> Table:
        return _KIND_TABLE[self]


_KIND_TABLE = {
    EntryKind.NODE: Table.NODES,
    EntryKind.ENDPOINT: Table.ENDPOINTS,
    EntryKind.ENDPOINT_GROUP: Table.ENDPOINT_GROUPS,
    EntryKind.NODE_KEY_SET: Table.NODE_KEY_SETS,
    EntryKind.BINDING: Table.BINDINGS,
    EntryKind.ACL: Table.ACLS,
}


@dataclass(frozen=True, slots=True)
class EntryRef:
    """Identifies one entry; stable for the entry's life. ``key`` is the group id, key set id or ListID."""

    kind: EntryKind
    node_id: int
    endpoint_id: int | None = None
    key: int | None = None

    @classmethod
    def node(cls, node_id: int) -> EntryRef:
        return cls(EntryKind.NODE, node_id)

    @classmethod
    def endpoint(cls, node_id: int, endpoint_id: int) -> EntryRef:
        return cls(EntryKind.ENDPOINT, node_id, endpoint_id)

    @classmethod
    def endpoint_group(cls, node_id: int, endpoint_id: int, group_id: int) -> EntryRef:
        return cls(EntryKind.ENDPOINT_GROUP, node_id, endpoint_id, group_id)

    @classmethod
    def node_key_set(cls, node_id: int, key_set_id: int) -> EntryRef:
        return cls(EntryKind.NODE_KEY_SET, node_id, None, key_set_id)

    @classmethod
    def binding(cls, node_id: int, endpoint_id: int, list_id: int) -> EntryRef:
        return cls(EntryKind.BINDING, node_id, endpoint_id, list_id)

    @classmethod
    def acl(cls, node_id: int, list_id: int) -> EntryRef:
        return cls(EntryKind.ACL, node_id, None, list_id)

    @property
    def ids(self) -> tuple[int, ...]:
        """The identifying values, in the order of the kind's key columns."""
        return tuple(v for v in (self.node_id, self.endpoint_id, self.key) if v is not None)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as stored. ``value`` is the wire struct (``ACLEntry``, ``EndpointBindingEntry``, ...) with its
    status; ``superseded`` (ACL entries only) holds the values this entry had since it was last Committed, which
    the node may still hold and a push must replace (an ACL edit by value)."""

    ref: EntryRef
    value: Any
    status: StatusEntry
    removal: bool
    revision: int
    superseded: tuple[AccessControlEntry, ...] = ()

    @property
    def state(self) -> DatastoreState:
        return self.status.state


@dataclass(frozen=True, slots=True)
class Anchor:
    """The anchor facts of AnchorRootCA / AnchorNodeID / AnchorVendorID / FriendlyName (11.24.6.1-4)."""

    root_ca: bytes
    node_id: int
    vendor_id: int
    friendly_name: str

    def __repr__(self) -> str:
        return f"Anchor(node_id=0x{self.node_id:016X}, vendor_id=0x{self.vendor_id:04X}, name={self.friendly_name!r})"


@dataclass(frozen=True, slots=True)
class DatastoreChange:
    """What one datastore operation (or one ``transaction()`` block) changed, delivered to observers once the
    operation's outermost block has completed. A hint, not a log: an enclosing transaction the datastore does
    not own (the node's invoke) may still roll back, so consumers re-read the entries they act on.

    * ``tables``: every table whose content changed (what a reader of the attributes would see);
    * ``intent``: entries added, edited, re-pushed, marked for removal or whose removal was cancelled; the
      reconciler pushes these (in ascending revision);
    * ``status``: entries whose status changed without an intent change (outcomes, refresh adoption);
    * ``erased``: entries that are gone (removal confirmed, node removed, endpoint vanished);
    * ``refresh``: nodes for which RefreshNode was requested (11.24.7.11);
    * ``wiped``: the whole datastore was cleared (anchor fabric removed).
    """

    tables: frozenset[Table]
    intent: tuple[EntryRef, ...] = ()
    status: tuple[EntryRef, ...] = ()
    erased: tuple[EntryRef, ...] = ()
    refresh: tuple[int, ...] = ()
    wiped: bool = False
