"""Matter operational certificates (Core spec §6.5): the TLV data model and its codec.

A :class:`MatterCertificate` is the decoded ``matter-certificate`` TLV structure. The signature is
always made over the X.509 DER TBSCertificate that the TLV stands for, so the byte-exact
conversion in :mod:`jfds_device.crypto.cert_convert` is what every signature check goes through.

Chain validation lives in :mod:`jfds_device.crypto.cert_chain`; issuance and CSRs in
:mod:`jfds_device.crypto.cert_issuer`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from jfds_device.codec import tlv
from jfds_device.errors import CertificateError, TLVDecodeError

__all__ = [
    "ALL_KEY_USAGES",
    "DN_ATTRIBUTE_OIDS",
    "MATTER_DN_HEX_DIGITS",
    "MATTER_EPOCH",
    "MAX_CATS",
    "MAX_OPERATIONAL_NODE_ID",
    "MIN_OPERATIONAL_NODE_ID",
    "NO_EXPIRY",
    "PRINTABLE",
    "BasicConstraints",
    "DNAttribute",
    "DNTag",
    "DistinguishedName",
    "Extension",
    "ExtensionTag",
    "ExtensionValue",
    "KeyPurpose",
    "KeyUsage",
    "MatterCertificate",
    "datetime_from_matter_epoch",
    "load_public_key",
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

# Fixed algorithm identifiers in the TLV form (§6.5); Matter defines only one of each.
_SIG_ALGO_ECDSA_SHA256 = 1
_PUBKEY_ALGO_EC = 1
_CURVE_PRIME256V1 = 1


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


# ---------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class MatterCertificate:
    """A Matter operational certificate (RCAC, ICAC or NOC) in its TLV form (§6.5).

    Times are Matter epoch seconds; ``not_after == NO_EXPIRY`` (0) means no expiry. ``serial`` holds
    the DER INTEGER content octets verbatim (leading 0x00 included), as the TLV form does.
    """

    serial: bytes
    issuer: DistinguishedName
    not_before: int
    not_after: int
    subject: DistinguishedName
    public_key_bytes: bytes
    extensions: tuple[Extension, ...]
    signature: bytes

    def __post_init__(self) -> None:
        _check_serial(self.serial)
        for name, dn in (("issuer", self.issuer), ("subject", self.subject)):
            if not 1 <= len(dn) <= MAX_DN_ATTRIBUTES:
                raise CertificateError(f"{name} DN must have 1..{MAX_DN_ATTRIBUTES} attributes")
        for name, value in (("not-before", self.not_before), ("not-after", self.not_after)):
            if not 0 <= value <= _UINT32_MAX:
                raise CertificateError(f"{name} {value} is not a 32-bit Matter epoch time")
        if self.not_after != NO_EXPIRY and self.not_before >= self.not_after:
            # The CHIP SDK refuses such a certificate in both conversion directions; so do we.
            raise CertificateError(f"not-before {self.not_before} must precede not-after {self.not_after}")
        if len(self.public_key_bytes) != P256_PUBLIC_KEY_LENGTH or self.public_key_bytes[0] != 0x04:
            raise CertificateError("public key must be a 65-byte uncompressed P-256 point")
        if len(self.signature) != SIGNATURE_LENGTH:
            raise CertificateError(f"signature must be {SIGNATURE_LENGTH} bytes (raw r || s)")
        if not self.extensions:  # §6.5: extensions is a LIST [length 1..]
            raise CertificateError("a Matter certificate needs at least one extension")
        seen = [e.tag for e in self.extensions if e.tag is not ExtensionTag.FUTURE_EXTENSION]
        if len(seen) != len(set(seen)):
            raise CertificateError("duplicate certificate extension")  # RFC 5280 §4.2

    # --- TLV codec (§6.5) -----------------------------------------------------------------------------

    @classmethod
    def decode_tlv(cls, data: bytes) -> MatterCertificate:
        """Decode a TLV certificate (an anonymous structure), strictly in the spec's tag order."""
        try:
            tag, body = tlv.decode_element(data)
        except TLVDecodeError as exc:
            raise CertificateError(f"malformed certificate TLV: {exc}") from exc
        if tag is not None or type(body) is not dict:
            raise CertificateError("a TLV certificate must be an anonymous structure")
        if list(body) != list(range(1, 12)):
            raise CertificateError(f"certificate TLV fields must be tags 1..11 in order, got {list(body)}")
        if (body[2], body[7], body[8]) != (_SIG_ALGO_ECDSA_SHA256, _PUBKEY_ALGO_EC, _CURVE_PRIME256V1):
            raise CertificateError("only ecdsa-with-SHA256 over prime256v1 is defined (§6.5)")
        return cls(
            serial=_expect(body[1], bytes, "serial-num"),
            issuer=_decode_dn(body[3], "issuer"),
            not_before=_expect(body[4], int, "not-before"),
            not_after=_expect(body[5], int, "not-after"),
            subject=_decode_dn(body[6], "subject"),
            public_key_bytes=_expect(body[9], bytes, "ec-pub-key"),
            extensions=_decode_extensions(body[10]),
            signature=_expect(body[11], bytes, "signature"),
        )

    def encode_tlv(self) -> bytes:
        """The TLV form with minimal integer widths, as the CHIP SDK writes it."""
        body: dict[int, Any] = {
            1: self.serial,
            2: _SIG_ALGO_ECDSA_SHA256,
            3: tlv.TLVList((a.tag, _plain(a.value)) for a in self.issuer),
            4: self.not_before,
            5: self.not_after,
            6: tlv.TLVList((a.tag, _plain(a.value)) for a in self.subject),
            7: _PUBKEY_ALGO_EC,
            8: _CURVE_PRIME256V1,
            9: self.public_key_bytes,
            10: tlv.TLVList((int(e.tag), _encode_extension_value(e.value)) for e in self.extensions),
            11: self.signature,
        }
        return tlv.encode(body)

    # --- X.509 (§6.5); the conversion module imports this one, so import it lazily here ------------

    def to_x509_der(self) -> bytes:
        from jfds_device.crypto import cert_convert

        return cert_convert.to_x509_der(self)

    def tbs_der(self) -> bytes:
        """The DER TBSCertificate, i.e. the bytes the signature covers."""
        from jfds_device.crypto import cert_convert

        return cert_convert.tbs_der(self)

    @classmethod
    def from_x509_der(cls, der_bytes: bytes) -> MatterCertificate:
        from jfds_device.crypto import cert_convert

        return cert_convert.from_x509_der(der_bytes)

    # --- keys and signatures ------------------------------------------------------------------------

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return load_public_key(self.public_key_bytes)

    def verify_signature(self, issuer_public_key: bytes | ec.EllipticCurvePublicKey) -> None:
        """Check the signature over :meth:`tbs_der`; raise CertificateError if it does not verify."""
        key = (
            issuer_public_key
            if isinstance(issuer_public_key, ec.EllipticCurvePublicKey)
            else load_public_key(issuer_public_key)
        )
        r = int.from_bytes(self.signature[:32], "big")
        s = int.from_bytes(self.signature[32:], "big")
        try:
            key.verify(encode_dss_signature(r, s), self.tbs_der(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise CertificateError(f"signature of {self.describe()} does not verify") from exc

    # --- DN and extension accessors -----------------------------------------------------------------

    def subject_values(self, kind: DNTag) -> tuple[int | str, ...]:
        return tuple(a.value for a in self.subject if a.kind is kind)

    def matter_ids(self, kind: DNTag) -> tuple[int, ...]:
        """All subject values of a Matter-specific attribute (DNAttribute guarantees they are ints)."""
        return tuple(a.value for a in self.subject if a.kind is kind and isinstance(a.value, int))

    def _single(self, kind: DNTag) -> int | None:
        values = self.matter_ids(kind)
        if len(values) > 1:
            raise CertificateError(f"subject has {len(values)} {kind.name} attributes")
        return values[0] if values else None

    @property
    def node_id(self) -> int | None:
        return self._single(DNTag.MATTER_NODE_ID)

    @property
    def fabric_id(self) -> int | None:
        return self._single(DNTag.MATTER_FABRIC_ID)

    @property
    def rcac_id(self) -> int | None:
        return self._single(DNTag.MATTER_RCAC_ID)

    @property
    def icac_id(self) -> int | None:
        return self._single(DNTag.MATTER_ICAC_ID)

    @property
    def cats(self) -> tuple[int, ...]:
        return self.matter_ids(DNTag.MATTER_NOC_CAT)

    def extension(self, tag: ExtensionTag) -> ExtensionValue | None:
        return next((e.value for e in self.extensions if e.tag is tag), None)

    @property
    def basic_constraints(self) -> BasicConstraints | None:
        return cast("BasicConstraints | None", self.extension(ExtensionTag.BASIC_CONSTRAINTS))

    @property
    def is_ca(self) -> bool:
        bc = self.basic_constraints
        return bc is not None and bc.is_ca

    @property
    def key_usage(self) -> KeyUsage | None:
        return cast("KeyUsage | None", self.extension(ExtensionTag.KEY_USAGE))

    @property
    def extended_key_usage(self) -> tuple[KeyPurpose, ...] | None:
        return cast("tuple[KeyPurpose, ...] | None", self.extension(ExtensionTag.EXTENDED_KEY_USAGE))

    @property
    def subject_key_id(self) -> bytes | None:
        return cast("bytes | None", self.extension(ExtensionTag.SUBJECT_KEY_ID))

    @property
    def authority_key_id(self) -> bytes | None:
        return cast("bytes | None", self.extension(ExtensionTag.AUTHORITY_KEY_ID))

    def describe(self) -> str:
        return "certificate " + ", ".join(str(a) for a in self.subject)


def load_public_key(point: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its 65-byte uncompressed encoding; CertificateError if not on the curve."""
    if len(point) != P256_PUBLIC_KEY_LENGTH or point[0] != 0x04:
        raise CertificateError("public key must be a 65-byte uncompressed P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise CertificateError("public key is not a point on P-256") from exc


def _check_serial(serial: bytes) -> None:
    # RFC 5280 limits the serial to 20 octets; deployed NOCs carry 20-octet values with a sign octet
    # (the "LG TV Certificates (21-octet NOC serial)" set of matter.js packages/protocol/test/certificate/
    # TestCertificates.ts @ b851ce019504), which matter.js and the SDK accept, so allow that one case.
    if not serial or len(serial) > MAX_SERIAL_LENGTH + 1 or (len(serial) == MAX_SERIAL_LENGTH + 1 and serial[0] != 0):
        raise CertificateError(f"serial number must be 1..{MAX_SERIAL_LENGTH} octets")


def _expect(value: Any, kind: type, what: str) -> Any:
    if type(value) is not kind:
        raise CertificateError(f"certificate field {what} must be {kind.__name__}")
    return value


def _plain(value: int | str) -> int | str:
    return int(value) if isinstance(value, int) else value


def _decode_dn(value: Any, what: str) -> DistinguishedName:
    if type(value) is not tlv.TLVList:
        raise CertificateError(f"{what} must be a TLV list")
    attributes = []
    for tag, item in value:
        if type(tag) is not int:
            raise CertificateError(f"{what} DN attributes need context tags")
        attributes.append(DNAttribute(tag, item))
    return tuple(attributes)


def _decode_extensions(value: Any) -> tuple[Extension, ...]:
    if type(value) is not tlv.TLVList:
        raise CertificateError("extensions must be a TLV list")
    out = []
    for tag, item in value:
        if tag not in ExtensionTag._value2member_map_:
            raise CertificateError(f"unknown certificate extension tag {tag!r}")
        out.append(Extension(ExtensionTag(tag), _decode_extension_value(ExtensionTag(tag), item)))
    return tuple(out)


def _decode_extension_value(tag: ExtensionTag, item: Any) -> ExtensionValue:
    if tag is ExtensionTag.BASIC_CONSTRAINTS:
        # basic-constraints => STRUCTURE { is-ca [1] : BOOLEAN, path-len-constraint [2, optional] }
        if type(item) is not dict or list(item) not in ([1], [1, 2]) or type(item[1]) is not bool:
            raise CertificateError("malformed basic-constraints extension")
        path_len = item.get(2)
        if path_len is not None and type(path_len) is not int:
            raise CertificateError("path-len-constraint must be an unsigned integer")
        return BasicConstraints(item[1], path_len)
    if tag is ExtensionTag.KEY_USAGE:
        if type(item) is not int or not 0 < item <= ALL_KEY_USAGES:
            raise CertificateError(f"key-usage {item!r} is not a valid bit set")
        return KeyUsage(item)
    if tag is ExtensionTag.EXTENDED_KEY_USAGE:
        if type(item) is not list or any(type(p) is not int or p not in KeyPurpose._value2member_map_ for p in item):
            raise CertificateError(f"extended-key-usage {item!r} is not an array of known key purposes")
        return tuple(KeyPurpose(p) for p in item)
    return cast(bytes, _expect(item, bytes, tag.name))


def _encode_extension_value(value: ExtensionValue) -> Any:
    if isinstance(value, BasicConstraints):
        return {1: value.is_ca} if value.path_len is None else {1: value.is_ca, 2: value.path_len}
    if isinstance(value, KeyUsage):
        return int(value)
    if isinstance(value, tuple):
        return [int(p) for p in value]
    return value
