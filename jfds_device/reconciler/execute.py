"""The executor: runs one node's ``Plan`` against the peer, band by band, and says how each action ended.

Applies run in ascending band order, removals in descending order (as the matter.js Node Manager's executor,
PR #3948 @ ba153603d0f6, packages/node-manager/src/reconcile/executeActions.ts); the combined whole-list facets
(ACL, bindings) do their band's adds and removals in one read-merge-write during the apply phase. An action
spanning several bands (an endpoint group) stops at its first failing band and undoes the bands it had done. An
action whose ``requires`` did not all succeed is HELD (left as it is, no status write). A facet whose read is
refused (an ``IMStatusError``) fails its batch with that status. A ``TransportError`` ends the pass: the batch in
flight and every action not finished yet get TIMEOUT (or BUSY), the reference's record for a sync that could not
reach the node.

The executor never writes the datastore; the runner turns outcomes into status writes (``plan.status_write``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.errors import IMStatusError, TransportError
from jfds_device.im.provider import Status
from jfds_device.reconciler.facets import Facet
from jfds_device.reconciler.peer import PeerContext
from jfds_device.reconciler.plan import HELD, SUCCESS, Action, Op, Outcome, Plan

__all__ = ["Execution", "execute"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Execution:
    """Outcomes by entry, plus what stopped the pass early (if anything)."""

    outcomes: dict[EntryRef, Outcome] = field(default_factory=dict)
    transport_error: TransportError | None = None


class _Progress:
    def __init__(self, actions: Sequence[Action]) -> None:
        self.remaining = {a.ref: len(a.bands) for a in actions}
        self.failed: dict[EntryRef, int] = {}
        self.held: set[EntryRef] = set()
        self.succeeded: dict[EntryRef, list[int]] = {}  # bands done, in order

    def ready(self, action: Action) -> bool:
        ref = action.ref
        if ref in self.failed or ref in self.held:
            return False
        if any(self.failed.get(r) is not None or r in self.held or self.remaining.get(r, 0) > 0
               for r in action.requires):
            self.held.add(ref)
            return False
        return True

    def record(self, ref: EntryRef, status: int, band: int) -> None:
        if status != Status.SUCCESS:
            self.failed[ref] = status
        else:
            self.succeeded.setdefault(ref, []).append(band)
        self.remaining[ref] -= 1

    def done(self, ref: EntryRef) -> bool:
        return self.remaining.get(ref, 0) <= 0 or ref in self.failed or ref in self.held


async def execute(plan: Plan, ctx: PeerContext, facets: Mapping[int, Facet]) -> Execution:
    """Run ``plan``; see the module docstring."""
    execution = Execution()
    applies, removes = plan.of(Op.APPLY), plan.of(Op.REMOVE)
    progress = _Progress([*applies, *removes])
    combined = {band for band, facet in facets.items() if facet.combined}
    apply_bands = sorted({b for a in applies for b in a.bands} | {b for a in removes for b in a.bands if b in combined})
    remove_bands = sorted({b for a in removes for b in a.bands if b not in combined}, reverse=True)
    try:
        for band in apply_bands:
            facet = facets[band]
            batch = [a for a in applies if band in a.bands and progress.ready(a)]
            gone = [a for a in removes if band in a.bands and progress.ready(a)] if band in combined else []
            if not batch and not gone:
                continue
            try:
                if gone:
                    codes = await facet.apply_and_remove(ctx, [a.entry for a in batch], [a.entry for a in gone])
                else:
                    codes = await facet.apply(ctx, [a.entry for a in batch])
            except IMStatusError as exc:  # the facet's read was refused (e.g. UNSUPPORTED_ACCESS): the whole batch
                codes = {a.ref: exc.status for a in [*batch, *gone]}
            _record(progress, [*batch, *gone], codes, facet)
        for band in remove_bands:
            facet = facets[band]
            gone = [a for a in removes if band in a.bands and progress.ready(a)]
            if gone:
                try:
                    codes = await facet.remove(ctx, [a.entry for a in gone])
                except IMStatusError as exc:
                    codes = {a.ref: exc.status for a in gone}
                _record(progress, gone, codes, facet)
        await _undo_partial_applies(applies, progress, ctx, facets)
    except TransportError as exc:
        execution.transport_error = exc
        for action in [*applies, *removes]:
            if not progress.done(action.ref):
                progress.failed[action.ref] = exc.status
        log.info("node 0x%016X: pass stopped: %s", plan.node_id, exc)
    for action in plan.actions:
        ref = action.ref
        if action.op is Op.HOLD or ref in progress.held:
            execution.outcomes[ref] = HELD
        elif ref in progress.failed:
            error = execution.transport_error
            transport = error is not None and progress.failed[ref] == error.status
            execution.outcomes[ref] = Outcome(progress.failed[ref], transport=transport)
        else:
            execution.outcomes[ref] = SUCCESS
    return execution


async def _undo_partial_applies(applies: Sequence[Action], progress: _Progress, ctx: PeerContext,
                                facets: Mapping[int, Facet]) -> None:
    """An entry is all or nothing on the node: an apply the node refused at a later band undoes the bands it
    had done (an endpoint group whose membership was refused leaves no GroupKeyMap entry behind), so a
    CommitFailed entry holds nothing there and a rollback has nothing half-applied to find."""
    for action in applies:
        done = progress.succeeded.get(action.ref, [])
        if action.ref not in progress.failed or not done:
            continue
        for band in reversed(done):
            try:
                codes = await facets[band].remove(ctx, [action.entry])
            except IMStatusError as exc:
                codes = {action.ref: exc.status}
            if codes.get(action.ref, Status.FAILURE) != Status.SUCCESS:
                log.warning("node 0x%016X: %s (refused: 0x%02X) could not be undone at band %d: 0x%02X",
                            ctx.node_id, action.ref, progress.failed[action.ref], band,
                            codes.get(action.ref, Status.FAILURE))


def _record(progress: _Progress, actions: Sequence[Action], codes: Mapping[EntryRef, int], facet: Facet) -> None:
    for action in actions:
        status = codes.get(action.ref)
        if status is None:  # a facet must answer for every entry it was given; treat silence as a failure
            log.error("%r gave no status for %s", facet, action.ref)
            status = Status.FAILURE
        progress.record(action.ref, status, facet.band)
