"""IM message and IB codecs (Core spec 10.6, 10.7): tags, list vs structure containers, byte-exact vectors.

The CHIP SDK's Python bindings expose no IM message encoders (``chip.interaction_model`` only has C-ABI
``construct`` structs), so the expected bytes are built from the spec's tag tables with the SDK's own
Python TLV writer (``chip.tlv.TLVWriter``, home-assistant-chip-clusters 2025.7.0), which is an encoder
independent of ours; two short vectors are also spelled out by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from jfds_device.codec import tlv
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.schema import NULL, MissingFieldError, WrongTypeError
from jfds_device.errors import DecodeError, SchemaError
from jfds_device.im import messages as m

chip_tlv = pytest.importorskip("chip.tlv", reason="home-assistant-chip-clusters is not installed")
uint = chip_tlv.uint
CList = chip_tlv.TLVList


def sdk_bytes(value: Any) -> bytes:
    writer = chip_tlv.TLVWriter()
    writer.put(None, value)
    return bytes(writer.encoding)


def attr_path(*members: tuple[int, Any]) -> Any:
    return CList([(tag, v) for tag, v in members])


# ---------------------------------------------------------------------------------------------------- by hand


def test_status_response_by_hand() -> None:
    # 15 | 24 00 00 (Status=SUCCESS) | 24 ff 0c (InteractionModelRevision=12) | 18
    assert m.StatusResponse(status=0).encode() == bytes.fromhex("1524000024ff0c18")
    assert m.StatusResponse(status=0x80).encode() == bytes.fromhex("1524008024ff0c18")


def test_timed_request_by_hand() -> None:
    # Timeout 500 ms needs a uint16: 25 00 f4 01
    assert m.TimedRequest(timeout=500).encode() == bytes.fromhex("152500f40124ff0c18")


def test_attribute_path_is_a_tlv_list() -> None:
    # 17 (anonymous list) | 24 02 01 | 24 03 06 | 24 04 00 | 34 05 (ListIndex null) | 18
    path = m.AttributePathIB(endpoint=1, cluster=6, attribute=0, list_index=NULL)
    assert path.encode() == bytes.fromhex("17240201240306240400340518")
    assert m.AttributePathIB.decode(path.encode()) == path


# ------------------------------------------------------------------------------------------ vs the SDK's writer


def test_read_request_as_the_sdk_client_sends_it() -> None:
    expected = sdk_bytes(
        {
            0: [attr_path((2, uint(0)), (3, uint(0x28)), (4, uint(5))), attr_path((2, uint(1)))],
            3: True,
            4: [{0: CList([(1, uint(1)), (2, uint(0xFFF1FC00))]), 1: uint(77)}],
            0xFF: uint(12),
        }
    )
    ours = m.ReadRequest(
        attribute_requests=[m.AttributePathIB(endpoint=0, cluster=0x28, attribute=5), m.AttributePathIB(endpoint=1)],
        fabric_filtered=True,
        data_version_filters=[
            m.DataVersionFilterIB(path=m.ClusterPathIB(endpoint=1, cluster=0xFFF1FC00), data_version=77)
        ],
    )
    assert ours.encode() == expected
    assert m.ReadRequest.decode(expected) == ours


def test_report_data_with_data_and_status() -> None:
    path = attr_path((2, uint(1)), (3, uint(6)), (4, uint(0)))
    expected = sdk_bytes(
        {
            0: uint(0x12345678),
            1: [
                {1: {0: uint(0x100), 1: path, 2: True}},
                {0: {0: attr_path((2, uint(9)), (3, uint(6)), (4, uint(0))), 1: {0: uint(0x7F)}}},
                {1: {0: uint(0x100), 1: attr_path((2, uint(1)), (3, uint(6)), (4, uint(1)), (5, None)), 2: b"x"}},
            ],
            3: True,
            0xFF: uint(12),
        }
    )
    ours = m.ReportData(
        subscription_id=0x12345678,
        attribute_reports=[
            m.AttributeReportIB(
                attribute_data=m.AttributeDataIB(
                    data_version=0x100, path=m.AttributePathIB(endpoint=1, cluster=6, attribute=0), data=True
                )
            ),
            m.AttributeReportIB(
                attribute_status=m.AttributeStatusIB(
                    path=m.AttributePathIB(endpoint=9, cluster=6, attribute=0), status=m.StatusIB(status=0x7F)
                )
            ),
            # Pre-encoded IBs splice in byte-identically (the report builder relies on this).
            tlv.Raw(
                m.AttributeReportIB(
                    attribute_data=m.AttributeDataIB(
                        data_version=0x100,
                        path=m.AttributePathIB(endpoint=1, cluster=6, attribute=1, list_index=NULL),
                        data=b"x",
                    )
                ).encode()
            ),
        ],
        more_chunked_messages=True,
    )
    assert ours.encode() == expected
    decoded = m.ReportData.decode(expected)
    assert decoded.attribute_reports[2].attribute_data.path.list_index is NULL
    assert decoded.more_chunked_messages is True and decoded.suppress_response is None


def test_invoke_request_and_response() -> None:
    request = sdk_bytes(
        {
            0: False,
            1: False,
            2: [{0: CList([(0, uint(1)), (1, uint(6)), (2, uint(2))]), 1: {0: uint(3)}, 2: uint(1)}],
            0xFF: uint(12),
        }
    )
    decoded = m.InvokeRequest.decode(request)
    assert decoded.invoke_requests[0].path == m.CommandPathIB(endpoint=1, cluster=6, command=2)
    assert decoded.invoke_requests[0].fields == {0: 3}
    assert decoded.invoke_requests[0].command_ref == 1
    assert decoded.encode() == request

    response = sdk_bytes(
        {
            0: False,
            1: [
                {0: {0: CList([(0, uint(1)), (1, uint(6)), (2, uint(3))]), 1: {0: uint(3)}, 2: uint(1)}},
                {1: {0: CList([(0, uint(1)), (1, uint(6)), (2, uint(4))]), 1: {0: uint(1), 1: uint(5)}, 2: uint(2)}},
            ],
            0xFF: uint(12),
        }
    )
    ours = m.InvokeResponse(
        invoke_responses=[
            m.InvokeResponseIB(
                command=m.CommandDataIB(
                    path=m.CommandPathIB(endpoint=1, cluster=6, command=3), fields={0: 3}, command_ref=1
                )
            ),
            m.InvokeResponseIB(
                status=m.CommandStatusIB(
                    path=m.CommandPathIB(endpoint=1, cluster=6, command=4),
                    status=m.StatusIB(status=1, cluster_status=5),
                    command_ref=2,
                )
            ),
        ]
    )
    assert ours.encode() == response


def test_write_and_subscribe_messages() -> None:
    write = sdk_bytes(
        {
            1: True,
            2: [{0: uint(3), 1: attr_path((2, uint(0)), (3, uint(0x28)), (4, uint(5))), 2: "hall"}],
            3: True,
            0xFF: uint(12),
        }
    )
    decoded = m.WriteRequest.decode(write)
    assert decoded.timed_request and decoded.more_chunked_messages and decoded.suppress_response is None
    assert decoded.write_requests[0].data == "hall" and decoded.write_requests[0].data_version == 3
    assert decoded.encode() == write

    subscribe_response = sdk_bytes({0: uint(0xDEADBEEF), 2: uint(60), 0xFF: uint(12)})
    assert m.SubscribeResponse(subscription_id=0xDEADBEEF, max_interval=60).encode() == subscribe_response

    subscribe = sdk_bytes(
        {
            0: False,
            1: uint(1),
            2: uint(30),
            3: [attr_path()],
            4: [CList([(1, uint(0)), (3, uint(0))])],
            7: False,
            0xFF: uint(11),  # an older controller's revision is accepted
        }
    )
    decoded_sub = m.SubscribeRequest.decode(subscribe)
    assert decoded_sub.attribute_requests == [m.AttributePathIB()]
    assert decoded_sub.event_requests == [m.EventPathIB(endpoint=0, event=0)]
    assert decoded_sub.interaction_model_revision == 11


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("1518", MissingFieldError),  # ReadRequest without FabricFiltered
        ("1528031800", DecodeError),  # trailing byte
        ("153600152402011818280318", WrongTypeError),  # a path as a structure, not a list
        ("153600172402012402011818280318", SchemaError),  # the same tag twice in a path list
        ("16 18", WrongTypeError),  # an array at the top
    ],
)
def test_malformed_read_requests(payload: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        m.ReadRequest.decode(bytes.fromhex(payload.replace(" ", "")))


def test_duplicate_tag_in_path_list_maps_to_invalid_action() -> None:
    with pytest.raises(SchemaError) as info:
        m.AttributePathIB.from_tlv(tlv.TLVList([(2, 1), (2, 1)]))
    assert info.value.status == 0x80


def test_every_opcode_has_a_message_type() -> None:
    assert set(m.MESSAGE_TYPES) == set(Op)
    for opcode, cls in m.MESSAGE_TYPES.items():
        assert m.decode_message(opcode, _minimal(cls)) is not None


def _minimal(cls: type) -> bytes:
    samples: dict[type, Any] = {
        m.StatusResponse: m.StatusResponse(status=0),
        m.ReadRequest: m.ReadRequest(fabric_filtered=True),
        m.SubscribeRequest: m.SubscribeRequest(
            keep_subscriptions=True, min_interval_floor=0, max_interval_ceiling=1, fabric_filtered=True
        ),
        m.SubscribeResponse: m.SubscribeResponse(subscription_id=1, max_interval=1),
        m.ReportData: m.ReportData(),
        m.WriteRequest: m.WriteRequest(timed_request=False, write_requests=[]),
        m.WriteResponse: m.WriteResponse(write_responses=[]),
        m.InvokeRequest: m.InvokeRequest(timed_request=False, invoke_requests=[]),
        m.InvokeResponse: m.InvokeResponse(invoke_responses=[]),
        m.TimedRequest: m.TimedRequest(timeout=1),
    }
    return samples[cls].encode()
