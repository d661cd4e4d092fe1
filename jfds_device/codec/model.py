"""Declarative cluster definitions: one ``ClusterDef`` per cluster holds every attribute and command id.

Server and client both read these tables; numeric ids appear nowhere else (README, Architecture: every id of a
cluster lives in its schema table).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from jfds_device.codec.schema import FieldType, Struct


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
        from jfds_device.codec.schema import List

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


@dataclass(frozen=True, slots=True)
class ClusterDef:
    id: int
    name: str
    revision: int
    attributes: tuple[AttributeDef, ...]
    commands: tuple[CommandDef, ...] = ()
    feature_map: int = 0
    attribute_by_id: dict[int, AttributeDef] = field(init=False, repr=False, compare=False)
    command_by_id: dict[int, CommandDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attribute_by_id", {a.id: a for a in self.attributes})
        object.__setattr__(self, "command_by_id", {c.id: c for c in self.commands})
        if len(self.attribute_by_id) != len(self.attributes) or len(self.command_by_id) != len(self.commands):
            raise TypeError(f"{self.name}: duplicate attribute or command id")

    @property
    def generated_command_ids(self) -> list[int]:
        return sorted({c.response_id for c in self.commands if c.response_id is not None})
