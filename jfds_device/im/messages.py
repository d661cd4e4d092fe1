"""Interaction Model messages and information blocks (Core spec 10.6, 10.7) as schema structs.

Two wire facts shape this module:

* The path IBs (AttributePathIB, ClusterPathIB, EventPathIB, CommandPathIB) are TLV *list* containers, not
  structures (Core spec 10.6.2, 10.6.3, 10.6.8, 10.6.11). ``_ListStruct`` reuses the ``@struct`` field table
  and only swaps the container; a ``Struct.CONTAINER = "list"`` switch in ``codec/schema.py`` would make this
  local base unnecessary.
* Every IM message ends with InteractionModelRevision under context tag 0xFF (Core spec 10.7). The CHIP SDK
  2025.7 (``MessageBuilder::EncodeInteractionModelRevision`` in home-assistant-chip-core 2025.7.0) sends 12;
  we send the same and accept any value, or none, on input (the SDK only logs it too).

Conventions follow ``codec/schema``: an absent optional field is ``None``; a TLV null in a nullable field is
``NULL``. Report and invoke-response arrays also accept ``tlv.Raw`` items, so the server can encode each IB
once, size it, and splice it into whichever chunk it lands in.
"""

from __future__ import annotations

from typing import Any, Final

from jfds_device.codec import schema, tlv
from jfds_device.codec.message import InteractionModelOpcode
from jfds_device.codec.schema import (
    ANY,
    BOOL,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    FieldType,
    List,
    Struct,
    StructType,
    WrongTypeError,
    field,
    struct,
)
from jfds_device.errors import SchemaError

__all__ = [
    "IM_REVISION",
    "MESSAGE_TYPES",
    "NULL",
    "AttributeDataIB",
    "AttributePathIB",
    "AttributeReportIB",
    "AttributeStatusIB",
    "ClusterPathIB",
    "CommandDataIB",
    "CommandPathIB",
    "CommandStatusIB",
    "DataVersionFilterIB",
    "EventDataIB",
    "EventFilterIB",
    "EventPathIB",
    "EventReportIB",
    "EventStatusIB",
    "InvokeRequest",
    "InvokeResponse",
    "InvokeResponseIB",
    "ReadRequest",
    "ReportData",
    "StatusIB",
    "StatusResponse",
    "SubscribeRequest",
    "SubscribeResponse",
    "TimedRequest",
    "WriteRequest",
    "WriteResponse",
    "decode_message",
]

# What we put under tag 0xFF: the revision the CHIP SDK 2025.7 sends (Core spec 8.1.1 revision history).
IM_REVISION: Final = 12
_REVISION_TAG: Final = 0xFF
# IM status code INVALID_ACTION (Core spec 8.10): the answer to a container of the wrong kind or shape.
_INVALID_ACTION: Final = 0x80


def _revision() -> Any:
    """The trailing InteractionModelRevision field: always sent, optional on input."""
    return field(_REVISION_TAG, UINT8, optional=True, default=IM_REVISION)


class _ListStruct(Struct):
    """A schema struct carried in a TLV list container: context-tagged members, each tag at most once."""

    __slots__ = ()

    def to_tlv(self) -> tlv.TLVList:  # type: ignore[override]
        return tlv.TLVList(super().to_tlv().items())

    @classmethod
    def from_tlv(cls, value: Any) -> Any:
        if type(value) is not tlv.TLVList:
            raise WrongTypeError(f"{cls.__name__}: expected a TLV list, got {type(value).__name__}")
        members: dict[Any, Any] = {}
        for tag, member in value:
            if tag is None:
                raise SchemaError(f"{cls.__name__}: anonymous member", status=_INVALID_ACTION)
            if tag in members:
                raise SchemaError(f"{cls.__name__}: tag {tag!r} twice", status=_INVALID_ACTION)
            members[tag] = member
        return super().from_tlv(members)


class _Encoded(FieldType):
    """A field that also takes an already encoded element (``tlv.Raw``), passed through unchanged."""

    def __init__(self, inner: FieldType) -> None:
        self.inner = inner

    def to_tlv(self, value: Any) -> Any:
        return value if type(value) is tlv.Raw else self.inner.to_tlv(value)

    def from_tlv(self, value: Any) -> Any:
        return self.inner.from_tlv(value)

    def describe(self) -> str:
        return self.inner.describe()


# ---------------------------------------------------------------------------------------------------- paths


@struct
class ClusterPathIB(_ListStruct):
    """Core spec 10.6.3."""

    node: int | None = field(0, UINT64, optional=True)
    endpoint: int | None = field(1, UINT16, optional=True)
    cluster: int | None = field(2, UINT32, optional=True)


@struct
class AttributePathIB(_ListStruct):
    """Core spec 10.6.2. ListIndex: absent = the whole attribute, NULL = append one item."""

    enable_tag_compression: bool | None = field(0, BOOL, optional=True)
    node: int | None = field(1, UINT64, optional=True)
    endpoint: int | None = field(2, UINT16, optional=True)
    cluster: int | None = field(3, UINT32, optional=True)
    attribute: int | None = field(4, UINT32, optional=True)
    list_index: Any = field(5, UINT16, optional=True, nullable=True)


@struct
class EventPathIB(_ListStruct):
    """Core spec 10.6.8."""

    node: int | None = field(0, UINT64, optional=True)
    endpoint: int | None = field(1, UINT16, optional=True)
    cluster: int | None = field(2, UINT32, optional=True)
    event: int | None = field(3, UINT32, optional=True)
    is_urgent: bool | None = field(4, BOOL, optional=True)


@struct
class CommandPathIB(_ListStruct):
    """Core spec 10.6.11. The endpoint may only be left out in group invokes."""

    endpoint: int | None = field(0, UINT16, optional=True)
    cluster: int = field(1, UINT32)
    command: int = field(2, UINT32)


# ---------------------------------------------------------------------------------------------------- IBs


@struct
class DataVersionFilterIB(Struct):
    """Core spec 10.6.4."""

    path: ClusterPathIB = field(0, StructType(ClusterPathIB))
    data_version: int = field(1, UINT32)


@struct
class EventFilterIB(Struct):
    """Core spec 10.6.6."""

    node: int | None = field(0, UINT64, optional=True)
    event_min: int = field(1, UINT64)


@struct
class StatusIB(Struct):
    """Core spec 10.6.16. Plain integers: a peer may send codes newer than our enum."""

    status: int = field(0, UINT8)
    cluster_status: int | None = field(1, UINT8, optional=True)


@struct
class AttributeStatusIB(Struct):
    """Core spec 10.6.5."""

    path: AttributePathIB = field(0, StructType(AttributePathIB))
    status: StatusIB = field(1, StructType(StatusIB))


@struct
class AttributeDataIB(Struct):
    """Core spec 10.6.5. ``data`` is the attribute's TLV value (top-level null decodes as ``NULL``)."""

    data_version: int | None = field(0, UINT32, optional=True)
    path: AttributePathIB = field(1, StructType(AttributePathIB))
    data: Any = field(2, ANY, nullable=True)


@struct
class AttributeReportIB(Struct):
    """Core spec 10.6.6: exactly one of the two is present."""

    attribute_status: AttributeStatusIB | None = field(0, StructType(AttributeStatusIB), optional=True)
    attribute_data: AttributeDataIB | None = field(1, StructType(AttributeDataIB), optional=True)


@struct
class EventStatusIB(Struct):
    """Core spec 10.6.10."""

    path: EventPathIB = field(0, StructType(EventPathIB))
    status: StatusIB = field(1, StructType(StatusIB))


@struct
class EventDataIB(Struct):
    """Core spec 10.6.9: one event in a report (ours are built by ``events.EventRecord.report_ib``)."""

    path: EventPathIB = field(0, StructType(EventPathIB))
    event_number: int = field(1, UINT64)
    priority: int = field(2, UINT8)
    epoch_timestamp: int | None = field(3, UINT64, optional=True)
    system_timestamp: int | None = field(4, UINT64, optional=True)
    delta_epoch_timestamp: int | None = field(5, UINT64, optional=True)
    delta_system_timestamp: int | None = field(6, UINT64, optional=True)
    data: Any = field(7, ANY, nullable=True)


@struct
class EventReportIB(Struct):
    """Core spec 10.6.7: exactly one of the two is present."""

    event_status: EventStatusIB | None = field(0, StructType(EventStatusIB), optional=True)
    event_data: EventDataIB | None = field(1, StructType(EventDataIB), optional=True)


@struct
class CommandDataIB(Struct):
    """Core spec 10.6.12. ``fields`` is the command's TLV structure; CommandRef pairs batch responses."""

    path: CommandPathIB = field(0, StructType(CommandPathIB))
    fields: Any = field(1, ANY, optional=True, nullable=True)
    command_ref: int | None = field(2, UINT16, optional=True)


@struct
class CommandStatusIB(Struct):
    """Core spec 10.6.14."""

    path: CommandPathIB = field(0, StructType(CommandPathIB))
    status: StatusIB = field(1, StructType(StatusIB))
    command_ref: int | None = field(2, UINT16, optional=True)


@struct
class InvokeResponseIB(Struct):
    """Core spec 10.6.13: exactly one of the two is present."""

    command: CommandDataIB | None = field(0, StructType(CommandDataIB), optional=True)
    status: CommandStatusIB | None = field(1, StructType(CommandStatusIB), optional=True)


# ---------------------------------------------------------------------------------------------------- messages


@struct
class StatusResponse(Struct):
    """Core spec 10.7.1."""

    status: int = field(0, UINT8)
    interaction_model_revision: int | None = _revision()


@struct
class ReadRequest(Struct):
    """Core spec 10.7.2."""

    attribute_requests: list[AttributePathIB] | None = field(0, List(StructType(AttributePathIB)), optional=True)
    event_requests: list[EventPathIB] | None = field(1, List(StructType(EventPathIB)), optional=True)
    event_filters: list[EventFilterIB] | None = field(2, List(StructType(EventFilterIB)), optional=True)
    fabric_filtered: bool = field(3, BOOL)
    data_version_filters: list[DataVersionFilterIB] | None = field(
        4, List(StructType(DataVersionFilterIB)), optional=True
    )
    interaction_model_revision: int | None = _revision()


@struct
class SubscribeRequest(Struct):
    """Core spec 10.7.4 (tag 6 is reserved)."""

    keep_subscriptions: bool = field(0, BOOL)
    min_interval_floor: int = field(1, UINT16)
    max_interval_ceiling: int = field(2, UINT16)
    attribute_requests: list[AttributePathIB] | None = field(3, List(StructType(AttributePathIB)), optional=True)
    event_requests: list[EventPathIB] | None = field(4, List(StructType(EventPathIB)), optional=True)
    event_filters: list[EventFilterIB] | None = field(5, List(StructType(EventFilterIB)), optional=True)
    fabric_filtered: bool = field(7, BOOL)
    data_version_filters: list[DataVersionFilterIB] | None = field(
        8, List(StructType(DataVersionFilterIB)), optional=True
    )
    interaction_model_revision: int | None = _revision()


@struct
class SubscribeResponse(Struct):
    """Core spec 10.7.5 (tag 1, the old MinIntervalFloor, is gone)."""

    subscription_id: int = field(0, UINT32)
    max_interval: int = field(2, UINT16)
    interaction_model_revision: int | None = _revision()


@struct
class ReportData(Struct):
    """Core spec 10.7.3. Report arrays take ``AttributeReportIB``/``EventReportIB`` or pre-encoded ``tlv.Raw``."""

    subscription_id: int | None = field(0, UINT32, optional=True)
    attribute_reports: list[Any] | None = field(1, List(_Encoded(StructType(AttributeReportIB))), optional=True)
    event_reports: list[Any] | None = field(2, List(_Encoded(StructType(EventReportIB))), optional=True)
    more_chunked_messages: bool | None = field(3, BOOL, optional=True)
    suppress_response: bool | None = field(4, BOOL, optional=True)
    interaction_model_revision: int | None = _revision()


@struct
class WriteRequest(Struct):
    """Core spec 10.7.6."""

    suppress_response: bool | None = field(0, BOOL, optional=True)
    timed_request: bool = field(1, BOOL)
    write_requests: list[AttributeDataIB] = field(2, List(StructType(AttributeDataIB)))
    more_chunked_messages: bool | None = field(3, BOOL, optional=True)
    interaction_model_revision: int | None = _revision()


@struct
class WriteResponse(Struct):
    """Core spec 10.7.7."""

    write_responses: list[AttributeStatusIB] = field(0, List(StructType(AttributeStatusIB)))
    interaction_model_revision: int | None = _revision()


@struct
class InvokeRequest(Struct):
    """Core spec 10.7.9. SuppressResponse is mandatory on the wire; we read its absence as FALSE."""

    suppress_response: bool | None = field(0, BOOL, optional=True, default=False)
    timed_request: bool = field(1, BOOL)
    invoke_requests: list[CommandDataIB] = field(2, List(StructType(CommandDataIB)))
    interaction_model_revision: int | None = _revision()


@struct
class InvokeResponse(Struct):
    """Core spec 10.7.10. The responses array takes ``InvokeResponseIB`` or pre-encoded ``tlv.Raw``."""

    suppress_response: bool | None = field(0, BOOL, optional=True, default=False)
    invoke_responses: list[Any] = field(1, List(_Encoded(StructType(InvokeResponseIB))))
    more_chunked_messages: bool | None = field(2, BOOL, optional=True)
    interaction_model_revision: int | None = _revision()


@struct
class TimedRequest(Struct):
    """Core spec 10.7.8. Timeout in milliseconds."""

    timeout: int = field(0, UINT16)
    interaction_model_revision: int | None = _revision()


MESSAGE_TYPES: Final[dict[InteractionModelOpcode, type[Struct]]] = {
    InteractionModelOpcode.STATUS_RESPONSE: StatusResponse,
    InteractionModelOpcode.READ_REQUEST: ReadRequest,
    InteractionModelOpcode.SUBSCRIBE_REQUEST: SubscribeRequest,
    InteractionModelOpcode.SUBSCRIBE_RESPONSE: SubscribeResponse,
    InteractionModelOpcode.REPORT_DATA: ReportData,
    InteractionModelOpcode.WRITE_REQUEST: WriteRequest,
    InteractionModelOpcode.WRITE_RESPONSE: WriteResponse,
    InteractionModelOpcode.INVOKE_REQUEST: InvokeRequest,
    InteractionModelOpcode.INVOKE_RESPONSE: InvokeResponse,
    InteractionModelOpcode.TIMED_REQUEST: TimedRequest,
}


def decode_message(opcode: InteractionModelOpcode, payload: bytes) -> Any:
    """Decode one IM message. Raises ``DecodeError`` (TLV or schema) for anything malformed."""
    return MESSAGE_TYPES[opcode].decode(payload)


# Re-exported for callers that build messages: a TLV null in a nullable field.
NULL: Final = schema.NULL
