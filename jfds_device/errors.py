"""One exception tree for the whole stack, and the IM status codes its errors carry.

Errors say whose fault they are (h11 style) and which status they become:

* ``RemoteProtocolError``: the peer sent something invalid; ``status`` is the IM status to answer with.
  Decoding errors are remote errors, because bytes only ever come from a peer or from storage a peer wrote.
  ``RequestError`` refuses a whole request with one StatusResponse; ``ReportTooLargeError`` ends a peer's
  chunked report that passed our bound.
* ``ActionError``: a cluster answers one action (attribute write, command, read) with ``status`` and, for a
  cluster-specific failure, ``cluster_status``. ``DatastoreError`` subclasses are the datastore's refusals, each
  with the status its cluster answers unless the cluster's rules chose a more precise one first.
* ``IMStatusError``: the other way round, a peer refused one of *our* requests with ``status``.
* ``InteractionError`` / ``TransportError``: the exchange or the session broke; nobody answered.
* ``LocalProtocolError``: ours (API misuse). ``CryptoError`` and ``StorageError``: as they say.

Every error that becomes an IM status on the wire has it in ``.status`` (``None`` when it does not become one).
"""

from __future__ import annotations

import enum
from typing import Any


class Status(enum.IntEnum):
    """IM status codes (Core spec 8.10)."""

    SUCCESS = 0x00
    FAILURE = 0x01
    INVALID_SUBSCRIPTION = 0x7D
    UNSUPPORTED_ACCESS = 0x7E
    UNSUPPORTED_ENDPOINT = 0x7F
    INVALID_ACTION = 0x80
    UNSUPPORTED_COMMAND = 0x81
    INVALID_COMMAND = 0x85
    UNSUPPORTED_ATTRIBUTE = 0x86
    CONSTRAINT_ERROR = 0x87
    UNSUPPORTED_WRITE = 0x88
    RESOURCE_EXHAUSTED = 0x89
    NOT_FOUND = 0x8B
    UNREPORTABLE_ATTRIBUTE = 0x8C
    INVALID_DATA_TYPE = 0x8D
    UNSUPPORTED_READ = 0x8F
    DATA_VERSION_MISMATCH = 0x92
    TIMEOUT = 0x94
    UNSUPPORTED_NODE = 0x9B
    BUSY = 0x9C
    ACCESS_RESTRICTED = 0x9D
    UNSUPPORTED_CLUSTER = 0xC3
    NO_UPSTREAM_SUBSCRIPTION = 0xC5
    NEEDS_TIMED_INTERACTION = 0xC6
    UNSUPPORTED_EVENT = 0xC7
    PATHS_EXHAUSTED = 0xC8
    TIMED_REQUEST_MISMATCH = 0xC9
    FAILSAFE_REQUIRED = 0xCA
    INVALID_IN_STATE = 0xCB
    NO_COMMAND_RESPONSE = 0xCC


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:02X}"


class MatterError(Exception):
    """Base of every error raised by jfds_device. ``status``: the IM status it becomes, if any."""

    status: int | None = None


class LocalProtocolError(MatterError):
    """We misused an API or tried to send something the spec forbids."""


class RemoteProtocolError(MatterError):
    """The peer sent something invalid. ``status`` is the IM status code to answer with, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class DecodeError(RemoteProtocolError):
    """Bytes that do not parse: truncated, malformed or not what the schema allows."""


class TLVDecodeError(DecodeError):
    """Malformed TLV (Core spec Appendix A). Maps to IM status INVALID_ACTION (0x80) by default."""

    status = Status.INVALID_ACTION


class SchemaError(DecodeError):
    """Well-formed TLV whose value does not fit the schema (wrong type, missing field, out of range).
    ``schema_error_status`` says what a write or a command answers for it."""

    status = Status.CONSTRAINT_ERROR  # unless the raiser says otherwise


class WrongTypeError(SchemaError):
    """The TLV element has the wrong type for the field."""


class MissingFieldError(SchemaError):
    """A mandatory field is absent."""


class ConstraintError(SchemaError):
    """The value is of the right type but out of range."""


def schema_error_status(exc: SchemaError, *, command: bool) -> Status:
    """What a value that does not fit its schema answers: the one mapping, for writes and for commands.

    Writes answer CONSTRAINT_ERROR for every decode failure (wrong TLV type, missing struct field, out of range):
    the spec names no other status for a value that does not fit the attribute, and INVALID_DATA_TYPE is an
    internal-only code in the CHIP SDK (connectedhomeip #31020); matter.js answers CONSTRAINT_ERROR too. Commands
    answer INVALID_COMMAND for wrong types and missing fields, as the SDK's generated dispatch does for any field
    decode failure, and CONSTRAINT_ERROR for a value out of range (Core spec 8.8.3.3, 7.10.9).
    """
    if isinstance(exc, ConstraintError) or not command:
        return Status.CONSTRAINT_ERROR
    return Status.INVALID_COMMAND


class MessageDecodeError(DecodeError):
    """A malformed message or protocol header (Core spec 4.4)."""


class RequestError(RemoteProtocolError):
    """The whole request is refused with one StatusResponse carrying ``status`` (Core spec 8.2.5)."""

    status: Status

    def __init__(self, status: Status, message: str = "") -> None:
        super().__init__(message or status.name, status)


class ReportTooLargeError(RemoteProtocolError):
    """The peer's chunks of one report (or invoke response) passed our bound. Answered RESOURCE_EXHAUSTED when the
    peer waits for an answer (``expects_reply``); a final chunk that wants none (SuppressResponse) gets none."""

    status = Status.RESOURCE_EXHAUSTED

    def __init__(self, received: int, limit: int, chunks: int, *, expects_reply: bool = True) -> None:
        super().__init__(f"report of {received} bytes in {chunks} chunk(s) exceeds the {limit}-byte bound")
        self.received, self.limit, self.chunks, self.expects_reply = received, limit, chunks, expects_reply


class StatusError(MatterError):
    """An IM status (and, for a cluster-specific failure, a cluster status) other than SUCCESS."""

    status: int

    def __init__(self, status: int, cluster_status: int | None = None, message: str = "") -> None:
        detail = status_name(status) + (f" (cluster status 0x{cluster_status:02X})" if cluster_status is not None
                                        else "")
        super().__init__(message or detail)
        self.status = status
        self.cluster_status = cluster_status


class ActionError(StatusError):
    """A cluster answering an action with a status: the requester's input or the state it acts on does not allow
    it (or, with FAILURE, our own failure). Answered in the action's AttributeStatusIB / CommandStatusIB."""


class IMStatusError(StatusError):
    """The peer answered one of our requests with an IM status other than SUCCESS (Core spec 8.10)."""

    def __init__(self, status: int, cluster_status: int | None = None, message: str = "") -> None:
        detail = status_name(status) + (f" (cluster status 0x{cluster_status:02X})" if cluster_status is not None
                                        else "")
        super().__init__(status, cluster_status, f"{message}: {detail}" if message else detail)


class InteractionError(MatterError):
    """The exchange ended before the interaction did; ``reason`` is the transport's CloseReason value."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or f"interaction ended: {reason}")
        self.reason = reason


class TransportError(MatterError):
    """A peer node was not reached or the exchange broke; ``status`` is what the reconciler records for it
    (TIMEOUT, or BUSY: the reference's SyncFailureCode, Core spec 11.24.4)."""

    def __init__(self, message: str, status: int = Status.TIMEOUT) -> None:
        super().__init__(message)
        self.status = status


class CryptoError(MatterError):
    """A signature, MIC or key confirmation did not verify, or key material is invalid."""


class CertificateError(CryptoError):
    """An operational or attestation certificate is malformed or fails validation."""


class StorageError(MatterError):
    """Persistent state could not be read or written."""


# ---------------------------------------------------------------------------------------------------- datastore


class DatastoreError(MatterError):
    """A JFDS datastore operation was refused; the operation changed nothing. ``status``: what the cluster answers
    when its own rules did not pick a more precise status first (Core spec 11.24.7)."""

    status = Status.FAILURE


class NotBootstrappedError(DatastoreError):
    """The datastore has no anchor yet (``bootstrap_anchor`` has not run, or it was wiped)."""

    status = Status.INVALID_IN_STATE


class WrongStateError(DatastoreError):
    """The operation does not fit the datastore's state (e.g. bootstrapping a datastore that holds data)."""


class DuplicateEntryError(DatastoreError):
    """An entry with that identity already exists."""

    status = Status.CONSTRAINT_ERROR


class EntryNotFoundError(DatastoreError):
    """No entry with that identity exists."""

    status = Status.NOT_FOUND


class InvalidEntryError(DatastoreError):
    """The value breaks a datastore invariant (e.g. an epoch key that is not 16 bytes, the anchor admin)."""

    status = Status.CONSTRAINT_ERROR


class CapacityError(DatastoreError):
    """A list is full (11.24.6 maxima) or the ListID space is used up."""

    status = Status.RESOURCE_EXHAUSTED

    def __init__(self, table: Any, limit: int, message: str = "") -> None:
        super().__init__(message or f"{table.value} holds its maximum of {limit} entries")
        self.table = table
        self.limit = limit


class TaskConflictError(DatastoreError):
    """A multi-step task that may not be superseded (a rollback, a group-key rotation past activation) holds a
    resource the request needs; it can be made again once that task ends."""

    status = Status.BUSY


class TaskNotRevertibleError(DatastoreError):
    """Cancel of a task that cannot be undone (a group-key rotation once activated is forward-only), or that has
    ended."""

    status = Status.INVALID_IN_STATE
