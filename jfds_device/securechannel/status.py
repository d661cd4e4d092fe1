"""StatusReport (Core spec Appendix D) and the secure-channel protocol codes (Core spec §4.11).

Wire layout, all little-endian, no TLV::

    GeneralCode   uint16
    ProtocolId    uint32   (vendor id << 16) | protocol id
    ProtocolCode  uint16
    ProtocolData  the rest, protocol specific, often empty

A secure-channel StatusReport with an empty ProtocolData is therefore exactly 8 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from jfds_device.codec.message import ProtocolId
from jfds_device.errors import DecodeError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "SECURE_CHANNEL_PROTOCOL_ID",
    "GeneralCode",
    "SecureChannelProtocolCode",
    "StatusReport",
    "StatusReportError",
]

_HEADER: Final = struct.Struct("<HIH")
_U16: Final = struct.Struct("<H")

# ProtocolId field of a report about the secure channel protocol: standard vendor (0) and protocol 0.
SECURE_CHANNEL_PROTOCOL_ID: Final = int(ProtocolId.SECURE_CHANNEL)


class GeneralCode(IntEnum):
    """Protocol-agnostic status (Core spec Appendix D, "General Status Codes" table)."""

    SUCCESS = 0
    FAILURE = 1
    BAD_PRECONDITION = 2
    OUT_OF_RANGE = 3
    BAD_REQUEST = 4
    UNSUPPORTED = 5
    UNEXPECTED = 6
    RESOURCE_EXHAUSTED = 7
    BUSY = 8
    TIMEOUT = 9
    CONTINUE = 10
    ABORTED = 11
    INVALID_ARGUMENT = 12
    NOT_FOUND = 13
    ALREADY_EXISTS = 14
    PERMISSION_DENIED = 15
    DATA_LOSS = 16


class SecureChannelProtocolCode(IntEnum):
    """ProtocolCode values when ProtocolId is the secure channel (Core spec §4.11, "Secure Channel Protocol
    Codes" table; connectedhomeip src/protocols/secure_channel/Constants.h kProtocolCode*)."""

    SESSION_ESTABLISHMENT_SUCCESS = 0x0000
    NO_SHARED_TRUST_ROOTS = 0x0001
    INVALID_PARAMETER = 0x0002
    CLOSE_SESSION = 0x0003
    BUSY = 0x0004
    SESSION_NOT_FOUND = 0x0005
    # connectedhomeip's placeholder when there is no protocol-specific code to give.
    GENERAL_FAILURE = 0xFFFF


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One StatusReport. ``general_code`` is a ``GeneralCode`` when known, a plain int otherwise (decode keeps
    codes from later spec revisions rather than rejecting them); ``protocol_code`` likewise stays an int,
    since its meaning depends on ``protocol_id``."""

    general_code: int
    protocol_id: int
    protocol_code: int
    protocol_data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.general_code <= 0xFFFF:
            raise LocalProtocolError(f"GeneralCode {self.general_code} does not fit in 16 bits")
        if not 0 <= self.protocol_id <= 0xFFFF_FFFF:
            raise LocalProtocolError(f"ProtocolId {self.protocol_id:#x} does not fit in 32 bits")
        if not 0 <= self.protocol_code <= 0xFFFF:
            raise LocalProtocolError(f"ProtocolCode {self.protocol_code} does not fit in 16 bits")

    # --- construction helpers ------------------------------------------------------------------------

    @classmethod
    def secure_channel(
        cls, general_code: GeneralCode, protocol_code: SecureChannelProtocolCode, protocol_data: bytes = b""
    ) -> StatusReport:
        return cls(general_code, SECURE_CHANNEL_PROTOCOL_ID, protocol_code, protocol_data)

    @classmethod
    def busy(cls, min_wait_ms: int) -> StatusReport:
        """Core spec §4.11 (Busy): the report carries the minimum time to wait before retrying, uint16 ms LE."""
        if not 0 <= min_wait_ms <= 0xFFFF:
            raise LocalProtocolError(f"busy wait {min_wait_ms} ms does not fit in 16 bits")
        return cls.secure_channel(GeneralCode.BUSY, SecureChannelProtocolCode.BUSY, _U16.pack(min_wait_ms))

    # --- codec ---------------------------------------------------------------------------------------

    def encode(self) -> bytes:
        return _HEADER.pack(self.general_code, self.protocol_id, self.protocol_code) + self.protocol_data

    @classmethod
    def decode(cls, data: bytes) -> StatusReport:
        """Parse a StatusReport payload; anything shorter than the 8-byte header raises ``DecodeError``."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"StatusReport must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise DecodeError(f"StatusReport needs {_HEADER.size} bytes, got {len(data)}")
        general, protocol_id, protocol_code = _HEADER.unpack_from(data)
        known = general in GeneralCode._value2member_map_
        return cls(GeneralCode(general) if known else general, protocol_id, protocol_code, data[_HEADER.size :])

    # --- inspection ----------------------------------------------------------------------------------

    @property
    def vendor_id(self) -> int:
        return self.protocol_id >> 16

    @property
    def protocol(self) -> int:
        """The 16-bit protocol id within ``vendor_id`` (compare with ``codec.message.ProtocolId``)."""
        return self.protocol_id & 0xFFFF

    @property
    def is_success(self) -> bool:
        return self.general_code == GeneralCode.SUCCESS

    def is_secure_channel(self, general_code: GeneralCode, protocol_code: SecureChannelProtocolCode) -> bool:
        return (
            self.protocol_id == SECURE_CHANNEL_PROTOCOL_ID
            and self.general_code == general_code
            and self.protocol_code == protocol_code
        )

    @property
    def busy_wait_ms(self) -> int | None:
        """The minimum wait of a secure-channel BUSY report, or None if this is not one (or has no data)."""
        if self.protocol_id != SECURE_CHANNEL_PROTOCOL_ID or self.protocol_code != SecureChannelProtocolCode.BUSY:
            return None
        if len(self.protocol_data) < _U16.size:
            return None
        return int(_U16.unpack_from(self.protocol_data)[0])

    def describe(self) -> str:
        general = self.general_code.name if isinstance(self.general_code, GeneralCode) else str(self.general_code)
        if self.protocol_id == SECURE_CHANNEL_PROTOCOL_ID:
            members = SecureChannelProtocolCode._value2member_map_
            code = members[self.protocol_code].name if self.protocol_code in members else str(self.protocol_code)
            where = f"SecureChannel:{code}"
        else:
            where = f"{self.vendor_id:04x}:{self.protocol:04x}:{self.protocol_code}"
        return f"{general} ({where})" + (f" data={self.protocol_data.hex()}" if self.protocol_data else "")


class StatusReportError(RemoteProtocolError):
    """The peer answered with a StatusReport that ends the exchange; ``report`` is what it sent."""

    def __init__(self, report: StatusReport, message: str | None = None) -> None:
        super().__init__(message or f"peer sent StatusReport {report.describe()}")
        self.report = report
