"""User Label cluster 0x0041 (Core spec 9.9): a writable, persisted list of label/value pairs."""

from __future__ import annotations

from jfds_device.codec.model import AttributeDef, ClusterDef, Privilege
from jfds_device.codec.schema import List, Str, Struct, StructType, field, struct

CLUSTER_ID = 0x0041
LABEL_LIST = 0x0000
# The spec requires room for at least 4 labels per endpoint; more is the implementer's choice. 128 gives
# controllers a list large enough to exercise chunked reads and writes without straining storage.
MAX_LABELS = 128


@struct
class LabelStruct(Struct):
    label: str = field(0, Str(max_length=16))
    value: str = field(1, Str(max_length=16))


CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="UserLabel",
    revision=1,
    attributes=(
        AttributeDef(
            LABEL_LIST,
            "LabelList",
            List(StructType(LabelStruct)),  # MAX_LABELS is enforced by the server: RESOURCE_EXHAUSTED
            writable=True,
            write_privilege=Privilege.MANAGE,
            persistent=True,
            default=[],
        ),
    ),
)
