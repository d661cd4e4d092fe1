"""The seam between the Interaction Model engine and the data model (Core spec 8, 7).

The IM engine (``im/server.py``) decodes requests, expands wildcards, chunks reports and enforces the IM
rules; it asks a ``DataModelProvider`` what exists, what a value is and whether access is allowed. The data
model (``datamodel/``) implements this protocol; IM unit tests use a small fake.

Values cross this seam in their plain TLV form (``codec.tlv`` value model), already converted by the
cluster's schema, so the IM engine never needs a cluster's types. ``Status`` (the IM status codes, defined with
the error tree in ``errors``) is part of this seam's vocabulary; failures cross it as ``errors.ActionError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jfds_device.codec.model import AuthMode, ClusterDef, Privilege
from jfds_device.errors import Status

__all__ = [
    "AttributePath", "ChangeListener", "CommandPath", "CommandResponse", "DataModelProvider", "ListOperation",
    "RequestContext", "Status", "SubjectDescriptor",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SubjectDescriptor:
    """Who is asking (Core spec 6.6.2.1): from the secure session the request arrived on."""

    auth_mode: AuthMode
    subject: int  # CASE: peer node id; PASE: passcode id (0); GROUP: group id
    fabric_index: int = 0  # 0 = no fabric yet (PASE before AddNOC)
    cats: tuple[int, ...] = ()
    # PASE during an open commissioning window holds implicit Administer (Core spec 6.6.2.9).
    is_commissioning: bool = False


@dataclass(frozen=True, slots=True)
class AttributePath:
    endpoint: int
    cluster: int
    attribute: int


@dataclass(frozen=True, slots=True)
class CommandPath:
    endpoint: int
    cluster: int
    command: int


@dataclass(slots=True)
class RequestContext:
    """Per-interaction facts the data model may need."""

    subject: SubjectDescriptor
    fabric_filtered: bool = True
    timed: bool = False  # the action was preceded by a valid TimedRequest
    session_id: int = 0  # local session id, e.g. for the fail-safe's "same session" rule
    attestation_challenge: bytes = b""  # the session's challenge, signed in AttestationResponse / CSRResponse
    bind_fabric: Callable[[int], None] | None = None
    """Associates the (PASE) session the request came on with a fabric index, called by AddNOC."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandResponse:
    """A command's data response: the response command id and its fields as a TLV structure value."""

    command: int
    fields: dict[int, Any]


class ListOperation(enum.Enum):
    """How a list attribute write applies (Core spec 8.7.3.3: replace-all, then appends across chunks)."""

    REPLACE = "replace"
    APPEND = "append"
    NOT_A_LIST = "value"


class DataModelProvider(Protocol):
    """What the IM engine needs from the data model. All calls are synchronous and never block."""

    def endpoints(self) -> Sequence[int]:
        """Endpoint ids, ascending."""

    def clusters(self, endpoint: int) -> Sequence[ClusterDef]:
        """Server clusters on ``endpoint``, ascending by id; empty if the endpoint does not exist."""

    def attribute_ids(self, endpoint: int, cluster: int) -> Sequence[int]:
        """Attribute ids present on that cluster instance (incl. globals), ascending."""

    def data_version(self, endpoint: int, cluster: int) -> int:
        """The cluster instance's current DataVersion (uint32)."""

    def read_attribute(self, ctx: RequestContext, path: AttributePath) -> Any:
        """The attribute's TLV value; fabric-scoped lists filtered to ``ctx.subject.fabric_index`` when
        ``ctx.fabric_filtered``, fabric-sensitive fields of other fabrics' entries omitted otherwise.
        Raises ``errors.ActionError`` (e.g. UNSUPPORTED_READ) on failure."""

    def write_attribute(self, ctx: RequestContext, path: AttributePath, value: Any, op: ListOperation) -> None:
        """Apply one write (a whole value, a whole list, or one appended list item). Raises ``errors.ActionError``."""

    def invoke(self, ctx: RequestContext, path: CommandPath, fields: Any) -> CommandResponse | None:
        """Run a command; None means plain SUCCESS. Raises ``errors.ActionError`` for a failure status."""

    def allowed(self, subject: SubjectDescriptor, endpoint: int, cluster: int, privilege: Privilege) -> bool:
        """The access check (Core spec 6.6.6) for ``subject`` on ``endpoint``/``cluster`` at ``privilege``."""

    def begin_write(self) -> None:
        """Start a write interaction: the data model groups what follows into one storage transaction."""

    def end_write(self) -> None:
        """Commit the write interaction's transaction and fire change notifications."""

    def subscribe_changes(self, listener: ChangeListener) -> None:
        """Register for attribute changes (e.g. the subscription engine)."""


class ChangeListener(Protocol):
    def attributes_changed(self, paths: Iterable[AttributePath]) -> None: ...
