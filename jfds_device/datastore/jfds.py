"""The Joint Fabric Datastore (Core spec 11.24) as durable SQLite tables: the source of desired state.

It knows nothing about the Interaction Model: the cluster logic (``clusters/joint_fabric_datastore``) turns
commands into calls here and maps ``DatastoreError`` subclasses to IM statuses; the reconciler reads entries,
pushes them to nodes and reports outcomes with ``set_status`` / ``confirm_removed``.

``JfdsStore`` is a facade over components that share one ``DatastoreCore`` (``jfds_core``: the database, the
transaction and its change batch, observers, the revision counter, the clock): ``EntryStore`` (``jfds_entries``:
the per-node entries) and ``FabricWideStore`` (``jfds_fabric_wide``: the anchor, key sets, groups and admins).
Each public method below names the component that does the work; ``wipe`` and ``encoded_list`` span both.
Value types, the change event and the errors are in ``jfds_records``; migrations and the table layout in
``jfds_tables``.

Atomicity: every public mutator runs in ``transaction()``, which is a SAVEPOINT when the caller (the node's
invoke, ``Node.atomic()``) already has a transaction open on the same ``Database``, so one command that makes
several calls commits or rolls back as a whole, and a crash at any point leaves either all or nothing.
Observers get one ``DatastoreChange`` per outermost ``transaction()`` block, after it completed; a failed
block emits nothing. Inside the node's invoke that is before the node's own COMMIT (the node has no
post-commit hook), so observers that act asynchronously (the reconciler) re-read what they act on.

Lifecycles (11.24.4): an add or edit makes an entry Pending; a removal request makes it DeletePending (removal
intent); the reconciler moves it to Committed or CommitFailed (FailureCode kept), and erases a DeletePending
entry with ``confirm_removed`` -- no tombstone stays visible. Re-adding an entry whose removal is pending
cancels the removal. Every status change stamps UpdateTimestamp (Matter-epoch seconds), which the reference
SDK never sets.

ListIDs (bindings and ACL entries share one space, uint16 as the spec's struct fields) are the lowest id not in
use: an erased entry's id is handed out again, so allocation never runs out while fewer than 65535 entries live,
and a wipe starts again at 1.
Epoch keys are stored unencrypted, like the fabric table's keys, and are never logged (the ``GroupKeySet``
repr masks them).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, TypeVar

from jfds_device.datastore.jfds_core import DatastoreCore
from jfds_device.datastore.jfds_entries import EntryStore
from jfds_device.datastore.jfds_fabric_wide import FabricWideStore
from jfds_device.datastore.jfds_records import DatastoreChange, Table
from jfds_device.datastore.jfds_tables import KINDS, MIGRATION_COMPONENT, acl_value_key, matter_epoch_s
from jfds_device.datastore.sqlite import Database
from jfds_device.datastore.tasks import TaskStore
from jfds_device.errors import LocalProtocolError

__all__ = ["MIGRATION_COMPONENT", "JfdsStore", "acl_value_key", "matter_epoch_s"]

P = ParamSpec("P")
R = TypeVar("R")


def _on_entries(method: Callable[Concatenate[EntryStore, P], R]) -> Callable[Concatenate[JfdsStore, P], R]:
    """The facade's method that runs ``method`` on the per-node entries component (same signature, same doc)."""

    @functools.wraps(method)
    def forward(self: JfdsStore, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self._entries, *args, **kwargs)

    return forward


def _on_fabric_wide(method: Callable[Concatenate[FabricWideStore, P], R]) -> Callable[Concatenate[JfdsStore, P], R]:
    """The facade's method that runs ``method`` on the anchor / fabric-wide lists component."""

    @functools.wraps(method)
    def forward(self: JfdsStore, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self._fabric_wide, *args, **kwargs)

    return forward


class JfdsStore:
    """The datastore over the node's ``Database`` (pass the same one the ``Node`` uses, so a command's writes
    share the node's transaction). ``clock`` returns Unix time in seconds (UpdateTimestamp source)."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._core = DatastoreCore(db, clock=clock)
        self._entries = EntryStore(self._core)
        self._fabric_wide = FabricWideStore(self._core)
        self.tasks = TaskStore(db, clock=clock)
        """The multi-step tasks' records (``tasks.py``), in the same database and transactions."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db.path!r})"

    @property
    def database(self) -> Database:
        """The ``Database`` under the store (for stores of their own beside it, e.g. ``DriftRepairStore``)."""
        return self._db

    # ------------------------------------------------------------------------------------------ transactions

    @property
    def in_transaction(self) -> bool:
        """Whether the underlying database has a transaction open (ours or the node's)."""
        return self._core.in_transaction

    def observe(self, callback: Callable[[DatastoreChange], None]) -> Callable[[], None]:
        """Call ``callback`` with every ``DatastoreChange``; returns the function that unsubscribes it."""
        return self._core.observe(callback)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group calls into one unit: all or nothing, one ``DatastoreChange`` at the end of the outermost block."""
        with self._core.transaction():
            yield

    # ------------------------------------------------------------------------------------------ both components

    def wipe(self) -> None:
        """Forget everything (the anchor fabric was removed). The revision counter survives; ListIDs restart at 1."""
        with self._core.transaction():
            self._entries.delete_all()
            self._fabric_wide.delete_all()
            self.tasks.clear()
            batch = self._core.record()
            batch.tables.update(Table)
            batch.wiped = True

    def encoded_list(self, table: Table) -> list[bytes]:
        """A list attribute's entries as wire-struct TLV (anonymous elements), in list order, for fast serving."""
        if table in FabricWideStore.LISTS:
            return self._fabric_wide.encoded_list(table)
        kind = next((k for k in KINDS if k.table is table), None)
        if kind is None:
            raise LocalProtocolError(f"{table.value} is not a list")
        return self._entries.encoded(kind)

    # ------------------------------------------------------------------------------------------ anchor

    @property
    def is_bootstrapped(self) -> bool:
        return self._fabric_wide.is_bootstrapped

    anchor = _on_fabric_wide(FabricWideStore.anchor)
    datastore_status = _on_fabric_wide(FabricWideStore.datastore_status)
    bootstrap_anchor = _on_fabric_wide(FabricWideStore.bootstrap_anchor)
    set_datastore_status = _on_fabric_wide(FabricWideStore.set_datastore_status)

    # ---------------------------------------------------------------------------------- key sets, groups, admins

    key_sets = _on_fabric_wide(FabricWideStore.key_sets)
    key_set = _on_fabric_wide(FabricWideStore.key_set)
    add_key_set = _on_fabric_wide(FabricWideStore.add_key_set)
    replace_key_set = _on_fabric_wide(FabricWideStore.replace_key_set)
    remove_key_set = _on_fabric_wide(FabricWideStore.remove_key_set)

    groups = _on_fabric_wide(FabricWideStore.groups)
    group = _on_fabric_wide(FabricWideStore.group)
    add_group = _on_fabric_wide(FabricWideStore.add_group)
    replace_group = _on_fabric_wide(FabricWideStore.replace_group)
    remove_group = _on_fabric_wide(FabricWideStore.remove_group)

    admins = _on_fabric_wide(FabricWideStore.admins)
    admin = _on_fabric_wide(FabricWideStore.admin)
    is_anchor_admin = _on_fabric_wide(FabricWideStore.is_anchor_admin)
    add_admin = _on_fabric_wide(FabricWideStore.add_admin)
    replace_admin = _on_fabric_wide(FabricWideStore.replace_admin)
    remove_admin = _on_fabric_wide(FabricWideStore.remove_admin)

    # ------------------------------------------------------------------------------------------ per-node entries

    entry = _on_entries(EntryStore.entry)
    entries = _on_entries(EntryStore.entries)
    count = _on_entries(EntryStore.count)
    encoded = _on_entries(EntryStore.encoded)
    entries_for_node = _on_entries(EntryStore.entries_for_node)
    pending_entries = _on_entries(EntryStore.pending_entries)

    request_removal = _on_entries(EntryStore.request_removal)
    renew = _on_entries(EntryStore.renew)
    set_status = _on_entries(EntryStore.set_status)
    confirm_removed = _on_entries(EntryStore.confirm_removed)

    nodes = _on_entries(EntryStore.nodes)
    node = _on_entries(EntryStore.node)
    add_node = _on_entries(EntryStore.add_node)
    rename_node = _on_entries(EntryStore.rename_node)
    request_refresh = _on_entries(EntryStore.request_refresh)
    remove_node = _on_entries(EntryStore.remove_node)
    rename_endpoint = _on_entries(EntryStore.rename_endpoint)
    sync_endpoints = _on_entries(EntryStore.sync_endpoints)

    add_endpoint_group = _on_entries(EntryStore.add_endpoint_group)
    add_node_key_set = _on_entries(EntryStore.add_node_key_set)
    find_binding = _on_entries(EntryStore.find_binding)
    add_binding = _on_entries(EntryStore.add_binding)
    find_acl = _on_entries(EntryStore.find_acl)
    add_acl = _on_entries(EntryStore.add_acl)
    edit_acl = _on_entries(EntryStore.edit_acl)
