"""JfdsStore (Core spec 11.24 storage): bootstrap, the per-entry status lifecycle and the reconciler's status API,
revisions, ListIDs, change events, limits, transactions and persistence, without the cluster server."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest

from clusters.joint_fabric_datastore import schema as s
from clusters.joint_fabric_datastore.schema import (
    AccessControlEntry,
    AccessControlEntryAuthMode,
    AccessControlEntryPrivilege,
    AccessControlTarget,
    AdministratorInformationEntry,
    BindingTarget,
    DatastoreState,
    GroupInformationEntry,
    GroupKeyMulticastPolicy,
    GroupKeySecurityPolicy,
    GroupKeySet,
)
from jfds_device.clock import ManualClock
from jfds_device.codec.schema import NULL
from jfds_device.datastore.jfds import JfdsStore, acl_value_key, matter_epoch_s
from jfds_device.datastore.jfds_entries import EntryStore
from jfds_device.datastore.jfds_fabric_wide import FabricWideStore
from jfds_device.datastore.jfds_records import (
    CapacityError,
    DatastoreChange,
    DuplicateEntryError,
    EntryKind,
    EntryNotFoundError,
    EntryRef,
    InvalidEntryError,
    NotBootstrappedError,
    Table,
    WrongStateError,
)
from jfds_device.datastore.jfds_tables import to_sql_u64
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import (
    LocalProtocolError,
)

PENDING, COMMITTED = DatastoreState.PENDING, DatastoreState.COMMITTED
DELETE_PENDING, COMMIT_FAILED = DatastoreState.DELETE_PENDING, DatastoreState.COMMIT_FAILED
IPK = bytes(range(16))
SECRET = b"\x5e" * 16
T0 = 1_800_000_000.0
NODE, OTHER = 2, 0xFFFF_FFEF_0000_0001  # OTHER is above 2^63: stored in a signed column
TIMEOUT, BUSY, CONSTRAINT_ERROR = 0x94, 0x9C, 0x87


def key_set(set_id: int, key: bytes = SECRET) -> GroupKeySet:
    return GroupKeySet(
        group_key_set_id=set_id,
        group_key_security_policy=GroupKeySecurityPolicy.TRUST_FIRST,
        epoch_key0=key,
        epoch_start_time0=1,
        group_key_multicast_policy=GroupKeyMulticastPolicy.PER_GROUP_ID,
    )


def ace(*subjects: int) -> AccessControlEntry:
    return AccessControlEntry(
        privilege=AccessControlEntryPrivilege.VIEW,
        auth_mode=AccessControlEntryAuthMode.CASE,
        subjects=list(subjects),
        targets=NULL,
    )


class Setup:
    def __init__(self, path: Path, *, bootstrap: bool = True) -> None:
        self.path = path
        self.clock = ManualClock(wall_start=T0)
        self.db = Database(path, synchronous="NORMAL")
        self.store = JfdsStore(self.db, clock=self.clock.wall)
        self.changes: list[DatastoreChange] = []
        self.store.observe(self.changes.append)
        if bootstrap:
            self.store.bootstrap_anchor(b"rcac", 1, 0xFFF1, "anchor", key_set(0, IPK), T0, icac=b"icac")
            self.store.add_node(NODE, "two")
            self.store.sync_endpoints(NODE, [0, 1])
            self.changes.clear()

    def reopen(self) -> Setup:
        self.db.close()
        return Setup(self.path, bootstrap=False)


@pytest.fixture
def st(tmp_path: Path) -> Setup:
    return Setup(tmp_path / "jfds.sqlite")


# ---------------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_creates_the_anchor_entries(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "a.sqlite", bootstrap=False)
    store = setup.store
    assert not store.is_bootstrapped and store.anchor() is None
    assert store.datastore_status().state is PENDING
    store.bootstrap_anchor(b"rcac", 0x1234, 0xFFF1, "anchor", key_set(0, IPK), T0, icac=b"icac")
    anchor = store.anchor()
    assert anchor is not None and (anchor.root_ca, anchor.node_id, anchor.vendor_id) == (b"rcac", 0x1234, 0xFFF1)
    assert store.datastore_status().state is COMMITTED
    assert store.datastore_status().update_timestamp == matter_epoch_s(T0) == int(T0) - 946_684_800
    assert store.key_sets() == [key_set(0, IPK)]
    assert {(g.group_id, g.group_cat, g.group_cat_version) for g in store.groups()} == {
        (s.ADMIN_CAT_GROUP_ID, 0xFFFF, 1),
        (s.ANCHOR_CAT_GROUP_ID, 0xFFFE, 1),
    }
    assert all(g.group_permission is AccessControlEntryPrivilege.ADMINISTER for g in store.groups())
    assert store.admins() == [
        AdministratorInformationEntry(node_id=0x1234, friendly_name="anchor", vendor_id=0xFFF1, icac=b"icac")
    ]
    assert store.is_anchor_admin(0x1234)
    assert setup.changes[-1].tables == {Table.ANCHOR, Table.STATUS, Table.KEY_SETS, Table.GROUPS, Table.ADMINS}


def test_bootstrap_needs_an_empty_datastore_and_the_ipk(st: Setup, tmp_path: Path) -> None:
    with pytest.raises(WrongStateError):
        st.store.bootstrap_anchor(b"r", 1, 1, "a", key_set(0), T0)
    fresh = Setup(tmp_path / "b.sqlite", bootstrap=False).store
    with pytest.raises(InvalidEntryError):
        fresh.bootstrap_anchor(b"r", 1, 1, "a", key_set(5), T0)
    with pytest.raises(InvalidEntryError):
        fresh.bootstrap_anchor(b"r", 1, 1, "a", key_set(0, b"short"), T0)
    with pytest.raises(InvalidEntryError):
        fresh.bootstrap_anchor(b"r" * 401, 1, 1, "a", key_set(0), T0)
    with pytest.raises(InvalidEntryError):
        fresh.bootstrap_anchor(b"r", 1, 1, "a" * 33, key_set(0), T0)
    assert not fresh.is_bootstrapped
    with pytest.raises(NotBootstrappedError):
        fresh.set_datastore_status(COMMITTED)


def test_wipe_forgets_everything_and_list_ids_start_again(st: Setup) -> None:
    store = st.store
    store.add_acl(NODE, ace(4))
    store.add_acl(NODE, ace(5))
    store.wipe()
    assert st.changes[-1].wiped and st.changes[-1].tables == set(Table)
    assert not store.is_bootstrapped and store.nodes() == [] and store.key_sets() == [] and store.admins() == []
    assert store.entries(EntryKind.ACL) == [] and store.groups() == []
    store.bootstrap_anchor(b"rcac", 1, 0xFFF1, "anchor", key_set(0, IPK), T0)
    store.add_node(NODE, "two")
    assert store.add_acl(NODE, ace(5)).key == 1


def test_epoch_keys_never_appear_in_reprs_or_logs(st: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    st.store.add_key_set(key_set(7))
    text = repr(st.store.key_sets()) + repr(st.store) + repr(st.store.anchor()) + repr(st.changes) + caplog.text
    assert SECRET.hex() not in text and repr(SECRET) not in text and repr(IPK) not in text
    assert "<redacted>" in repr(st.store.key_set(7))


# ---------------------------------------------------------------------------------------------------- lifecycle


def test_add_commit_fail_retry_lifecycle_with_timestamps(st: Setup) -> None:
    store, clock = st.store, st.clock
    ref = store.add_acl(NODE, ace(5))
    entry = store.entry(ref)
    assert entry is not None and entry.state is PENDING and entry.status.failure_code == 0
    assert entry.status.update_timestamp == matter_epoch_s(T0) and not entry.removal
    clock.tick(10)
    assert store.set_status(ref, COMMIT_FAILED, TIMEOUT)
    entry = store.entry(ref)
    assert entry is not None and (entry.state, entry.status.failure_code) == (COMMIT_FAILED, TIMEOUT)
    assert entry.status.update_timestamp == matter_epoch_s(T0 + 10)
    clock.tick(10)
    assert store.set_status(ref, PENDING)  # retry
    assert store.entry(ref).status == s.StatusEntry(state=PENDING, update_timestamp=matter_epoch_s(T0 + 20))  # type: ignore[union-attr]
    assert store.set_status(ref, COMMITTED, BUSY)  # Committed always clears the failure code
    entry = store.entry(ref)
    assert entry is not None and (entry.state, entry.status.failure_code) == (COMMITTED, 0)


def test_removal_lifecycle_and_confirm_erases_without_tombstone(st: Setup) -> None:
    store = st.store
    ref = store.add_acl(NODE, ace(5))
    store.set_status(ref, COMMITTED)
    assert not store.confirm_removed(ref)  # not being removed
    assert store.request_removal(ref)
    assert not store.request_removal(ref)  # already
    entry = store.entry(ref)
    assert entry is not None and entry.state is DELETE_PENDING and entry.removal
    store.set_status(ref, COMMIT_FAILED, TIMEOUT)  # the removal failed: the intent survives
    entry = store.entry(ref)
    assert entry is not None and entry.state is COMMIT_FAILED and entry.removal
    store.set_status(ref, PENDING)  # retry keeps the removal
    assert store.entry(ref).state is DELETE_PENDING  # type: ignore[union-attr]
    with pytest.raises(LocalProtocolError):
        store.set_status(ref, COMMITTED)  # removals complete with confirm_removed
    assert store.confirm_removed(ref)
    assert store.entry(ref) is None and store.entries(EntryKind.ACL) == []
    assert st.changes[-1].erased == (ref,)
    assert not store.confirm_removed(ref) and not store.set_status(ref, COMMITTED)  # gone: False


def test_re_adding_during_removal_cancels_it(st: Setup) -> None:
    store = st.store
    ref = store.add_binding(NODE, 1, BindingTarget(group=5))
    store.request_removal(ref)
    store.set_status(ref, COMMIT_FAILED, TIMEOUT)
    removing = store.entry(ref)
    assert store.add_binding(NODE, 1, BindingTarget(group=5)) == ref
    entry = store.entry(ref)
    assert entry is not None and entry.state is PENDING and not entry.removal and entry.status.failure_code == 0
    assert entry.revision > removing.revision  # type: ignore[union-attr]
    assert not store.confirm_removed(ref)  # the removal's late confirmation is ignored


def test_stale_completions_are_ignored(st: Setup) -> None:
    store = st.store
    ref = store.add_node_key_set(NODE, 7)
    pushed = store.entry(ref).revision  # type: ignore[union-attr]
    store.renew(ref)  # e.g. UpdateKeySet while the push was in flight
    assert not store.set_status(ref, COMMITTED, revision=pushed)
    assert store.entry(ref).state is PENDING  # type: ignore[union-attr]
    assert store.set_status(ref, COMMITTED, revision=store.entry(ref).revision)  # type: ignore[union-attr]
    store.request_removal(ref)
    removal = store.entry(ref).revision  # type: ignore[union-attr]
    store.add_node_key_set(NODE, 7)  # cancelled meanwhile
    assert not store.confirm_removed(ref, revision=removal)
    assert store.entry(ref) is not None


def test_set_status_rules(st: Setup) -> None:
    store = st.store
    ref = store.add_acl(NODE, ace(5))
    with pytest.raises(LocalProtocolError):
        store.set_status(ref, COMMIT_FAILED)  # needs the failure code
    assert store.set_status(ref, DELETE_PENDING)  # same as request_removal
    assert store.entry(ref).removal  # type: ignore[union-attr]
    with pytest.raises(LocalProtocolError):
        store.request_removal(EntryRef.node(NODE))
    with pytest.raises(EntryNotFoundError):
        store.request_removal(EntryRef.acl(NODE, 999))
    assert store.set_status(EntryRef.node(NODE), COMMITTED)
    assert store.node(NODE).commissioning_status_entry.state is COMMITTED  # type: ignore[union-attr]


def test_acl_edit_remembers_superseded_values_until_committed(st: Setup) -> None:
    store = st.store
    ref = store.add_acl(NODE, ace(5))
    store.set_status(ref, COMMITTED)
    store.edit_acl(ref, ace(6))
    store.edit_acl(ref, ace(7))  # edited again before the push finished
    entry = store.entry(ref)
    assert entry is not None and entry.state is PENDING and entry.value.acl_entry == ace(7)
    assert entry.superseded == (ace(5), ace(6))
    store.add_acl(NODE, ace(9))
    with pytest.raises(DuplicateEntryError):
        store.edit_acl(ref, ace(9))
    store.set_status(ref, COMMITTED)
    assert store.entry(ref).superseded == ()  # type: ignore[union-attr]


def test_acl_value_key_is_by_value() -> None:
    def entry(subjects: object, targets: object) -> AccessControlEntry:
        return AccessControlEntry(
            privilege=AccessControlEntryPrivilege.VIEW,
            auth_mode=AccessControlEntryAuthMode.CASE,
            subjects=subjects,
            targets=targets,
        )

    t1 = AccessControlTarget(cluster=6, endpoint=NULL, device_type=NULL)
    t2 = AccessControlTarget(cluster=NULL, endpoint=1, device_type=NULL)
    assert acl_value_key(entry(NULL, NULL)) == acl_value_key(entry([], []))
    assert acl_value_key(entry([1, 2], [t1, t2])) == acl_value_key(entry([2, 1], [t2, t1]))
    assert acl_value_key(entry([1], NULL)) != acl_value_key(entry([1, 1], NULL))  # multisets
    assert acl_value_key(entry([1], [t1])) != acl_value_key(entry([1], [t2]))


# ---------------------------------------------------------------------------------------------------- reconciler API


def test_entries_for_node_and_pending_entries_in_revision_order(st: Setup) -> None:
    store = st.store
    store.add_node(OTHER, "big")
    key = store.add_node_key_set(NODE, 7)
    group = store.add_endpoint_group(NODE, 1, 0x0101)
    acl = store.add_acl(NODE, ace(5))
    other = store.add_acl(OTHER, ace(5))
    store.set_status(group, COMMITTED)
    store.request_removal(key)  # newest intent now
    pending = [e.ref for e in store.pending_entries(NODE)]
    assert pending == [EntryRef.node(NODE), acl, key]
    assert [e.ref for e in store.pending_entries()] == [EntryRef.node(NODE), EntryRef.node(OTHER), acl, other, key]
    assert {e.ref for e in store.entries_for_node(NODE)} == {
        EntryRef.node(NODE),
        EntryRef.endpoint(NODE, 0),
        EntryRef.endpoint(NODE, 1),
        key,
        group,
        acl,
    }
    assert [e.ref for e in store.entries_for_node(OTHER)] == [EntryRef.node(OTHER), other]
    assert store.entry(other).value.node_id == OTHER  # type: ignore[union-attr]


def test_change_events_carry_the_refs(st: Setup) -> None:
    store = st.store
    ref = store.add_acl(NODE, ace(5))
    assert st.changes[-1] == DatastoreChange(tables=frozenset({Table.ACLS}), intent=(ref,))
    store.set_status(ref, COMMITTED)
    assert st.changes[-1] == DatastoreChange(tables=frozenset({Table.ACLS}), status=(ref,))
    store.set_status(ref, COMMITTED)  # no change, no event
    assert len(st.changes) == 2
    store.request_refresh(NODE)
    assert st.changes[-1].refresh == (NODE,) and st.changes[-1].intent == (EntryRef.node(NODE),)
    with store.transaction():  # one event per outermost block
        a = store.add_acl(NODE, ace(6))
        b = store.add_binding(NODE, 1, BindingTarget(group=1))
    assert st.changes[-1] == DatastoreChange(tables=frozenset({Table.ACLS, Table.BINDINGS}), intent=(a, b))
    count = len(st.changes)
    with pytest.raises(RuntimeError), store.transaction():
        store.add_acl(NODE, ace(7))
        raise RuntimeError
    assert len(st.changes) == count and store.find_acl(NODE, ace(7)) is None
    with store.transaction():  # an inner block that fails takes its events with it
        kept = store.add_acl(NODE, ace(8))
        with pytest.raises(DuplicateEntryError):
            store.add_node(NODE, "dup")
        with pytest.raises(RuntimeError), store.transaction():
            store.add_acl(NODE, ace(9))
            raise RuntimeError
    assert st.changes[-1].intent == (kept,) and store.find_acl(NODE, ace(9)) is None


def test_a_failing_observer_does_not_undo_or_starve(st: Setup) -> None:
    seen: list[DatastoreChange] = []

    def broken(change: DatastoreChange) -> None:
        raise ValueError("observer bug")

    unsubscribe = st.store.observe(broken)
    st.store.observe(seen.append)
    ref = st.store.add_acl(NODE, ace(5))
    assert st.store.entry(ref) is not None and len(seen) == 1
    unsubscribe()
    unsubscribe()


def test_remove_node_erases_all_its_entries(st: Setup) -> None:
    store = st.store
    refs = {
        store.add_node_key_set(NODE, 7),
        store.add_endpoint_group(NODE, 1, 0x0101),
        store.add_binding(NODE, 1, BindingTarget(group=1)),
        store.add_acl(NODE, ace(5)),
    }
    store.remove_node(NODE)
    erased = set(st.changes[-1].erased)
    assert refs | {EntryRef.node(NODE), EntryRef.endpoint(NODE, 0), EntryRef.endpoint(NODE, 1)} == erased
    assert all(store.count(kind) == 0 for kind in EntryKind)


def test_sync_endpoints_adopts_and_drops_with_their_entries(st: Setup) -> None:
    store = st.store
    store.rename_endpoint(NODE, 1, "lamp")
    group = store.add_endpoint_group(NODE, 1, 0x0101)
    binding = store.add_binding(NODE, 1, BindingTarget(group=1))
    kept = store.add_endpoint_group(NODE, 0, 0x0101)
    store.sync_endpoints(NODE, [0, 2])
    assert [(e.endpoint_id, e.status_entry.state) for e in (x.value for x in store.entries(EntryKind.ENDPOINT))] == [
        (0, COMMITTED),
        (2, COMMITTED),
    ]
    assert set(st.changes[-1].erased) == {group, binding, EntryRef.endpoint(NODE, 1)}
    assert store.entry(kept) is not None
    with pytest.raises(EntryNotFoundError):
        store.add_endpoint_group(NODE, 1, 0x0101)


def test_adoption_as_committed_does_not_cancel_a_removal(st: Setup) -> None:
    store = st.store
    ref = store.add_acl(NODE, ace(5), committed=True)
    assert store.entry(ref).state is COMMITTED and st.changes[-1].status == (ref,)  # type: ignore[union-attr]
    store.request_removal(ref)
    store.add_acl(NODE, ace(5), committed=True)  # a refresh still finds it on the node
    assert store.entry(ref).removal  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------- ids, limits


def test_list_ids_are_shared_unique_and_the_lowest_free(st: Setup) -> None:
    store = st.store
    ids = [store.add_acl(NODE, ace(i)).key for i in range(3)]
    ids += [store.add_binding(NODE, 1, BindingTarget(group=i + 1)).key for i in range(3)]
    assert ids == list(range(1, 7))
    second = store.entries(EntryKind.ACL)[1].ref
    store.request_removal(second)
    assert store.add_acl(NODE, ace(9)).key == 7  # a DeletePending entry still holds its id
    store.confirm_removed(second)
    assert store.add_binding(NODE, 1, BindingTarget(group=9)).key == 2  # freed: handed out again, to either kind
    reopened = st.reopen().store
    for entry in reopened.entries(EntryKind.ACL):
        reopened.request_removal(entry.ref)
        reopened.confirm_removed(entry.ref)
    assert [reopened.add_acl(NODE, ace(i)).key for i in range(10, 14)] == [1, 3, 7, 8]


def test_erasing_a_node_or_an_endpoint_frees_its_list_ids(st: Setup) -> None:
    store = st.store
    store.add_node(NODE + 1, "three")
    store.sync_endpoints(NODE + 1, [0, 1])
    assert [store.add_acl(NODE + 1, ace(i)).key for i in range(2)] == [1, 2]
    assert store.add_binding(NODE, 1, BindingTarget(group=1)).key == 3
    assert store.add_binding(NODE + 1, 1, BindingTarget(group=1)).key == 4
    store.sync_endpoints(NODE + 1, [0])  # endpoint 1 and its binding go
    assert store.add_acl(NODE, ace(7)).key == 4
    store.remove_node(NODE + 1)  # RemoveNode erases the node's entries at once
    assert [store.add_acl(NODE, ace(i)).key for i in (8, 9, 10)] == [1, 2, 5]
    st.db.execute("DELETE FROM jfds_nodes WHERE node_id = ?", (to_sql_u64(NODE),))  # a bare cascade frees ids
    store.add_node(NODE, "two again")
    assert store.add_acl(NODE, ace(11)).key == 1


def test_70000_add_remove_cycles_never_run_out_of_list_ids(st: Setup) -> None:
    store = st.store
    keeper = store.add_acl(NODE, ace(0)).key  # a long-lived entry below the churn
    seen = set()
    for batch in range(70):
        with store.transaction():  # 1000 cycles per commit keeps the test fast; allocation is the same
            for cycle in range(1000):
                ref = store.add_acl(NODE, ace(1 + (batch + cycle) % 2))
                seen.add(ref.key)
                store.request_removal(ref)
                store.confirm_removed(ref)
    assert keeper == 1 and seen == {2}


def test_the_list_id_space_is_full_only_with_65535_live_entries(st: Setup) -> None:
    # Fill ids 1..65535 but 40000 directly in SQL instead of through 65534 commands.
    st.db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 65535)"
        " INSERT INTO jfds_acls (list_id, node_id, ace, value_key, superseded, state, removal, updated, failure,"
        " revision) SELECT i, ?, x'1518', CAST(i AS BLOB), NULL, 0, 0, 0, 0, 0 FROM n WHERE i != 40000",
        (to_sql_u64(NODE),),
    )
    assert st.store.add_binding(NODE, 1, BindingTarget(group=1)).key == 40000
    with pytest.raises(CapacityError):
        st.store.add_acl(NODE, ace(1))
    assert st.db.execute("SELECT COUNT(*), MAX(list_id) FROM jfds_acls").fetchone() == (65534, 0xFFFF)


def test_limits(st: Setup) -> None:
    store = st.store
    with store.transaction():
        for i in range(1, s.MAX_KEY_SETS):
            store.add_key_set(key_set(i))
    with pytest.raises(CapacityError) as info:
        store.add_key_set(key_set(0x1000))
    assert info.value.table is Table.KEY_SETS and info.value.limit == 254

    def group(group_id: int) -> GroupInformationEntry:
        return GroupInformationEntry(
            group_id=group_id,
            friendly_name="g",
            group_key_set_id=NULL,
            group_cat=NULL,
            group_cat_version=NULL,
            group_permission=AccessControlEntryPrivilege.VIEW,
        )

    with store.transaction():
        for i in range(1, s.MAX_GROUPS - 1):  # plus the two CAT groups
            store.add_group(group(i))
    with pytest.raises(CapacityError):
        store.add_group(group(0x3000))
    with store.transaction():
        for i in range(s.MAX_ADMINS - 1):
            store.add_admin(AdministratorInformationEntry(node_id=0x100 + i, friendly_name="a", vendor_id=1, icac=b""))
    with pytest.raises(CapacityError):
        store.add_admin(AdministratorInformationEntry(node_id=0x999, friendly_name="a", vendor_id=1, icac=b""))


def test_store_invariants(st: Setup) -> None:
    store = st.store
    with pytest.raises(InvalidEntryError):
        store.remove_admin(1)  # the anchor
    with pytest.raises(EntryNotFoundError):
        store.remove_admin(0x77)
    with pytest.raises(InvalidEntryError):
        store.add_key_set(key_set(9, b"too short"))
    with pytest.raises(DuplicateEntryError):
        store.add_key_set(key_set(0))
    with pytest.raises(EntryNotFoundError):
        store.replace_key_set(key_set(9))
    with pytest.raises(EntryNotFoundError):
        store.add_acl(0x77, ace(1))
    with pytest.raises(EntryNotFoundError):
        store.add_binding(NODE, 9, BindingTarget(group=1))
    with pytest.raises(LocalProtocolError):
        store.entries(EntryKind.ACL, endpoint_id=1)


# ---------------------------------------------------------------------------------------------------- durability


def test_a_failed_transaction_leaves_nothing_and_reopen_shows_the_commits(st: Setup) -> None:
    store = st.store
    committed = store.add_acl(NODE, ace(5))
    store.set_status(committed, COMMITTED)
    with pytest.raises(RuntimeError), store.transaction():
        store.add_acl(NODE, ace(6))
        store.add_key_set(key_set(9))
        store.remove_node(NODE)
        raise RuntimeError("crash")
    reopened = st.reopen().store
    assert reopened.is_bootstrapped and reopened.node(NODE) is not None
    assert [e.value.acl_entry for e in reopened.entries(EntryKind.ACL)] == [ace(5)]
    assert reopened.entry(committed).state is COMMITTED  # type: ignore[union-attr]
    assert [k.group_key_set_id for k in reopened.key_sets()] == [0]


def test_node_ids_above_2_63_round_trip_and_sort(st: Setup) -> None:
    store = st.store
    store.add_node(OTHER, "big")
    store.add_admin(AdministratorInformationEntry(node_id=OTHER, friendly_name="b", vendor_id=1, icac=b""))
    store.sync_endpoints(OTHER, [1])
    ref = store.add_binding(OTHER, 1, BindingTarget(node=OTHER, endpoint=1))
    assert [n.node_id for n in store.nodes()] == [NODE, OTHER]
    assert store.admin(OTHER) is not None and store.entry(ref).value.binding.node == OTHER  # type: ignore[union-attr]
    assert [e.value.node_id for e in store.entries(EntryKind.BINDING, node_id=OTHER)] == [OTHER]
    store.remove_admin(OTHER)
    store.remove_node(OTHER)
    assert [n.node_id for n in store.nodes()] == [NODE]


# ---------------------------------------------------------------------------------------------------- composition


def test_the_facade_offers_every_public_method_of_its_components_with_their_signature() -> None:
    """JfdsStore is composed of EntryStore and FabricWideStore: a component method the facade forgot would be
    unreachable for the cluster logic and the reconciler."""
    for component in (EntryStore, FabricWideStore):
        for name, member in vars(component).items():
            if name.startswith("_") or name in ("delete_all", "encoded_list") or not callable(member):
                continue  # the facade's wipe and encoded_list span both components
            offered = getattr(JfdsStore, name)
            assert inspect.signature(offered) == inspect.signature(member), name
            assert offered.__doc__ == member.__doc__, name
    assert JfdsStore.is_bootstrapped.__doc__ == FabricWideStore.is_bootstrapped.__doc__


def test_one_transaction_across_both_components_is_one_change(st: Setup) -> None:
    store = st.store
    with store.transaction():
        store.add_key_set(key_set(9))
        ref = store.add_acl(NODE, ace(5))
        assert st.changes == []  # held until the outermost block ends
    [change] = st.changes
    assert change.tables == {Table.KEY_SETS, Table.ACLS} and change.intent == (ref,)


def test_a_failed_wipe_leaves_both_components_as_they_were(st: Setup) -> None:
    store = st.store
    ref = store.add_acl(NODE, ace(5))
    with pytest.raises(RuntimeError), store.transaction():
        store.wipe()
        assert store.nodes() == [] and store.admins() == []
        raise RuntimeError("crash")
    assert store.is_bootstrapped and store.entry(ref) is not None and len(store.admins()) == 1
    assert st.changes[-1].intent == (ref,)  # the wipe emitted nothing


def test_encoded_list_serves_each_list_from_the_component_that_holds_it(st: Setup) -> None:
    store = st.store
    store.add_key_set(key_set(9))
    store.add_acl(NODE, ace(5))
    store.add_binding(NODE, 1, BindingTarget(group=0x0101))
    assert store.encoded_list(Table.KEY_SETS) == [k.encode() for k in store.key_sets()]
    assert store.encoded_list(Table.GROUPS) == [g.encode() for g in store.groups()]
    assert store.encoded_list(Table.ADMINS) == [a.encode() for a in store.admins()]
    for kind in EntryKind:
        assert store.encoded_list(kind.table) == [e.value.encode() for e in store.entries(kind)], kind
    for table in (Table.ANCHOR, Table.STATUS):
        with pytest.raises(LocalProtocolError):
            store.encoded_list(table)


def test_the_shared_core_drops_a_failed_inner_blocks_events_and_keeps_the_rest(st: Setup) -> None:
    """An inner block on one component fails inside an outer block on the other: its rows and its entry events go,
    the outer block's stay, and one change is emitted for the whole. (The change's ``tables`` may still name the
    inner block's table, as before the store was split: observers re-read what they act on.)"""
    store = st.store
    with store.transaction():
        kept = store.add_acl(NODE, ace(5))
        with pytest.raises(DuplicateEntryError), store.transaction():
            store.add_group(
                GroupInformationEntry(
                    group_id=0x0101,
                    friendly_name="g",
                    group_key_set_id=NULL,
                    group_cat=NULL,
                    group_cat_version=NULL,
                    group_permission=AccessControlEntryPrivilege.VIEW,
                )
            )
            store.add_node(NODE, "again")  # DuplicateEntryError: the group goes with it
    [change] = st.changes
    assert change.intent == (kept,) and Table.ACLS in change.tables and not change.erased
    assert store.group(0x0101) is None and store.entry(kept) is not None
