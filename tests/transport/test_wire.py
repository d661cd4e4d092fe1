"""Known-answer vectors through the wire codec and the full receive path (Core spec §4.8 message security)."""

from __future__ import annotations

import random

import pytest

from jfds_device.codec.message import MessageHeader, ProtocolHeader
from jfds_device.errors import CryptoError, MessageDecodeError
from jfds_device.transport.exchange import ExchangeManager, MessageReceived
from jfds_device.transport.sessions import SessionAuthMode, SessionTable
from jfds_device.transport.wire import decode_header, encode_message, open_payload

# project-chip/connectedhomeip src/transport/tests/TestSessionManagerDispatch.cpp @ 03bd0b81beaf,
# theMessageTestVector (recomputed: tests/crypto/test_primitives.py checks the same vectors on AES-CCM alone).
PASE_KEY = bytes.fromhex("5eded244e5532b3cdc23409dbad052d2")
# "secure pase message (no payload)": header 00b80b0039300000 = session 3000, counter 12345; plaintext
# 0564ee0e207d = exchange flags I|R, opcode 0x64, exchange 0x0EEE, protocol 0x7D20.
PASE_NO_PAYLOAD = bytes.fromhex("00b80b00393000005a989ae42e8d847f535c3007e6150cd65867f2b817db")
# "secure pase message (short payload)": same, payload 1122334455.
PASE_SHORT_PAYLOAD = bytes.fromhex("00b80b00393000005a989ae42e8d0f7f885dfb2faa8949cf730a5728e0354610a0c4a7")
# "secure pase message (short payload / drop when privacy enabled)": P flag set; we do not do privacy.
PASE_PRIVACY = bytes.fromhex("00b80b8039300000aa26a0f901efce9f9a67c8137917d15b81d15d313308319758ea3f")

VECTORS = [(PASE_NO_PAYLOAD, b""), (PASE_SHORT_PAYLOAD, bytes.fromhex("1122334455"))]
VECTOR_PROTOCOL_HEADER = ProtocolHeader(
    protocol_id=0x7D20, opcode=0x64, exchange_id=0x0EEE, initiator=True, needs_ack=True
)


@pytest.mark.parametrize(("wire", "payload"), VECTORS)
def test_encode_matches_chip_vector(wire: bytes, payload: bytes) -> None:
    header = MessageHeader(session_id=3000, message_counter=12345)
    assert encode_message(header, VECTOR_PROTOCOL_HEADER, payload, key=PASE_KEY, nonce_node_id=0) == wire


@pytest.mark.parametrize(("wire", "payload"), VECTORS)
def test_decode_matches_chip_vector(wire: bytes, payload: bytes) -> None:
    header, length = decode_header(wire)
    msg = open_payload(wire, header, length, key=PASE_KEY, nonce_node_id=0)
    assert msg.protocol_header == VECTOR_PROTOCOL_HEADER and msg.payload == payload


def test_wrong_nonce_node_id_fails_the_mic() -> None:
    header, length = decode_header(PASE_NO_PAYLOAD)
    with pytest.raises(CryptoError):
        open_payload(PASE_NO_PAYLOAD, header, length, key=PASE_KEY, nonce_node_id=1)


def test_privacy_message_is_refused() -> None:
    with pytest.raises(MessageDecodeError):
        decode_header(PASE_PRIVACY)


def _pase_receiver() -> tuple[SessionTable, ExchangeManager]:
    table = SessionTable(rng=random.Random(1))
    table.add_secure(
        local_session_id=3000,
        peer_session_id=1,
        encrypt_key=PASE_KEY,
        decrypt_key=PASE_KEY,
        auth_mode=SessionAuthMode.PASE,
        peer_addr=("fe80::1", 5540, 0, 1),
        now=0.0,
    )
    return table, ExchangeManager(table, rng=random.Random(2))


def test_vector_through_the_receive_path() -> None:
    table, manager = _pase_receiver()
    manager.receive_datagram(PASE_SHORT_PAYLOAD, ("fe80::9", 5540, 0, 1), 0.0)
    event = manager.next_event()
    assert isinstance(event, MessageReceived)
    assert (event.protocol_id, event.opcode, event.payload) == (0x7D20, 0x64, bytes.fromhex("1122334455"))
    assert event.new_exchange and event.exchange.exchange_id == 0x0EEE and not event.exchange.initiator
    assert event.session is table.get(3000)
    # A second copy (same counter) is a duplicate: not delivered, but acked at once (R was set).
    manager.receive_datagram(PASE_SHORT_PAYLOAD, ("fe80::9", 5540, 0, 1), 0.0)
    assert manager.next_event() is None
    assert len(manager.datagrams_to_send()) == 1


def test_privacy_vector_is_dropped_by_the_receive_path() -> None:
    _, manager = _pase_receiver()
    manager.receive_datagram(PASE_PRIVACY, ("fe80::9", 5540, 0, 1), 0.0)
    assert manager.next_event() is None and manager.datagrams_to_send() == []
