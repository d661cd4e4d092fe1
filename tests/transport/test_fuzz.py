"""Invariant (h11's fuzz rule): whatever arrives, receive_datagram drops or processes it and never raises."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jfds_device.codec.message import InteractionModelOpcode, MessageHeader, ProtocolHeader, ProtocolId
from jfds_device.transport.exchange import ExchangeManager
from jfds_device.transport.wire import encode_message
from tests.transport.pair import make_link, secure_pair

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fresh() -> tuple[ExchangeManager, bytes, tuple[object, ...]]:
    link = make_link()
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, 0.0)
    link.a.manager.send(ex, ProtocolId.INTERACTION_MODEL, InteractionModelOpcode.READ_REQUEST, b"fuzz", now=0.0)
    ((data, _),) = link.a.manager.datagrams_to_send()
    return link.b.manager, data, link.a.addr


@FUZZ
@given(st.binary(max_size=1400))
def test_random_bytes_never_raise(data: bytes) -> None:
    manager, _, addr = _fresh()
    manager.receive_datagram(data, addr, 0.0)
    assert manager.next_event() is None


@FUZZ
@given(st.data())
def test_mutated_secure_datagrams_never_raise_nor_deliver(data: st.DataObject) -> None:
    manager, good, addr = _fresh()
    mutated = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    assume(bytes(mutated[:cut]) != good)  # two flips of the same bit cancel out: that is the original datagram
    manager.receive_datagram(bytes(mutated[:cut]), addr, 0.0)
    # Any change to an authenticated byte fails the MIC; only a change to nothing could deliver.
    assert manager.next_event() is None


@FUZZ
@given(
    counter=st.integers(0, 2**32 - 1),
    source=st.none() | st.integers(0, 2**64 - 1),
    destination=st.none() | st.integers(0, 2**64 - 1),
    exchange_flags=st.tuples(st.booleans(), st.booleans(), st.none() | st.integers(0, 2**32 - 1)),
    opcode=st.integers(0, 255),
    protocol=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=64),
)
def test_well_formed_unsecured_messages_never_raise(
    counter: int,
    source: int | None,
    destination: int | None,
    exchange_flags: tuple[bool, bool, int | None],
    opcode: int,
    protocol: int,
    payload: bytes,
) -> None:
    manager, _, addr = _fresh()
    initiator, needs_ack, ack = exchange_flags
    header = MessageHeader(
        session_id=0, message_counter=counter, source_node_id=source, destination_node_id=destination
    )
    ph = ProtocolHeader(protocol, opcode, 1, initiator=initiator, needs_ack=needs_ack, ack_counter=ack)
    manager.receive_datagram(encode_message(header, ph, payload), addr, 0.0)
    while manager.next_event() is not None:
        pass
    manager.handle_timer(1.0)
    manager.datagrams_to_send()
