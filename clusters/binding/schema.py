"""Binding cluster 0x001E (Core spec 9.6): ids and the TargetStruct.

jfds-device itself does not serve Binding (the fleet simulator's peers do, ``server.py``); the reconciler
read-merge-writes a peer endpoint's Binding list to push EndpointBindingList entries (Core spec 11.24.7.17/18).
Tags cross-checked with ``chip.clusters.Objects.Binding`` (home-assistant-chip-clusters 2025.7.0) in
tests/reconciler/test_schemas.py.

TargetStruct presence rules (9.6.5.1): Node needs Endpoint; Group only without Endpoint; Endpoint is mandatory
without Group. A peer checks them per entry on write (matter.js answers CONSTRAINT_ERROR, and a chunked list
write can leave the list cleared: read back after a failure; matter.js 0.17.9 applies each list IB on its own).
"""

from __future__ import annotations

from typing import ClassVar

from jfds_device.codec.model import AttributeDef, ClusterDef, Privilege
from jfds_device.codec.schema import UINT8, UINT16, UINT32, UINT64, List, Struct, StructType, UInt, field, struct

CLUSTER_ID = 0x001E

BINDING = 0x0000


@struct
class TargetStruct(Struct):
    """9.6.5.1. Fabric-scoped: FabricIndex (0xFE) is stamped by the server on write."""

    FABRIC_SENSITIVE: ClassVar[frozenset[int]] = frozenset()

    node: int | None = field(1, UINT64, optional=True)
    group: int | None = field(2, UInt(16, 1), optional=True)
    endpoint: int | None = field(3, UINT16, optional=True)
    cluster: int | None = field(4, UINT32, optional=True)
    fabric_index: int | None = field(0xFE, UINT8, optional=True)


CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="Binding",
    revision=1,
    attributes=(
        AttributeDef(
            BINDING,
            "Binding",
            List(StructType(TargetStruct)),
            writable=True,
            write_privilege=Privilege.MANAGE,  # 9.6.6.1: RW F VM
            fabric_scoped=True,
            persistent=True,
            default=[],
        ),
    ),
)
