"""Hostile input (h11's invariant): whatever arrives, ``on_message`` never raises and answers with
well-formed IM messages; a payload that does not decode gets exactly one StatusResponse(INVALID_ACTION)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfds_device.codec import tlv
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.errors import DecodeError
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, Status
from jfds_device.im.server import InteractionServer, Outgoing
from tests.im.fakes import BIG_LIST, TEST, FakeProvider, apath, big_list, make_ctx

OPCODES = st.one_of(st.sampled_from([int(o) for o in Op]), st.integers(0, 255))

_leaves = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1).map(tlv.SInt),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.binary(max_size=8),
)
TLV_VALUES = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 0xFF]), children, max_size=5),
        st.lists(st.tuples(st.sampled_from([None, 0, 1, 2, 3, 4, 5]), children), max_size=5).map(tlv.TLVList),
    ),
    max_leaves=20,
)

VALID_REQUESTS: list[tuple[Op, bytes]] = [
    (Op.READ_REQUEST, m.ReadRequest(attribute_requests=[apath()], fabric_filtered=True).encode()),
    (
        Op.SUBSCRIBE_REQUEST,
        m.SubscribeRequest(
            keep_subscriptions=False,
            min_interval_floor=0,
            max_interval_ceiling=9,
            attribute_requests=[apath(1)],
            fabric_filtered=True,
        ).encode(),
    ),
    (
        Op.WRITE_REQUEST,
        m.WriteRequest(
            timed_request=False, write_requests=[m.AttributeDataIB(path=apath(1, TEST, 0), data=3)]
        ).encode(),
    ),
    (
        Op.INVOKE_REQUEST,
        m.InvokeRequest(
            timed_request=False,
            invoke_requests=[m.CommandDataIB(path=m.CommandPathIB(endpoint=1, cluster=TEST, command=1), fields={0: 1})],
        ).encode(),
    ),
    (Op.TIMED_REQUEST, m.TimedRequest(timeout=100).encode()),
    (Op.STATUS_RESPONSE, m.StatusResponse(status=0).encode()),
]


def check(outs: list[Outgoing]) -> None:
    for out in outs:
        m.decode_message(out.opcode, out.payload)  # everything we send is well-formed
        assert len(out.payload) <= 1100


def decodes(opcode: int, payload: bytes) -> bool:
    try:
        m.decode_message(Op(opcode), payload)
    except (DecodeError, ValueError):
        return False
    return True


def feed(opcode: int, payload: bytes, server: InteractionServer | None = None) -> list[Outgoing]:
    server = server or InteractionServer(FakeProvider())
    outs = server.on_message(1, make_ctx(), opcode, payload, 0.0)
    check(outs)
    # Whatever the state, the server can still be driven afterwards.
    check(server.on_timer(1000.0))
    server.on_exchange_closed(1, failed=True)
    return outs


def assert_refused_if_malformed(opcode: int, payload: bytes, outs: list[Outgoing]) -> None:
    if opcode in (Op.READ_REQUEST, Op.SUBSCRIBE_REQUEST, Op.WRITE_REQUEST, Op.INVOKE_REQUEST, Op.TIMED_REQUEST):
        if not decodes(opcode, payload):
            [out] = outs
            assert out.opcode is Op.STATUS_RESPONSE and out.close_exchange
            assert m.StatusResponse.decode(out.payload).status == Status.INVALID_ACTION
    elif outs:
        [out] = outs
        assert out.opcode is Op.STATUS_RESPONSE


@settings(max_examples=300, deadline=None)
@given(opcode=OPCODES, payload=st.binary(max_size=64))
def test_random_bytes(opcode: int, payload: bytes) -> None:
    assert_refused_if_malformed(opcode, payload, feed(opcode, payload))


@settings(max_examples=200, deadline=None)
@given(opcode=OPCODES, value=TLV_VALUES)
def test_random_tlv(opcode: int, value: Any) -> None:
    payload = tlv.encode(value)
    assert_refused_if_malformed(opcode, payload, feed(opcode, payload))


@settings(max_examples=300, deadline=None)
@given(
    request=st.sampled_from(VALID_REQUESTS),
    position=st.integers(0, 200),
    byte=st.integers(0, 255),
    cut=st.booleans(),
)
def test_mutated_requests(request: tuple[Op, bytes], position: int, byte: int, cut: bool) -> None:
    opcode, payload = request
    position %= len(payload)
    mutated = payload[:position] if cut else payload[:position] + bytes([byte]) + payload[position + 1 :]
    assert_refused_if_malformed(opcode, mutated, feed(opcode, mutated))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(opcode=OPCODES, payload=st.one_of(st.binary(max_size=32), TLV_VALUES.map(tlv.encode)))
def test_random_input_mid_interaction(opcode: int, payload: bytes) -> None:
    provider = FakeProvider()
    provider.values[AttributePath(1, TEST, BIG_LIST)] = big_list(60)
    server = InteractionServer(provider, max_payload=400)
    request = m.ReadRequest(attribute_requests=[apath(1, TEST, BIG_LIST)], fabric_filtered=True).encode()
    [first] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request, 0.0)
    assert first.expect_response
    feed(opcode, payload, server)
