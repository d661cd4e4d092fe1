"""The facets by band (``facets.Facet``): key sets, GroupKeyMap, Groups membership, ACL, bindings."""

from __future__ import annotations

from jfds_device.reconciler.facets import Facet
from jfds_device.reconciler.facets_groups import GroupKeyMapFacet, KeySetFacet, MembershipFacet
from jfds_device.reconciler.facets_lists import AclFacet, BindingFacet

__all__ = ["default_facets"]


def default_facets() -> dict[int, Facet]:
    """The facets by band."""
    facets: list[Facet] = [KeySetFacet(), GroupKeyMapFacet(), MembershipFacet(), AclFacet(), BindingFacet()]
    return {f.band: f for f in facets}
