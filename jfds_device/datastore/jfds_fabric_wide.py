"""The anchor and the fabric-wide lists of the Joint Fabric Datastore (Core spec 11.24): AnchorRootCA, AnchorNodeID,
AnchorVendorID, FriendlyName and Status; GroupKeySetList, GroupList and AdminList.

A component of ``JfdsStore`` (``jfds.py``), which is the class to use; it shares the store's ``DatastoreCore``
(``jfds_core.py``). Epoch keys are stored unencrypted, like the fabric table's keys, and are never logged (the
``GroupKeySet`` repr masks them).
"""

from __future__ import annotations

from clusters.joint_fabric_datastore import schema as s
from clusters.joint_fabric_datastore.schema import (
    AdministratorInformationEntry,
    DatastoreState,
    GroupInformationEntry,
    GroupKeySet,
    StatusEntry,
)
from jfds_device.codec.schema import NULL
from jfds_device.datastore.jfds_core import DatastoreCore, atomic
from jfds_device.datastore.jfds_records import (
    Anchor,
    CapacityError,
    DuplicateEntryError,
    EntryNotFoundError,
    InvalidEntryError,
    NotBootstrappedError,
    Table,
    WrongStateError,
)
from jfds_device.datastore.jfds_tables import (
    KINDS,
    check_key_set,
    encode,
    from_sql_u64,
    matter_epoch_s,
    to_sql_u64,
)

__all__ = ["FabricWideStore"]

# The stored wire structs of each list attribute, in list order (served without decoding).
_ENCODED_LISTS = {
    Table.KEY_SETS: "SELECT data FROM jfds_key_sets ORDER BY key_set_id",
    Table.GROUPS: "SELECT data FROM jfds_groups ORDER BY group_id",
    Table.ADMINS: "SELECT data FROM jfds_admins ORDER BY position",
}


class FabricWideStore:
    """The anchor and the fabric-wide lists over a shared ``DatastoreCore``; every public mutator runs in its
    transaction."""

    LISTS = frozenset(_ENCODED_LISTS)
    """The list attributes this component holds (``encoded_list``)."""

    def __init__(self, core: DatastoreCore) -> None:
        self._core = core

    def encoded_list(self, table: Table) -> list[bytes]:
        """One of ``LISTS`` as wire-struct TLV (anonymous elements), in list order, for fast serving."""
        return [bytes(r[0]) for r in self._core.rows(_ENCODED_LISTS[table])]

    def delete_all(self) -> None:
        """Delete the anchor and every fabric-wide list, for ``JfdsStore.wipe`` (which runs it in a transaction after
        the per-node entries are gone, and records the change)."""
        for table in ("jfds_admins", "jfds_groups", "jfds_key_sets", "jfds_anchor"):
            self._core.db.execute(f"DELETE FROM {table}")

    # ------------------------------------------------------------------------------------------ anchor

    @property
    def is_bootstrapped(self) -> bool:
        return self._core.row("SELECT 1 FROM jfds_anchor") is not None

    def anchor(self) -> Anchor | None:
        row = self._core.row("SELECT root_ca, node_id, vendor_id, friendly_name FROM jfds_anchor")
        return None if row is None else Anchor(bytes(row[0]), from_sql_u64(row[1]), row[2], row[3])

    def datastore_status(self) -> StatusEntry:
        """The Status attribute (11.24.6.9); Pending with timestamp 0 before the anchor bootstrap."""
        row = self._core.row("SELECT state, updated, failure FROM jfds_anchor")
        if row is None:
            return StatusEntry(state=DatastoreState.PENDING, update_timestamp=0, failure_code=0)
        return StatusEntry(state=DatastoreState(row[0]), update_timestamp=row[1], failure_code=row[2])

    @atomic
    def bootstrap_anchor(
        self,
        root_ca: bytes,
        node_id: int,
        vendor_id: int,
        friendly_name: str,
        ipk_key_set: GroupKeySet,
        now: float | None = None,
        *,
        icac: bytes = b"",
        admin_cat_version: int = s.INITIAL_CAT_VERSION,
        anchor_cat_version: int = s.INITIAL_CAT_VERSION,
    ) -> None:
        """Make this datastore the anchor's, when the node is commissioned onto its first (the anchor) fabric.

        Creates: Status Committed (11.24.6.9 "ready for use"); GroupKeySetList with key set 0 = the fabric's IPK
        (TC-JFDS-2.2 step 1); GroupList with the Administrator CAT (0xFFFF) and Anchor CAT (0xFFFE) groups
        (TC-JFDS-2.3 step 1); AdminList with this node at index 0 (11.24.6.8 anchor rule, TC-JFDS-2.4 step 1).
        ``root_ca`` is the anchor fabric's root certificate as TrustedRootCertificates shows it (Matter TLV,
        TC-JFDS-2.1 step 1), ``vendor_id`` the commissioner's (step 3), ``icac`` this node's ICAC for its
        AdminList entry. ``now`` is Unix time (default: the clock). The datastore must be empty (fresh, or
        ``wipe()``d).
        """
        tables = ["jfds_anchor", "jfds_key_sets", "jfds_groups", "jfds_admins", *(k.table for k in KINDS.values())]
        if any(self._core.count(table) for table in tables):
            raise WrongStateError("the datastore is not empty; wipe() it before bootstrapping another anchor")
        if ipk_key_set.group_key_set_id != s.IPK_KEY_SET_ID:
            raise InvalidEntryError("the IPK is key set 0")
        if len(root_ca) > s.MAX_CERT_LENGTH or len(friendly_name.encode()) > s.MAX_FRIENDLY_NAME_LENGTH:
            raise InvalidEntryError("AnchorRootCA is at most 400 bytes, FriendlyName at most 32")
        check_key_set(ipk_key_set)
        stamp = matter_epoch_s(self._core.clock() if now is None else now)
        self._core.db.execute(
            "INSERT INTO jfds_anchor (id, root_ca, node_id, vendor_id, friendly_name, state, updated, failure)"
            " VALUES (1, ?, ?, ?, ?, ?, ?, 0)",
            (bytes(root_ca), to_sql_u64(node_id), vendor_id, friendly_name, DatastoreState.COMMITTED, stamp),
        )
        self._insert_key_set(ipk_key_set)
        for group_id, name, cat, version in (
            (s.ADMIN_CAT_GROUP_ID, "Administrator CAT", s.ADMIN_CAT_ID, admin_cat_version),
            (s.ANCHOR_CAT_GROUP_ID, "Anchor CAT", s.ANCHOR_CAT_ID, anchor_cat_version),
        ):
            self._put_group(
                GroupInformationEntry(
                    group_id=group_id,
                    friendly_name=name,
                    group_key_set_id=NULL,
                    group_cat=cat,
                    group_cat_version=version,
                    group_permission=s.AccessControlEntryPrivilege.ADMINISTER,
                )
            )
        admin = AdministratorInformationEntry(
            node_id=node_id, friendly_name=friendly_name, vendor_id=vendor_id, icac=icac
        )
        sql = "INSERT INTO jfds_admins (node_id, position, data) VALUES (?, 0, ?)"
        self._core.db.execute(sql, (to_sql_u64(node_id), encode(admin)))
        self._core.record().tables.update((Table.ANCHOR, Table.STATUS, Table.KEY_SETS, Table.GROUPS, Table.ADMINS))

    @atomic
    def set_datastore_status(self, state: DatastoreState, failure_code: int = 0) -> None:
        """Set the Status attribute (11.24.6.9), e.g. CommitFailed while the datastore cannot be used."""
        if not self.is_bootstrapped:
            raise NotBootstrappedError("no anchor")
        if not 0 <= failure_code <= 0xFF:
            raise InvalidEntryError("FailureCode is an IM status (uint8)")
        self._core.db.execute(
            "UPDATE jfds_anchor SET state = ?, failure = ?, updated = ?", (int(state), failure_code, self._core.now())
        )
        self._core.record().tables.add(Table.STATUS)

    # ------------------------------------------------------------------------------------------ key sets

    def key_sets(self) -> list[GroupKeySet]:
        return [GroupKeySet.decode(r[0]) for r in self._core.rows("SELECT data FROM jfds_key_sets ORDER BY key_set_id")]

    def key_set(self, key_set_id: int) -> GroupKeySet | None:
        row = self._core.row("SELECT data FROM jfds_key_sets WHERE key_set_id = ?", (key_set_id,))
        return None if row is None else GroupKeySet.decode(row[0])  # type: ignore[no-any-return]

    @atomic
    def add_key_set(self, key_set: GroupKeySet) -> None:
        if self.key_set(key_set.group_key_set_id) is not None:
            raise DuplicateEntryError(f"key set {key_set.group_key_set_id} exists")
        if self._core.count("jfds_key_sets") >= s.MAX_KEY_SETS:
            raise CapacityError(Table.KEY_SETS, s.MAX_KEY_SETS)
        self._insert_key_set(key_set)

    def _insert_key_set(self, key_set: GroupKeySet) -> None:
        check_key_set(key_set)
        self._core.db.execute(
            "INSERT INTO jfds_key_sets (key_set_id, data) VALUES (?, ?)", (key_set.group_key_set_id, encode(key_set))
        )
        self._core.record().tables.add(Table.KEY_SETS)

    @atomic
    def replace_key_set(self, key_set: GroupKeySet) -> bool:
        """Store new content for an existing key set; returns whether it differed. Pushing it to the nodes that
        hold it is the caller's rule (``renew`` their NodeKeySet entries)."""
        check_key_set(key_set)
        old = self.key_set(key_set.group_key_set_id)
        if old is None:
            raise EntryNotFoundError(f"key set {key_set.group_key_set_id}")
        if old == key_set:
            return False
        self._core.db.execute(
            "UPDATE jfds_key_sets SET data = ? WHERE key_set_id = ?", (encode(key_set), key_set.group_key_set_id)
        )
        self._core.record().tables.add(Table.KEY_SETS)
        return True

    @atomic
    def remove_key_set(self, key_set_id: int) -> None:
        if self._core.db.execute("DELETE FROM jfds_key_sets WHERE key_set_id = ?", (key_set_id,)).rowcount == 0:
            raise EntryNotFoundError(f"key set {key_set_id}")
        self._core.record().tables.add(Table.KEY_SETS)

    # ------------------------------------------------------------------------------------------ groups

    def groups(self) -> list[GroupInformationEntry]:
        rows = self._core.rows("SELECT data FROM jfds_groups ORDER BY group_id")
        return [GroupInformationEntry.decode(r[0]) for r in rows]

    def group(self, group_id: int) -> GroupInformationEntry | None:
        row = self._core.row("SELECT data FROM jfds_groups WHERE group_id = ?", (group_id,))
        return None if row is None else GroupInformationEntry.decode(row[0])  # type: ignore[no-any-return]

    @atomic
    def add_group(self, group: GroupInformationEntry) -> None:
        if self.group(group.group_id) is not None:
            raise DuplicateEntryError(f"group {group.group_id} exists")
        if self._core.count("jfds_groups") >= s.MAX_GROUPS:
            raise CapacityError(Table.GROUPS, s.MAX_GROUPS)
        self._put_group(group)

    @atomic
    def replace_group(self, group: GroupInformationEntry) -> bool:
        old = self.group(group.group_id)
        if old is None:
            raise EntryNotFoundError(f"group {group.group_id}")
        if old == group:
            return False
        self._put_group(group)
        return True

    def _put_group(self, group: GroupInformationEntry) -> None:
        self._core.db.execute(
            "INSERT INTO jfds_groups (group_id, data) VALUES (?, ?)"
            " ON CONFLICT (group_id) DO UPDATE SET data = excluded.data",
            (group.group_id, encode(group)),
        )
        self._core.record().tables.add(Table.GROUPS)

    @atomic
    def remove_group(self, group_id: int) -> None:
        if self._core.db.execute("DELETE FROM jfds_groups WHERE group_id = ?", (group_id,)).rowcount == 0:
            raise EntryNotFoundError(f"group {group_id}")
        self._core.record().tables.add(Table.GROUPS)

    # ------------------------------------------------------------------------------------------ admins

    def admins(self) -> list[AdministratorInformationEntry]:
        """AdminList in index order; index 0 is the anchor (11.24.6.8)."""
        return [
            AdministratorInformationEntry.decode(r[0])
            for r in self._core.rows("SELECT data FROM jfds_admins ORDER BY position")
        ]

    def admin(self, node_id: int) -> AdministratorInformationEntry | None:
        row = self._core.row("SELECT data FROM jfds_admins WHERE node_id = ?", (to_sql_u64(node_id),))
        return None if row is None else AdministratorInformationEntry.decode(row[0])  # type: ignore[no-any-return]

    def is_anchor_admin(self, node_id: int) -> bool:
        sql = "SELECT 1 FROM jfds_admins WHERE node_id = ? AND position = 0"
        return self._core.row(sql, (to_sql_u64(node_id),)) is not None

    @atomic
    def add_admin(self, admin: AdministratorInformationEntry) -> None:
        """Append an administrator; positions start at 1 because index 0 is reserved for the anchor."""
        if self.admin(admin.node_id) is not None:
            raise DuplicateEntryError(f"admin 0x{admin.node_id:X} exists")
        if self._core.count("jfds_admins") >= s.MAX_ADMINS:
            raise CapacityError(Table.ADMINS, s.MAX_ADMINS)
        position = int(self._core.row("SELECT COALESCE(MAX(position), 0) + 1 FROM jfds_admins")[0])
        self._core.db.execute(
            "INSERT INTO jfds_admins (node_id, position, data) VALUES (?, ?, ?)",
            (to_sql_u64(admin.node_id), position, encode(admin)),
        )
        self._core.record().tables.add(Table.ADMINS)

    @atomic
    def replace_admin(self, admin: AdministratorInformationEntry) -> bool:
        old = self.admin(admin.node_id)
        if old is None:
            raise EntryNotFoundError(f"admin 0x{admin.node_id:X}")
        if old == admin:
            return False
        sql = "UPDATE jfds_admins SET data = ? WHERE node_id = ?"
        self._core.db.execute(sql, (encode(admin), to_sql_u64(admin.node_id)))
        self._core.record().tables.add(Table.ADMINS)
        return True

    @atomic
    def remove_admin(self, node_id: int) -> None:
        if self.is_anchor_admin(node_id):
            raise InvalidEntryError("the anchor administrator (index 0) cannot be removed")
        if self._core.db.execute("DELETE FROM jfds_admins WHERE node_id = ?", (to_sql_u64(node_id),)).rowcount == 0:
            raise EntryNotFoundError(f"admin 0x{node_id:X}")
        self._core.record().tables.add(Table.ADMINS)
