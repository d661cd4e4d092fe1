"""Declarative cluster definitions: one ``ClusterDef`` per cluster holds every attribute and command id.

Server and client both read these tables; numeric ids appear nowhere else (README, Architecture: every id of a
cluster lives in its schema table).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from jfds_device.codec.schema import FieldType, List, Struct
from jfds_device.errors import LocalProtocolError, SchemaError

FABRIC_INDEX_TAG = 0xFE
"""The FabricIndex field of every fabric-scoped struct (Core spec 7.13.6): the server stamps it on write."""


class Privilege(enum.IntEnum):
    """Access privileges (Core spec 6.6.2.2); the order is the inheritance order. The one Privilege of the stack:
    the ACL engine, the IM provider, and the AccessControl and JFDS schemas (their AccessControlEntryPrivilegeEnum
    fields) all use it; the values are the AccessControlEntryPrivilegeEnum's (Core spec 9.10.4.2)."""

    VIEW = 1
    PROXY_VIEW = 2
    OPERATE = 3
    MANAGE = 4
    ADMINISTER = 5


class AuthMode(enum.IntEnum):
    """How a subject authenticated (Core spec 6.6.2.1), with the AccessControlEntryAuthModeEnum values (Core spec
    9.10.4.3). The one AuthMode of the stack: secure sessions (PASE, CASE), subject descriptors, the ACL engine
    and the AccessControl and JFDS schemas use it."""

    PASE = 1
    CASE = 2
    GROUP = 3


@dataclass(frozen=True, slots=True)
class AttributeDef:
    id: int
    name: str
    type: FieldType
    nullable: bool = False
    writable: bool = False
    read_privilege: Privilege = Privilege.VIEW
    write_privilege: Privilege = Privilege.OPERATE
    fabric_scoped: bool = False  # a list of fabric-scoped structs (Core spec 7.12)
    fabric_sensitive: bool = False
    timed_write: bool = False
    persistent: bool = False
    default: Any = None

    @property
    def is_list(self) -> bool:
        return isinstance(self.type, List)


@dataclass(frozen=True, slots=True)
class CommandDef:
    id: int
    name: str
    request: type[Struct]
    response_id: int | None = None  # None: the command answers with a plain status
    response: type[Struct] | None = None
    privilege: Privilege = Privilege.OPERATE
    timed: bool = False
    fabric_scoped: bool = False


class EventPriority(enum.IntEnum):
    """An event's priority (Core spec 7.14.2.1): which buffer keeps it and how long."""

    DEBUG = 0
    INFO = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class EventDef:
    """One event of a cluster (Core spec 7.14): its id, priority and who may read it."""

    id: int
    name: str
    priority: EventPriority = EventPriority.INFO
    read_privilege: Privilege = Privilege.VIEW
    fabric_sensitive: bool = False  # delivered only to its fabric's subjects (Core spec 7.14.3)


@dataclass(frozen=True, slots=True)
class ClusterDef:
    id: int
    name: str
    revision: int
    attributes: tuple[AttributeDef, ...]
    commands: tuple[CommandDef, ...] = ()
    feature_map: int = 0
    events: tuple[EventDef, ...] = ()
    attribute_by_id: dict[int, AttributeDef] = field(init=False, repr=False, compare=False)
    command_by_id: dict[int, CommandDef] = field(init=False, repr=False, compare=False)
    event_by_id: dict[int, EventDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attribute_by_id", {a.id: a for a in self.attributes})
        object.__setattr__(self, "command_by_id", {c.id: c for c in self.commands})
        object.__setattr__(self, "event_by_id", {e.id: e for e in self.events})
        if len(self.attribute_by_id) != len(self.attributes) or len(self.command_by_id) != len(self.commands):
            raise TypeError(f"{self.name}: duplicate attribute or command id")
        for command in self.commands:
            _COMMANDS.setdefault(command.request, {})[(self.id, command.id)] = (self, command)

    def attribute(self, attribute_id: int) -> AttributeRef:
        """The attribute as a client names it: with its cluster (``im.client`` reads and writes these)."""
        definition = self.attribute_by_id.get(attribute_id)
        if definition is None:
            raise LocalProtocolError(f"{self.name} has no attribute 0x{attribute_id:04X}")
        return AttributeRef(self, definition)

    @property
    def generated_command_ids(self) -> list[int]:
        return sorted({c.response_id for c in self.commands if c.response_id is not None})


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """One attribute of one cluster, for a client: the ids to put on the wire and the type to decode with."""

    cluster: ClusterDef
    definition: AttributeDef

    @property
    def cluster_id(self) -> int:
        return self.cluster.id

    @property
    def attribute_id(self) -> int:
        return self.definition.id

    def decode(self, value: Any) -> Any:
        """A reported TLV value as the schema's value (a top-level null stays None); ``SchemaError`` if it does
        not fit."""
        return None if value is None else self.definition.type.from_tlv(value)

    def decode_item(self, element: Any) -> Any | None:
        """One element of a list attribute as the schema's value, or None if it does not fit the schema (a
        peer's entry we cannot read: callers keep it as it is)."""
        if not isinstance(self.definition.type, List):
            raise LocalProtocolError(f"{self.definition.name} is not a list")
        try:
            return self.definition.type.item.from_tlv(element)
        except SchemaError:
            return None

    def __str__(self) -> str:
        return f"{self.cluster.name}.{self.definition.name}"


# Request struct → the cluster and command it is the request of, filled in as each ClusterDef is built.
_COMMANDS: dict[type[Struct], dict[tuple[int, int], tuple[ClusterDef, CommandDef]]] = {}


def command_of(request: Struct) -> tuple[ClusterDef, CommandDef]:
    """The cluster and command ``request`` is the request struct of (its class, or the nearest base class that
    is one: a schema may extend a request with provisional fields)."""
    for cls in type(request).__mro__:
        found = list(_COMMANDS.get(cls, {}).values())
        if found:
            if len(found) > 1:
                names = ", ".join(f"{c.name}.{d.name}" for c, d in found)
                raise LocalProtocolError(f"{cls.__name__} is the request of several commands ({names})")
            return found[0]
    raise LocalProtocolError(f"{type(request).__name__} is not the request of a known command")
