"""One exception tree for the whole stack.

Errors say whose fault they are (h11 style): a ``RemoteProtocolError`` is the peer's and carries the status to
answer with; a ``LocalProtocolError`` is ours (API misuse). Decoding errors are remote errors, because bytes
only ever come from a peer or from storage that a peer wrote.
"""

from __future__ import annotations


class MatterError(Exception):
    """Base of every error raised by jfds_device."""


class LocalProtocolError(MatterError):
    """We misused an API or tried to send something the spec forbids."""


class RemoteProtocolError(MatterError):
    """The peer sent something invalid. ``status`` is the IM status code to answer with, if any."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class DecodeError(RemoteProtocolError):
    """Bytes that do not parse: truncated, malformed or not what the schema allows."""


class TLVDecodeError(DecodeError):
    """Malformed TLV (Core spec Appendix A). Maps to IM status INVALID_ACTION (0x80) by default."""

    status = 0x80


class SchemaError(DecodeError):
    """Well-formed TLV whose value does not fit the schema (wrong type, missing field, out of range)."""

    status = 0x87  # CONSTRAINT_ERROR unless the raiser says otherwise


class MessageDecodeError(DecodeError):
    """A malformed message or protocol header (Core spec 4.4)."""


class CryptoError(MatterError):
    """A signature, MIC or key confirmation did not verify, or key material is invalid."""


class CertificateError(CryptoError):
    """An operational or attestation certificate is malformed or fails validation."""


class StorageError(MatterError):
    """Persistent state could not be read or written."""
