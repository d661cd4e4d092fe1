"""Matter message header and protocol (exchange) header codec (Core spec §4.4). No crypto, no sessions.

Both headers decode to ``(header, header_length)``. Callers slice ``data[:header_length]`` for the AAD and
``data[header_length:]`` for what follows, so the AAD is always the bytes that were on the wire: re-encoding
a decoded header need not reproduce them (reserved bits are dropped, a V flag with vendor id 0 is normalised
away).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from jfds_device.errors import LocalProtocolError, MessageDecodeError

__all__ = [
    "InteractionModelOpcode",
    "MessageHeader",
    "ProtocolHeader",
    "ProtocolId",
    "SecureChannelOpcode",
    "SessionType",
]


class SessionType(IntEnum):
    """Session Type bits of the security flags (Core spec §4.4.1.3)."""

    UNICAST = 0
    GROUP = 1


class ProtocolId(IntEnum):
    """Protocol IDs for the Matter standard vendor id 0x0000 (Core spec §4.4.3.4)."""

    SECURE_CHANNEL = 0x0000
    INTERACTION_MODEL = 0x0001
    BDX = 0x0002
    USER_DIRECTED_COMMISSIONING = 0x0003


class SecureChannelOpcode(IntEnum):
    """Secure Channel protocol opcodes (Core spec §4.11.1, "Secure Channel Protocol Opcodes" table)."""

    MSG_COUNTER_SYNC_REQ = 0x00
    MSG_COUNTER_SYNC_RSP = 0x01
    STANDALONE_ACK = 0x10
    PBKDF_PARAM_REQUEST = 0x20
    PBKDF_PARAM_RESPONSE = 0x21
    PASE_PAKE1 = 0x22
    PASE_PAKE2 = 0x23
    PASE_PAKE3 = 0x24
    CASE_SIGMA1 = 0x30
    CASE_SIGMA2 = 0x31
    CASE_SIGMA3 = 0x32
    CASE_SIGMA2_RESUME = 0x33
    STATUS_REPORT = 0x40
    ICD_CHECK_IN = 0x50


class InteractionModelOpcode(IntEnum):
    """Interaction Model protocol opcodes (Core spec §10.2.1, "Interaction Model Protocol Opcodes" table)."""

    STATUS_RESPONSE = 0x01
    READ_REQUEST = 0x02
    SUBSCRIBE_REQUEST = 0x03
    SUBSCRIBE_RESPONSE = 0x04
    REPORT_DATA = 0x05
    WRITE_REQUEST = 0x06
    WRITE_RESPONSE = 0x07
    INVOKE_REQUEST = 0x08
    INVOKE_RESPONSE = 0x09
    TIMED_REQUEST = 0x0A


# DSIZ values (Core spec §4.4.1.1); 3 is reserved and rejected on decode.
_DSIZ_NONE = 0
_DSIZ_NODE = 1
_DSIZ_GROUP = 2
# The security flags follow the message flags and the session id (Core spec §4.4.1.3).
_SECURITY_FLAGS_OFFSET = 3
_PRIVACY_FLAG = 0x80

# Wire layouts, little-endian (Core spec §4.4.1, §4.4.3), parsed by hand with precompiled ``struct`` formats: every
# message passes through here twice (header, then protocol header), so this is on the hot path of every
# interaction (a declarative ``construct`` layout cost ~85 us per message header, these ~3 us). Reserved bits
# are written as 0 and ignored on read (Core spec §4.4.1.1, §4.4.1.3, §4.4.3.1).
_FIXED_MESSAGE = struct.Struct("<BHBI")  # message flags, session id, security flags, message counter
_FIXED_PROTOCOL = struct.Struct("<BBH")  # exchange flags, opcode, exchange id
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# Message flags (Core spec §4.4.1.1): version in the high nibble, S, DSIZ.
_FLAG_S = 0x04
_DSIZ_MASK = 0x03
# Security flags (Core spec §4.4.1.3): P (checked before parsing), C, MX, session type.
_FLAG_C = 0x40
_FLAG_MX = 0x20
_SESSION_TYPE_MASK = 0x03
# Exchange flags (Core spec §4.4.3.1).
_FLAG_V = 0x10
_FLAG_SX = 0x08
_FLAG_R = 0x04
_FLAG_A = 0x02
_FLAG_I = 0x01

_SESSION_TYPES = {int(t): t for t in SessionType}


class _Reader:
    """A cursor over ``data`` whose reads past the end raise MessageDecodeError("malformed <what>: ...")."""

    __slots__ = ("data", "offset", "what")

    def __init__(self, data: bytes, offset: int, what: str) -> None:
        self.data, self.offset, self.what = data, offset, what

    def unpack(self, layout: struct.Struct) -> int:
        end = self.offset + layout.size
        if end > len(self.data):
            raise MessageDecodeError(f"malformed {self.what}: needs {end} bytes, {len(self.data)} present")
        (value,) = layout.unpack_from(self.data, self.offset)
        self.offset = end
        return int(value)

    def blob(self, name: str) -> bytes:
        declared = self.unpack(_U16)
        blob = self.data[self.offset : self.offset + declared]
        if len(blob) != declared:
            raise MessageDecodeError(f"truncated {name}: {declared} bytes declared, {len(blob)} present")
        self.offset += declared
        return blob


def _fixed(layout: struct.Struct, data: bytes, what: str) -> tuple[int, ...]:
    if len(data) < layout.size:
        raise MessageDecodeError(f"malformed {what}: needs {layout.size} bytes, {len(data)} present")
    return layout.unpack_from(data)


def _with_blob(blob: bytes | None) -> bytes:
    return b"" if blob is None else _U16.pack(len(blob)) + blob


def _check_uint(name: str, value: int | None, bits: int) -> None:
    if value is not None and not 0 <= value < 1 << bits:
        raise LocalProtocolError(f"{name} {value} does not fit in {bits} bits")


def _check_blob(name: str, value: bytes | None) -> None:
    # The extension length prefix is 16 bits (Core spec §4.4.1 Message Extensions, §4.4.3.7).
    if value is not None and len(value) > 0xFFFF:
        raise LocalProtocolError(f"{name} is {len(value)} bytes; at most 65535 fit the length prefix")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The message header (Core spec §4.4.1), everything before the (possibly encrypted) payload.

    The privacy flag is not modelled: we are not a privacy or group-privacy node, so we never send it and
    reject it on decode (Core spec §4.9.3 would need the privacy key to read the obfuscated fields).
    """

    session_id: int
    message_counter: int
    session_type: SessionType = SessionType.UNICAST
    source_node_id: int | None = None
    destination_node_id: int | None = None
    destination_group_id: int | None = None
    control: bool = False
    """C flag: a control message (Core spec §4.4.1.3), such as message counter synchronisation."""
    extensions: bytes | None = None
    """Message extensions (Core spec §4.4.1); ``None`` clears MX, ``b""`` sets MX with an empty block."""

    def __post_init__(self) -> None:
        _check_uint("session_id", self.session_id, 16)
        _check_uint("message_counter", self.message_counter, 32)
        _check_uint("source_node_id", self.source_node_id, 64)
        _check_uint("destination_node_id", self.destination_node_id, 64)
        _check_uint("destination_group_id", self.destination_group_id, 16)
        _check_blob("extensions", self.extensions)
        if self.destination_node_id is not None and self.destination_group_id is not None:
            # DSIZ selects exactly one destination form (Core spec §4.4.1.1).
            raise LocalProtocolError("a message has a destination node id or a group id, not both")

    def encode(self) -> bytes:
        if self.destination_node_id is not None:
            dsiz, destination = _DSIZ_NODE, self.destination_node_id
        elif self.destination_group_id is not None:
            dsiz, destination = _DSIZ_GROUP, self.destination_group_id
        else:
            dsiz, destination = _DSIZ_NONE, None
        message_flags = (_FLAG_S if self.source_node_id is not None else 0) | dsiz
        security_flags = ((_FLAG_C if self.control else 0) | (_FLAG_MX if self.extensions is not None else 0)
                          | int(self.session_type))
        built = _FIXED_MESSAGE.pack(message_flags, self.session_id, security_flags, self.message_counter)
        if self.source_node_id is not None:
            built += _U64.pack(self.source_node_id)
        if dsiz == _DSIZ_NODE:
            built += _U64.pack(destination)
        elif dsiz == _DSIZ_GROUP:
            built += _U16.pack(destination)
        return built + _with_blob(self.extensions)

    @classmethod
    def decode(cls, data: bytes) -> tuple[MessageHeader, int]:
        """Parse the header at the start of ``data``; return it and its length in bytes.

        Raises MessageDecodeError for anything that is not a header we can process.
        """
        # Checked on the raw security-flags byte, before any parse: with P set the counter and node ids are
        # obfuscated (Core spec §4.9.3), so whatever follows the flags is meaningless to us.
        if len(data) > _SECURITY_FLAGS_OFFSET and data[_SECURITY_FLAGS_OFFSET] & _PRIVACY_FLAG:
            raise MessageDecodeError("privacy-obfuscated messages are not supported")
        message_flags, session_id, security_flags, message_counter = _fixed(_FIXED_MESSAGE, data, "message header")
        reader = _Reader(data, _FIXED_MESSAGE.size, "message header")
        source_node_id = reader.unpack(_U64) if message_flags & _FLAG_S else None
        dsiz = message_flags & _DSIZ_MASK
        destination = reader.unpack(_U64 if dsiz == _DSIZ_NODE else _U16) if dsiz in (_DSIZ_NODE, _DSIZ_GROUP) \
            else None
        extensions = reader.blob("message extensions") if security_flags & _FLAG_MX else None
        version = message_flags >> 4
        if version != 0:
            # Only version 0 is defined; a receiver drops anything else (Core spec §4.4.1.1).
            raise MessageDecodeError(f"unsupported message format version {version}")
        if dsiz not in (_DSIZ_NONE, _DSIZ_NODE, _DSIZ_GROUP):
            raise MessageDecodeError(f"reserved DSIZ value {dsiz}")
        session_type = _SESSION_TYPES.get(security_flags & _SESSION_TYPE_MASK)
        if session_type is None:
            raise MessageDecodeError(f"reserved session type {security_flags & _SESSION_TYPE_MASK}")
        header = cls(
            session_id=session_id,
            message_counter=message_counter,
            session_type=session_type,
            source_node_id=source_node_id,
            destination_node_id=destination if dsiz == _DSIZ_NODE else None,
            destination_group_id=destination if dsiz == _DSIZ_GROUP else None,
            control=bool(security_flags & _FLAG_C),
            extensions=extensions,
        )
        return header, reader.offset


@dataclass(frozen=True, slots=True)
class ProtocolHeader:
    """The protocol (exchange) header (Core spec §4.4.3), the first bytes of the decrypted payload."""

    protocol_id: int
    opcode: int
    exchange_id: int
    initiator: bool = False
    """I flag: sent by the exchange initiator (Core spec §4.4.3.1)."""
    needs_ack: bool = False
    """R flag: the sender wants an acknowledgement (MRP, Core spec §4.12)."""
    ack_counter: int | None = None
    """A flag and the acknowledged message counter; ``None`` clears A."""
    vendor_id: int = 0
    """Protocol vendor id; 0 (the Matter standard) is implied when V is clear, so only non-zero sets V."""
    secured_extensions: bytes | None = None
    """Secured extensions; ``None`` clears SX (Core spec §4.4.3.7)."""

    def __post_init__(self) -> None:
        _check_uint("protocol_id", self.protocol_id, 16)
        _check_uint("opcode", self.opcode, 8)
        _check_uint("exchange_id", self.exchange_id, 16)
        _check_uint("ack_counter", self.ack_counter, 32)
        _check_uint("vendor_id", self.vendor_id, 16)
        _check_blob("secured_extensions", self.secured_extensions)

    def encode(self) -> bytes:
        exchange_flags = ((_FLAG_V if self.vendor_id else 0) | (_FLAG_SX if self.secured_extensions is not None else 0)
                          | (_FLAG_R if self.needs_ack else 0) | (_FLAG_A if self.ack_counter is not None else 0)
                          | (_FLAG_I if self.initiator else 0))
        built = _FIXED_PROTOCOL.pack(exchange_flags, self.opcode, self.exchange_id)
        if self.vendor_id:
            built += _U16.pack(self.vendor_id)
        built += _U16.pack(self.protocol_id)
        if self.ack_counter is not None:
            built += _U32.pack(self.ack_counter)
        return built + _with_blob(self.secured_extensions)

    @classmethod
    def decode(cls, data: bytes) -> tuple[ProtocolHeader, int]:
        """Parse the header at the start of ``data``; return it and its length (the app payload follows)."""
        flags, opcode, exchange_id = _fixed(_FIXED_PROTOCOL, data, "protocol header")
        reader = _Reader(data, _FIXED_PROTOCOL.size, "protocol header")
        vendor_id = reader.unpack(_U16) if flags & _FLAG_V else 0
        protocol_id = reader.unpack(_U16)
        ack_counter = reader.unpack(_U32) if flags & _FLAG_A else None
        secured_extensions = reader.blob("secured extensions") if flags & _FLAG_SX else None
        header = cls(
            protocol_id=protocol_id,
            opcode=opcode,
            exchange_id=exchange_id,
            initiator=bool(flags & _FLAG_I),
            needs_ack=bool(flags & _FLAG_R),
            ack_counter=ack_counter,
            vendor_id=vendor_id,
            secured_extensions=secured_extensions,
        )
        return header, reader.offset
