"""Typed schema layer over TLV: field types with bounds, and struct classes with field ids.

A struct is declared once and used for both directions::

    @struct
    class Target:
        cluster: int | None = field(0, UINT32, nullable=True)
        endpoint: int | None = field(1, UINT16, nullable=True)

``Target(...).to_tlv()`` gives the plain TLV value (see ``tlv``), ``Target.from_tlv(value)`` validates and
builds one. Conventions:

* an *optional* field that is absent is ``None``;
* a *nullable* field that is TLV null is ``NULL`` (so optional + nullable fields stay unambiguous);
* unknown context tags in a struct are ignored (Core spec 7.19.1: forward compatibility), missing mandatory
  fields, wrong element types and out-of-range values raise ``SchemaError`` subclasses that tell the IM layer
  which status to answer.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, ClassVar, Final, TypeVar

from jfds_device.codec import tlv
from jfds_device.errors import ConstraintError, MissingFieldError, SchemaError, WrongTypeError

__all__ = [
    "ANY",
    "BOOL",
    "DOUBLE",
    "FLOAT",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "NULL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "Bitmap",
    "ConstraintError",
    "Enum",
    "FieldType",
    "Int",
    "List",
    "MissingFieldError",
    "Octets",
    "Str",
    "Struct",
    "StructType",
    "UInt",
    "WrongTypeError",
    "field",
    "struct",
]


class _Null:
    """The TLV null of a nullable field. Falsy, a singleton, and distinct from an absent optional (None)."""

    _instance: ClassVar[_Null | None] = None

    def __new__(cls) -> _Null:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NULL"

    def __reduce__(self) -> str:
        return "NULL"


NULL: Final = _Null()


class FieldType:
    """Converts one value between its Python form and its TLV form, validating both ways."""

    python_type: ClassVar[type | tuple[type, ...]] = object

    def to_tlv(self, value: Any) -> Any:
        return value

    def from_tlv(self, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return type(self).__name__


class _Any(FieldType):
    """Any TLV value, passed through untouched (e.g. IM attribute data before the cluster decodes it)."""


ANY: Final = _Any()


class UInt(FieldType):
    def __init__(self, bits: int, minimum: int = 0, maximum: int | None = None) -> None:
        self.bits = bits
        self.minimum = minimum
        self.maximum = (1 << bits) - 1 if maximum is None else maximum

    def to_tlv(self, value: Any) -> int:
        if type(value) is not int and not (isinstance(value, int) and not isinstance(value, bool)):
            raise WrongTypeError(f"expected an unsigned integer, got {type(value).__name__}")
        if not self.minimum <= value <= self.maximum:
            raise ConstraintError(f"{value} outside {self.minimum}..{self.maximum}")
        return int(value)

    def from_tlv(self, value: Any) -> int:
        if type(value) is not int:
            raise WrongTypeError(f"expected an unsigned integer, got {_tlv_kind(value)}")
        if not self.minimum <= value <= self.maximum:
            raise ConstraintError(f"{value} outside {self.minimum}..{self.maximum}")
        return value

    def describe(self) -> str:
        return f"uint{self.bits}"


class Int(FieldType):
    def __init__(self, bits: int, minimum: int | None = None, maximum: int | None = None) -> None:
        self.bits = bits
        self.minimum = -(1 << (bits - 1)) if minimum is None else minimum
        self.maximum = (1 << (bits - 1)) - 1 if maximum is None else maximum

    def to_tlv(self, value: Any) -> tlv.SInt:
        if not isinstance(value, int) or isinstance(value, bool):
            raise WrongTypeError(f"expected a signed integer, got {type(value).__name__}")
        if not self.minimum <= value <= self.maximum:
            raise ConstraintError(f"{value} outside {self.minimum}..{self.maximum}")
        return tlv.SInt(value)

    def from_tlv(self, value: Any) -> int:
        if type(value) is not tlv.SInt:
            raise WrongTypeError(f"expected a signed integer, got {_tlv_kind(value)}")
        if not self.minimum <= value <= self.maximum:
            raise ConstraintError(f"{value} outside {self.minimum}..{self.maximum}")
        return int(value)

    def describe(self) -> str:
        return f"int{self.bits}"


class _Bool(FieldType):
    def to_tlv(self, value: Any) -> bool:
        if type(value) is not bool:
            raise WrongTypeError(f"expected a boolean, got {type(value).__name__}")
        return value

    from_tlv = to_tlv


class _Float(FieldType):
    def __init__(self, single: bool) -> None:
        self.single = single

    def to_tlv(self, value: Any) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise WrongTypeError(f"expected a number, got {type(value).__name__}")
        return tlv.Float32(value) if self.single else float(value)

    def from_tlv(self, value: Any) -> float:
        # A double field accepts a single on the wire (the SDK's reader does too); a single needs a single.
        if type(value) is tlv.Float32 or (type(value) is float and not self.single):
            return float(value)
        raise WrongTypeError(f"expected a {'single' if self.single else 'double'}, got {_tlv_kind(value)}")


class _Sized(FieldType):
    kind: ClassVar[type]

    def __init__(self, max_length: int | None = None, min_length: int = 0) -> None:
        self.max_length = max_length
        self.min_length = min_length

    def _check(self, value: Any, wire: bool) -> Any:
        if type(value) is not self.kind:
            got = _tlv_kind(value) if wire else type(value).__name__
            raise WrongTypeError(f"expected {self.describe()}, got {got}")
        size = len(value.encode("utf-8")) if isinstance(value, str) else len(value)
        if size < self.min_length or (self.max_length is not None and size > self.max_length):
            raise ConstraintError(f"length {size} outside {self.min_length}..{self.max_length}")
        return value

    def to_tlv(self, value: Any) -> Any:
        return self._check(value, False)

    def from_tlv(self, value: Any) -> Any:
        return self._check(value, True)


class Str(_Sized):
    """UTF-8 string; lengths count bytes, as the spec's char_string constraints do."""

    kind = str

    def describe(self) -> str:
        return "a UTF-8 string"


class Octets(_Sized):
    kind = bytes

    def to_tlv(self, value: Any) -> bytes:
        return self._check(bytes(value) if isinstance(value, bytearray | memoryview) else value, False)

    def describe(self) -> str:
        return "an octet string"


E = TypeVar("E", bound=enum.IntEnum)


class Enum(FieldType):
    """An enumeration: an unsigned integer restricted to the members of ``enum_class``."""

    def __init__(self, enum_class: type[enum.IntEnum], bits: int = 8) -> None:
        self.enum_class = enum_class
        self.bits = bits
        self._members = {int(m): m for m in enum_class}

    def to_tlv(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise WrongTypeError(f"expected {self.enum_class.__name__}, got {type(value).__name__}")
        if int(value) not in self._members:
            raise ConstraintError(f"{value} is not a valid {self.enum_class.__name__}")
        return int(value)

    def from_tlv(self, value: Any) -> enum.IntEnum:
        if type(value) is not int:
            raise WrongTypeError(f"expected {self.enum_class.__name__}, got {_tlv_kind(value)}")
        member = self._members.get(value)
        if member is None:
            raise ConstraintError(f"{value} is not a valid {self.enum_class.__name__}")
        return member

    def describe(self) -> str:
        return f"enum8 {self.enum_class.__name__}" if self.bits == 8 else f"enum{self.bits}"


class Bitmap(FieldType):
    """A bitmap: an unsigned integer whose set bits must all be defined by ``flag_class``."""

    def __init__(self, flag_class: type[enum.IntFlag], bits: int = 8) -> None:
        self.flag_class = flag_class
        self.bits = bits
        self._mask = 0
        for member in flag_class:
            self._mask |= int(member)

    def _check(self, value: int) -> int:
        if value & ~self._mask:
            raise ConstraintError(f"undefined bits 0x{value & ~self._mask:x} in {self.flag_class.__name__}")
        return value

    def to_tlv(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise WrongTypeError(f"expected {self.flag_class.__name__}, got {type(value).__name__}")
        return self._check(int(value))

    def from_tlv(self, value: Any) -> enum.IntFlag:
        if type(value) is not int:
            raise WrongTypeError(f"expected {self.flag_class.__name__}, got {_tlv_kind(value)}")
        return self.flag_class(self._check(value))


class List(FieldType):
    """A TLV array of ``item`` values, at most ``max_length`` long."""

    def __init__(self, item: FieldType, max_length: int | None = None, min_length: int = 0) -> None:
        self.item = item
        self.max_length = max_length
        self.min_length = min_length

    def _check_length(self, n: int) -> None:
        if n < self.min_length or (self.max_length is not None and n > self.max_length):
            raise ConstraintError(f"list length {n} outside {self.min_length}..{self.max_length}")

    def to_tlv(self, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise WrongTypeError(f"expected a list, got {type(value).__name__}")
        self._check_length(len(value))
        convert = self.item.to_tlv
        return [convert(v) for v in value]

    def from_tlv(self, value: Any) -> list[Any]:
        if type(value) is not list:
            raise WrongTypeError(f"expected an array, got {_tlv_kind(value)}")
        self._check_length(len(value))
        convert = self.item.from_tlv
        return [convert(v) for v in value]

    def describe(self) -> str:
        return f"list of {self.item.describe()}"


class StructType(FieldType):
    def __init__(self, struct_class: type[Struct]) -> None:
        self.struct_class = struct_class

    def to_tlv(self, value: Any) -> dict[int, Any]:
        if not isinstance(value, self.struct_class):
            raise WrongTypeError(f"expected {self.struct_class.__name__}, got {type(value).__name__}")
        return value.to_tlv()

    def from_tlv(self, value: Any) -> Struct:
        return self.struct_class.from_tlv(value)

    def describe(self) -> str:
        return self.struct_class.__name__


UINT8: Final = UInt(8)
UINT16: Final = UInt(16)
UINT32: Final = UInt(32)
UINT64: Final = UInt(64)
INT8: Final = Int(8)
INT16: Final = Int(16)
INT32: Final = Int(32)
INT64: Final = Int(64)
BOOL: Final = _Bool()
FLOAT: Final = _Float(single=True)
DOUBLE: Final = _Float(single=False)


# ---------------------------------------------------------------------------------------------------- structs


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    tag: int
    type: FieldType
    optional: bool
    nullable: bool


_SPEC_KEY: Final = "jfds_tlv_field"


def field(
    tag: int,
    ftype: FieldType,
    *,
    optional: bool = False,
    nullable: bool = False,
    default: Any = dataclasses.MISSING,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """Declare a struct field with its context tag and type.

    Optional fields default to ``None`` (absent); a nullable mandatory field defaults to ``NULL``.
    """
    if default is dataclasses.MISSING and default_factory is dataclasses.MISSING:
        if optional:
            default = None
        elif nullable:
            default = NULL
    meta = {_SPEC_KEY: (tag, ftype, optional, nullable)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Struct:
    """Base of schema structs. Subclasses are made with ``@struct``."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()
    _BY_TAG: ClassVar[dict[int, FieldSpec]] = {}
    # Set where the spec demands canonical member order (e.g. TLV certificates, Core spec 6.5.2).
    TAGS_ASCENDING: ClassVar[bool] = False

    def to_tlv(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for spec in self.FIELDS:
            value = getattr(self, spec.name)
            if value is None and spec.optional:
                continue
            if value is NULL or (value is None and spec.nullable):
                if not spec.nullable:
                    raise ConstraintError(f"{type(self).__name__}.{spec.name} is not nullable")
                out[spec.tag] = None
                continue
            if value is None:
                raise MissingFieldError(f"{type(self).__name__}.{spec.name} is mandatory")
            try:
                out[spec.tag] = spec.type.to_tlv(value)
            except SchemaError as exc:
                raise type(exc)(f"{type(self).__name__}.{spec.name}: {exc}") from None
        return out

    @classmethod
    def from_tlv(cls, value: Any) -> Any:
        if type(value) is not dict:
            raise WrongTypeError(f"{cls.__name__}: expected a structure, got {_tlv_kind(value)}")
        if cls.TAGS_ASCENDING:
            _check_ascending(cls.__name__, value)
        kwargs: dict[str, Any] = {}
        for spec in cls.FIELDS:
            raw = value.get(spec.tag, _ABSENT)
            if raw is _ABSENT:
                if not spec.optional:
                    raise MissingFieldError(f"{cls.__name__}.{spec.name} (tag {spec.tag}) is missing")
                kwargs[spec.name] = None
            elif raw is None:
                if not spec.nullable:
                    raise WrongTypeError(f"{cls.__name__}.{spec.name} is not nullable")
                kwargs[spec.name] = NULL
            else:
                try:
                    kwargs[spec.name] = spec.type.from_tlv(raw)
                except SchemaError as exc:
                    raise type(exc)(f"{cls.__name__}.{spec.name}: {exc}") from None
        return cls(**kwargs)

    def encode(self, tag: tlv.Tag = None) -> bytes:
        return tlv.encode(self.to_tlv(), tag)

    @classmethod
    def decode(cls, data: bytes) -> Any:
        return cls.from_tlv(tlv.decode(data))


_ABSENT: Final = object()

S = TypeVar("S", bound=type)


def struct(cls: S) -> S:
    """Make ``cls`` a frozen, slotted, keyword-only dataclass and a ``Struct`` with its field table."""
    if not issubclass(cls, Struct):
        raise TypeError(f"@struct classes derive from schema.Struct: {cls.__name__}")
    dc = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    specs = []
    for f in dataclasses.fields(dc):
        meta = f.metadata.get(_SPEC_KEY)
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name} needs schema.field(tag, type)")
        specs.append(FieldSpec(f.name, *meta))
    tags = [s.tag for s in specs]
    if len(set(tags)) != len(tags):
        raise TypeError(f"{cls.__name__} declares a tag twice")
    dc.FIELDS = tuple(sorted(specs, key=lambda s: s.tag))  # type: ignore[attr-defined]
    dc._BY_TAG = {s.tag: s for s in specs}  # type: ignore[attr-defined]
    return dc


def _check_ascending(name: str, members: dict[Any, Any]) -> None:
    previous = -1
    for tag in members:
        if type(tag) is int:
            if tag <= previous:
                raise SchemaError(f"{name}: context tag {tag} out of order", status=0x80)
            previous = tag


def _tlv_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        int: "an unsigned integer",
        tlv.SInt: "a signed integer",
        bool: "a boolean",
        str: "a UTF-8 string",
        bytes: "an octet string",
        dict: "a structure",
        list: "an array",
        tlv.TLVList: "a list",
        float: "a double",
        tlv.Float32: "a float",
    }.get(type(value), type(value).__name__)
