"""The fields of a Matter operational certificate (Core spec §6.5): DN attributes, extensions, limits and time.

Both representations of a certificate are built from these: the TLV form (:mod:`jfds_device.crypto.certs`,
``MatterCertificate``) and its byte-exact X.509 DER spelling (:mod:`jfds_device.crypto.cert_convert`). Keeping them
here lets the converter depend on the fields only (``CertificateBody``), so ``certs`` can use the converter without
an import cycle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

from jfds_device.errors import CertificateError

__all__ = [
    "ALL_KEY_USAGES",
    "DN_ATTRIBUTE_OIDS",
    "KEY_IDENTIFIER_LENGTH",
    "MATTER_DN_HEX_DIGITS",
    "MATTER_EPOCH",
    "MAX_CATS",
    "MAX_DN_ATTRIBUTES",
    "MAX_OPERATIONAL_NODE_ID",
    "MAX_SERIAL_LENGTH",
    "MIN_OPERATIONAL_NODE_ID",
    "NO_EXPIRY",
    "P256_PUBLIC_KEY_LENGTH",
    "PRINTABLE",
    "SIGNATURE_LENGTH",
    "BasicConstraints",
    "CertificateBody",
    "DNAttribute",
    "DNTag",
    "DistinguishedName",
    "Extension",
    "ExtensionTag",
    "ExtensionValue",
    "KeyPurpose",
    "KeyUsage",
    "datetime_from_matter_epoch",
    "matter_epoch_seconds",
]

# Core spec §6.5 not-before/not-after: certificate times count seconds from 2000-01-01T00:00:00Z.
MATTER_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# not-after 0 means "no well-defined expiration date" (X.509 99991231235959Z, RFC 5280 §4.1.2.5).
NO_EXPIRY = 0
_UINT32_MAX = 0xFFFF_FFFF
_UINT64_MAX = 0xFFFF_FFFF_FFFF_FFFF

P256_PUBLIC_KEY_LENGTH = 65  # uncompressed 04 || X || Y (§6.5 ec-pub-key)
SIGNATURE_LENGTH = 64  # raw r || s (§6.5 signature)
KEY_IDENTIFIER_LENGTH = 20  # SHA-1 key identifiers (§6.5 subject-key-id, authority-key-id)
MAX_SERIAL_LENGTH = 20  # RFC 5280 §4.1.2.2; see _check_serial for the one-octet allowance
MAX_DN_ATTRIBUTES = 5  # CHIP SDK CHIP_CONFIG_CERT_MAX_RDN_ATTRIBUTES; no real DN comes close
MAX_CATS = 3  # §6.6.2: a NOC carries at most three CASE Authenticated Tags
ALL_KEY_USAGES = 0x1FF  # the nine RFC 5280 named bits; key-usage is a 16-bit TLV field (§6.5)

# Operational node ids (Core spec §2.5): 0x0000_0000_0000_0001 .. 0xFFFF_FFEF_FFFF_FFFF.
MIN_OPERATIONAL_NODE_ID = 0x0000_0000_0000_0001
MAX_OPERATIONAL_NODE_ID = 0xFFFF_FFEF_FFFF_FFFF


class DNTag(enum.IntEnum):
    """DN attribute TLV tags (§6.5 dn). ``tag | PRINTABLE`` marks the PrintableString variants (129..143)."""

    COMMON_NAME = 1
    SURNAME = 2
    SERIAL_NUMBER = 3
    COUNTRY_NAME = 4
    LOCALITY_NAME = 5
    STATE_OR_PROVINCE_NAME = 6
    ORG_NAME = 7
    ORG_UNIT_NAME = 8
    TITLE = 9
    NAME = 10
    GIVEN_NAME = 11
    INITIALS = 12
    GEN_QUALIFIER = 13
    DN_QUALIFIER = 14
    PSEUDONYM = 15
    DOMAIN_COMPONENT = 16
    MATTER_NODE_ID = 17
    MATTER_FIRMWARE_SIGNING_ID = 18
    MATTER_ICAC_ID = 19
    MATTER_RCAC_ID = 20
    MATTER_FABRIC_ID = 21
    MATTER_NOC_CAT = 22


PRINTABLE = 0x80
_PRINTABLE_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"

# X.509 attribute type OIDs for each DN tag (§6.5 dn attribute table).
DN_ATTRIBUTE_OIDS: dict[DNTag, str] = {
    DNTag.COMMON_NAME: "2.5.4.3",
    DNTag.SURNAME: "2.5.4.4",
    DNTag.SERIAL_NUMBER: "2.5.4.5",
    DNTag.COUNTRY_NAME: "2.5.4.6",
    DNTag.LOCALITY_NAME: "2.5.4.7",
    DNTag.STATE_OR_PROVINCE_NAME: "2.5.4.8",
    DNTag.ORG_NAME: "2.5.4.10",
    DNTag.ORG_UNIT_NAME: "2.5.4.11",
    DNTag.TITLE: "2.5.4.12",
    DNTag.NAME: "2.5.4.41",
    DNTag.GIVEN_NAME: "2.5.4.42",
    DNTag.INITIALS: "2.5.4.43",
    DNTag.GEN_QUALIFIER: "2.5.4.44",
    DNTag.DN_QUALIFIER: "2.5.4.46",
    DNTag.PSEUDONYM: "2.5.4.65",
    DNTag.DOMAIN_COMPONENT: "0.9.2342.19200300.100.1.25",
    DNTag.MATTER_NODE_ID: "1.3.6.1.4.1.37244.1.1",
    DNTag.MATTER_FIRMWARE_SIGNING_ID: "1.3.6.1.4.1.37244.1.2",
    DNTag.MATTER_ICAC_ID: "1.3.6.1.4.1.37244.1.3",
    DNTag.MATTER_RCAC_ID: "1.3.6.1.4.1.37244.1.4",
    DNTag.MATTER_FABRIC_ID: "1.3.6.1.4.1.37244.1.5",
    DNTag.MATTER_NOC_CAT: "1.3.6.1.4.1.37244.1.6",
}

# Matter-specific attributes carry integers; X.509 writes them as fixed-width upper-case hex (§6.5).
MATTER_DN_HEX_DIGITS: dict[DNTag, int] = {
    DNTag.MATTER_NODE_ID: 16,
    DNTag.MATTER_FIRMWARE_SIGNING_ID: 16,
    DNTag.MATTER_ICAC_ID: 16,
    DNTag.MATTER_RCAC_ID: 16,
    DNTag.MATTER_FABRIC_ID: 16,
    DNTag.MATTER_NOC_CAT: 8,
}


@dataclass(frozen=True, slots=True)
class DNAttribute:
    """One DN attribute: its TLV tag (with the 0x80 PrintableString flag, if set) and value.

    Matter-specific attributes (tags 17..22) hold ``int``; all others hold ``str``.
    """

    tag: int
    value: int | str

    def __post_init__(self) -> None:
        object.__setattr__(self, "tag", int(self.tag))  # a DNTag member is welcome, but store a plain int
        base = self.tag & ~PRINTABLE
        if base not in DNTag._value2member_map_:
            raise CertificateError(f"unknown DN attribute tag {self.tag}")
        kind = DNTag(base)
        if kind in MATTER_DN_HEX_DIGITS:
            # §6.5: no PrintableString variants exist for the Matter attributes or domain-component.
            limit = _UINT32_MAX if kind is DNTag.MATTER_NOC_CAT else _UINT64_MAX
            if self.printable or type(self.value) is not int or not 0 <= self.value <= limit:
                raise CertificateError(f"DN attribute {kind.name} needs an integer in 0..0x{limit:X}")
        elif type(self.value) is not str:
            raise CertificateError(f"DN attribute {kind.name} needs a string value")
        elif kind is DNTag.DOMAIN_COMPONENT and (self.printable or not self.value.isascii()):
            raise CertificateError("domain-component is an IA5String with no PrintableString variant")
        elif self.printable and self.value.strip(_PRINTABLE_CHARACTERS):
            raise CertificateError(f"{self.value!r} is not a PrintableString (X.680 §41.4)")

    @property
    def kind(self) -> DNTag:
        return DNTag(self.tag & ~PRINTABLE)

    @property
    def printable(self) -> bool:
        return bool(self.tag & PRINTABLE)

    @property
    def oid(self) -> str:
        return DN_ATTRIBUTE_OIDS[self.kind]

    def __str__(self) -> str:
        if isinstance(self.value, int):
            return f"{self.kind.name}=0x{self.value:0{MATTER_DN_HEX_DIGITS[self.kind]}X}"
        return f"{self.kind.name}{'(printable)' if self.printable else ''}={self.value}"


DistinguishedName = tuple[DNAttribute, ...]


class ExtensionTag(enum.IntEnum):
    """Tags inside the TLV ``extensions`` list (§6.5)."""

    BASIC_CONSTRAINTS = 1
    KEY_USAGE = 2
    EXTENDED_KEY_USAGE = 3
    SUBJECT_KEY_ID = 4
    AUTHORITY_KEY_ID = 5
    FUTURE_EXTENSION = 6


class KeyUsage(enum.IntFlag):
    """key-usage bits (§6.5); bit i is X.509 KeyUsage named bit i (RFC 5280 §4.2.1.3)."""

    DIGITAL_SIGNATURE = 0x0001
    NON_REPUDIATION = 0x0002
    KEY_ENCIPHERMENT = 0x0004
    DATA_ENCIPHERMENT = 0x0008
    KEY_AGREEMENT = 0x0010
    KEY_CERT_SIGN = 0x0020
    CRL_SIGN = 0x0040
    ENCIPHER_ONLY = 0x0080
    DECIPHER_ONLY = 0x0100


class KeyPurpose(enum.IntEnum):
    """extended-key-usage purpose ids (§6.5)."""

    SERVER_AUTH = 1
    CLIENT_AUTH = 2
    CODE_SIGNING = 3
    EMAIL_PROTECTION = 4
    TIME_STAMPING = 5
    OCSP_SIGNING = 6


@dataclass(frozen=True, slots=True)
class BasicConstraints:
    is_ca: bool
    path_len: int | None = None

    def __post_init__(self) -> None:
        if self.path_len is not None and not 0 <= self.path_len <= 0xFF:
            raise CertificateError(f"path-len-constraint {self.path_len} is not an 8-bit value")


ExtensionValue = BasicConstraints | KeyUsage | tuple[KeyPurpose, ...] | bytes


@dataclass(frozen=True, slots=True)
class Extension:
    """One certificate extension, kept in wire order because the DER (and so the signature) follows it.

    ``value`` is a :class:`BasicConstraints`, a :class:`KeyUsage`, a tuple of :class:`KeyPurpose`, a
    20-byte key identifier, or (FUTURE_EXTENSION) the complete DER ``Extension`` it stands for.
    """

    tag: ExtensionTag
    value: ExtensionValue

    def __post_init__(self) -> None:
        expected = _EXTENSION_TYPES[self.tag]
        if not isinstance(self.value, expected):
            raise CertificateError(f"extension {self.tag.name} needs a {expected.__name__} value")
        is_key_id = self.tag in (ExtensionTag.SUBJECT_KEY_ID, ExtensionTag.AUTHORITY_KEY_ID)
        if is_key_id and len(cast(bytes, self.value)) != KEY_IDENTIFIER_LENGTH:
            raise CertificateError(f"{self.tag.name} must be {KEY_IDENTIFIER_LENGTH} bytes")
        if self.tag is ExtensionTag.EXTENDED_KEY_USAGE:
            purposes = cast(tuple[object, ...], self.value)
            if not purposes or not all(isinstance(p, KeyPurpose) for p in purposes):
                raise CertificateError("extended-key-usage needs one or more KeyPurpose values")


_EXTENSION_TYPES: dict[ExtensionTag, type] = {
    ExtensionTag.BASIC_CONSTRAINTS: BasicConstraints,
    ExtensionTag.KEY_USAGE: KeyUsage,
    ExtensionTag.EXTENDED_KEY_USAGE: tuple,
    ExtensionTag.SUBJECT_KEY_ID: bytes,
    ExtensionTag.AUTHORITY_KEY_ID: bytes,
    ExtensionTag.FUTURE_EXTENSION: bytes,
}


# ---------------------------------------------------------------------------------------------------- time


def matter_epoch_seconds(when: datetime) -> int:
    """Whole seconds since the Matter epoch; a naive ``datetime`` is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int((when - MATTER_EPOCH) // timedelta(seconds=1))


def datetime_from_matter_epoch(seconds: int) -> datetime:
    return MATTER_EPOCH + timedelta(seconds=seconds)


# -------------------------------------------------------------------------------------------- a whole certificate


class CertificateBody(Protocol):
    """What the X.509 conversion reads of a certificate (``MatterCertificate`` has these fields)."""

    @property
    def serial(self) -> bytes: ...
    @property
    def issuer(self) -> DistinguishedName: ...
    @property
    def not_before(self) -> int: ...
    @property
    def not_after(self) -> int: ...
    @property
    def subject(self) -> DistinguishedName: ...
    @property
    def public_key_bytes(self) -> bytes: ...
    @property
    def extensions(self) -> tuple[Extension, ...]: ...
    @property
    def signature(self) -> bytes: ...
