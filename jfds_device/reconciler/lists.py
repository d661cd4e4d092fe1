"""Read-merge-write of a peer's fabric-scoped list attribute (AccessControl.ACL, Binding, GroupKeyMap).

A list write replaces the accessing fabric's whole list (Core spec 7.13.6, 8.7.3.3), so the reconciler reads
the list, edits it and writes all of it back. ``merge_list`` is the pure edit: elements are matched by an
identity key (the ACL's by-value key, a binding's target, a map entry's group id); elements no operation names
keep their place and content (foreign entries are never removed or reordered). Elements are in the TLV form the
peer sent (``PeerIO.read_list``), so an element we do not change goes back exactly as read, even one our schema
cannot decode; the facets build theirs with the cluster schema's struct and read every identity through it.
``write_merged`` drives it against the peer and handles failures:

* every write is conditioned on the DataVersion read with the list (AttributeDataIB DataVersion, Core spec
  8.7.3.2), so an entry another administrator writes between our read and our write is never lost: the peer
  answers DATA_VERSION_MISMATCH, and we read again, merge again and write again, up to ``attempts`` times; a list
  that changes under every attempt leaves the operations DATA_VERSION_MISMATCH (transient: the runner retries the
  node later, with backoff). Nothing is written from a list read earlier (a previous pass, before a restart). A
  list too long for one message is written replace-all then appends, and only the replace-all carries the
  DataVersion (it bumps the version itself); the IM client sends it alone and stops if it is refused
  (``im.client_messages.build_write_chunks``), so a mismatch never leaves our appends on the peer's list;
* after any other failed write the list is read back; a partial result of our own write (a chunked
  replace-all-then-append whose refused item leaves the list cleared or short: matter.js applies each IB of a
  chunked write on its own, @matter/node ``InteractionServer.handleWriteRequest``) is undone by writing the list
  as it was, conditioned on the read-back's DataVersion;
* a refused batch is retried one operation at a time, so each entry gets its own status (one bad entry does
  not fail the others); each try is a read-merge-write of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jfds_device.codec import tlv
from jfds_device.codec.model import FABRIC_INDEX_TAG, AttributeRef
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.errors import IMStatusError, TransportError
from jfds_device.im.provider import Status
from jfds_device.reconciler.peer import PeerIO

__all__ = ["ListOp", "ListPath", "canonical", "merge_list", "write_merged"]

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class ListOp:
    """One entry's edit. An add (``key`` set) puts ``raw`` in: it replaces the element with the same key if that
    differs (an upsert), else the first element whose key is in ``drop`` (an edit by value keeps the entry's
    place), else it is appended. A removal (``key`` None) drops every element whose key is in ``drop``."""

    ref: EntryRef
    drop: frozenset[Hashable] = frozenset()
    key: Hashable | None = None
    raw: Any = None

    @property
    def is_add(self) -> bool:
        return self.key is not None


@dataclass(frozen=True, slots=True)
class ListPath:
    """A list attribute on one endpoint of the peer."""

    endpoint: int
    attribute: AttributeRef

    @property
    def ids(self) -> tuple[int, int, int]:
        return (self.endpoint, self.attribute.cluster_id, self.attribute.attribute_id)

    def __str__(self) -> str:
        return f"{self.endpoint}/0x{self.attribute.cluster_id:04X}/0x{self.attribute.attribute_id:04X}"


def canonical(element: Any) -> bytes:
    """An element's bytes (its TLV form, as read or as a schema struct encodes) without its FabricIndex (the
    server stamps that), for comparing lists."""
    if isinstance(element, dict):
        element = {k: element[k] for k in sorted(element, key=_tag_order) if k != FABRIC_INDEX_TAG}
    return tlv.encode(element)


def _tag_order(tag: Any) -> tuple[int, str]:
    return (tag, "") if isinstance(tag, int) else (1 << 32, repr(tag))


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(canonical(x) == canonical(y) for x, y in zip(a, b, strict=True))


def _subsequence(part: Sequence[Any], whole: Sequence[Any]) -> bool:
    """Whether ``part`` is ``whole`` with some elements left out (order kept)."""
    items = iter(canonical(e) for e in whole)
    return all(any(c == w for w in items) for c in map(canonical, part))


def merge_list(
    current: Sequence[Any],
    ops: Sequence[ListOp],
    key_of: Callable[[Any], Hashable | None],
    *,
    limit: int | None = None,
    protected: Callable[[Any], bool] | None = None,
) -> tuple[list[Any], dict[EntryRef, int]]:
    """Apply ``ops`` to ``current`` (removals first, so they free room; then adds in the given order).

    Returns the new list and a status per operation: SUCCESS, RESOURCE_EXHAUSTED for an add that does not fit
    ``limit`` elements, or CONSTRAINT_ERROR for an edit that would drop the last element ``protected`` accepts
    (the entry that grants us Administer: without it we could never manage the node again)."""
    result = list(current)
    codes: dict[EntryRef, int] = {}

    def guarded(candidate: list[Any]) -> bool:
        if protected is None or not any(protected(e) for e in result):
            return True
        return any(protected(e) for e in candidate)

    for op in [o for o in ops if not o.is_add]:
        candidate = [e for e in result if key_of(e) not in op.drop]
        if not guarded(candidate):
            codes[op.ref] = Status.CONSTRAINT_ERROR
            continue
        result, codes[op.ref] = candidate, Status.SUCCESS
    for op in [o for o in ops if o.is_add]:
        keys = [key_of(e) for e in result]
        candidate = list(result)
        if op.key in keys:
            at = keys.index(op.key)
            if canonical(candidate[at]) != canonical(op.raw):
                candidate[at] = op.raw  # upsert: same identity, new content
        else:
            at = next((i for i, k in enumerate(keys) if k in op.drop), None)
            if at is not None:
                candidate[at] = op.raw  # an edit by value keeps the entry's place
            elif limit is not None and len(candidate) >= limit:
                codes[op.ref] = Status.RESOURCE_EXHAUSTED
                continue
            else:
                candidate.append(op.raw)
        # Superseded values the node still holds go (not the element just written).
        candidate = [e for e in candidate if e is op.raw or key_of(e) not in op.drop or key_of(e) == op.key]
        if not guarded(candidate):
            codes[op.ref] = Status.CONSTRAINT_ERROR
            continue
        result, codes[op.ref] = candidate, Status.SUCCESS
    return result, codes


MISMATCH = Status.DATA_VERSION_MISMATCH


@dataclass(slots=True)
class _Writer:
    io: PeerIO
    path: ListPath
    key_of: Callable[[Any], Hashable | None]
    limit: int | None
    protected: Callable[[Any], bool] | None
    attempts: int
    version: int | None = None  # the DataVersion of the last read: the condition of the next write
    writes: int = field(default=0)
    mismatches: int = field(default=0)

    @property
    def where(self) -> str:
        node = self.io.node_id
        return f"list {self.path}" + ("" if node is None else f" on node 0x{node:016X}")

    async def read(self) -> list[Any]:
        elements, self.version = await self.io.read_list(self.path.endpoint, self.path.attribute)
        return elements

    async def write(self, elements: list[Any]) -> None:
        """Write ``elements`` if the list is still as last read (IMStatusError(DATA_VERSION_MISMATCH) if not)."""
        self.writes += 1
        path = self.path
        if self.io.before_list_write is not None:
            await self.io.before_list_write(self.io, path.ids, self.version)
        version, self.version = self.version, None  # a write, even a refused one, may change it: read again
        await self.io.write(path.endpoint, path.attribute, elements, data_version=version)

    async def converge(self, ops: Sequence[ListOp]) -> tuple[dict[EntryRef, int], list[Any], int | None]:
        """Read, merge ``ops``, write if anything changed, again while the peer answers DATA_VERSION_MISMATCH
        (at most ``attempts`` writes). Returns the merge's status per operation, the list the node holds, and
        None if it holds the merge, else why not: the peer's status for the write (after ``recover``), or
        DATA_VERSION_MISMATCH when every attempt met a list changed since its read. ``TransportError``
        propagates after a best-effort read-back."""
        self.mismatches = 0
        for attempt in range(1, self.attempts + 1):
            base = await self.read()
            merged, codes = self.merge(base, ops)
            if _same(merged, base):
                return codes, base, None
            try:
                await self.write(merged)
            except TransportError:
                with contextlib.suppress(TransportError, IMStatusError):
                    await self.recover(base, merged)
                raise
            except IMStatusError as exc:
                if exc.status != MISMATCH:
                    return codes, await self.recover(base, merged), exc.status
                self.mismatches += 1
                self.io.version_mismatches += 1
                log.info("%s: DataVersion mismatch, it changed since our read (another administrator?); %s",
                         self.where, f"re-reading and merging again (attempt {attempt + 1} of {self.attempts})"
                         if attempt < self.attempts else f"giving up after {self.attempts} attempts")
                continue
            if self.mismatches:
                log.info("%s: written on attempt %d, after %d DataVersion mismatch(es)", self.where, attempt,
                         self.mismatches)
            return codes, merged, None
        log.warning("%s: changed under each of our %d writes; left for a later pass (DATA_VERSION_MISMATCH)",
                    self.where, self.attempts)
        return codes, base, MISMATCH

    async def recover(self, before: list[Any], attempted: list[Any]) -> list[Any]:
        """After a failed write: what the node holds now, restoring ``before`` if our write left it half done."""
        try:
            after = await self.read()
        except (IMStatusError, TransportError) as exc:
            log.warning("%s: cannot read back after a failed write: %s", self.where, exc)
            return before
        if _same(after, before):
            return before
        if _same(after, attempted):
            return after
        if _subsequence(after, attempted):
            # Our write got half done: a chunked write (replace-all, then one append per item) whose refused items
            # were dropped while the clear and the other items stayed (matter.js applies each IB on its own). The
            # restore is conditioned on the read-back: if someone wrote since, their list stays.
            log.warning("%s: a failed write left %d of %d elements; restoring the %d it had",
                        self.where, len(after), len(attempted), len(before))
            try:
                await self.write(before)
            except (IMStatusError, TransportError) as exc:
                log.error("%s: restoring after a failed write failed: %s", self.where, exc)
                return after
            return before
        log.warning("%s changed under us (another administrator?); leaving it as it is", self.where)
        return after

    def merge(self, base: list[Any], ops: Sequence[ListOp]) -> tuple[list[Any], dict[EntryRef, int]]:
        return merge_list(base, ops, self.key_of, limit=self.limit, protected=self.protected)


async def write_merged(
    io: PeerIO,
    path: ListPath,
    ops: Sequence[ListOp],
    key_of: Callable[[Any], Hashable | None],
    *,
    limit: int | None = None,
    protected: Callable[[Any], bool] | None = None,
    attempts: int = 3,
) -> tuple[dict[EntryRef, int], list[Any]]:
    """Read, merge ``ops``, write if anything changed, conditioned on the DataVersion read (see the module
    docstring). Returns a status per operation and the list the node holds afterwards. ``TransportError``
    propagates (after a best-effort read-back) so the pass can stop; an ``IMStatusError`` of a write becomes the
    status of the operation(s) it belongs to; one of the read propagates (the facet's batch fails with it)."""
    writer = _Writer(io, path, key_of, limit, protected, max(1, attempts))
    codes, held, refused = await writer.converge(ops)
    if refused is None:
        return codes, held
    tried = [op for op in ops if codes.get(op.ref) == Status.SUCCESS]
    if refused == MISMATCH or len(tried) == 1:
        codes.update({op.ref: refused for op in tried})
        return codes, held
    # Attribute the refusal: one operation at a time, each a read-merge-write on top of those that went through.
    for op in tried:
        single, held, refused = await writer.converge([op])
        codes[op.ref] = single[op.ref] if refused is None else refused
    return codes, held
