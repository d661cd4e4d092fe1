"""The per-node entries of the Joint Fabric Datastore (Core spec 11.24): NodeList, NodeEndpointList,
EndpointGroupIDList, EndpointBindingList, NodeKeySetList and NodeACLList, with their per-entry status.

A component of ``JfdsStore`` (``jfds.py``), which is the class to use; it shares the store's ``DatastoreCore``
(``jfds_core.py``: database, transaction, change batch, revision counter, clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clusters.joint_fabric_datastore.schema import (
    AccessControlEntry,
    BindingTarget,
    DatastoreState,
    NodeInformationEntry,
    StatusEntry,
)
from jfds_device.codec import tlv
from jfds_device.datastore.jfds_core import DatastoreCore, atomic
from jfds_device.datastore.jfds_records import (
    CapacityError,
    DuplicateEntryError,
    Entry,
    EntryKind,
    EntryNotFoundError,
    EntryRef,
    Table,
)
from jfds_device.datastore.jfds_tables import (
    KEY_COLUMN,
    KINDS,
    LIST_ID_HINT_STATEMENTS,
    MAX_LIST_ID,
    SUPERSEDED,
    acl_value_key,
    encode,
    from_sql_u64,
    to_sql_u64,
)
from jfds_device.errors import LocalProtocolError

__all__ = ["EntryStore"]


def _ids(ref: EntryRef) -> tuple[int, ...]:
    """The ref's identifying values as bound in SQL (the node id converted to the signed column form)."""
    return (to_sql_u64(ref.node_id), *ref.ids[1:])


class EntryStore:
    """The per-node entries over a shared ``DatastoreCore``; every public mutator runs in its transaction."""

    def __init__(self, core: DatastoreCore) -> None:
        self._core = core
        # The lowest ListID that may be free, per connection: deletes lower it (temp triggers fire for cascades and
        # wipes too); it starts at 1 on every open, so a stale value can never skip a free id.
        for statement in LIST_ID_HINT_STATEMENTS:
            core.db.execute(statement)

    def delete_all(self) -> None:
        """Delete every entry, children before parents, for ``JfdsStore.wipe`` (which runs it in a transaction and
        records the change)."""
        for table in (
            "jfds_bindings",
            "jfds_endpoint_groups",
            "jfds_acls",
            "jfds_node_key_sets",
            "jfds_endpoints",
            "jfds_nodes",
        ):
            self._core.db.execute(f"DELETE FROM {table}")

    def _next_list_id(self, table: Table) -> int:
        """The lowest free ListID of the space bindings and ACL entries share (1..0xFFFF, the spec's uint16): ids
        of erased entries are handed out again, so the space lasts forever; full only with 65535 live entries.
        Candidates are the hint and every used id above it plus one: O(used ids above the hint)."""
        hint = int(self._core.row("SELECT value FROM temp.jfds_list_id_hint")[0])
        found = self._core.row(
            "SELECT MIN(c) FROM (SELECT ? AS c UNION ALL SELECT list_id + 1 FROM jfds_acls WHERE list_id >= ?"
            " UNION ALL SELECT list_id + 1 FROM jfds_bindings WHERE list_id >= ?) WHERE c <= ?"
            " AND NOT EXISTS (SELECT 1 FROM jfds_acls WHERE list_id = c)"
            " AND NOT EXISTS (SELECT 1 FROM jfds_bindings WHERE list_id = c)",
            (hint, hint, hint, MAX_LIST_ID),
        )[0]
        if found is None:
            raise CapacityError(table, MAX_LIST_ID, "every ListID is in use")
        self._core.db.execute("UPDATE temp.jfds_list_id_hint SET value = ?", (found + 1,))
        return int(found)

    # ------------------------------------------------------------------------------------------ entries: reads

    def entry(self, ref: EntryRef) -> Entry | None:
        kind = KINDS[ref.kind]
        if len(ref.ids) != len(kind.keys):
            return None
        row = self._core.row(f"{kind.select} WHERE {kind.where}", _ids(ref))
        return None if row is None else self._entry(ref.kind, row)

    def entries(
        self, kind: EntryKind, *, node_id: int | None = None, endpoint_id: int | None = None, key: int | None = None
    ) -> list[Entry]:
        """Entries of ``kind`` in list order, optionally only those of a node / endpoint / group or key set id."""
        spec = KINDS[kind]
        clauses, params = [], []
        endpoint_column = "endpoint_id" if "endpoint_id" in spec.data else None
        node = None if node_id is None else to_sql_u64(node_id)
        for column, value in (("node_id", node), (endpoint_column, endpoint_id), (KEY_COLUMN.get(kind), key)):
            if value is not None:
                if column is None:
                    raise LocalProtocolError(f"{kind.value} entries have no such filter")
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [self._entry(kind, r) for r in self._core.rows(f"{spec.select}{where} ORDER BY {spec.order}", params)]

    def count(self, kind: EntryKind) -> int:
        return self._core.count(KINDS[kind].table)

    def encoded(self, kind: EntryKind) -> list[bytes]:
        """Every entry of ``kind`` as its wire struct TLV (anonymous element), in list order; built straight from
        the rows, for serving whole lists fast."""
        spec = KINDS[kind]
        rows = self._core.rows(f"{spec.select} ORDER BY {spec.order}")
        return [spec.encode_row((from_sql_u64(r[0]), *r[1:])) for r in rows]

    def entries_for_node(self, node_id: int) -> list[Entry]:
        """Every entry of the node (its own commissioning status included), in revision order."""
        found = [e for kind in EntryKind for e in self.entries(kind, node_id=node_id)]
        return sorted(found, key=lambda e: e.revision)

    def pending_entries(self, node_id: int | None = None) -> list[Entry]:
        """Entries that are not Committed (Pending, DeletePending, CommitFailed), in revision order: the
        reconciler's work list (11.24.4.3 Pending Data Cleanup)."""
        found = []
        node_filter, params = ("", ()) if node_id is None else (" AND node_id = ?", (to_sql_u64(node_id),))
        for kind, spec in KINDS.items():
            sql = f"{spec.select} WHERE state != {int(DatastoreState.COMMITTED)}{node_filter}"
            found.extend(self._entry(kind, r) for r in self._core.rows(sql, params))
        return sorted(found, key=lambda e: e.revision)

    def _entry(self, kind: EntryKind, row: tuple[Any, ...]) -> Entry:
        spec = KINDS[kind]
        row = (from_sql_u64(row[0]), *row[1:])
        n = len(spec.data)
        state, removal, updated, failure, revision = row[n:]
        status = StatusEntry(state=DatastoreState(state), update_timestamp=updated, failure_code=failure)
        superseded: tuple[AccessControlEntry, ...] = ()
        if kind is EntryKind.ACL and row[3] is not None:
            superseded = tuple(SUPERSEDED.from_tlv(tlv.decode(row[3])))
        return Entry(spec.ref(row), spec.build(row, status), status, bool(removal), revision, superseded)

    # ------------------------------------------------------------------------------------------ entries: intent

    def _insert(self, ref: EntryRef, columns: dict[str, Any], committed: bool) -> EntryRef:
        """Insert a new entry: Pending (an intent to push) or, for refresh adoption, Committed."""
        spec = KINDS[ref.kind]
        if self._core.count(spec.table) >= spec.limit:
            raise CapacityError(ref.kind.table, spec.limit)
        state = DatastoreState.COMMITTED if committed else DatastoreState.PENDING
        values = {**columns, "node_id": to_sql_u64(ref.node_id), "state": int(state), "removal": 0}
        values.update(updated=self._core.now(), failure=0, revision=self._core.next_revision())
        placeholders = ", ".join("?" * len(values))
        self._core.db.execute(
            f"INSERT INTO {spec.table} ({', '.join(values)}) VALUES ({placeholders})", list(values.values())
        )
        batch = self._core.record()
        (batch.status if committed else batch.intent).append(ref)
        batch.tables.add(ref.kind.table)
        return ref

    def _keep(self, existing: Entry, committed: bool) -> EntryRef:
        """Adding what exists: a live entry stays as it is; one being removed is revived (the removal is
        cancelled: Pending, FailureCode cleared, new revision), as the reference's ``CancelRemoval`` does.
        Refresh adoption (``committed``) never cancels a removal: the node still holds what we remove."""
        if existing.removal and not committed:
            self._set(existing.ref, DatastoreState.PENDING, removal=False, bump=True)
        return existing.ref

    def _set(self, ref: EntryRef, state: DatastoreState, *, removal: bool, bump: bool, failure: int = 0) -> None:
        spec = KINDS[ref.kind]
        sets = "state = ?, removal = ?, failure = ?, updated = ?"
        params: list[Any] = [int(state), int(removal), failure, self._core.now()]
        if bump:
            sets += ", revision = ?"
            params.append(self._core.next_revision())
        if ref.kind is EntryKind.ACL and state is DatastoreState.COMMITTED:
            sets += ", superseded = NULL"
        self._core.db.execute(f"UPDATE {spec.table} SET {sets} WHERE {spec.where}", [*params, *_ids(ref)])
        batch = self._core.record()
        (batch.intent if bump else batch.status).append(ref)
        batch.tables.add(ref.kind.table)

    @atomic
    def request_removal(self, ref: EntryRef) -> bool:
        """Mark an entry DeletePending (removal intent); False if it already is. Nodes and endpoints are not
        removed this way (``remove_node``, ``sync_endpoints``)."""
        if ref.kind in (EntryKind.NODE, EntryKind.ENDPOINT):
            raise LocalProtocolError(f"{ref.kind.value} entries are not removed by request_removal")
        existing = self.entry(ref)
        if existing is None:
            raise EntryNotFoundError(repr(ref))
        if existing.removal:
            return False
        self._set(ref, DatastoreState.DELETE_PENDING, removal=True, bump=True)
        return True

    @atomic
    def renew(self, ref: EntryRef) -> bool:
        """Ask for the entry to be pushed again (Pending, new revision), e.g. after the key set it carries
        changed. An entry being removed stays so; returns whether anything changed."""
        existing = self.entry(ref)
        if existing is None:
            raise EntryNotFoundError(repr(ref))
        if existing.removal:
            return False
        self._set(ref, DatastoreState.PENDING, removal=False, bump=True)
        return True

    # ------------------------------------------------------------------------------------------ entries: status

    @atomic
    def set_status(
        self, ref: EntryRef, state: DatastoreState, failure_code: int = 0, *, revision: int | None = None
    ) -> bool:
        """Record a push outcome (the reconciler's API). Returns False, changing nothing, if the entry is gone
        or, with ``revision``, if its intent changed since that revision (a stale completion).

        COMMITTED: the node holds the entry (FailureCode 0; an ACL entry's superseded values are dropped); not
        for removals, which end with ``confirm_removed``. COMMIT_FAILED: ``failure_code`` is the IM status
        (TIMEOUT 0x94, BUSY 0x9C, ...); the intent is kept. PENDING: retry (a removal stays DeletePending).
        DELETE_PENDING: the same as ``request_removal``.
        """
        state = DatastoreState(state)
        existing = self.entry(ref)
        if existing is None or (revision is not None and existing.revision != revision):
            return False
        if state is DatastoreState.DELETE_PENDING:
            self.request_removal(ref)
            return True
        if state is DatastoreState.COMMITTED:
            if existing.removal:
                raise LocalProtocolError("a removal completes with confirm_removed(), not Committed")
            failure_code = 0
        elif state is DatastoreState.COMMIT_FAILED:
            if not 0 < failure_code <= 0xFF:
                raise LocalProtocolError("CommitFailed needs the IM status that failed")
        else:  # PENDING: a retry keeps the intent
            state = DatastoreState.DELETE_PENDING if existing.removal else DatastoreState.PENDING
            failure_code = 0
        if existing.state is state and existing.status.failure_code == failure_code and not existing.superseded:
            return True
        self._set(ref, state, removal=existing.removal, bump=False, failure=failure_code)
        return True

    @atomic
    def confirm_removed(self, ref: EntryRef, *, revision: int | None = None) -> bool:
        """The node no longer holds a DeletePending entry: erase it. False (nothing erased) if the entry is gone,
        is not being removed (a re-add cancelled the removal), or changed since ``revision``."""
        if ref.kind in (EntryKind.NODE, EntryKind.ENDPOINT):
            raise LocalProtocolError(f"{ref.kind.value} entries are not removed by confirm_removed")
        existing = self.entry(ref)
        if existing is None or not existing.removal or (revision is not None and existing.revision != revision):
            return False
        self._erase([ref])
        return True

    def _erase(self, refs: list[EntryRef]) -> None:
        batch = self._core.record()
        for ref in refs:
            spec = KINDS[ref.kind]
            self._core.db.execute(f"DELETE FROM {spec.table} WHERE {spec.where}", _ids(ref))
            batch.erased.append(ref)
            batch.tables.add(ref.kind.table)

    # ------------------------------------------------------------------------------------------ nodes, endpoints

    def nodes(self) -> list[NodeInformationEntry]:
        return [e.value for e in self.entries(EntryKind.NODE)]

    def node(self, node_id: int) -> NodeInformationEntry | None:
        found = self.entry(EntryRef.node(node_id))
        return None if found is None else found.value

    @atomic
    def add_node(self, node_id: int, friendly_name: str) -> EntryRef:
        """AddPendingNode (11.24.7.10): the node with its commissioning status Pending."""
        ref = EntryRef.node(node_id)
        if self.entry(ref) is not None:
            raise DuplicateEntryError(f"node 0x{node_id:X} exists")
        return self._insert(ref, {"node_id": node_id, "friendly_name": friendly_name}, False)

    @atomic
    def rename_node(self, node_id: int, friendly_name: str) -> None:
        if (
            self._core.db.execute(
                "UPDATE jfds_nodes SET friendly_name = ?, updated = ? WHERE node_id = ?",
                (friendly_name, self._core.now(), to_sql_u64(node_id)),
            ).rowcount
            == 0
        ):
            raise EntryNotFoundError(f"node 0x{node_id:X}")
        self._core.record().tables.add(Table.NODES)

    @atomic
    def request_refresh(self, node_id: int) -> None:
        """RefreshNode (11.24.7.11): the node's commissioning status becomes Pending; the reconciler refreshes."""
        ref = EntryRef.node(node_id)
        existing = self.entry(ref)
        if existing is None:
            raise EntryNotFoundError(f"node 0x{node_id:X}")
        self._set(ref, DatastoreState.PENDING, removal=False, bump=True)
        self._core.record().refresh.append(node_id)

    @atomic
    def remove_node(self, node_id: int) -> None:
        """RemoveNode (11.24.7.13): the node and every entry of it are erased at once."""
        if self.entry(EntryRef.node(node_id)) is None:
            raise EntryNotFoundError(f"node 0x{node_id:X}")
        order = (
            EntryKind.BINDING,
            EntryKind.ENDPOINT_GROUP,
            EntryKind.ACL,
            EntryKind.NODE_KEY_SET,
            EntryKind.ENDPOINT,
            EntryKind.NODE,
        )
        self._erase([e.ref for kind in order for e in self.entries(kind, node_id=node_id)])

    @atomic
    def rename_endpoint(self, node_id: int, endpoint_id: int, friendly_name: str) -> None:
        """UpdateEndpointForNode (11.24.7.14): the friendly name lives only here, so the status is unchanged."""
        if (
            self._core.db.execute(
                "UPDATE jfds_endpoints SET friendly_name = ?, updated = ? WHERE node_id = ? AND endpoint_id = ?",
                (friendly_name, self._core.now(), to_sql_u64(node_id), endpoint_id),
            ).rowcount
            == 0
        ):
            raise EntryNotFoundError(f"endpoint {endpoint_id} of node 0x{node_id:X}")
        self._core.record().tables.add(Table.ENDPOINTS)

    @atomic
    def sync_endpoints(self, node_id: int, endpoint_ids: Iterable[int]) -> None:
        """Refresh stage 1 (11.24.7.11): adopt the node's endpoints as Committed; erase the ones it no longer
        has, with their group and binding entries. Friendly names of kept endpoints stay."""
        if self.entry(EntryRef.node(node_id)) is None:
            raise EntryNotFoundError(f"node 0x{node_id:X}")
        wanted = set(endpoint_ids)
        have = {e.ref.endpoint_id: e for e in self.entries(EntryKind.ENDPOINT, node_id=node_id)}
        gone = [ep for ep in have if ep not in wanted]
        refs = [
            e.ref
            for ep in gone
            for kind in (EntryKind.BINDING, EntryKind.ENDPOINT_GROUP)
            for e in self.entries(kind, node_id=node_id, endpoint_id=ep)
        ]
        self._erase(refs + [EntryRef.endpoint(node_id, ep) for ep in gone])
        for ep in sorted(wanted - set(have)):
            columns = {"node_id": node_id, "endpoint_id": ep, "friendly_name": ""}
            self._insert(EntryRef.endpoint(node_id, ep), columns, True)

    # ------------------------------------------------------------------------------------------ per-node lists

    def _require_endpoint(self, node_id: int, endpoint_id: int) -> None:
        if self.entry(EntryRef.endpoint(node_id, endpoint_id)) is None:
            raise EntryNotFoundError(f"endpoint {endpoint_id} of node 0x{node_id:X}")

    @atomic
    def add_endpoint_group(self, node_id: int, endpoint_id: int, group_id: int, *, committed: bool = False) -> EntryRef:
        """An EndpointGroupIDList entry: Pending, or Committed when adopted by a refresh (``committed``). Adding an
        existing entry keeps it (``_keep``); every ``add_*`` below behaves the same."""
        self._require_endpoint(node_id, endpoint_id)
        ref = EntryRef.endpoint_group(node_id, endpoint_id, group_id)
        existing = self.entry(ref)
        if existing is not None:
            return self._keep(existing, committed)
        return self._insert(ref, {"node_id": node_id, "endpoint_id": endpoint_id, "group_id": group_id}, committed)

    @atomic
    def add_node_key_set(self, node_id: int, key_set_id: int, *, committed: bool = False) -> EntryRef:
        if self.entry(EntryRef.node(node_id)) is None:
            raise EntryNotFoundError(f"node 0x{node_id:X}")
        ref = EntryRef.node_key_set(node_id, key_set_id)
        existing = self.entry(ref)
        if existing is not None:
            return self._keep(existing, committed)
        return self._insert(ref, {"node_id": node_id, "key_set_id": key_set_id}, committed)

    def find_binding(self, node_id: int, endpoint_id: int, target: BindingTarget) -> Entry | None:
        row = self._core.row(
            f"{KINDS[EntryKind.BINDING].select} WHERE node_id = ? AND endpoint_id = ? AND target = ?",
            (to_sql_u64(node_id), endpoint_id, encode(target)),
        )
        return None if row is None else self._entry(EntryKind.BINDING, row)

    @atomic
    def add_binding(
        self, node_id: int, endpoint_id: int, target: BindingTarget, *, committed: bool = False
    ) -> EntryRef:
        """An EndpointBindingList entry with a fresh ListID; an identical binding on the endpoint is kept (or
        revived if being removed) instead."""
        self._require_endpoint(node_id, endpoint_id)
        found = self.find_binding(node_id, endpoint_id, target)
        if found is not None:
            return self._keep(found, committed)
        list_id = self._next_list_id(Table.BINDINGS)
        columns = {"list_id": list_id, "node_id": node_id, "endpoint_id": endpoint_id, "target": encode(target)}
        return self._insert(EntryRef.binding(node_id, endpoint_id, list_id), columns, committed)

    def find_acl(self, node_id: int, ace: AccessControlEntry) -> Entry | None:
        """The node's ACL entry equal by value (``acl_value_key``) to ``ace``, if any."""
        sql = f"{KINDS[EntryKind.ACL].select} WHERE node_id = ? AND value_key = ?"
        row = self._core.row(sql, (to_sql_u64(node_id), acl_value_key(ace)))
        return None if row is None else self._entry(EntryKind.ACL, row)

    @atomic
    def add_acl(self, node_id: int, ace: AccessControlEntry, *, committed: bool = False) -> EntryRef:
        """A NodeACLList entry with a fresh ListID; an equal-by-value entry of the node is kept (or revived)."""
        if self.entry(EntryRef.node(node_id)) is None:
            raise EntryNotFoundError(f"node 0x{node_id:X}")
        found = self.find_acl(node_id, ace)
        if found is not None:
            return self._keep(found, committed)
        list_id = self._next_list_id(Table.ACLS)
        columns = {"list_id": list_id, "node_id": node_id, "ace": encode(ace), "value_key": acl_value_key(ace)}
        return self._insert(EntryRef.acl(node_id, list_id), columns, committed)

    @atomic
    def edit_acl(self, ref: EntryRef, ace: AccessControlEntry) -> None:
        """Give an ACL entry a new value (Pending, new revision), remembering the old one as superseded so the
        push replaces it on the node. The new value must not equal another entry of the node."""
        existing = self.entry(ref)
        if existing is None:
            raise EntryNotFoundError(repr(ref))
        other = self.find_acl(ref.node_id, ace)
        if other is not None and other.ref != ref:
            raise DuplicateEntryError(f"node 0x{ref.node_id:X} has that ACL entry as ListID {other.ref.key}")
        old = existing.value.acl_entry
        superseded = (
            [*existing.superseded, old] if old not in existing.superseded and old != ace else existing.superseded
        )
        self._core.db.execute(
            "UPDATE jfds_acls SET ace = ?, value_key = ?, superseded = ? WHERE node_id = ? AND list_id = ?",
            (
                encode(ace),
                acl_value_key(ace),
                tlv.encode(SUPERSEDED.to_tlv(list(superseded))) if superseded else None,
                *_ids(ref),
            ),
        )
        self._set(ref, DatastoreState.PENDING, removal=False, bump=True)
