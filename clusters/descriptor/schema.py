"""Descriptor cluster 0x001D (Core spec 9.5): every id, struct and attribute.

Revision 2 (spec 1.3/1.4: TagList added). The TagList feature is not used, so FeatureMap is 0;
EndpointUniqueID (spec 1.5) is declared for completeness and left absent.
"""

from __future__ import annotations

from jfds_device.codec.model import AttributeDef, ClusterDef
from jfds_device.codec.schema import UINT8, UINT16, UINT32, List, Str, Struct, StructType, UInt, field, struct

CLUSTER_ID = 0x001D

DEVICE_TYPE_ID = UINT32
CLUSTER_ID_T = UINT32
ENDPOINT_NO = UINT16


@struct
class DeviceTypeStruct(Struct):
    device_type: int = field(0, DEVICE_TYPE_ID)
    revision: int = field(1, UInt(16, 1))


@struct
class SemanticTagStruct(Struct):
    mfg_code: object = field(0, UINT16, nullable=True)
    namespace_id: int = field(1, UINT8)
    tag: int = field(2, UINT8)
    label: object = field(3, Str(max_length=64), optional=True, nullable=True)


CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="Descriptor",
    revision=3,  # 1.4.2: EndpointUniqueID added (provisional, optional; not served)
    attributes=(
        AttributeDef(0x0000, "DeviceTypeList", List(StructType(DeviceTypeStruct), min_length=1)),
        AttributeDef(0x0001, "ServerList", List(CLUSTER_ID_T)),
        AttributeDef(0x0002, "ClientList", List(CLUSTER_ID_T)),
        AttributeDef(0x0003, "PartsList", List(ENDPOINT_NO)),
        AttributeDef(0x0004, "TagList", List(StructType(SemanticTagStruct), min_length=1, max_length=6)),
        AttributeDef(0x0005, "EndpointUniqueID", Str(max_length=32)),
    ),
)

DEVICE_TYPE_LIST = 0x0000
SERVER_LIST = 0x0001
CLIENT_LIST = 0x0002
PARTS_LIST = 0x0003
