"""Facets: how one band of datastore entries reaches a peer.

Modelled on the matter.js Node Manager's ItemKind registry (PR #3948 @ ba153603d0f6,
packages/node/src/behavior/system/desired-state/ItemKind.ts).

A ``Facet`` pushes one aspect of one entry kind. Most kinds have one facet; an endpoint-group entry has two,
its GroupKeyMap entry (band 20) and its Groups membership (band 30), because the node refuses the membership
without the map entry (matter.js: UNSUPPORTED_ACCESS) and the map entry without the key set is useless:

    ====  ===========================  =====================  ==========================================
    band  facet                        entries                peer operation
    ====  ===========================  =====================  ==========================================
    10    ``KeySetFacet``              NodeKeySetList         KeySetWrite / KeySetRemove (never set 0)
    20    ``GroupKeyMapFacet``         EndpointGroupIDList    GroupKeyMap read-merge-write by group id
    30    ``MembershipFacet``          EndpointGroupIDList    Groups.AddGroup / RemoveGroup on the endpoint
    40    ``AclFacet``                 NodeACLList            ACL read-merge-write by value
    45    ``BindingFacet``             EndpointBindingList    Binding read-merge-write by value, per endpoint
    ====  ===========================  =====================  ==========================================

Every facet works on a batch (the pass's entries of its band) and returns an IM status per entry (0: done).
``TransportError`` propagates: the pass stops and the executor records TIMEOUT. ``combined`` facets (the two
whole-list kinds at the top of the order) do a band's adds and removals in one read-merge-write, so a removal
frees room for an add on a full list. ``observe`` reads what the peer holds (for a verify pass) and ``present``
tells whether one Committed entry is still there. ``facet_registry.default_facets`` lists them by band.

Every facet talks to the peer through ``PeerIO``, typed from the cluster schemas: commands are their request
structs, values are decoded by the attribute's schema. A read-merge-write keeps the list elements in the TLV form
the peer sent (``lists``), so an element the facet does not change goes back exactly as read; the facet reads
each element's identity through the schema (``AttributeRef.decode_item``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.im.provider import Status
from jfds_device.reconciler.peer import PeerContext

__all__ = ["ABSENT", "Facet", "fail_all", "ok_all"]


class Facet:
    """One band's peer operations. Subclasses set ``band``, ``kind``, ``name`` and override what they do."""

    band: ClassVar[int]
    kind: ClassVar[EntryKind]
    name: ClassVar[str]
    combined: ClassVar[bool] = False

    async def apply(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        raise NotImplementedError

    async def remove(self, ctx: PeerContext, entries: Sequence[Entry]) -> dict[EntryRef, int]:
        raise NotImplementedError

    async def apply_and_remove(
        self, ctx: PeerContext, applies: Sequence[Entry], removes: Sequence[Entry]
    ) -> dict[EntryRef, int]:
        """For ``combined`` facets: one write with both."""
        codes = await self.remove(ctx, removes) if removes else {}
        if applies:
            codes.update(await self.apply(ctx, applies))
        return codes

    async def observe(self, ctx: PeerContext) -> None:
        """Read what the peer holds into ``ctx.cache`` (a verify pass)."""

    def present(self, ctx: PeerContext, entry: Entry) -> bool | None:
        """Whether the peer holds a Committed ``entry`` (after ``observe``); None when it cannot tell."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(band={self.band})"


# A removal answered with one of these is done: the node does not (and cannot) hold what we remove.
ABSENT = frozenset({Status.NOT_FOUND, Status.UNSUPPORTED_ENDPOINT, Status.UNSUPPORTED_CLUSTER})


def fail_all(entries: Sequence[Entry], status: int) -> dict[EntryRef, int]:
    return {e.ref: status for e in entries}


def ok_all(entries: Sequence[Entry]) -> dict[EntryRef, int]:
    return fail_all(entries, Status.SUCCESS)
