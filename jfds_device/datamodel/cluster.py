"""``ClusterServer``: one cluster instance on one endpoint, driven by its ``ClusterDef`` (README, Architecture).

A server subclass sets ``CLUSTER`` and writes only behaviour; the base does the rest from the schema:

* state: ``get(id)`` / ``set(id, value)`` in Python (schema) form. ``set`` validates through the
  attribute's type, bumps the DataVersion (uint32, random start, +1 per change; Core spec 7.10.3),
  persists ``persistent=True`` attributes and reports the change to the node;
* globals (Core spec 7.13): ClusterRevision, FeatureMap, AttributeList, AcceptedCommandList and
  GeneratedCommandList derived from the definition and from what the subclass implements;
* reads: the stored value, or ``read_<snake_name>(ctx)`` for computed attributes;
* writes: decode and validate via the attribute type (wrong TLV type or out of range ->
  CONSTRAINT_ERROR, read-only -> UNSUPPORTED_WRITE), then the optional ``validate_<snake_name>(ctx, value)``
  hook, then ``set``;
* invokes: decode the request struct (missing field / wrong type -> INVALID_COMMAND, out of range ->
  CONSTRAINT_ERROR) and call ``on_<snake_name>(ctx, request)``; it returns None (SUCCESS), a response
  struct, or a ``CommandResponse``;
* fabric-scoped lists (Core spec 7.13.6, 8.4.3.2): entries carry FabricIndex at tag 0xFE; a filtered
  read shows the accessing fabric's entries only, an unfiltered one shows every entry with the fabric-
  sensitive fields of other fabrics' entries omitted; a write replaces (or appends to) the accessing
  fabric's entries only, stamping FabricIndex.

An attribute whose value is ``None`` and that has no ``read_`` hook is absent (not in AttributeList), so
schemas can declare optional attributes a server does not implement. Likewise AcceptedCommandList lists
only the commands with an ``on_`` handler.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from jfds_device.codec import tlv
from jfds_device.codec.model import AttributeDef, ClusterDef, EventDef
from jfds_device.codec.schema import (
    NULL,
    ConstraintError,
    List,
    Struct,
    StructType,
    WrongTypeError,
)
from jfds_device.errors import ActionError, DecodeError, LocalProtocolError, SchemaError, StorageError
from jfds_device.im.provider import CommandResponse, ListOperation, RequestContext, Status, SubjectDescriptor

__all__ = [
    "ACCEPTED_COMMAND_LIST",
    "ATTRIBUTE_LIST",
    "CLUSTER_REVISION",
    "FABRIC_INDEX_TAG",
    "FEATURE_MAP",
    "GENERATED_COMMAND_LIST",
    "GLOBAL_ATTRIBUTE_IDS",
    "ClusterHost",
    "ClusterServer",
    "snake_case",
]

# Global attribute ids (Core spec 7.13). EventList (0xFFFA) was removed in 1.3 and is not served.
CLUSTER_REVISION = 0xFFFD
FEATURE_MAP = 0xFFFC
ATTRIBUTE_LIST = 0xFFFB
ACCEPTED_COMMAND_LIST = 0xFFF9
GENERATED_COMMAND_LIST = 0xFFF8
GLOBAL_ATTRIBUTE_IDS = (GENERATED_COMMAND_LIST, ACCEPTED_COMMAND_LIST, ATTRIBUTE_LIST, FEATURE_MAP, CLUSTER_REVISION)

# Context tag of the FabricIndex field in every fabric-scoped struct (Core spec 7.13.6).
FABRIC_INDEX_TAG = 0xFE

_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``ArmFailSafe`` -> ``arm_fail_safe``, ``AddACLToNode`` -> ``add_acl_to_node``."""
    return _SNAKE.sub("_", name).lower()


class ClusterHost(Protocol):
    """What a mounted server needs from its node (``datamodel.node.Node`` implements it)."""

    def load_attribute(self, endpoint: int, cluster: int, attribute: int) -> bytes | None: ...

    def store_attribute(self, endpoint: int, cluster: int, attribute: int, data: bytes) -> None: ...

    def attribute_changed(self, endpoint: int, cluster: int, attribute: int, undo: Callable[[], None]) -> None:
        """Record a change: the node reports it (now, or when its transaction commits) or calls ``undo``."""

    def emit_event(
        self, endpoint: int, cluster: int, event: EventDef, data: dict[int, Any], fabric_index: int | None
    ) -> None:
        """Record an event of this node (Core spec 7.14) in its event store, if it has one."""


def _fabric_field(attr: AttributeDef) -> tuple[type[Struct], str]:
    """The struct class of a fabric-scoped list attribute and the name of its FabricIndex field."""
    item = attr.type.item if isinstance(attr.type, List) else None
    if isinstance(item, StructType):
        for spec in item.struct_class.FIELDS:
            if spec.tag == FABRIC_INDEX_TAG:
                return item.struct_class, spec.name
    raise TypeError(f"{attr.name}: fabric-scoped attributes are lists of structs with a 0xFE field")


def _status_for(exc: SchemaError, *, command: bool) -> Status:
    # Writes answer CONSTRAINT_ERROR for every decode failure: the spec names no other status for a value that
    # does not fit the attribute, and INVALID_DATA_TYPE is internal-only in the SDK (connectedhomeip #31020).
    if isinstance(exc, ConstraintError) or not command:
        return Status.CONSTRAINT_ERROR
    return Status.INVALID_COMMAND


class ClusterServer:
    """Base of every cluster server. Subclasses set ``CLUSTER`` and add ``on_``/``read_``/``validate_``."""

    CLUSTER: ClassVar[ClusterDef]

    def __init__(self) -> None:
        if not hasattr(type(self), "CLUSTER"):
            raise TypeError(f"{type(self).__name__} must set CLUSTER")
        definition = self.CLUSTER
        self.endpoint: int | None = None
        self._host: ClusterHost | None = None
        # Copy list defaults: a ClusterDef is shared by every instance of the cluster.
        self._values: dict[int, Any] = {
            a.id: list(a.default) if isinstance(a.default, list) else a.default for a in definition.attributes
        }
        self._version = secrets.randbits(32)
        self._readers: dict[int, Callable[[RequestContext | None], Any]] = {}
        self._validators: dict[int, Callable[[RequestContext, Any], Any]] = {}
        for attr in definition.attributes:
            snake = snake_case(attr.name)
            if (reader := getattr(self, f"read_{snake}", None)) is not None:
                self._readers[attr.id] = reader
            if (validator := getattr(self, f"validate_{snake}", None)) is not None:
                self._validators[attr.id] = validator
        self._handlers: dict[int, Callable[[RequestContext, Any], Any]] = {}
        for command in definition.commands:
            if (handler := getattr(self, f"on_{snake_case(command.name)}", None)) is not None:
                self._handlers[command.id] = handler

    # ------------------------------------------------------------------------------------------ identity

    @property
    def cluster_id(self) -> int:
        return self.CLUSTER.id

    @property
    def data_version(self) -> int:
        return self._version

    @property
    def feature_map(self) -> int:
        return self.CLUSTER.feature_map

    def serves(self, subject: SubjectDescriptor) -> bool:
        """Whether this instance serves ``subject`` at all; asked before the ACL, with the same effect as an ACL
        denial (UNSUPPORTED_ACCESS on a concrete path, nothing on a wildcard path). Every subject by default; a
        cluster that belongs to one fabric (the Joint Fabric Datastore) narrows it."""
        return True

    # ------------------------------------------------------------------------------------------ lifecycle

    def attach(self, endpoint: int, host: ClusterHost | None) -> None:
        """Mount on ``endpoint``: load persisted attribute values, then run ``started()``."""
        if self.endpoint is not None:
            raise LocalProtocolError(f"{type(self).__name__} is already on endpoint {self.endpoint}")
        self.endpoint = endpoint
        self._host = host
        if host is not None:
            for attr in self.CLUSTER.attributes:
                if attr.persistent:
                    data = host.load_attribute(endpoint, self.cluster_id, attr.id)
                    if data is not None:
                        self._values[attr.id] = self._decode_stored(attr, data)
        self.started()

    def started(self) -> None:
        """Hook: runs once after persisted values are loaded (e.g. to count a reboot)."""

    def structure_changed(self) -> None:
        """Hook: the endpoint tree gained an endpoint or a server (the Descriptor server derives its lists again)."""

    def emit_event(self, event_id: int, data: dict[int, Any], *, fabric_index: int | None = None) -> None:
        """Emit one of this cluster's events (its ``EventDef`` in the schema) with ``data``, the event's TLV
        struct; ``fabric_index`` for a fabric-sensitive event. An unmounted server (a unit test's) emits nothing."""
        definition = self.CLUSTER.event_by_id[event_id]
        if self._host is not None and self.endpoint is not None:
            self._host.emit_event(self.endpoint, self.cluster_id, definition, data, fabric_index)

    def _decode_stored(self, attr: AttributeDef, data: bytes) -> Any:
        try:
            return self._from_tlv(attr, tlv.decode(data))
        except DecodeError as exc:
            raise StorageError(f"stored {self.CLUSTER.name}.{attr.name} does not decode: {exc}") from exc

    # ------------------------------------------------------------------------------------------ state

    def attribute(self, attribute: int) -> AttributeDef:
        attr = self.CLUSTER.attribute_by_id.get(attribute)
        if attr is None:
            raise LocalProtocolError(f"{self.CLUSTER.name} has no attribute 0x{attribute:04x}")
        return attr

    def get(self, attribute: int) -> Any:
        """The attribute's stored Python value (``None`` = absent, ``NULL`` = null)."""
        self.attribute(attribute)
        return self._values[attribute]

    def set(self, attribute: int, value: Any) -> bool:
        """Store ``value`` (validated against the schema); returns whether it changed."""
        attr = self.attribute(attribute)
        if value is None and attr.persistent:
            # Storage has no "absent" marker; an absent persistent attribute would come back on restart.
            raise LocalProtocolError(f"{self.CLUSTER.name}.{attr.name} is persistent and cannot become absent")
        encoded = self._to_tlv(attr, value)
        old = self._values[attribute]
        if old == value and type(old) is type(value):
            return False
        self._commit(attr, value, encoded)
        return True

    def touch(self, attribute: int) -> None:
        """Report a change of a computed (``read_``) attribute: bumps the DataVersion, notifies."""
        self._changed(self.attribute(attribute), self._values[attribute])

    def _commit(self, attr: AttributeDef, value: Any, encoded: Any) -> None:
        # Store first: if storage fails, memory is still the old value and nothing needs undoing.
        if attr.persistent and self._host is not None and self.endpoint is not None:
            self._host.store_attribute(self.endpoint, self.cluster_id, attr.id, tlv.encode(encoded))
        old = self._values[attr.id]
        self._values[attr.id] = value
        self._changed(attr, old)

    def _changed(self, attr: AttributeDef, old: Any) -> None:
        old_version = self._version
        self._version = (self._version + 1) & 0xFFFF_FFFF
        if self._host is None or self.endpoint is None:
            return

        def undo() -> None:
            # Storage is rolled back by the same transaction; only memory needs restoring here.
            self._values[attr.id] = old
            self._version = old_version

        self._host.attribute_changed(self.endpoint, self.cluster_id, attr.id, undo)

    def _to_tlv(self, attr: AttributeDef, value: Any) -> Any:
        if value is NULL:
            if not attr.nullable:
                raise ConstraintError(f"{self.CLUSTER.name}.{attr.name} is not nullable")
            return None
        if value is None:
            return None  # absent; nothing to encode
        return attr.type.to_tlv(value)

    def _from_tlv(self, attr: AttributeDef, value: Any) -> Any:
        if value is None:
            if not attr.nullable:
                raise WrongTypeError(f"{self.CLUSTER.name}.{attr.name} is not nullable")
            return NULL
        return attr.type.from_tlv(value)

    # ------------------------------------------------------------------------------------------ metadata

    def attribute_ids(self) -> list[int]:
        """Implemented attribute ids, globals included, ascending (the AttributeList value)."""
        ids = [a.id for a in self.CLUSTER.attributes if self._values[a.id] is not None or a.id in self._readers]
        return sorted(ids + list(GLOBAL_ATTRIBUTE_IDS))

    def accepted_command_ids(self) -> list[int]:
        return sorted(self._handlers)

    def generated_command_ids(self) -> list[int]:
        by_id = self.CLUSTER.command_by_id
        return sorted({r for c in self._handlers if (r := by_id[c].response_id) is not None})

    def has_attribute(self, attribute: int) -> bool:
        return attribute in GLOBAL_ATTRIBUTE_IDS or (
            attribute in self.CLUSTER.attribute_by_id
            and (self._values[attribute] is not None or attribute in self._readers)
        )

    # ------------------------------------------------------------------------------------------ reads

    def read(self, ctx: RequestContext | None, attribute: int) -> Any:
        """The attribute's TLV value as seen by ``ctx`` (None ctx: an internal, unfiltered read)."""
        globals_ = self._global(attribute)
        if globals_ is not None:
            return globals_
        if not self.has_attribute(attribute):
            raise ActionError(Status.UNSUPPORTED_ATTRIBUTE)
        attr = self.CLUSTER.attribute_by_id[attribute]
        reader = self._readers.get(attribute)
        value = reader(ctx) if reader is not None else self._values[attribute]
        if attr.fabric_scoped and value is not NULL:
            return self._read_fabric_scoped(ctx, attr, value)
        return self._to_tlv(attr, value)

    def _global(self, attribute: int) -> Any:
        match attribute:
            case 0xFFFD:
                return self.CLUSTER.revision
            case 0xFFFC:
                return self.feature_map
            case 0xFFFB:
                return self.attribute_ids()
            case 0xFFF9:
                return self.accepted_command_ids()
            case 0xFFF8:
                return self.generated_command_ids()
        return None

    def _read_fabric_scoped(self, ctx: RequestContext | None, attr: AttributeDef, entries: list[Any]) -> list[Any]:
        struct_class, fabric_name = _fabric_field(attr)
        if ctx is None:
            return [e.to_tlv() for e in entries]
        accessing = ctx.subject.fabric_index
        if ctx.fabric_filtered:
            return [e.to_tlv() for e in entries if accessing != 0 and getattr(e, fabric_name) == accessing]
        sensitive: frozenset[int] | None = getattr(struct_class, "FABRIC_SENSITIVE", None)
        out = []
        for entry in entries:
            encoded = entry.to_tlv()
            if getattr(entry, fabric_name) != accessing and (attr.fabric_sensitive or sensitive is not None):
                # Other fabrics' entries keep only their non-sensitive fields (Core spec 7.13.6.2).
                drop = sensitive if sensitive is not None else set(encoded) - {FABRIC_INDEX_TAG}
                encoded = {tag: v for tag, v in encoded.items() if tag not in drop}
            out.append(encoded)
        return out

    def fabric_entries(self, attribute: int, fabric_index: int) -> list[Any]:
        """The stored entries of a fabric-scoped list attribute that belong to ``fabric_index``."""
        _, fabric_name = _fabric_field(self.attribute(attribute))
        return [e for e in self._values[attribute] or () if getattr(e, fabric_name) == fabric_index]

    def remove_fabric_entries(self, fabric_index: int) -> None:
        """Drop ``fabric_index``'s entries from every fabric-scoped list (RemoveFabric, fail-safe rollback)."""
        for attr in self.CLUSTER.attributes:
            if attr.fabric_scoped and self._values[attr.id] is not None:
                _, fabric_name = _fabric_field(attr)
                kept = [e for e in self._values[attr.id] if getattr(e, fabric_name) != fabric_index]
                self.set(attr.id, kept)

    # ------------------------------------------------------------------------------------------ writes

    def write(self, ctx: RequestContext, attribute: int, value: Any, op: ListOperation) -> None:
        """Apply one write from the IM (TLV value). Raises ``ActionError`` with the status to report."""
        if attribute in GLOBAL_ATTRIBUTE_IDS:
            raise ActionError(Status.UNSUPPORTED_WRITE)
        if not self.has_attribute(attribute):
            raise ActionError(Status.UNSUPPORTED_ATTRIBUTE)
        attr = self.CLUSTER.attribute_by_id[attribute]
        if not attr.writable:
            raise ActionError(Status.UNSUPPORTED_WRITE)
        if attr.fabric_scoped and ctx.subject.fabric_index == 0:
            # No accessing fabric (PASE before AddNOC): nothing to scope the entries to (Core spec 8.7.3.2).
            raise ActionError(Status.UNSUPPORTED_ACCESS)
        if op is ListOperation.APPEND and not attr.is_list:
            raise ActionError(Status.INVALID_ACTION)
        try:
            if op is ListOperation.APPEND and isinstance(attr.type, List):
                new = self._append(ctx, attr, attr.type.item.from_tlv(value))
            else:
                new = self._from_tlv(attr, value)
                if attr.fabric_scoped:
                    new = self._replace_fabric(ctx, attr, new)
                elif (validator := self._validators.get(attr.id)) is not None:
                    new = validator(ctx, new)
            self.set(attr.id, new)
        except SchemaError as exc:
            raise ActionError(_status_for(exc, command=False), message=str(exc)) from exc

    def _stamp(self, attr: AttributeDef, entries: list[Any], fabric_index: int) -> list[Any]:
        _, fabric_name = _fabric_field(attr)
        return [dataclasses.replace(e, **{fabric_name: fabric_index}) for e in entries]

    def _replace_fabric(self, ctx: RequestContext, attr: AttributeDef, entries: Any) -> list[Any]:
        accessing = ctx.subject.fabric_index
        mine = self._stamp(attr, list(entries), accessing)
        if (validator := self._validators.get(attr.id)) is not None:
            mine = validator(ctx, mine)
        _, fabric_name = _fabric_field(attr)
        others = [e for e in self._values[attr.id] or () if getattr(e, fabric_name) != accessing]
        return others + list(mine)

    def _append(self, ctx: RequestContext, attr: AttributeDef, item: Any) -> list[Any]:
        current = list(self._values[attr.id] or ())
        if attr.fabric_scoped:
            accessing = ctx.subject.fabric_index
            _, fabric_name = _fabric_field(attr)
            mine = [e for e in current if getattr(e, fabric_name) == accessing]
            return self._replace_fabric(ctx, attr, [*mine, item])
        new = [*current, item]
        if (validator := self._validators.get(attr.id)) is not None:
            new = validator(ctx, new)
        return new

    # ------------------------------------------------------------------------------------------ invokes

    def invoke(self, ctx: RequestContext, command: int, fields: Any) -> CommandResponse | None:
        definition = self.CLUSTER.command_by_id.get(command)
        handler = self._handlers.get(command)
        if definition is None or handler is None:
            raise ActionError(Status.UNSUPPORTED_COMMAND)
        if definition.fabric_scoped and ctx.subject.fabric_index == 0:
            raise ActionError(Status.UNSUPPORTED_ACCESS)
        try:
            request = definition.request.from_tlv({} if fields is None else fields)
        except SchemaError as exc:
            raise ActionError(_status_for(exc, command=True), message=str(exc)) from exc
        result = handler(ctx, request)
        if result is None or isinstance(result, CommandResponse):
            return result
        if definition.response_id is None or not isinstance(result, Struct):
            raise LocalProtocolError(f"{self.CLUSTER.name}.{definition.name} returned {type(result).__name__}")
        return CommandResponse(definition.response_id, result.to_tlv())
