"""Opcode dispatch, unsolicited messages, resource limits, and server output checked byte for byte.

The byte-exact expectations are built from the spec's tag tables with the CHIP SDK's own Python TLV writer
(``chip.tlv``), as in ``test_messages.py``: what a CHIP controller would parse.
"""

from __future__ import annotations

from typing import Any

import pytest

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.model import AuthMode
from jfds_device.im import messages as m
from jfds_device.im.admission import InteractionLimits
from jfds_device.im.provider import Status
from jfds_device.im.server import InteractionServer, LocalExchange
from tests.im.fakes import BASIC, ECHO, LABEL, SUCCESS, TEST, TOGGLE, FakeProvider, apath, make_ctx, status_of

chip_tlv = pytest.importorskip("chip.tlv", reason="home-assistant-chip-clusters is not installed")
uint = chip_tlv.uint
CList = chip_tlv.TLVList


def sdk_bytes(value: Any) -> bytes:
    writer = chip_tlv.TLVWriter()
    writer.put(None, value)
    return bytes(writer.encoding)


@pytest.fixture
def server() -> InteractionServer:
    return InteractionServer(FakeProvider())


@pytest.mark.parametrize(
    ("opcode", "status"),
    [
        (Op.STATUS_RESPONSE, Status.INVALID_ACTION),  # a status for nothing we sent
        (Op.REPORT_DATA, Status.INVALID_SUBSCRIPTION),  # we subscribe to nobody
        (Op.SUBSCRIBE_RESPONSE, Status.INVALID_ACTION),
        (Op.WRITE_RESPONSE, Status.INVALID_ACTION),
        (Op.INVOKE_RESPONSE, Status.INVALID_ACTION),
        (0x42, Status.INVALID_ACTION),  # not an IM opcode at all
    ],
)
def test_unsolicited_messages(server: InteractionServer, opcode: int, status: int) -> None:
    [out] = server.on_message(1, make_ctx(), opcode, SUCCESS, 0.0)
    assert status_of(out) == status and out.close_exchange and not out.expect_response


def test_late_status_on_our_own_exchange_is_dropped(server: InteractionServer) -> None:
    assert server.on_message(LocalExchange(99), make_ctx(), Op.STATUS_RESPONSE, SUCCESS, 0.0) == []


def test_group_messages_are_never_answered(server: InteractionServer) -> None:
    ctx = make_ctx(0x0101, auth=AuthMode.GROUP)
    request = m.ReadRequest(attribute_requests=[apath()], fabric_filtered=True).encode()
    assert server.on_message(1, ctx, Op.READ_REQUEST, request, 0.0) == []


def test_too_many_interactions_in_progress(server: InteractionServer) -> None:
    """A session's waiting exchanges are bounded (im/admission.py; tests/im/test_limits.py has every limit)."""
    timed = m.TimedRequest(timeout=1000).encode()
    for exchange in range(InteractionLimits().timed_per_session):
        [out] = server.on_message(exchange, make_ctx(), Op.TIMED_REQUEST, timed, 0.0)
        assert status_of(out) == Status.SUCCESS
    [out] = server.on_message("one more", make_ctx(), Op.TIMED_REQUEST, timed, 0.0)
    assert status_of(out) == Status.RESOURCE_EXHAUSTED
    [out] = server.on_message("another session", make_ctx(session=8), Op.TIMED_REQUEST, timed, 0.0)
    assert status_of(out) == Status.SUCCESS  # the limit is the session's, not everybody's
    server.on_session_closed(7)  # the session's waiting exchanges are forgotten
    [out] = server.on_message("again", make_ctx(), Op.TIMED_REQUEST, timed, 0.0)
    assert status_of(out) == Status.SUCCESS


def test_max_payload_floor() -> None:
    with pytest.raises(ValueError, match="below"):
        InteractionServer(FakeProvider(), max_payload=100)


# ---------------------------------------------------------------------------------------------------- bytes


def test_read_report_bytes(server: InteractionServer) -> None:
    request = m.ReadRequest(attribute_requests=[apath(0, BASIC, LABEL), apath(9, BASIC, LABEL)], fabric_filtered=True)
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request.encode(), 0.0)
    assert out.payload == sdk_bytes(
        {
            1: [
                {1: {0: uint(0x100), 1: CList([(2, uint(0)), (3, uint(BASIC)), (4, uint(LABEL))]), 2: "kitchen"}},
                {0: {0: CList([(2, uint(9)), (3, uint(BASIC)), (4, uint(LABEL))]), 1: {0: uint(0x7F)}}},
            ],
            4: True,
            0xFF: uint(12),
        }
    )


def test_write_response_bytes(server: InteractionServer) -> None:
    request = m.WriteRequest(
        timed_request=False, write_requests=[m.AttributeDataIB(path=apath(0, BASIC, LABEL), data="hall")]
    )
    [out] = server.on_message(1, make_ctx(), Op.WRITE_REQUEST, request.encode(), 0.0)
    assert out.payload == sdk_bytes(
        {
            0: [{0: CList([(2, uint(0)), (3, uint(BASIC)), (4, uint(LABEL))]), 1: {0: uint(0)}}],
            0xFF: uint(12),
        }
    )


def test_invoke_response_bytes(server: InteractionServer) -> None:
    request = m.InvokeRequest(
        timed_request=False,
        invoke_requests=[
            m.CommandDataIB(path=m.CommandPathIB(endpoint=1, cluster=TEST, command=ECHO), fields={0: 9}, command_ref=1),
            m.CommandDataIB(path=m.CommandPathIB(endpoint=1, cluster=TEST, command=TOGGLE), fields={}, command_ref=2),
        ],
    )
    [out] = server.on_message(1, make_ctx(), Op.INVOKE_REQUEST, request.encode(), 0.0)
    path = CList([(0, uint(1)), (1, uint(TEST)), (2, uint(2))])
    toggle = CList([(0, uint(1)), (1, uint(TEST)), (2, uint(TOGGLE))])
    assert out.payload == sdk_bytes(
        {
            0: False,
            1: [
                {0: {0: path, 1: {0: uint(9)}, 2: uint(1)}},
                {1: {0: toggle, 1: {0: uint(0)}, 2: uint(2)}},
            ],
            0xFF: uint(12),
        }
    )


def test_subscribe_response_and_keep_alive_bytes() -> None:
    server = InteractionServer(FakeProvider(), subscription_ids=lambda: 0xCAFE)
    request = m.SubscribeRequest(
        keep_subscriptions=True,
        min_interval_floor=0,
        max_interval_ceiling=30,
        event_requests=[m.EventPathIB()],
        fabric_filtered=True,
    )
    [priming] = server.on_message(1, make_ctx(), Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    # The priming report carries the SubscriptionId and, for a subscription, no SuppressResponse.
    assert priming.payload == sdk_bytes({0: uint(0xCAFE), 0xFF: uint(12)})
    [response] = server.on_message(1, make_ctx(), Op.STATUS_RESPONSE, SUCCESS, 0.0)
    assert response.payload == sdk_bytes({0: uint(0xCAFE), 2: uint(30), 0xFF: uint(12)})
    [keep_alive] = server.on_timer(30.0)
    assert keep_alive.payload == sdk_bytes({0: uint(0xCAFE), 0xFF: uint(12)})
