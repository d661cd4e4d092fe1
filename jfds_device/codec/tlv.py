"""Matter TLV (Core spec Appendix A): a strict, total decoder and a minimal-width encoder.

Value model (what ``decode`` returns and ``encode`` accepts):

=====================  =========================================================
TLV element            Python value
=====================  =========================================================
unsigned integer       ``int``
signed integer         ``SInt`` (an ``int`` subclass, so the signedness round-trips)
boolean                ``bool``
float32 / float64      ``Float32`` (a ``float`` subclass) / ``float``
UTF-8 string           ``str``
octet string           ``bytes``
null                   ``None``
structure              ``dict`` {tag: value}, in wire order, tags unique
array                  ``list`` of anonymous elements
list                   ``TLVList`` of ``(tag, value)`` pairs
=====================  =========================================================

Tags: ``None`` (anonymous), ``int`` 0..255 (context), ``CommonTag``, ``ImplicitTag`` or ``ProfileTag``.
A ``Raw`` value is an already encoded anonymous element that is spliced in under any tag, so large
responses can be encoded once and chunked by size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from jfds_device.errors import LocalProtocolError, TLVDecodeError

__all__ = [
    "MAX_DEPTH",
    "CommonTag",
    "Float32",
    "ImplicitTag",
    "ProfileTag",
    "Raw",
    "SInt",
    "TLVList",
    "Tag",
    "decode",
    "decode_element",
    "encode",
    "encode_element",
]

# Nesting bound for hostile input; IM messages nest about ten deep.
MAX_DEPTH = 32


class SInt(int):
    """An integer that is (or will be) encoded as a TLV *signed* integer."""

    __slots__ = ()


class Float32(float):
    """A float encoded as a 4-byte IEEE 754 single."""

    __slots__ = ()


class TLVList(list):  # type: ignore[type-arg]
    """A TLV *list* container: ordered ``(tag, value)`` pairs, tags may repeat or be anonymous."""

    __slots__ = ()


class Raw(bytes):
    """One complete TLV element, encoded with an anonymous tag, to be written verbatim under any tag."""

    __slots__ = ()


# Dataclasses, not NamedTuples: CommonTag(1) and ImplicitTag(1) are different tags and must not compare equal.
@dataclass(frozen=True, slots=True)
class CommonTag:
    """Common-profile tag (2- or 4-byte form chosen by size)."""

    number: int


@dataclass(frozen=True, slots=True)
class ImplicitTag:
    """Implicit-profile tag (2- or 4-byte form chosen by size)."""

    number: int


@dataclass(frozen=True, slots=True)
class ProfileTag:
    """Fully-qualified tag: vendor id, profile number, tag number (6- or 8-byte form)."""

    vendor_id: int
    profile: int
    number: int


Tag = None | int | CommonTag | ImplicitTag | ProfileTag

# Element types (low 5 bits of the control byte).
_INT8, _INT16, _INT32, _INT64 = 0x00, 0x01, 0x02, 0x03
_UINT8, _UINT16, _UINT32, _UINT64 = 0x04, 0x05, 0x06, 0x07
_FALSE, _TRUE, _FLOAT32, _FLOAT64 = 0x08, 0x09, 0x0A, 0x0B
_UTF8_1, _BYTES_1 = 0x0C, 0x10
_NULL, _STRUCT, _ARRAY, _LIST, _END = 0x14, 0x15, 0x16, 0x17, 0x18

# Tag controls (top 3 bits).
_ANON, _CTX, _COMMON2, _COMMON4, _IMPL2, _IMPL4, _FQ6, _FQ8 = (x << 5 for x in range(8))

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_FQ6_TAG = struct.Struct("<HHH")
_FQ8_TAG = struct.Struct("<HHI")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_INT_FMT = {  # element type -> (struct, size)
    _INT8: struct.Struct("<b"),
    _INT16: struct.Struct("<h"),
    _INT32: struct.Struct("<i"),
    _INT64: struct.Struct("<q"),
    _UINT8: struct.Struct("<B"),
    _UINT16: struct.Struct("<H"),
    _UINT32: struct.Struct("<I"),
    _UINT64: struct.Struct("<Q"),
}
_TAG_SIZE = {_ANON: 0, _CTX: 1, _COMMON2: 2, _COMMON4: 4, _IMPL2: 2, _IMPL4: 4, _FQ6: 6, _FQ8: 8}


# ---------------------------------------------------------------------------------------------------- decode


def decode(data: bytes) -> Any:
    """Decode exactly one element (any tag) spanning all of ``data`` and return its value."""
    return decode_element(data)[1]


def decode_element(data: bytes) -> tuple[Tag, Any]:
    """Decode exactly one element spanning all of ``data``; return ``(tag, value)``.

    Raises only ``TLVDecodeError``, whatever the input.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TLVDecodeError(f"TLV input must be bytes, not {type(data).__name__}")
    data = bytes(data)
    try:
        tag, value, pos = _read(data, 0, 0)
    except TLVDecodeError:
        raise
    except (struct.error, IndexError) as exc:
        raise TLVDecodeError("truncated TLV element") from exc
    except RecursionError as exc:  # pragma: no cover - MAX_DEPTH keeps us far from it
        raise TLVDecodeError("TLV nesting too deep") from exc
    if pos != len(data):
        raise TLVDecodeError(f"{len(data) - pos} trailing bytes after the TLV element")
    return tag, value


def _read_tag(data: bytes, pos: int, control: int) -> tuple[Tag, int]:
    tc = control & 0xE0
    if tc == _ANON:
        return None, pos
    if tc == _CTX:
        return data[pos], pos + 1
    if tc == _COMMON2:
        return CommonTag(_U16.unpack_from(data, pos)[0]), pos + 2
    if tc == _COMMON4:
        return CommonTag(_U32.unpack_from(data, pos)[0]), pos + 4
    if tc == _IMPL2:
        return ImplicitTag(_U16.unpack_from(data, pos)[0]), pos + 2
    if tc == _IMPL4:
        return ImplicitTag(_U32.unpack_from(data, pos)[0]), pos + 4
    if tc == _FQ6:
        return ProfileTag(*_FQ6_TAG.unpack_from(data, pos)), pos + 6
    return ProfileTag(*_FQ8_TAG.unpack_from(data, pos)), pos + 8


def _read(data: bytes, pos: int, depth: int) -> tuple[Tag, Any, int]:
    """Read one element at ``pos``; return its tag, value and the position after it."""
    control = data[pos]
    pos += 1
    if control & 0xE0:
        tag, pos = _read_tag(data, pos, control)
    else:
        tag = None
    et = control & 0x1F
    if et <= _UINT64:
        fmt = _INT_FMT[et]
        value = fmt.unpack_from(data, pos)[0]
        return tag, (SInt(value) if et <= _INT64 else value), pos + fmt.size
    if et <= _TRUE:
        return tag, et == _TRUE, pos
    if et < _UTF8_1:
        if et == _FLOAT32:
            return tag, Float32(_F32.unpack_from(data, pos)[0]), pos + 4
        return tag, _F64.unpack_from(data, pos)[0], pos + 8
    if et < _NULL:
        width = (et - _UTF8_1) & 3
        if width == 0:
            length = data[pos]
            pos += 1
        elif width == 1:
            length = _U16.unpack_from(data, pos)[0]
            pos += 2
        elif width == 2:
            length = _U32.unpack_from(data, pos)[0]
            pos += 4
        else:
            length = _INT_FMT[_UINT64].unpack_from(data, pos)[0]
            pos += 8
        end = pos + length
        if end > len(data):
            raise TLVDecodeError(f"string length {length} overruns the buffer")
        raw = data[pos:end]
        if et >= _BYTES_1:
            return tag, raw, end
        try:
            return tag, raw.decode("utf-8"), end
        except UnicodeDecodeError as exc:
            raise TLVDecodeError("invalid UTF-8 in a TLV string") from exc
    if et == _NULL:
        return tag, None, pos
    if et == _STRUCT:
        return tag, *_read_struct(data, pos, depth + 1)
    if et == _ARRAY:
        return tag, *_read_array(data, pos, depth + 1)
    if et == _LIST:
        return tag, *_read_list(data, pos, depth + 1)
    if et == _END:
        raise TLVDecodeError("end-of-container outside a container")
    raise TLVDecodeError(f"reserved TLV element type 0x{et:02x}")


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TLVDecodeError(f"TLV containers nested deeper than {MAX_DEPTH}")


def _read_struct(data: bytes, pos: int, depth: int) -> tuple[dict[Tag, Any], int]:
    _check_depth(depth)
    members: dict[Tag, Any] = {}
    while data[pos] != _END:
        tag, value, pos = _read(data, pos, depth)
        if tag is None:
            raise TLVDecodeError("anonymous element inside a structure")
        if tag in members:
            raise TLVDecodeError(f"duplicate tag {tag!r} in a structure")
        members[tag] = value
    return members, pos + 1


def _read_array(data: bytes, pos: int, depth: int) -> tuple[list[Any], int]:
    _check_depth(depth)
    items: list[Any] = []
    append = items.append
    while data[pos] != _END:
        tag, value, pos = _read(data, pos, depth)
        if tag is not None:
            raise TLVDecodeError(f"tagged element {tag!r} inside an array")
        append(value)
    return items, pos + 1


def _read_list(data: bytes, pos: int, depth: int) -> tuple[TLVList, int]:
    _check_depth(depth)
    items = TLVList()
    while data[pos] != _END:
        tag, value, pos = _read(data, pos, depth)
        items.append((tag, value))
    return items, pos + 1


# ---------------------------------------------------------------------------------------------------- encode


def encode(value: Any, tag: Tag = None) -> bytes:
    """Encode ``value`` as one element with ``tag``, choosing the smallest widths."""
    out = bytearray()
    _write(out, tag, value, 0)
    return bytes(out)


encode_element = encode


def _write_control(out: bytearray, tag: Tag, element_type: int) -> None:
    if tag is None:
        out.append(element_type)
    elif isinstance(tag, int) and not isinstance(tag, bool):
        if not 0 <= tag <= 0xFF:
            raise LocalProtocolError(f"context tag {tag} out of range 0..255")
        out.append(_CTX | element_type)
        out.append(tag)
    elif isinstance(tag, CommonTag | ImplicitTag):
        base = _COMMON2 if isinstance(tag, CommonTag) else _IMPL2
        if not 0 <= tag.number <= 0xFFFF_FFFF:
            raise LocalProtocolError(f"profile tag number {tag.number} out of range")
        if tag.number <= 0xFFFF:
            out.append(base | element_type)
            out += _U16.pack(tag.number)
        else:
            out.append((base + 0x20) | element_type)
            out += _U32.pack(tag.number)
    elif isinstance(tag, ProfileTag):
        if not (0 <= tag.vendor_id <= 0xFFFF and 0 <= tag.profile <= 0xFFFF and 0 <= tag.number <= 0xFFFF_FFFF):
            raise LocalProtocolError(f"fully-qualified tag {tag!r} out of range")
        if tag.number <= 0xFFFF:
            out.append(_FQ6 | element_type)
            out += _FQ6_TAG.pack(tag.vendor_id, tag.profile, tag.number)
        else:
            out.append(_FQ8 | element_type)
            out += _FQ8_TAG.pack(tag.vendor_id, tag.profile, tag.number)
    else:
        raise LocalProtocolError(f"not a TLV tag: {tag!r}")


def _write_int(out: bytearray, tag: Tag, value: int, signed: bool) -> None:
    if signed:
        if -0x80 <= value <= 0x7F:
            et = _INT8
        elif -0x8000 <= value <= 0x7FFF:
            et = _INT16
        elif -0x8000_0000 <= value <= 0x7FFF_FFFF:
            et = _INT32
        elif -(1 << 63) <= value < (1 << 63):
            et = _INT64
        else:
            raise LocalProtocolError(f"signed integer {value} does not fit in 64 bits")
    elif value < 0:
        raise LocalProtocolError(f"negative integer {value} must be an SInt to be encoded signed")
    elif value <= 0xFF:
        et = _UINT8
    elif value <= 0xFFFF:
        et = _UINT16
    elif value <= 0xFFFF_FFFF:
        et = _UINT32
    elif value < (1 << 64):
        et = _UINT64
    else:
        raise LocalProtocolError(f"unsigned integer {value} does not fit in 64 bits")
    _write_control(out, tag, et)
    out += _INT_FMT[et].pack(value)


def _write_string(out: bytearray, tag: Tag, raw: bytes, base_type: int) -> None:
    n = len(raw)
    if n <= 0xFF:
        _write_control(out, tag, base_type)
        out.append(n)
    elif n <= 0xFFFF:
        _write_control(out, tag, base_type + 1)
        out += _U16.pack(n)
    elif n <= 0xFFFF_FFFF:
        _write_control(out, tag, base_type + 2)
        out += _U32.pack(n)
    else:  # pragma: no cover - 4 GiB strings never occur in Matter
        _write_control(out, tag, base_type + 3)
        out += _INT_FMT[_UINT64].pack(n)
    out += raw


def _write_raw(out: bytearray, tag: Tag, raw: Raw) -> None:
    if not raw or raw[0] & 0xE0:
        raise LocalProtocolError("a Raw element must be a non-empty anonymous TLV element")
    _write_control(out, tag, raw[0])
    out += memoryview(raw)[1:]


def _write(out: bytearray, tag: Tag, value: Any, depth: int) -> None:
    t = type(value)
    if t is int:
        _write_int(out, tag, value, False)
    elif t is bool:
        _write_control(out, tag, _TRUE if value else _FALSE)
    elif t is str:
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LocalProtocolError("string is not encodable as UTF-8") from exc
        _write_string(out, tag, raw, _UTF8_1)
    elif t is bytes:
        _write_string(out, tag, value, _BYTES_1)
    elif value is None:
        _write_control(out, tag, _NULL)
    elif t is dict:
        _write_control(out, tag, _STRUCT)
        for member_tag, member in value.items():
            if member_tag is None:
                raise LocalProtocolError("structure members need a tag")
            _write(out, member_tag, member, depth + 1)
        out.append(_END)
    elif t is list:
        _write_control(out, tag, _ARRAY)
        for item in value:
            _write(out, None, item, depth + 1)
        out.append(_END)
    elif t is TLVList:
        _write_control(out, tag, _LIST)
        for item_tag, item in value:
            _write(out, item_tag, item, depth + 1)
        out.append(_END)
    elif t is SInt:
        _write_int(out, tag, value, True)
    elif t is float:
        _write_control(out, tag, _FLOAT64)
        out += _F64.pack(value)
    elif t is Float32:
        try:
            packed = _F32.pack(value)
        except OverflowError as exc:
            raise LocalProtocolError(f"{value} does not fit in a float32") from exc
        _write_control(out, tag, _FLOAT32)
        out += packed
    elif t is Raw:
        _write_raw(out, tag, value)
    elif isinstance(value, bool):
        _write_control(out, tag, _TRUE if value else _FALSE)
    elif isinstance(value, int):  # IntEnum / IntFlag members encode as unsigned integers
        _write_int(out, tag, int(value), False)
    elif isinstance(value, bytes | bytearray | memoryview):
        _write_string(out, tag, bytes(value), _BYTES_1)
    elif isinstance(value, tuple):
        _write(out, tag, list(value), depth)
    else:
        raise LocalProtocolError(f"cannot encode {t.__name__} as TLV")
