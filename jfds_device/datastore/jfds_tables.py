"""Storage layout of the Joint Fabric Datastore (Core spec 11.24): the ``jfds`` migrations, how each entry kind
maps to its table and wire struct, and the value rules shared by the store (``jfds.py``). Private to the
datastore package; nothing here touches a connection.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from clusters.joint_fabric_datastore import schema as s
from clusters.joint_fabric_datastore.schema import (
    AccessControlEntry,
    ACLEntry,
    EndpointBindingEntry,
    EndpointEntry,
    EndpointGroupIDEntry,
    GroupKeySet,
    NodeInformationEntry,
    NodeKeySetEntry,
    StatusEntry,
)
from jfds_device.codec import tlv
from jfds_device.codec.schema import NULL, List, Struct, StructType
from jfds_device.datastore.jfds_records import EntryKind, EntryRef, InvalidEntryError
from jfds_device.datastore.sqlite import Migration
from jfds_device.errors import SchemaError

MIGRATION_COMPONENT = "jfds"
MATTER_EPOCH_UNIX = 946_684_800  # 2000-01-01T00:00:00Z, the Matter epoch (Core spec 7.19.2.4 epoch-s)
MAX_LIST_ID = 0xFFFF

_STATUS = "state INTEGER NOT NULL, removal INTEGER NOT NULL, updated INTEGER NOT NULL, failure INTEGER NOT NULL"
_NODE_FK = "REFERENCES jfds_nodes (node_id) ON DELETE CASCADE"
_ENDPOINT_FK = "FOREIGN KEY (node_id, endpoint_id) REFERENCES jfds_endpoints (node_id, endpoint_id) ON DELETE CASCADE"
JFDS_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            "CREATE TABLE jfds_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
            "INSERT INTO jfds_counters (name, value) VALUES ('revision', 0), ('list_id', 0)",
            "CREATE TABLE jfds_anchor (id INTEGER PRIMARY KEY CHECK (id = 1), root_ca BLOB NOT NULL,"
            " node_id INTEGER NOT NULL, vendor_id INTEGER NOT NULL, friendly_name TEXT NOT NULL,"
            " state INTEGER NOT NULL, updated INTEGER NOT NULL, failure INTEGER NOT NULL)",
            # Key sets, groups and admins: the wire struct as TLV (the key set's epoch keys included).
            "CREATE TABLE jfds_key_sets (key_set_id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
            "CREATE TABLE jfds_groups (group_id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
            "CREATE TABLE jfds_admins (node_id INTEGER PRIMARY KEY, position INTEGER NOT NULL UNIQUE,"
            " data BLOB NOT NULL)",
            f"CREATE TABLE jfds_nodes (node_id INTEGER PRIMARY KEY, friendly_name TEXT NOT NULL, {_STATUS},"
            " revision INTEGER NOT NULL)",
            f"CREATE TABLE jfds_endpoints (node_id INTEGER NOT NULL {_NODE_FK}, endpoint_id INTEGER NOT NULL,"
            f" friendly_name TEXT NOT NULL, {_STATUS}, revision INTEGER NOT NULL,"
            " PRIMARY KEY (node_id, endpoint_id)) WITHOUT ROWID",
            "CREATE TABLE jfds_endpoint_groups (node_id INTEGER NOT NULL, endpoint_id INTEGER NOT NULL,"
            f" group_id INTEGER NOT NULL, {_STATUS}, revision INTEGER NOT NULL,"
            f" PRIMARY KEY (node_id, endpoint_id, group_id), {_ENDPOINT_FK}) WITHOUT ROWID",
            "CREATE INDEX jfds_endpoint_groups_group ON jfds_endpoint_groups (group_id)",
            f"CREATE TABLE jfds_node_key_sets (node_id INTEGER NOT NULL {_NODE_FK}, key_set_id INTEGER NOT NULL,"
            f" {_STATUS}, revision INTEGER NOT NULL, PRIMARY KEY (node_id, key_set_id)) WITHOUT ROWID",
            "CREATE INDEX jfds_node_key_sets_key_set ON jfds_node_key_sets (key_set_id)",
            # target: the BindingTarget TLV, canonical (members in tag order), so equal bindings are equal bytes.
            "CREATE TABLE jfds_bindings (list_id INTEGER PRIMARY KEY, node_id INTEGER NOT NULL,"
            f" endpoint_id INTEGER NOT NULL, target BLOB NOT NULL, {_STATUS}, revision INTEGER NOT NULL,"
            f" {_ENDPOINT_FK})",
            "CREATE UNIQUE INDEX jfds_bindings_value ON jfds_bindings (node_id, endpoint_id, target)",
            # ace: the entry's TLV; value_key: its by-value identity (acl_value_key); superseded: TLV array of the
            # values the node may still hold since the entry was last Committed.
            f"CREATE TABLE jfds_acls (list_id INTEGER PRIMARY KEY, node_id INTEGER NOT NULL {_NODE_FK},"
            f" ace BLOB NOT NULL, value_key BLOB NOT NULL, superseded BLOB, {_STATUS}, revision INTEGER NOT NULL)",
            "CREATE UNIQUE INDEX jfds_acls_value ON jfds_acls (node_id, value_key)",
        ),
    ),
    # ListIDs are now the lowest free id (computed from the tables), not a counter.
    Migration(2, ("DELETE FROM jfds_counters WHERE name = 'list_id'",)),
)

# Per-connection helper of ListID allocation (``EntryStore._next_list_id``): the lowest id that may be free.
LIST_ID_HINT_STATEMENTS = (
    "CREATE TEMP TABLE IF NOT EXISTS jfds_list_id_hint (value INTEGER NOT NULL)",
    "DELETE FROM temp.jfds_list_id_hint",
    "INSERT INTO temp.jfds_list_id_hint (value) VALUES (1)",
    *(
        f"CREATE TEMP TRIGGER IF NOT EXISTS jfds_{table}_frees_list_id AFTER DELETE ON main.jfds_{table}"
        " BEGIN UPDATE jfds_list_id_hint SET value = MIN(value, OLD.list_id); END"
        for table in ("acls", "bindings")
    ),
)

SUPERSEDED = List(StructType(AccessControlEntry))


def matter_epoch_s(unix_seconds: float) -> int:
    """Unix time -> Matter-epoch seconds (epoch-s, uint32), clamped to the type's range."""
    return min(max(int(unix_seconds) - MATTER_EPOCH_UNIX, 0), 0xFFFF_FFFF)


def acl_value_key(ace: AccessControlEntry) -> bytes:
    """ACL equality by value (the reference's ``ApplyAclEdit`` rule): privilege, auth mode, and subjects and
    targets as multisets, a null list equal to an empty one. Returned as canonical bytes."""
    subjects = sorted(int(x) for x in ace.subjects or ())
    targets = sorted(
        (
            -1 if t.cluster is NULL else t.cluster,
            -1 if t.endpoint is NULL else t.endpoint,
            -1 if t.device_type is NULL else t.device_type,
        )
        for t in ace.targets or ()
    )
    return repr((int(ace.privilege), int(ace.auth_mode), subjects, targets)).encode()


# ---------------------------------------------------------------------------------------------------- kinds


def to_sql_u64(value: int) -> int:
    """uint64 (node ids) -> SQLite's signed 64-bit INTEGER, order-preserving (operational node ids reach
    0xFFFFFFEFFFFFFFFF; random 64-bit ids above 2^63 are common)."""
    return value - (1 << 63)


def from_sql_u64(value: int) -> int:
    return value + (1 << 63)


@functools.cache
def _tags(struct_class: type[Struct]) -> dict[str, int]:
    return {f.name: f.tag for f in struct_class.FIELDS}


@functools.cache
def _types(struct_class: type[Struct]) -> dict[str, Any]:
    return {f.name: f.type for f in struct_class.FIELDS}


_STATUS_TAGS = _tags(StatusEntry)


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How one entry kind is stored. ``data`` columns come first in every SELECT (node_id always first, stored
    with ``to_sql_u64``), then the status columns; ``fields`` names the wire-struct field of each data column
    (None: not on the wire); ``blobs`` are the columns holding a nested struct as TLV."""

    kind: EntryKind
    table: str
    keys: tuple[str, ...]  # identity columns, in EntryRef.ids order
    data: tuple[str, ...]
    fields: tuple[str | None, ...]
    struct: type[Struct]
    status_field: str
    order: str
    limit: int
    blobs: frozenset[str] = frozenset()

    @property
    def select(self) -> str:
        return f"SELECT {', '.join(self.data)}, state, removal, updated, failure, revision FROM {self.table}"

    @property
    def where(self) -> str:
        return " AND ".join(f"{k} = ?" for k in self.keys)

    def ref(self, row: tuple[Any, ...]) -> EntryRef:
        """The entry's reference from a row whose node id is already converted back."""
        named = dict(zip(self.data, row, strict=False))
        extra = [named[k] for k in self.keys[1:] if k != "endpoint_id"]
        return EntryRef(self.kind, named["node_id"], named.get("endpoint_id"), extra[0] if extra else None)

    def build(self, row: tuple[Any, ...], status: StatusEntry) -> Any:
        """The wire struct (with ``status``) from a row whose node id is already converted back."""
        types = _types(self.struct)
        values: dict[str, Any] = {self.status_field: status}
        for column, name, value in zip(self.data, self.fields, row, strict=False):
            if name is not None:
                values[name] = types[name].struct_class.decode(value) if column in self.blobs else value  # type: ignore[attr-defined]
        return self.struct(**values)

    def encode_row(self, row: tuple[Any, ...]) -> bytes:
        """The wire struct as an anonymous TLV element, straight from a row (no struct objects; nested TLV
        columns are spliced in as they are stored): the fast path for reading 8192-entry lists."""
        tags = _tags(self.struct)
        members: dict[int, Any] = {}
        for column, name, value in zip(self.data, self.fields, row, strict=False):
            if name is not None:
                members[tags[name]] = tlv.Raw(value) if column in self.blobs else value
        n = len(self.data)
        members[tags[self.status_field]] = {
            _STATUS_TAGS["state"]: row[n],
            _STATUS_TAGS["update_timestamp"]: row[n + 2],
            _STATUS_TAGS["failure_code"]: row[n + 3],
        }
        return tlv.encode(dict(sorted(members.items())))


def _kind(kind: EntryKind, struct: type[Struct], table: str, data: str, wire: str, keys: int, **extra: Any) -> KindSpec:
    """A KindSpec from compact column lists: ``data``/``wire`` are space-separated (``-``: not on the wire) and
    the first ``keys`` data columns identify the entry."""
    columns = tuple(data.split())
    return KindSpec(
        kind=kind,
        table=table,
        keys=columns[:keys],
        data=columns,
        fields=tuple(None if f == "-" else f for f in wire.split()),
        struct=struct,
        status_field=extra.pop("status_field", "status_entry"),
        order=extra.pop("order", ", ".join(columns[:keys])),
        limit=extra.pop("limit", s.MAX_PER_NODE_ENTRIES),
        blobs=frozenset(extra.pop("blobs", ())),
    )


KINDS: dict[EntryKind, KindSpec] = {
    k.kind: k
    for k in (
        _kind(
            EntryKind.NODE,
            NodeInformationEntry,
            "jfds_nodes",
            "node_id friendly_name",
            "node_id friendly_name",
            1,
            status_field="commissioning_status_entry",
            limit=s.MAX_NODES,
        ),
        _kind(
            EntryKind.ENDPOINT,
            EndpointEntry,
            "jfds_endpoints",
            "node_id endpoint_id friendly_name",
            "node_id endpoint_id friendly_name",
            2,
        ),
        _kind(
            EntryKind.ENDPOINT_GROUP,
            EndpointGroupIDEntry,
            "jfds_endpoint_groups",
            "node_id endpoint_id group_id",
            "node_id endpoint_id group_id",
            3,
        ),
        _kind(
            EntryKind.NODE_KEY_SET,
            NodeKeySetEntry,
            "jfds_node_key_sets",
            "node_id key_set_id",
            "node_id group_key_set_id",
            2,
        ),
        _kind(
            EntryKind.BINDING,
            EndpointBindingEntry,
            "jfds_bindings",
            "node_id endpoint_id list_id target",
            "node_id endpoint_id list_id binding",
            3,
            order="list_id",
            blobs={"target"},
        ),
        _kind(
            EntryKind.ACL,
            ACLEntry,
            "jfds_acls",
            "node_id list_id ace superseded",
            "node_id list_id acl_entry -",
            2,
            order="list_id",
            blobs={"ace"},
        ),
    )
}
# Where filters may point (entries(..., endpoint_id=, key=)): the column each EntryRef field maps to.
KEY_COLUMN = {EntryKind.ENDPOINT_GROUP: "group_id", EntryKind.NODE_KEY_SET: "key_set_id"}


def encode(value: Struct) -> bytes:
    try:
        return value.encode()
    except SchemaError as exc:
        raise InvalidEntryError(f"{type(value).__name__}: {exc}") from exc


def check_key_set(key_set: GroupKeySet) -> None:
    """What every node's KeySetWrite requires of a key set (Core spec 11.2.7.1): an EpochKey0 with its start time,
    each epoch key paired with its start time, keys of the epoch key length. The message names no key bytes."""
    if key_set.epoch_key0 is NULL or key_set.epoch_start_time0 is NULL:
        raise InvalidEntryError("EpochKey0 and EpochStartTime0 are required")
    pairs = (
        (key_set.epoch_key0, key_set.epoch_start_time0),
        (key_set.epoch_key1, key_set.epoch_start_time1),
        (key_set.epoch_key2, key_set.epoch_start_time2),
    )
    for slot, (key, start) in enumerate(pairs):
        if (key is NULL) != (start is NULL):
            raise InvalidEntryError(f"EpochKey{slot} and EpochStartTime{slot} must both be null or both be set")
        if key is not NULL and len(key) != s.EPOCH_KEY_LENGTH:  # type: ignore[arg-type]
            raise InvalidEntryError(f"EpochKey{slot} must be {s.EPOCH_KEY_LENGTH} bytes")
