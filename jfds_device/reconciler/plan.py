"""The reconciler's planner: pure decisions, no I/O, no clock of its own (sans-IO, README Architecture).

Given one node's datastore entries (``JfdsStore.entries_for_node``) and, on a verify pass, which Committed
entries the peer was seen to hold, ``plan_node`` says what to do with each entry. ``status_write`` maps an
action's outcome to the datastore call that records it. ``RetryState`` schedules retries of a node after
recoverable failures; ``DriftBook`` bounds how often drift is repaired per time window.

Lifecycles (Core spec 11.24.4; connectedhomeip src/app/server/JointFabricDatastore.cpp, MarkEntrySyncFailed):

* Pending → apply → Committed (FailureCode 0), or CommitFailed(IM status; TIMEOUT 0x94 / BUSY 0x9C for
  transport failures);
* DeletePending → remove → erased (``confirm_removed``), or CommitFailed with the removal intent kept;
* CommitFailed is retried automatically only for *transient* codes (timeouts, busy, generic failure, a list
  that kept changing under our conditional writes); a value
  the node *rejected* (CONSTRAINT_ERROR, RESOURCE_EXHAUSTED) or any other refusal (UNSUPPORTED_ACCESS, ...) is
  left for the operator. RefreshNode (11.24.7.11) drops rejected adds, as the reference does, and retries the
  rest.

Every status write carries the revision the action was planned from, so an intent that changed meanwhile
(re-add, removal request, node removed) wins: the stale outcome is ignored and the entry is planned again.
That is also why a removal is never resurrected: a status write for the old revision changes nothing.

Decision table (``plan_node``), per entry kind that is pushed (key sets, endpoint groups, ACLs, bindings;
node and endpoint entries are never pushed):

    ============  =======  ============  ===========================================
    state         removal  mode          action
    ============  =======  ============  ===========================================
    Pending       no       any           APPLY
    DeletePending yes      any           REMOVE
    CommitFailed  no       transient     APPLY (retry)
    CommitFailed  no       rejected      REFRESH: DROP; else none (operator)
    CommitFailed  no       other         REFRESH: APPLY; else none (operator)
    CommitFailed  yes      transient     REMOVE (retry)
    CommitFailed  yes      other         REFRESH: REMOVE; else none
    Committed     no       VERIFY        APPLY if the peer lacks it (drift, within the budget of its window)
    ============  =======  ============  ===========================================

Dependencies (the reference's rules, 11.24.7.15/16): a group is added only once the node holds its key set
(an endpoint-group APPLY waits for the key set's APPLY in the same pass and is HELD while the key set entry is
failed or being removed); a key set is removed only after the node's groups that use it (its REMOVE waits for
their REMOVEs and is HELD while a live group still uses it, a group the node refused for good not counting).
HELD entries keep their status.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.backoff import Backoff, BackoffPolicy
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.errors import LocalProtocolError
from jfds_device.im.provider import Status

__all__ = [
    "BANDS",
    "BAND_ACL",
    "BAND_BINDING",
    "BAND_GROUP_KEY_MAP",
    "BAND_KEY_SET",
    "BAND_MEMBERSHIP",
    "Action",
    "DriftBook",
    "DriftLedger",
    "MemoryDriftLedger",
    "Mode",
    "Op",
    "Outcome",
    "Plan",
    "RetryClass",
    "RetryPolicy",
    "RetryState",
    "StatusWrite",
    "Write",
    "plan_node",
    "refused",
    "retry_class",
    "status_write",
]

# Priority bands (matter.js Node Manager, PR #3948 @ ba153603d0f6, packages/node-manager/src/reconcile/priority.ts):
# lower applies first, removal runs in reverse. One entry kind can span several bands: an endpoint group is the
# GroupKeyMap entry (20) plus the membership (30).
BAND_KEY_SET = 10  # GroupKeyManagement KeySetWrite / KeySetRemove
BAND_GROUP_KEY_MAP = 20  # GroupKeyManagement.GroupKeyMap, read-merge-write by group id
BAND_MEMBERSHIP = 30  # Groups.AddGroup / RemoveGroup on the endpoint
BAND_ACL = 40  # AccessControl.ACL, read-merge-write by value
BAND_BINDING = 45  # Binding, per endpoint, read-merge-write by value

BANDS: Mapping[EntryKind, tuple[int, ...]] = {
    EntryKind.NODE_KEY_SET: (BAND_KEY_SET,),
    EntryKind.ENDPOINT_GROUP: (BAND_GROUP_KEY_MAP, BAND_MEMBERSHIP),
    EntryKind.ACL: (BAND_ACL,),
    EntryKind.BINDING: (BAND_BINDING,),
}


# ---------------------------------------------------------------------------------------------- failure classes


class RetryClass(enum.Enum):
    TRANSIENT = "transient"  # retried automatically, with backoff
    REJECTED = "rejected"  # the node refused the value itself; RefreshNode drops it
    PERMANENT = "permanent"  # will not change by retrying alone; RefreshNode retries it


# TIMEOUT and BUSY are what the reference records for transport failures (SyncFailureCode); FAILURE is the
# generic status a node answers for internal errors (storage, memory), which usually pass; DATA_VERSION_MISMATCH
# (Core spec 8.7.3.2) is a list that another administrator kept changing under each of our conditional writes
# (``lists.write_merged``): a later pass reads it afresh.
_TRANSIENT = frozenset({Status.TIMEOUT, Status.BUSY, Status.FAILURE, Status.DATA_VERSION_MISMATCH})
# IsUnrecoverableCommitFailure in the reference core: the value does not fit the node.
_REJECTED = frozenset({Status.CONSTRAINT_ERROR, Status.RESOURCE_EXHAUSTED})


def retry_class(code: int) -> RetryClass:
    """How a CommitFailed FailureCode (an IM status) is retried."""
    if code in _TRANSIENT:
        return RetryClass.TRANSIENT
    if code in _REJECTED:
        return RetryClass.REJECTED
    return RetryClass.PERMANENT


# ---------------------------------------------------------------------------------------------- plan


class Mode(enum.Enum):
    NORMAL = "normal"  # a datastore change, a sweep, a retry
    VERIFY = "verify"  # also compare Committed entries with what the peer holds (reconnect)
    REFRESH = "refresh"  # RefreshNode: drop rejected adds, retry every other failure


class Op(enum.Enum):
    APPLY = "apply"
    REMOVE = "remove"
    DROP = "drop"  # erase from the datastore without touching the node (RefreshNode, rejected add)
    HOLD = "hold"  # a dependency is not on the node; leave the entry as it is


@dataclass(frozen=True, slots=True)
class Action:
    """What to do with one entry. ``requires``: entries whose action in the same pass must succeed first;
    ``reason`` says why (pending, retry, drift, refresh, or why it is held)."""

    op: Op
    entry: Entry
    reason: str
    requires: tuple[EntryRef, ...] = ()

    @property
    def ref(self) -> EntryRef:
        return self.entry.ref

    @property
    def revision(self) -> int:
        return self.entry.revision

    @property
    def bands(self) -> tuple[int, ...]:
        """The bands this action runs in, in execution order (removal runs them in reverse)."""
        bands = BANDS[self.ref.kind]
        return tuple(reversed(bands)) if self.op is Op.REMOVE else bands


@dataclass(frozen=True, slots=True)
class Plan:
    """One node's actions, in execution order: applies by ascending band (then revision), removals by
    descending band (then revision), then drops and holds."""

    node_id: int
    mode: Mode
    actions: tuple[Action, ...]

    def of(self, op: Op) -> list[Action]:
        return [a for a in self.actions if a.op is op]

    @property
    def needs_peer(self) -> bool:
        """Whether executing the plan talks to the node (drops and holds do not)."""
        return any(a.op in (Op.APPLY, Op.REMOVE) for a in self.actions)

    @property
    def empty(self) -> bool:
        return not self.actions


def _failed(entry: Entry) -> RetryClass | None:
    if entry.state is not DatastoreState.COMMIT_FAILED:
        return None
    return retry_class(entry.status.failure_code)


def _base_op(entry: Entry, mode: Mode, observed: Mapping[EntryRef, bool] | None) -> tuple[Op, str] | None:
    """The decision table (module docstring), before dependencies and the drift budget."""
    state, removal = entry.state, entry.removal
    if state is DatastoreState.PENDING and not removal:
        return Op.APPLY, "pending"
    if state is DatastoreState.DELETE_PENDING:
        return Op.REMOVE, "delete pending"
    failed = _failed(entry)
    if failed is not None:
        op = Op.REMOVE if removal else Op.APPLY
        if failed is RetryClass.TRANSIENT:
            return op, f"retry after 0x{entry.status.failure_code:02X}"
        if mode is Mode.REFRESH:
            if failed is RetryClass.REJECTED and not removal:
                return Op.DROP, f"refresh drops rejected 0x{entry.status.failure_code:02X}"
            return op, f"refresh retries 0x{entry.status.failure_code:02X}"
        return None
    if state is DatastoreState.COMMITTED and not removal and observed is not None and observed.get(entry.ref) is False:
        return Op.APPLY, "drift"
    return None


def plan_node(
    node_id: int,
    entries: Iterable[Entry],
    *,
    mode: Mode = Mode.NORMAL,
    key_set_of_group: Mapping[int, int | None] | None = None,
    observed: Mapping[EntryRef, bool] | None = None,
    drift: DriftBook | None = None,
    now: float | None = None,
) -> Plan:
    """Plan one node. ``entries``: the node's entries (other nodes' are ignored); ``key_set_of_group``: each
    group's key set id from GroupList (dependencies between groups and key sets); ``observed``: on a VERIFY
    pass, for Committed entries, whether the peer holds them; ``drift``: the repair budget (None: unlimited),
    as it stands at ``now`` (the time the book's repairs are recorded in; required with ``drift``)."""
    if drift is not None and now is None:
        raise LocalProtocolError("plan_node: a drift budget needs the time it is checked at (now)")
    mine = [e for e in entries if e.ref.node_id == node_id and e.ref.kind in BANDS]
    groups = dict(key_set_of_group or {})
    decided: dict[EntryRef, tuple[Op, str]] = {}
    for entry in mine:
        decision = _base_op(entry, mode, observed if mode is Mode.VERIFY else None)
        if decision is None:
            continue
        if decision[1] == "drift" and drift is not None and now is not None and \
                not drift.allows(entry.ref, entry.revision, now):
            continue  # another administrator keeps undoing it: stop fighting for this window (reported by the runner)
        decided[entry.ref] = decision
    by_ref = {e.ref: e for e in mine}
    actions = [_with_dependencies(by_ref[ref], op, reason, decided, mine, groups) for ref, (op, reason) in
               decided.items()]
    return Plan(node_id, mode, tuple(sorted(actions, key=_order)))


def refused(entry: Entry) -> bool:
    """An add the node refused for good: it holds nothing of it (the executor undoes a partial apply), so it
    needs nothing on the node either (its key set may go)."""
    failed = _failed(entry)
    return not entry.removal and failed is not None and failed is not RetryClass.TRANSIENT


def _order(action: Action) -> tuple[int, int, int]:
    rank = {Op.APPLY: 0, Op.REMOVE: 1, Op.DROP: 2, Op.HOLD: 3}[action.op]
    band = action.bands[0]
    return rank, -band if action.op is Op.REMOVE else band, action.revision


def _with_dependencies(
    entry: Entry,
    op: Op,
    reason: str,
    decided: Mapping[EntryRef, tuple[Op, str]],
    entries: Sequence[Entry],
    groups: Mapping[int, int | None],
) -> Action:
    ref = entry.ref
    if ref.kind is EntryKind.ENDPOINT_GROUP and op is Op.APPLY:
        key_set = groups.get(ref.key)  # type: ignore[arg-type]
        if key_set is None:
            return Action(op, entry, reason)  # unknown group or no key set: the apply fails and says so
        key_ref = EntryRef.node_key_set(ref.node_id, key_set)
        key_entry = next((e for e in entries if e.ref == key_ref), None)
        planned = decided.get(key_ref)
        if planned is not None and planned[0] is Op.APPLY:
            return Action(op, entry, reason, (key_ref,))
        if key_entry is not None and (key_entry.removal or key_entry.state is not DatastoreState.COMMITTED):
            return Action(Op.HOLD, entry, f"waits for key set {key_set} on the node")
        return Action(op, entry, reason)
    if ref.kind is EntryKind.NODE_KEY_SET and op is Op.REMOVE:
        users = [e for e in entries if e.ref.kind is EntryKind.ENDPOINT_GROUP and groups.get(e.ref.key) == ref.key  # type: ignore[arg-type]
                 and not refused(e)]
        if any(not e.removal for e in users):
            return Action(Op.HOLD, entry, "a live group of the node still uses the key set")
        removing = tuple(e.ref for e in users if decided.get(e.ref, (None,))[0] is Op.REMOVE)
        return Action(op, entry, reason, removing)
    return Action(op, entry, reason)


# ---------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one action ended: ``status`` 0 is success, else the IM status to record; ``transport``: the node
    was not reached (or the exchange broke), so the status is TIMEOUT/BUSY; ``held``: not attempted."""

    status: int = Status.SUCCESS
    transport: bool = False
    held: bool = False

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS and not self.held

    @property
    def transient(self) -> bool:
        return not self.ok and not self.held and (self.transport or retry_class(self.status) is RetryClass.TRANSIENT)


SUCCESS = Outcome()
HELD = Outcome(held=True)


class Write(enum.Enum):
    NONE = "none"
    COMMITTED = "committed"  # set_status(ref, COMMITTED, revision=)
    COMMIT_FAILED = "commit_failed"  # set_status(ref, COMMIT_FAILED, code, revision=)
    ERASE = "erase"  # confirm_removed(ref, revision=)
    DROP = "drop"  # request_removal + confirm_removed (the entry never reached / stays off the node)


@dataclass(frozen=True, slots=True)
class StatusWrite:
    write: Write
    ref: EntryRef
    revision: int
    failure_code: int = 0


def status_write(action: Action, outcome: Outcome) -> StatusWrite:
    """The datastore call that records ``outcome`` (always with the planned revision: a stale outcome is
    ignored by the store)."""
    ref, revision = action.ref, action.revision
    if action.op is Op.HOLD or outcome.held:
        return StatusWrite(Write.NONE, ref, revision)
    if action.op is Op.DROP:
        return StatusWrite(Write.DROP, ref, revision)
    if not outcome.ok:
        code = outcome.status if outcome.status != Status.SUCCESS else Status.FAILURE
        return StatusWrite(Write.COMMIT_FAILED, ref, revision, int(code))
    if action.op is Op.REMOVE:
        return StatusWrite(Write.ERASE, ref, revision)
    return StatusWrite(Write.COMMITTED, ref, revision)


# ---------------------------------------------------------------------------------------------- retries


# A node that returns is caught up within about RETRY_MAXIMUM seconds (plus jitter).
RETRY_MAXIMUM = 20.0
RetryState = Backoff


def RetryPolicy(
    initial: float = 1.0, factor: float = 2.0, maximum: float = RETRY_MAXIMUM, jitter: float = 0.25
) -> BackoffPolicy:
    """Delays after consecutive transient failures of a node."""
    return BackoffPolicy(initial=initial, factor=factor, maximum=maximum, jitter=jitter)


class DriftLedger(Protocol):
    """Where a ``DriftBook`` keeps its repairs: ``datastore.drift_repairs.DriftRepairStore`` (durable, the node's
    database) or ``MemoryDriftLedger``. Times are the caller's ``now``."""

    def repairs(self, ref: EntryRef, revision: int) -> list[float]: ...

    def record(self, ref: EntryRef, revision: int, at: float) -> None: ...

    def keep_only(self, node_id: int, keep: Iterable[tuple[EntryRef, int]]) -> int: ...

    def expire(self, before: float, latest: float) -> int: ...


@dataclass(slots=True)
class MemoryDriftLedger:
    """A ``DriftLedger`` in memory (tests, or a reconciler without a database)."""

    rows: dict[tuple[EntryRef, int], list[float]] = field(default_factory=dict)

    def repairs(self, ref: EntryRef, revision: int) -> list[float]:
        return sorted(self.rows.get((ref, revision), ()))

    def record(self, ref: EntryRef, revision: int, at: float) -> None:
        self.rows.setdefault((ref, revision), []).append(at)

    def keep_only(self, node_id: int, keep: Iterable[tuple[EntryRef, int]]) -> int:
        live = set(keep)
        stale = [k for k in self.rows if k[0].node_id == node_id and k not in live]
        return sum(len(self.rows.pop(k)) for k in stale)

    def expire(self, before: float, latest: float) -> int:
        gone = 0
        for key, times in list(self.rows.items()):
            kept = [min(t, latest) for t in times if t > before]
            gone += len(times) - len(kept)
            if kept:
                self.rows[key] = kept
            else:
                del self.rows[key]
        return gone


@dataclass(slots=True)
class DriftBook:
    """Drift repairs per entry revision within a sliding time window (as matter.js
    packages/node-manager/src/reconcile/DriftBudget.ts, PR #4434, caps re-applies per item per window): a node or
    another administrator that keeps undoing an entry must not start a write fight that never ends, yet an entry
    that drifts now and then is repaired every time. At most ``budget`` repairs of one revision within any
    ``window`` seconds; a new revision (the intent changed) starts a new budget. Sans-IO: every call takes ``now``
    from the caller, and the repairs live in ``ledger`` (the runner's is durable, so a restart keeps what was
    spent)."""

    budget: int = 3
    window: float = 3600.0
    ledger: DriftLedger = field(default_factory=MemoryDriftLedger)

    def _recent(self, ref: EntryRef, revision: int, now: float) -> list[float]:
        # A repair stamped after ``now`` (the clock went backwards) still counts; ``forget`` brings it back to now.
        return [t for t in self.ledger.repairs(ref, revision) if t > now - self.window]

    def allows(self, ref: EntryRef, revision: int, now: float) -> bool:
        return len(self._recent(ref, revision, now)) < self.budget

    def spend(self, ref: EntryRef, revision: int, now: float) -> int:
        """Record one repair at ``now``; returns how many are left in the window."""
        self.ledger.record(ref, revision, now)
        return max(0, self.budget - len(self._recent(ref, revision, now)))

    def renewed_at(self, ref: EntryRef, revision: int, now: float) -> float:
        """When the next repair is allowed (``now`` if it is now): the oldest repair that keeps the budget spent
        leaves the window."""
        recent = self._recent(ref, revision, now)
        if len(recent) < self.budget:
            return now
        return min(recent[len(recent) - self.budget] + self.window, now + self.window)

    def forget(self, node_id: int, keep: Iterable[tuple[EntryRef, int]], now: float) -> None:
        """Prune: drop ``node_id``'s books of entries and revisions not in ``keep`` (its entries now), and every
        repair that left the window (any node's, so erased nodes' books go too)."""
        self.ledger.keep_only(node_id, keep)
        self.ledger.expire(now - self.window, now)
