"""Access Control server: stores the ACL (fabric-scoped) and feeds it to the ACL engine (Core spec 9.10).

Writes are validated per entry (9.10.4.5, 9.10.5.3): invalid privilege/auth mode values, PASE entries,
Group entries granting Administer, subjects invalid for the auth mode and malformed targets are
CONSTRAINT_ERROR; more subjects, targets or entries per fabric than we support are RESOURCE_EXHAUSTED.

Hook points for the next issue: ``add_entry`` (AddNOC's CaseAdminSubject entry), ``remove_fabric``
(RemoveFabric and fail-safe rollback), and ``acl_entries`` (the node's ``AclSource``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from clusters.access_control import schema
from clusters.access_control.schema import (
    AccessControlEntryStruct,
    AccessControlTargetStruct,
    ChangeTypeEnum,
)
from clusters.general_commissioning.logic import FailSafe
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import NULL, StructType
from jfds_device.datamodel import acl
from jfds_device.datamodel.cluster import FABRIC_INDEX_TAG, ClusterServer
from jfds_device.errors import ActionError
from jfds_device.im.provider import ListOperation, RequestContext, Status, SubjectDescriptor

MAX_ENDPOINT = acl.MAX_ENDPOINT


def _nullable_list(value: Any) -> list[Any]:
    return [] if value is NULL or value is None else list(value)


def _or_none(value: Any) -> int | None:
    return None if value is NULL or value is None else int(value)


class AccessControlServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(
        self,
        *,
        subjects_per_entry: int = schema.SUBJECTS_PER_ENTRY,
        targets_per_entry: int = schema.TARGETS_PER_ENTRY,
        entries_per_fabric: int = schema.ENTRIES_PER_FABRIC,
    ) -> None:
        super().__init__()
        self.set(schema.SUBJECTS_PER_ACCESS_CONTROL_ENTRY, subjects_per_entry)
        self.set(schema.TARGETS_PER_ACCESS_CONTROL_ENTRY, targets_per_entry)
        self.set(schema.ACCESS_CONTROL_ENTRIES_PER_FABRIC, entries_per_fabric)
        self._cache: tuple[int, tuple[acl.AclEntry, ...]] | None = None
        self._failsafe: FailSafe | None = None
        self._appending = False  # the write in progress appends one entry

    def track_failsafe(self, failsafe: FailSafe) -> None:
        """Make ACL writes by the fail-safe's holder provisional: its expiry restores the fabric's entries."""
        self._failsafe = failsafe

    # ------------------------------------------------------------------------------------------ AclSource

    def acl_entries(self) -> Sequence[acl.AclEntry]:
        """Every fabric's entries as ACL-engine values, rebuilt only when the DataVersion moved."""
        if self._cache is None or self._cache[0] != self.data_version:
            self._cache = (self.data_version, tuple(to_acl_entry(e) for e in self.get(schema.ACL)))
        return self._cache[1]

    # ------------------------------------------------------------------------------------------ hooks

    def entries(self, fabric_index: int) -> list[AccessControlEntryStruct]:
        return self.fabric_entries(schema.ACL, fabric_index)

    def add_entry(
        self, fabric_index: int, entry: AccessControlEntryStruct, by: SubjectDescriptor | None = None
    ) -> None:
        """Append an entry for ``fabric_index`` (e.g. the admin entry AddNOC creates, 11.18.6.8); ``by`` is who
        asked (AddNOC's session), named in the AccessControlEntryChanged event.

        Raises ``ActionError`` when the entry is invalid or the fabric is full, like a write would.
        """
        before = self.entries(fabric_index)
        entries = [*before, entry]
        stamped = self._check_entries(fabric_index, entries)
        others = [e for e in self.get(schema.ACL) if e.fabric_index != fabric_index]
        self.set(schema.ACL, others + stamped)
        self._entries_changed(by, fabric_index, before, stamped, appended=True)

    def remove_fabric(self, fabric_index: int) -> None:
        """Forget every entry of ``fabric_index`` (RemoveFabric, or fail-safe expiry after AddNOC)."""
        self.remove_fabric_entries(fabric_index)

    # ------------------------------------------------------------------------------------------ validation

    def validate_acl(self, ctx: RequestContext, entries: list[AccessControlEntryStruct]) -> list[object]:
        fabric = ctx.subject.fabric_index
        before = self.entries(fabric)
        checked = list(self._check_entries(fabric, entries))
        self._snapshot_for_failsafe(ctx)
        self._entries_changed(ctx.subject, fabric, before, checked, appended=self._appending)
        return checked

    def write(self, ctx: RequestContext, attribute: int, value: Any, op: ListOperation) -> None:
        # The events differ: a replace-all reports every position, an append (a chunked write's later items,
        # which reach validate_acl as the whole list) one Added entry.
        self._appending = op is ListOperation.APPEND
        try:
            super().write(ctx, attribute, value, op)
        finally:
            self._appending = False

    # ------------------------------------------------------------------------------------------ events

    def _entries_changed(
        self,
        by: SubjectDescriptor | None,
        fabric_index: int,
        before: list[AccessControlEntryStruct],
        after: list[AccessControlEntryStruct],
        *,
        appended: bool,
    ) -> None:
        """AccessControlEntryChanged per entry (Core spec 9.10.7.1), the way the CHIP SDK's AccessControl
        attribute write reports a replace-all (src/app/clusters/access-control-server/access-control-server.cpp):
        each position that had an entry is Changed, the ones beyond are Added, and the old entries past the new
        list's end are Removed, last first. An append is one Added."""
        if appended:
            self._emit_change(by, fabric_index, ChangeTypeEnum.ADDED, after[-1])
            return
        for i, entry in enumerate(after):
            self._emit_change(by, fabric_index, ChangeTypeEnum.CHANGED if i < len(before) else ChangeTypeEnum.ADDED,
                              entry)
        for entry in reversed(before[len(after):]):
            self._emit_change(by, fabric_index, ChangeTypeEnum.REMOVED, entry)

    def _emit_change(
        self, by: SubjectDescriptor | None, fabric_index: int, change: ChangeTypeEnum, entry: AccessControlEntryStruct
    ) -> None:
        # The admin is a CASE node id or, on PASE, the passcode id (0, the only one; Core spec 9.10.7.1).
        if by is not None and by.auth_mode is AuthMode.CASE:
            admin_node, admin_passcode = by.subject, None
        else:
            admin_node, admin_passcode = None, (by.subject if by is not None else 0)
        data = {
            1: admin_node,
            2: admin_passcode,
            3: int(change),
            4: StructType(AccessControlEntryStruct).to_tlv(replace(entry, fabric_index=fabric_index)),
            FABRIC_INDEX_TAG: fabric_index,
        }
        self.emit_event(schema.EVENT_ACCESS_CONTROL_ENTRY_CHANGED, data, fabric_index=fabric_index)

    def _snapshot_for_failsafe(self, ctx: RequestContext) -> None:
        """On the holder's first ACL write in an arming, register a rollback to the fabric's current entries.

        Only the fabric holding the fail-safe is tracked: another admin's writes are not part of that
        commissioning. A fabric added by AddNOC is removed as a whole on expiry anyway (its own rollback).
        """
        failsafe, fabric = self._failsafe, ctx.subject.fabric_index
        if failsafe is None or not failsafe.held_by(fabric, ctx.session_id):
            return
        marker = f"acl:{fabric}"  # FailSafe.flags reset at each arming, so this is once per arming
        if marker in failsafe.flags:
            return
        failsafe.flags.add(marker)
        before = self.entries(fabric)

        def restore() -> None:
            others = [e for e in self.get(schema.ACL) if e.fabric_index != fabric]
            self.set(schema.ACL, others + before)

        failsafe.add_rollback(restore)

    def _check_entries(
        self, fabric_index: int, entries: list[AccessControlEntryStruct]
    ) -> list[AccessControlEntryStruct]:
        for entry in entries:
            self._check_entry(entry)
        if len(entries) > self.get(schema.ACCESS_CONTROL_ENTRIES_PER_FABRIC):
            raise ActionError(Status.RESOURCE_EXHAUSTED, message="too many entries for this fabric")
        return [replace(e, fabric_index=fabric_index) for e in entries]

    def _check_entry(self, entry: AccessControlEntryStruct) -> None:
        acl.validate_acl_entry(
            entry.privilege,
            entry.auth_mode,
            [int(s) for s in _nullable_list(entry.subjects)],
            [_acl_target(t) if isinstance(t, AccessControlTargetStruct) else None
             for t in _nullable_list(entry.targets)],
            max_subjects=self.get(schema.SUBJECTS_PER_ACCESS_CONTROL_ENTRY),
            max_targets=self.get(schema.TARGETS_PER_ACCESS_CONTROL_ENTRY),
        )


def _acl_target(target: AccessControlTargetStruct) -> acl.AclTarget:
    return acl.AclTarget(cluster=_or_none(target.cluster), endpoint=_or_none(target.endpoint),
                         device_type=_or_none(target.device_type))


def to_acl_entry(entry: AccessControlEntryStruct) -> acl.AclEntry:
    """The ACL-engine view of one stored entry."""
    targets = tuple(_acl_target(t) for t in _nullable_list(entry.targets) if isinstance(t, AccessControlTargetStruct))
    return acl.AclEntry(
        fabric_index=entry.fabric_index or 0,
        privilege=Privilege(entry.privilege),  # the schema's enum is this Privilege: a no-op for decoded entries
        auth_mode=AuthMode(entry.auth_mode),
        subjects=tuple(int(s) for s in _nullable_list(entry.subjects)),
        targets=targets,
    )


def admin_entry(case_admin_subject: int) -> AccessControlEntryStruct:
    """The entry AddNOC creates for CaseAdminSubject (11.18.6.8): Administer, CASE, whole node."""
    return AccessControlEntryStruct(
        privilege=Privilege.ADMINISTER,
        auth_mode=AuthMode.CASE,
        subjects=[case_admin_subject],
        targets=NULL,
    )
