"""Group Key Management server (Core spec 11.2): group key sets, GroupKeyMap and GroupTable on endpoint 0.

Group key sets are not attributes: they live in their own table (migration component ``group_keys``) of
the node's ``Database``, written inside the node's transaction, so a failed invoke leaves none behind. Pass
the same ``Database`` the ``Node`` uses; without one (``db=None``) key sets live in memory only.

Key set 0 of each fabric is its IPK (Core spec 4.17.3.5.1): AddNOC installs it (``install_ipk``), CASE reads
it (``ipk_epoch_key`` / ``operational_ipk``), only RemoveFabric removes it (``remove_fabric``), and clients
can neither write (our choice, see ``on_key_set_write``) nor remove (11.2.7.4) it through this cluster.

Key material is never logged and never shown in reprs (``GroupKeySetStruct.__repr__`` masks it); it is
stored unencrypted in the node's database, like the fabric table's operational keys.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from clusters.group_key_management import schema
from clusters.group_key_management.schema import (
    EPOCH_KEY_LENGTH,
    IPK_KEY_SET_ID,
    GroupInfoMapStruct,
    GroupKeyMapStruct,
    GroupKeySecurityPolicyEnum,
    GroupKeySetStruct,
    KeySetRead,
    KeySetReadAllIndices,
    KeySetReadAllIndicesResponse,
    KeySetReadResponse,
    KeySetRemove,
    KeySetWrite,
)
from jfds_device.codec.schema import NULL
from jfds_device.crypto.case_keys import operational_group_key
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datastore.sqlite import Database, Migration
from jfds_device.errors import ActionError, LocalProtocolError, SchemaError, StorageError
from jfds_device.im.provider import RequestContext, Status

__all__ = ["KEY_SET_MIGRATIONS", "MIGRATION_COMPONENT", "GroupKeyManagementServer", "check_key_set"]

log = logging.getLogger(__name__)

MIGRATION_COMPONENT = "group_keys"
KEY_SET_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            # data: the whole GroupKeySetStruct as TLV, keys included.
            "CREATE TABLE group_key_sets (fabric_index INTEGER NOT NULL, key_set_id INTEGER NOT NULL,"
            " data BLOB NOT NULL, PRIMARY KEY (fabric_index, key_set_id)) WITHOUT ROWID",
        ),
    ),
)

MIN_FABRIC_INDEX, MAX_FABRIC_INDEX = 1, 254  # Core spec 7.5.2


# -------------------------------------------------------------------------------------------- key set store


class _KeySetStore(Protocol):
    def get(self, fabric_index: int, key_set_id: int) -> GroupKeySetStruct | None: ...

    def all(self, fabric_index: int) -> list[GroupKeySetStruct]: ...

    def put(self, fabric_index: int, key_set: GroupKeySetStruct) -> None: ...

    def delete(self, fabric_index: int, key_set_id: int) -> bool: ...

    def delete_fabric(self, fabric_index: int) -> None: ...


class _MemoryKeySets:
    """Key sets of a memory-only node (tests, tools)."""

    def __init__(self) -> None:
        self._sets: dict[tuple[int, int], GroupKeySetStruct] = {}

    def get(self, fabric_index: int, key_set_id: int) -> GroupKeySetStruct | None:
        return self._sets.get((fabric_index, key_set_id))

    def all(self, fabric_index: int) -> list[GroupKeySetStruct]:
        return [self._sets[key] for key in sorted(self._sets) if key[0] == fabric_index]

    def put(self, fabric_index: int, key_set: GroupKeySetStruct) -> None:
        self._sets[(fabric_index, key_set.group_key_set_id)] = key_set

    def delete(self, fabric_index: int, key_set_id: int) -> bool:
        return self._sets.pop((fabric_index, key_set_id), None) is not None

    def delete_fabric(self, fabric_index: int) -> None:
        for key in [k for k in self._sets if k[0] == fabric_index]:
            del self._sets[key]


class _SqliteKeySets:
    """Key sets in the node's database. No cache: every read goes to SQLite, so a transaction the node
    rolls back (a failed invoke, an aborted write) can never leave memory out of step with storage."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.migrate(MIGRATION_COMPONENT, KEY_SET_MIGRATIONS)

    @staticmethod
    def _decode(data: bytes) -> GroupKeySetStruct:
        try:
            decoded: GroupKeySetStruct = GroupKeySetStruct.decode(data)
        except SchemaError as exc:
            raise StorageError(f"stored group key set does not decode: {exc}") from exc
        return decoded

    def get(self, fabric_index: int, key_set_id: int) -> GroupKeySetStruct | None:
        row = self._db.execute(
            "SELECT data FROM group_key_sets WHERE fabric_index = ? AND key_set_id = ?", (fabric_index, key_set_id)
        ).fetchone()
        return None if row is None else self._decode(bytes(row[0]))

    def all(self, fabric_index: int) -> list[GroupKeySetStruct]:
        rows = self._db.execute(
            "SELECT data FROM group_key_sets WHERE fabric_index = ? ORDER BY key_set_id", (fabric_index,)
        ).fetchall()
        return [self._decode(bytes(row[0])) for row in rows]

    def put(self, fabric_index: int, key_set: GroupKeySetStruct) -> None:
        self._db.execute(
            "INSERT INTO group_key_sets (fabric_index, key_set_id, data) VALUES (?, ?, ?)"
            " ON CONFLICT (fabric_index, key_set_id) DO UPDATE SET data = excluded.data",
            (fabric_index, key_set.group_key_set_id, key_set.encode()),
        )

    def delete(self, fabric_index: int, key_set_id: int) -> bool:
        cursor = self._db.execute(
            "DELETE FROM group_key_sets WHERE fabric_index = ? AND key_set_id = ?", (fabric_index, key_set_id)
        )
        return cursor.rowcount > 0

    def delete_fabric(self, fabric_index: int) -> None:
        self._db.execute("DELETE FROM group_key_sets WHERE fabric_index = ?", (fabric_index,))


# -------------------------------------------------------------------------------------------- KeySetWrite rules


def _invalid(message: str) -> ActionError:
    return ActionError(Status.INVALID_COMMAND, message=message)


def _check_epoch_key(key: object, slot: int) -> None:
    if not isinstance(key, bytes) or len(key) != EPOCH_KEY_LENGTH:
        # The length only, never the key (11.2.7.1: CONSTRAINT_ERROR).
        raise ActionError(Status.CONSTRAINT_ERROR, message=f"EpochKey{slot} is not {EPOCH_KEY_LENGTH} bytes")


def check_key_set(key_set: GroupKeySetStruct) -> None:
    """KeySetWrite's validation of its GroupKeySet (11.2.7.1), in the spec's (and the SDK's) order.

    Raises ``ActionError`` with INVALID_COMMAND or CONSTRAINT_ERROR. Does not check the id or capacity.
    """
    key0, start0 = key_set.epoch_key0, key_set.epoch_start_time0
    if key0 is NULL or start0 is NULL:
        raise _invalid("EpochKey0 and EpochStartTime0 are required")
    if start0 == 0:
        # 0 is how AddNOC's synthesized IPK set is stored; a client may not send it.
        raise _invalid("EpochStartTime0 is 0")
    _check_epoch_key(key0, 0)
    key1, start1 = key_set.epoch_key1, key_set.epoch_start_time1
    if (key1 is NULL) != (start1 is NULL):
        raise _invalid("EpochKey1 and EpochStartTime1 must both be null or both be set")
    if key1 is not NULL:
        _check_epoch_key(key1, 1)
        if not (isinstance(start1, int) and isinstance(start0, int) and start1 > start0):
            raise _invalid("EpochStartTime1 is not later than EpochStartTime0")
    key2, start2 = key_set.epoch_key2, key_set.epoch_start_time2
    if (key2 is NULL) != (start2 is NULL):
        raise _invalid("EpochKey2 and EpochStartTime2 must both be null or both be set")
    if key2 is not NULL:
        if key1 is NULL:
            raise _invalid("EpochKey2 needs EpochKey1")
        _check_epoch_key(key2, 2)
        if not (isinstance(start2, int) and isinstance(start1, int) and start2 > start1):
            raise _invalid("EpochStartTime2 is not later than EpochStartTime1")
    if key_set.group_key_security_policy is not GroupKeySecurityPolicyEnum.TRUST_FIRST:
        # 11.2.5.4.2: CacheAndSync without the CS feature SHALL fail with INVALID_COMMAND. (Values the enum
        # does not define were already refused with CONSTRAINT_ERROR when the request was decoded.)
        raise _invalid("CacheAndSync is not supported (FeatureMap CS = 0)")


def _without_keys(key_set: GroupKeySetStruct) -> GroupKeySetStruct:
    # 11.2.7.2/11.2.7.3: KeySetRead answers with EpochKey0..2 replaced by null.
    return dataclasses.replace(key_set, epoch_key0=NULL, epoch_key1=NULL, epoch_key2=NULL)


def _check_fabric_index(fabric_index: int) -> None:
    if not MIN_FABRIC_INDEX <= fabric_index <= MAX_FABRIC_INDEX:
        raise LocalProtocolError(f"fabric index {fabric_index} outside {MIN_FABRIC_INDEX}..{MAX_FABRIC_INDEX}")


# -------------------------------------------------------------------------------------------- server


class GroupKeyManagementServer(ClusterServer):
    """Cluster 0x003F on endpoint 0. ``db``: the node's database (None: key sets in memory only)."""

    CLUSTER = schema.CLUSTER

    def __init__(
        self,
        db: Database | None = None,
        *,
        max_groups_per_fabric: int = schema.MAX_GROUPS_PER_FABRIC,
        max_group_keys_per_fabric: int = schema.MAX_GROUP_KEYS_PER_FABRIC,
    ) -> None:
        super().__init__()
        if max_group_keys_per_fabric < 1:
            raise LocalProtocolError("MaxGroupKeysPerFabric counts the IPK and must be at least 1")
        self.set(schema.MAX_GROUPS_PER_FABRIC_ATTR, max_groups_per_fabric)
        self.set(schema.MAX_GROUP_KEYS_PER_FABRIC_ATTR, max_group_keys_per_fabric)
        self._key_sets: _KeySetStore = _SqliteKeySets(db) if db is not None else _MemoryKeySets()

    @property
    def max_groups_per_fabric(self) -> int:
        value: int = self.get(schema.MAX_GROUPS_PER_FABRIC_ATTR)
        return value

    @property
    def max_group_keys_per_fabric(self) -> int:
        value: int = self.get(schema.MAX_GROUP_KEYS_PER_FABRIC_ATTR)
        return value

    # ------------------------------------------------------------------------------------------ public API

    def install_ipk(self, fabric_index: int, epoch_key: bytes) -> None:
        """Store ``epoch_key`` as key set 0 (the IPK) of ``fabric_index``, replacing any previous one.

        AddNOC's IPKValue (11.18.6.8) is this epoch key; the set is stored as the spec synthesizes it:
        TrustFirst, EpochStartTime0 = 0, no further epochs. It never counts against capacity (the slot
        is reserved). Raises ``LocalProtocolError`` for a bad fabric index or key length.
        """
        _check_fabric_index(fabric_index)
        if not isinstance(epoch_key, bytes) or len(epoch_key) != EPOCH_KEY_LENGTH:
            raise LocalProtocolError(f"an IPK epoch key is {EPOCH_KEY_LENGTH} bytes")
        ipk = GroupKeySetStruct(
            group_key_set_id=IPK_KEY_SET_ID,
            group_key_security_policy=GroupKeySecurityPolicyEnum.TRUST_FIRST,
            epoch_key0=epoch_key,
            epoch_start_time0=0,
        )
        self._key_sets.put(fabric_index, ipk)
        log.debug("installed the IPK key set of fabric %d", fabric_index)

    def ipk_epoch_key(self, fabric_index: int) -> bytes | None:
        """The IPK epoch key of ``fabric_index`` (EpochKey0 of key set 0), or None if it has none."""
        ipk = self._key_sets.get(fabric_index, IPK_KEY_SET_ID)
        return None if ipk is None or not isinstance(ipk.epoch_key0, bytes) else ipk.epoch_key0

    def operational_ipk(self, fabric_index: int, compressed_fabric_id: bytes) -> bytes | None:
        """The operational IPK CASE uses (Core spec 4.14.2: the group key derived from the IPK epoch key)."""
        epoch_key = self.ipk_epoch_key(fabric_index)
        return None if epoch_key is None else operational_group_key(epoch_key, compressed_fabric_id)

    def key_sets(self, fabric_index: int) -> list[GroupKeySetStruct]:
        """Every key set of ``fabric_index`` by ascending id, IPK included, WITH their keys (keep them secret)."""
        return self._key_sets.all(fabric_index)

    def fabric_removed(self, fabric_index: int) -> None:
        """FabricTable listener hook: RemoveFabric, or the rollback of an AddNOC."""
        self.remove_fabric(fabric_index)

    def remove_fabric(self, fabric_index: int) -> None:
        """Forget the fabric's key sets (IPK included), GroupKeyMap and GroupTable entries (RemoveFabric,
        or fail-safe expiry after AddNOC; 11.18.6.12)."""
        self._key_sets.delete_fabric(fabric_index)
        self.remove_fabric_entries(fabric_index)

    def set_group_table(self, fabric_index: int, entries: Sequence[GroupInfoMapStruct]) -> None:
        """Replace ``fabric_index``'s GroupTable entries (for the Groups clusters, which own that data).

        Raises ``ActionError``: a duplicate GroupId is CONSTRAINT_ERROR, more entries than
        MaxGroupsPerFabric RESOURCE_EXHAUSTED (what Groups.AddGroup answers when full).
        """
        _check_fabric_index(fabric_index)
        stamped = [dataclasses.replace(e, fabric_index=fabric_index) for e in entries]
        self._check_groups([e.group_id for e in stamped])
        others = [e for e in self.get(schema.GROUP_TABLE) if e.fabric_index != fabric_index]
        try:
            self.set(schema.GROUP_TABLE, others + stamped)
        except SchemaError as exc:  # e.g. GroupId 0, an empty Endpoints list, a name over 16 bytes
            raise ActionError(Status.CONSTRAINT_ERROR, message=str(exc)) from exc

    # ------------------------------------------------------------------------------------------ GroupKeyMap

    def validate_group_key_map(self, ctx: RequestContext, entries: list[GroupKeyMapStruct]) -> list[Any]:
        """The accessing fabric's whole new list (already stamped). GroupId 0 and key set 0 were refused
        with CONSTRAINT_ERROR by the schema (11.2.5.3.2); whether the key set exists is not checked (the
        SDK and matter.js do not either: KeySetWrite and the map may arrive in any order)."""
        self._check_groups([e.group_id for e in entries])
        return list(entries)

    def _check_groups(self, group_ids: list[int]) -> None:
        if len(set(group_ids)) != len(group_ids):
            # 11.2: duplicate groups are not allowed in the list (per fabric).
            raise ActionError(Status.CONSTRAINT_ERROR, message="duplicate GroupId in this fabric's list")
        if len(group_ids) > self.max_groups_per_fabric:
            raise ActionError(Status.RESOURCE_EXHAUSTED, message="more groups than MaxGroupsPerFabric")

    # ------------------------------------------------------------------------------------------ commands

    def on_key_set_write(self, ctx: RequestContext, request: KeySetWrite) -> None:
        """11.2.7.1. Writing id 0 is refused with INVALID_COMMAND: the IPK changes only through AddNOC /
        UpdateNOC (the SDK and matter.js accept it and so let one admin break every admin's CASE)."""
        fabric_index = ctx.subject.fabric_index
        key_set = request.group_key_set
        if key_set.group_key_set_id == IPK_KEY_SET_ID:
            raise _invalid("key set 0 is the IPK; it is written by AddNOC only")
        check_key_set(key_set)
        if self._key_sets.get(fabric_index, key_set.group_key_set_id) is None:
            # MaxGroupKeysPerFabric includes the IPK, whose slot stays reserved (Group Limits, 2.11.1.2).
            written = sum(1 for s in self._key_sets.all(fabric_index) if s.group_key_set_id != IPK_KEY_SET_ID)
            if written + 1 >= self.max_group_keys_per_fabric:
                raise ActionError(Status.RESOURCE_EXHAUSTED, message="MaxGroupKeysPerFabric reached")
        # An existing id is replaced as a whole: remove, then add (11.2.7.1).
        self._key_sets.put(fabric_index, key_set)
        log.debug("fabric %d wrote group key set %d", fabric_index, key_set.group_key_set_id)

    def on_key_set_read(self, ctx: RequestContext, request: KeySetRead) -> KeySetReadResponse:
        """11.2.7.2: the set with its keys nulled, or NOT_FOUND."""
        key_set = self._key_sets.get(ctx.subject.fabric_index, request.group_key_set_id)
        if key_set is None:
            raise ActionError(Status.NOT_FOUND)
        return KeySetReadResponse(group_key_set=_without_keys(key_set))

    def on_key_set_remove(self, ctx: RequestContext, request: KeySetRemove) -> None:
        """11.2.7.4: never the IPK (INVALID_COMMAND); unknown is NOT_FOUND; drops the fabric's map entries."""
        fabric_index = ctx.subject.fabric_index
        key_set_id = request.group_key_set_id
        if key_set_id == IPK_KEY_SET_ID:
            raise _invalid("the IPK key set is removed only with its fabric")
        if not self._key_sets.delete(fabric_index, key_set_id):
            raise ActionError(Status.NOT_FOUND)
        kept = [
            e
            for e in self.get(schema.GROUP_KEY_MAP)
            if not (e.fabric_index == fabric_index and e.group_key_set_id == key_set_id)
        ]
        self.set(schema.GROUP_KEY_MAP, kept)
        log.debug("fabric %d removed group key set %d", fabric_index, key_set_id)

    def on_key_set_read_all_indices(
        self, ctx: RequestContext, request: KeySetReadAllIndices
    ) -> KeySetReadAllIndicesResponse:
        """11.2.7.5: the accessing fabric's key set ids, ascending (0 among them once AddNOC ran)."""
        ids = [s.group_key_set_id for s in self._key_sets.all(ctx.subject.fabric_index)]
        return KeySetReadAllIndicesResponse(group_key_set_ids=ids)
