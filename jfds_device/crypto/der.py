"""A minimal ASN.1 DER writer and reader (X.690), enough for X.509 TBS certificates, CSRs and CMS.

``cryptography`` parses certificates but cannot emit a given TBSCertificate byte for byte, which the
Matter TLV <-> X.509 conversion (Core spec 6.5.x) and the Certification Declaration's CMS envelope need.
"""

from __future__ import annotations

from dataclasses import dataclass

from jfds_device.errors import DecodeError

# Universal tags.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31


def context(number: int, constructed: bool = True) -> int:
    """The identifier octet of a context-specific tag [number]."""
    return 0x80 | (0x20 if constructed else 0) | number


# ---------------------------------------------------------------------------------------------------- write


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(SET, b"".join(sorted(items)))  # DER sorts SET OF members by encoding (X.690 11.6)


def integer(value: int) -> bytes:
    # Two's complement needs bit_length + 1 bits; for negatives, (~value).bit_length() is the magnitude that counts.
    size = max(1, ((value if value >= 0 else ~value).bit_length() + 8) // 8)
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def unsigned_integer_bytes(raw: bytes) -> bytes:
    """An INTEGER from big-endian unsigned bytes (e.g. a serial number), minimal and positive."""
    raw = raw.lstrip(b"\x00") or b"\x00"
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return tlv(INTEGER, raw)


def boolean(value: bool) -> bytes:
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def null() -> bytes:
    return b"\x05\x00"


def octet_string(raw: bytes) -> bytes:
    return tlv(OCTET_STRING, raw)


def bit_string(raw: bytes, unused_bits: int = 0) -> bytes:
    return tlv(BIT_STRING, bytes((unused_bits,)) + raw)


def utf8_string(text: str) -> bytes:
    return tlv(UTF8_STRING, text.encode("utf-8"))


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray()
    for arc in [parts[0] * 40 + parts[1], *parts[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(OID, bytes(body))


# ---------------------------------------------------------------------------------------------------- read


@dataclass(frozen=True, slots=True)
class Element:
    """One DER element: its identifier octet, content bytes and the full encoding."""

    tag: int
    content: bytes
    encoded: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Element]:
        if not self.constructed:
            raise DecodeError(f"DER element 0x{self.tag:02x} is not constructed")
        return read_all(self.content)

    def as_int(self) -> int:
        self.expect(INTEGER)
        if not self.content:
            raise DecodeError("empty DER INTEGER")
        return int.from_bytes(self.content, "big", signed=True)

    def as_oid(self) -> str:
        self.expect(OID)
        arcs: list[int] = []
        value = 0
        for byte in self.content:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        if not arcs or self.content[-1] & 0x80:
            raise DecodeError("malformed DER OBJECT IDENTIFIER")
        first = min(arcs[0] // 40, 2)
        return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])

    def as_bit_string(self) -> bytes:
        self.expect(BIT_STRING)
        if not self.content or self.content[0] > 7:
            raise DecodeError("malformed DER BIT STRING")
        return self.content[1:]

    def expect(self, tag: int) -> Element:
        if self.tag != tag:
            raise DecodeError(f"expected DER tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self


def read(data: bytes, pos: int = 0) -> tuple[Element, int]:
    """Read one element at ``pos``; return it and the position after it."""
    try:
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            raise DecodeError("multi-byte DER tags are not used here")
        first = data[pos + 1]
        start = pos + 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4:
                raise DecodeError("unsupported DER length form")
            length = int.from_bytes(data[start : start + count], "big")
            if length < 0x80 or data[start] == 0:
                raise DecodeError("non-minimal DER length")
            start += count
    except IndexError as exc:
        raise DecodeError("truncated DER element") from exc
    end = start + length
    if end > len(data):
        raise DecodeError("DER length overruns the buffer")
    return Element(tag, bytes(data[start:end]), bytes(data[pos:end])), end


def read_all(data: bytes) -> list[Element]:
    items, pos = [], 0
    while pos < len(data):
        element, pos = read(data, pos)
        items.append(element)
    return items


def read_one(data: bytes) -> Element:
    element, end = read(data, 0)
    if end != len(data):
        raise DecodeError("trailing bytes after a DER element")
    return element
