"""Message and protocol header codec (Core spec §4.4): published vectors and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfds_device.codec.message import (
    InteractionModelOpcode,
    MessageHeader,
    ProtocolHeader,
    ProtocolId,
    SecureChannelOpcode,
    SessionType,
)
from jfds_device.errors import LocalProtocolError, MessageDecodeError

# --- Vectors -----------------------------------------------------------------------------------------------
# All from matter-js/matter.js packages/protocol/test/codec/MessageCodecTest.ts @ b851ce019504.

# "PBKDFParamRequest in a plaintext unicast message" (ENCODED / DECODED).
PBKDF_PARAM_REQUEST = bytes.fromhex(
    "040000000a4ff2177ea0c8a7cb6a63520520d3640000153001204715a406c6b0496ad52039e347db8528cb69a1cb2fce6f2318552ae6"
    "5e103aca250233dc240300280435052501881325022c011818"
)
# "Same message with a message extension (MX)": extension length 3, data 010203.
PBKDF_PARAM_REQUEST_MX = bytes.fromhex(
    "040000200a4ff2177ea0c8a7cb6a635203000102030520d3640000153001204715a406c6b0496ad52039e347db8528cb69a1cb2fce"
    "6f2318552ae65e103aca250233dc240300280435052501881325022c011818"
)
# "Same message with a secured extension (SX)": exchange flags 0x0D, extension 010203 after the protocol id.
PBKDF_PARAM_REQUEST_SX = bytes.fromhex(
    "040000000a4ff2177ea0c8a7cb6a63520d20d36400000300010203153001204715a406c6b0496ad52039e347db8528cb69a1cb2fce"
    "6f2318552ae65e103aca250233dc240300280435052501881325022c011818"
)
# "PBKDFParamResponse with destination node and acknowledgement".
PBKDF_PARAM_RESPONSE = bytes.fromhex(
    "01000000218712797ea0c8a7cb6a63520621d36400000a4ff217153001204715a406c6b0496ad52039e347db8528cb69a1cb2fce6f"
    "2318552ae65e103aca3002201783302d95a4a9fb0decb8fdd6564b90a957681459aeee069961bea61d7b247125039d8935042501e8"
    "0330022099f813dd41bd081a1c63e811828f0662594bca89cd9d4ed26f7427fdb2a027361835052501881325022c011818"
)
# "Deobfuscated header fields of a group message": message flags 0x06 and the region counter||source||group.
# The vector gives only those; session id and security flags (group, P already cleared) are filled in here.
GROUP_DEOBFUSCATED_FLAGS = 0x06
GROUP_DEOBFUSCATED_REGION = bytes.fromhex("7956341201000000000000000200")
# "Privacy-enhanced group packet (cleartext prefix)": security flags 0x81 (P, group).
PRIVACY_GROUP_PACKET = bytes.fromhex("067ddb81d926afce24c8a0981bdd44f4e7302b2f915a66c9596290ebe4408217b3c0c921a2fca4e1")

SOURCE_NODE = 0x52636ACBA7C8A07E


def _split(message: bytes) -> tuple[MessageHeader, ProtocolHeader, bytes]:
    """Decode both headers of a plaintext message and check each re-encodes to its wire bytes."""
    header, n = MessageHeader.decode(message)
    assert header.encode() == message[:n]
    protocol, m = ProtocolHeader.decode(message[n:])
    assert protocol.encode() == message[n : n + m]
    return header, protocol, message[n + m :]


def test_pbkdf_param_request() -> None:
    header, protocol, payload = _split(PBKDF_PARAM_REQUEST)
    assert header == MessageHeader(session_id=0, message_counter=0x17F24F0A, source_node_id=SOURCE_NODE)
    assert protocol == ProtocolHeader(
        protocol_id=ProtocolId.SECURE_CHANNEL,
        opcode=SecureChannelOpcode.PBKDF_PARAM_REQUEST,
        exchange_id=0x64D3,
        initiator=True,
        needs_ack=True,
    )
    assert payload[:1] == b"\x15" and payload[-1:] == b"\x18"  # an anonymous TLV structure


def test_message_extension() -> None:
    header, protocol, payload = _split(PBKDF_PARAM_REQUEST_MX)
    _, plain_protocol, plain_payload = _split(PBKDF_PARAM_REQUEST)
    assert header.extensions == bytes.fromhex("010203")
    assert header == MessageHeader(
        session_id=0, message_counter=0x17F24F0A, source_node_id=SOURCE_NODE, extensions=b"\x01\x02\x03"
    )
    assert (protocol, payload) == (plain_protocol, plain_payload)


def test_secured_extension() -> None:
    header, protocol, payload = _split(PBKDF_PARAM_REQUEST_SX)
    plain_header, _, plain_payload = _split(PBKDF_PARAM_REQUEST)
    assert header == plain_header
    assert protocol.secured_extensions == bytes.fromhex("010203")
    assert protocol.initiator and protocol.needs_ack and protocol.ack_counter is None
    assert payload == plain_payload


def test_pbkdf_param_response_with_destination_and_ack() -> None:
    header, protocol, _ = _split(PBKDF_PARAM_RESPONSE)
    assert header == MessageHeader(session_id=0, message_counter=0x79128721, destination_node_id=SOURCE_NODE)
    assert protocol == ProtocolHeader(
        protocol_id=ProtocolId.SECURE_CHANNEL,
        opcode=SecureChannelOpcode.PBKDF_PARAM_RESPONSE,
        exchange_id=25811,
        needs_ack=True,
        ack_counter=401755914,
    )


def test_group_header_fields_once_deobfuscated() -> None:
    wire = bytes([GROUP_DEOBFUSCATED_FLAGS]) + b"\x7d\xdb" + b"\x01" + GROUP_DEOBFUSCATED_REGION
    header, n = MessageHeader.decode(wire)
    assert n == len(wire)
    assert header == MessageHeader(
        session_id=0xDB7D,
        message_counter=0x12345679,
        session_type=SessionType.GROUP,
        source_node_id=1,
        destination_group_id=2,
    )
    assert header.encode() == wire


@pytest.mark.parametrize("length", [len(PRIVACY_GROUP_PACKET), 4, 9])
def test_privacy_flag_is_rejected(length: int) -> None:
    with pytest.raises(MessageDecodeError, match="privacy-obfuscated messages are not supported"):
        MessageHeader.decode(PRIVACY_GROUP_PACKET[:length])


@pytest.mark.parametrize("vector", [PBKDF_PARAM_REQUEST_MX, PBKDF_PARAM_RESPONSE], ids=["mx", "destination"])
def test_every_truncated_message_header_is_a_decode_error(vector: bytes) -> None:
    _, n = MessageHeader.decode(vector)
    for cut in range(n):
        with pytest.raises(MessageDecodeError):
            MessageHeader.decode(vector[:cut])


@pytest.mark.parametrize("vector", [PBKDF_PARAM_REQUEST_SX, PBKDF_PARAM_RESPONSE], ids=["sx", "ack"])
def test_every_truncated_protocol_header_is_a_decode_error(vector: bytes) -> None:
    _, n = MessageHeader.decode(vector)
    _, m = ProtocolHeader.decode(vector[n:])
    for cut in range(m):
        with pytest.raises(MessageDecodeError):
            ProtocolHeader.decode(vector[n : n + cut])


@pytest.mark.parametrize(
    ("byte_index", "value", "reason"),
    [
        (0, 0x14, "version"),  # version 1
        (0, 0xF4, "version"),  # version 15
        (0, 0x07, "DSIZ"),  # DSIZ 3 (reserved)
        (3, 0x02, "session type"),  # session type 2 (reserved)
        (3, 0x03, "session type"),  # session type 3 (reserved)
    ],
)
def test_reserved_values_are_decode_errors(byte_index: int, value: int, reason: str) -> None:
    wire = bytearray(PBKDF_PARAM_REQUEST + bytes(16))
    wire[byte_index] = value
    with pytest.raises(MessageDecodeError, match=reason):
        MessageHeader.decode(bytes(wire))


def test_reserved_bits_are_ignored_but_stay_in_the_aad() -> None:
    wire = bytearray(PBKDF_PARAM_REQUEST)
    wire[0] |= 0x08  # reserved message-flags bit
    wire[3] |= 0x1C  # reserved security-flags bits
    header, n = MessageHeader.decode(bytes(wire))
    assert header == MessageHeader.decode(PBKDF_PARAM_REQUEST)[0]
    assert bytes(wire[:n]) != header.encode()  # the AAD must come from the wire, not a re-encode


def test_vendor_specific_protocol() -> None:
    header = ProtocolHeader(protocol_id=0x0001, opcode=0x42, exchange_id=7, vendor_id=0xFFF1)
    wire = header.encode()
    assert wire == bytes.fromhex("10420700f1ff0100")
    assert ProtocolHeader.decode(wire + b"payload") == (header, len(wire))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"session_id": 0x10000, "message_counter": 0},
        {"session_id": 0, "message_counter": 1 << 32},
        {"session_id": 0, "message_counter": 0, "source_node_id": -1},
        {"session_id": 0, "message_counter": 0, "destination_group_id": 0x10000},
        {"session_id": 0, "message_counter": 0, "destination_node_id": 1, "destination_group_id": 1},
        {"session_id": 0, "message_counter": 0, "extensions": bytes(0x10000)},
    ],
)
def test_invalid_message_header_is_a_local_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        MessageHeader(**kwargs)  # type: ignore[arg-type]


def test_opcode_and_protocol_constants() -> None:
    assert [int(p) for p in ProtocolId] == [0, 1, 2, 3]
    assert SecureChannelOpcode.STANDALONE_ACK == 0x10
    assert SecureChannelOpcode.CASE_SIGMA2_RESUME == 0x33
    assert SecureChannelOpcode.STATUS_REPORT == 0x40
    assert SecureChannelOpcode.ICD_CHECK_IN == 0x50
    assert [int(o) for o in InteractionModelOpcode] == list(range(0x01, 0x0B))


# --- Properties --------------------------------------------------------------------------------------------

_uint = lambda bits: st.integers(0, (1 << bits) - 1)  # noqa: E731
_blob = st.none() | st.binary(max_size=40)


@st.composite
def message_headers(draw: st.DrawFn) -> MessageHeader:
    destination = draw(st.sampled_from(["none", "node", "group"]))
    return MessageHeader(
        session_id=draw(_uint(16)),
        message_counter=draw(_uint(32)),
        session_type=draw(st.sampled_from(SessionType)),
        source_node_id=draw(st.none() | _uint(64)),
        destination_node_id=draw(_uint(64)) if destination == "node" else None,
        destination_group_id=draw(_uint(16)) if destination == "group" else None,
        control=draw(st.booleans()),
        extensions=draw(_blob),
    )


protocol_headers = st.builds(
    ProtocolHeader,
    protocol_id=_uint(16),
    opcode=_uint(8),
    exchange_id=_uint(16),
    initiator=st.booleans(),
    needs_ack=st.booleans(),
    ack_counter=st.none() | _uint(32),
    vendor_id=_uint(16),
    secured_extensions=_blob,
)


@given(message_headers(), st.binary(max_size=16))
def test_message_header_round_trip(header: MessageHeader, payload: bytes) -> None:
    wire = header.encode()
    assert MessageHeader.decode(wire + payload) == (header, len(wire))


@given(protocol_headers, st.binary(max_size=16))
def test_protocol_header_round_trip(header: ProtocolHeader, payload: bytes) -> None:
    wire = header.encode()
    assert ProtocolHeader.decode(wire + payload) == (header, len(wire))


@st.composite
def _mutated(draw: st.DrawFn, vectors: list[bytes]) -> bytes:
    """A vector cut short and with a few bytes overwritten: near misses reach deeper than random bytes."""
    data = bytearray(draw(st.sampled_from(vectors)))
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(_uint(8))
    return bytes(data[: draw(st.integers(0, len(data)))])


_MESSAGES = [PBKDF_PARAM_REQUEST, PBKDF_PARAM_REQUEST_MX, PBKDF_PARAM_REQUEST_SX, PBKDF_PARAM_RESPONSE]
_PROTOCOL_HEADERS = [m[MessageHeader.decode(m)[1] :] for m in _MESSAGES]


@given(st.binary(max_size=64) | _mutated(_MESSAGES))
def test_arbitrary_bytes_decode_as_message_header_or_raise_decode_error(data: bytes) -> None:
    try:
        header, n = MessageHeader.decode(data)
    except MessageDecodeError:
        return
    assert n <= len(data)
    # Apart from the reserved bits, the decoded header is exactly what was on the wire.
    canonical = bytes([data[0] & ~0x08, data[1], data[2], data[3] & ~0x1C]) + data[4:n]
    assert header.encode() == canonical


@given(st.binary(max_size=64) | _mutated(_PROTOCOL_HEADERS))
def test_arbitrary_bytes_decode_as_protocol_header_or_raise_decode_error(data: bytes) -> None:
    try:
        header, n = ProtocolHeader.decode(data)
    except MessageDecodeError:
        return
    assert n <= len(data)
    assert ProtocolHeader.decode(header.encode()) == (header, len(header.encode()))
