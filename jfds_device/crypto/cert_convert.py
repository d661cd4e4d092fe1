"""Byte-exact conversion between Matter TLV certificates and X.509 DER (Core spec §6.5).

Matter signs the X.509 DER TBSCertificate, but sends the compact TLV form. The TLV keeps exactly the
information needed to rebuild the DER field by field, so both directions are deterministic:

* TLV -> DER: every field has one DER spelling (the rules below, matching the CHIP SDK's converter).
* DER -> TLV: we parse, then rebuild the DER from the result and insist it equals the input. A
  certificate that parses but is not in the canonical Matter form (e.g. a GeneralizedTime before 2050,
  lower-case hex in a Matter DN attribute, a non-critical basicConstraints) would not reproduce the
  signed bytes after a TLV round trip, so its signature could never verify there: it is rejected
  rather than silently converted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from jfds_device.crypto import der
from jfds_device.crypto.cert_fields import (
    ALL_KEY_USAGES,
    DN_ATTRIBUTE_OIDS,
    KEY_IDENTIFIER_LENGTH,
    MATTER_DN_HEX_DIGITS,
    NO_EXPIRY,
    PRINTABLE,
    BasicConstraints,
    CertificateBody,
    DNAttribute,
    DNTag,
    Extension,
    ExtensionTag,
    ExtensionValue,
    KeyPurpose,
    KeyUsage,
    datetime_from_matter_epoch,
    matter_epoch_seconds,
)
from jfds_device.errors import CertificateError, DecodeError

__all__ = ["KEY_PURPOSE_OIDS", "from_x509_der", "tbs_der", "to_x509_der"]

CertificateT = TypeVar("CertificateT", bound=CertificateBody)

OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_PRIME256V1 = "1.2.840.10045.3.1.7"

# RFC 5280 §4.2.1 extension OIDs, in the TLV extension-tag order of §6.5 ``extensions``.
_EXTENSION_OIDS: dict[ExtensionTag, str] = {
    ExtensionTag.BASIC_CONSTRAINTS: "2.5.29.19",
    ExtensionTag.KEY_USAGE: "2.5.29.15",
    ExtensionTag.EXTENDED_KEY_USAGE: "2.5.29.37",
    ExtensionTag.SUBJECT_KEY_ID: "2.5.29.14",
    ExtensionTag.AUTHORITY_KEY_ID: "2.5.29.35",
}
_EXTENSION_BY_OID = {oid: tag for tag, oid in _EXTENSION_OIDS.items()}
# §6.5 extensions: basicConstraints, keyUsage and extendedKeyUsage are marked critical (the SDK's converter and
# every vector in tests/crypto/test_certs.py agree), the key identifiers are not.
_CRITICAL = {ExtensionTag.BASIC_CONSTRAINTS, ExtensionTag.KEY_USAGE, ExtensionTag.EXTENDED_KEY_USAGE}

# §6.5 key-purpose-id -> RFC 5280 §4.2.1.12 id-kp OIDs (note timeStamping is .8, OCSPSigning .9).
KEY_PURPOSE_OIDS: dict[KeyPurpose, str] = {
    KeyPurpose.SERVER_AUTH: "1.3.6.1.5.5.7.3.1",
    KeyPurpose.CLIENT_AUTH: "1.3.6.1.5.5.7.3.2",
    KeyPurpose.CODE_SIGNING: "1.3.6.1.5.5.7.3.3",
    KeyPurpose.EMAIL_PROTECTION: "1.3.6.1.5.5.7.3.4",
    KeyPurpose.TIME_STAMPING: "1.3.6.1.5.5.7.3.8",
    KeyPurpose.OCSP_SIGNING: "1.3.6.1.5.5.7.3.9",
}
_KEY_PURPOSE_BY_OID = {oid: purpose for purpose, oid in KEY_PURPOSE_OIDS.items()}
_DN_TAG_BY_OID = {oid: tag for tag, oid in DN_ATTRIBUTE_OIDS.items()}

_IA5_STRING = 0x16
_VERSION_3 = der.tlv(der.context(0), der.integer(2))
_ALGORITHM_ECDSA_SHA256 = der.sequence(der.oid(OID_ECDSA_WITH_SHA256))  # parameters absent (RFC 5758 §3.2)
_SPKI_ALGORITHM = der.sequence(der.oid(OID_EC_PUBLIC_KEY), der.oid(OID_PRIME256V1))
# RFC 5280 §4.1.2.5: the "no well-defined expiration" time that not-after 0 stands for.
_NO_EXPIRY_TIME = b"99991231235959Z"


# ---------------------------------------------------------------------------------------------------- TLV -> DER


def to_x509_der(cert: CertificateBody) -> bytes:
    """The full X.509 certificate: SEQUENCE { TBS, ecdsa-with-SHA256, BIT STRING { ECDSA-Sig-Value } }."""
    r = int.from_bytes(cert.signature[:32], "big")
    s = int.from_bytes(cert.signature[32:], "big")
    signature = der.sequence(der.integer(r), der.integer(s))
    return der.sequence(tbs_der(cert), _ALGORITHM_ECDSA_SHA256, der.bit_string(signature))


def tbs_der(cert: CertificateBody) -> bytes:
    """The TBSCertificate (RFC 5280 §4.1) the TLV certificate stands for; what the signature covers."""
    return der.sequence(
        _VERSION_3,
        der.tlv(der.INTEGER, cert.serial),  # the TLV serial *is* the INTEGER content, sign octet included
        _ALGORITHM_ECDSA_SHA256,
        _encode_name(cert.issuer),
        der.sequence(_encode_time(cert.not_before), _encode_time(cert.not_after)),
        _encode_name(cert.subject),
        der.sequence(_SPKI_ALGORITHM, der.bit_string(cert.public_key_bytes)),
        der.tlv(der.context(3), der.sequence(*(_encode_extension(e) for e in cert.extensions))),
    )


def _encode_name(dn: tuple[DNAttribute, ...]) -> bytes:
    # Each attribute is its own single-valued RDN, in TLV order (§6.5 dn).
    return der.sequence(*(der.set_of(der.sequence(der.oid(a.oid), _encode_dn_value(a))) for a in dn))


def _encode_dn_value(attribute: DNAttribute) -> bytes:
    value = attribute.value
    if isinstance(value, int):  # §6.5: Matter ids as fixed-width upper-case hex UTF8String
        return der.utf8_string(f"{value:0{MATTER_DN_HEX_DIGITS[attribute.kind]}X}")
    if attribute.kind is DNTag.DOMAIN_COMPONENT:
        return der.tlv(_IA5_STRING, value.encode("ascii"))
    if attribute.printable:
        return der.tlv(der.PRINTABLE_STRING, value.encode("ascii"))
    return der.utf8_string(value)


def _encode_time(seconds: int) -> bytes:
    # RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. The CHIP SDK maps 0 to
    # 99991231235959Z for not-before too (ChipEpochToASN1Time), so this does the same for both.
    if seconds == NO_EXPIRY:
        return der.tlv(der.GENERALIZED_TIME, _NO_EXPIRY_TIME)
    when = datetime_from_matter_epoch(seconds)
    if when.year < 2050:
        return der.tlv(der.UTC_TIME, when.strftime("%y%m%d%H%M%SZ").encode())
    return der.tlv(der.GENERALIZED_TIME, when.strftime("%Y%m%d%H%M%SZ").encode())


def _encode_extension(extension: Extension) -> bytes:
    if extension.tag is ExtensionTag.FUTURE_EXTENSION:
        return cast(bytes, extension.value)  # already a complete DER Extension
    value = _EXTENSION_VALUE_ENCODERS[extension.tag](extension.value)
    critical = der.boolean(True) if extension.tag in _CRITICAL else b""  # DEFAULT FALSE is omitted
    return der.sequence(der.oid(_EXTENSION_OIDS[extension.tag]), critical, der.octet_string(value))


def _encode_basic_constraints(value: BasicConstraints) -> bytes:
    ca = der.boolean(True) if value.is_ca else b""  # cA DEFAULT FALSE
    path_len = der.integer(value.path_len) if value.path_len is not None else b""
    return der.sequence(ca, path_len)


def _encode_key_usage(value: KeyUsage) -> bytes:
    # Named bit i is BIT STRING bit i, counted from the most significant bit of the first octet; DER
    # drops trailing zero bits (X.690 §11.2.2), which sets the unused-bits count.
    bits = int(value)
    width = bits.bit_length()
    octets = (width + 7) // 8
    packed = 0
    for i in range(width):
        if bits >> i & 1:
            packed |= 1 << (octets * 8 - 1 - i)
    return der.bit_string(packed.to_bytes(octets, "big"), octets * 8 - width)


def _encode_extended_key_usage(value: tuple[KeyPurpose, ...]) -> bytes:
    return der.sequence(*(der.oid(KEY_PURPOSE_OIDS[p]) for p in value))


def _encode_authority_key_id(value: bytes) -> bytes:
    return der.sequence(der.tlv(der.context(0, constructed=False), value))  # keyIdentifier [0] only


_EXTENSION_VALUE_ENCODERS: dict[ExtensionTag, Callable[[Any], bytes]] = {
    ExtensionTag.BASIC_CONSTRAINTS: _encode_basic_constraints,
    ExtensionTag.KEY_USAGE: _encode_key_usage,
    ExtensionTag.EXTENDED_KEY_USAGE: _encode_extended_key_usage,
    ExtensionTag.SUBJECT_KEY_ID: der.octet_string,
    ExtensionTag.AUTHORITY_KEY_ID: _encode_authority_key_id,
}


# ---------------------------------------------------------------------------------------------------- DER -> TLV


def from_x509_der(der_bytes: bytes, build: Callable[..., CertificateT]) -> CertificateT:
    """Parse an X.509 certificate into the Matter TLV model; CertificateError if it has no exact TLV form.

    ``build`` makes the certificate from its fields by keyword (``MatterCertificate``, whose checks run while
    parsing, as before); taking it as an argument keeps this module below ``certs``, which calls it.
    """
    try:
        cert = _parse_certificate(bytes(der_bytes), build)
    except DecodeError as exc:
        raise CertificateError(f"malformed X.509 certificate: {exc}") from exc
    except (ValueError, UnicodeError) as exc:
        raise CertificateError(f"X.509 certificate not representable in Matter TLV: {exc}") from exc
    if to_x509_der(cert) != der_bytes:
        raise CertificateError("X.509 certificate is not in the canonical Matter form (§6.5)")
    return cert


def _parse_certificate(data: bytes, build: Callable[..., CertificateT]) -> CertificateT:
    tbs, algorithm, signature = _children(der.read_one(data), der.SEQUENCE, 3, "Certificate")
    if algorithm.encoded != _ALGORITHM_ECDSA_SHA256:
        raise CertificateError("certificate signature algorithm must be ecdsa-with-SHA256")
    fields = _children(tbs, der.SEQUENCE, 8, "TBSCertificate")
    version, serial, tbs_algorithm, issuer, validity, subject, spki, extensions = fields
    if version.encoded != _VERSION_3:
        raise CertificateError("certificate must be X.509 v3")
    if tbs_algorithm.encoded != _ALGORITHM_ECDSA_SHA256:
        raise CertificateError("TBS signature algorithm must be ecdsa-with-SHA256")
    not_before, not_after = _children(validity, der.SEQUENCE, 2, "Validity")
    spki_algorithm, public_key = _children(spki, der.SEQUENCE, 2, "SubjectPublicKeyInfo")
    if spki_algorithm.encoded != _SPKI_ALGORITHM:
        raise CertificateError("public key must be id-ecPublicKey on prime256v1")
    (extension_list,) = _children(extensions, der.context(3), 1, "extensions")
    return build(
        serial=serial.expect(der.INTEGER).content,
        issuer=_parse_name(issuer),
        not_before=_parse_time(not_before),
        not_after=_parse_time(not_after),
        subject=_parse_name(subject),
        public_key_bytes=_bit_string_octets(public_key),
        extensions=tuple(_parse_extension(e) for e in extension_list.expect(der.SEQUENCE).children()),
        signature=_parse_signature(signature),
    )


def _children(element: der.Element, tag: int, count: int, what: str) -> list[der.Element]:
    items = element.expect(tag).children()
    if len(items) != count:
        raise CertificateError(f"{what} must have {count} elements, found {len(items)}")
    return items


def _bit_string_octets(element: der.Element) -> bytes:
    if element.expect(der.BIT_STRING).content[:1] != b"\x00":
        raise CertificateError("expected a BIT STRING of whole octets")
    return element.as_bit_string()


def _parse_signature(element: der.Element) -> bytes:
    r, s = _children(der.read_one(_bit_string_octets(element)), der.SEQUENCE, 2, "ECDSA-Sig-Value")
    r_value, s_value = r.as_int(), s.as_int()
    if not (0 < r_value < 1 << 256 and 0 < s_value < 1 << 256):
        raise CertificateError("ECDSA signature values out of range")
    return r_value.to_bytes(32, "big") + s_value.to_bytes(32, "big")


def _parse_name(element: der.Element) -> tuple[DNAttribute, ...]:
    attributes = []
    for rdn in element.expect(der.SEQUENCE).children():
        (pair,) = _children(rdn, der.SET, 1, "RelativeDistinguishedName (multi-valued RDNs unsupported)")
        oid, value = _children(pair, der.SEQUENCE, 2, "AttributeTypeAndValue")
        kind = _DN_TAG_BY_OID.get(oid.as_oid())
        if kind is None:
            raise CertificateError(f"DN attribute {oid.as_oid()} has no Matter TLV tag (§6.5 dn)")
        attributes.append(_parse_dn_value(kind, value))
    return tuple(attributes)


def _parse_dn_value(kind: DNTag, value: der.Element) -> DNAttribute:
    if kind in MATTER_DN_HEX_DIGITS:
        text = value.expect(der.UTF8_STRING).content.decode("ascii")
        if len(text) != MATTER_DN_HEX_DIGITS[kind] or text.strip("0123456789ABCDEF"):
            raise CertificateError(f"{kind.name} must be {MATTER_DN_HEX_DIGITS[kind]} upper-case hex digits")
        return DNAttribute(kind, int(text, 16))
    if kind is DNTag.DOMAIN_COMPONENT:
        return DNAttribute(kind, value.expect(_IA5_STRING).content.decode("ascii"))
    if value.tag == der.PRINTABLE_STRING:
        return DNAttribute(kind | PRINTABLE, value.content.decode("ascii"))
    return DNAttribute(kind, value.expect(der.UTF8_STRING).content.decode("utf-8"))


def _parse_time(element: der.Element) -> int:
    text = element.content.decode("ascii")
    if element.tag == der.GENERALIZED_TIME and text == _NO_EXPIRY_TIME.decode():
        return NO_EXPIRY
    if element.tag == der.UTC_TIME and len(text) == 13:
        year = int(text[:2])
        text = ("20" if year < 50 else "19") + text  # RFC 5280 §4.1.2.5.1
    elif element.tag != der.GENERALIZED_TIME or len(text) != 15:
        raise CertificateError("certificate times must be UTCTime or GeneralizedTime in seconds, Z")
    if not text.endswith("Z") or not text[:-1].isdigit():
        raise CertificateError(f"malformed certificate time {text!r}")
    when = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    seconds = matter_epoch_seconds(when)
    if not 0 < seconds <= 0xFFFF_FFFF:
        raise CertificateError(f"certificate time {text} is outside the Matter epoch range")
    return seconds


def _parse_extension(element: der.Element) -> Extension:
    items = element.expect(der.SEQUENCE).children()
    oid = items[0].as_oid() if items else ""
    tag = _EXTENSION_BY_OID.get(oid)
    if tag is None:  # §6.5 future-extension: any other extension travels verbatim
        return Extension(ExtensionTag.FUTURE_EXTENSION, element.encoded)
    if len(items) not in (2, 3):
        raise CertificateError(f"malformed extension {oid}")
    critical = len(items) == 3 and items[1].expect(der.BOOLEAN).content != b"\x00"
    if critical != (tag in _CRITICAL):
        raise CertificateError(f"{tag.name} criticality does not match §6.5")
    value = der.read_one(items[-1].expect(der.OCTET_STRING).content)
    return Extension(tag, _EXTENSION_VALUE_PARSERS[tag](value))


def _parse_basic_constraints(value: der.Element) -> BasicConstraints:
    items = value.expect(der.SEQUENCE).children()
    is_ca = bool(items) and items[0].tag == der.BOOLEAN and items[0].content != b"\x00"
    rest = items[1:] if items and items[0].tag == der.BOOLEAN else items
    if len(rest) > 1:
        raise CertificateError("malformed basicConstraints")
    return BasicConstraints(is_ca, rest[0].as_int() if rest else None)


def _parse_key_usage(value: der.Element) -> KeyUsage:
    octets = value.as_bit_string()
    bits = 0
    for i in range(len(octets) * 8):
        if octets[i // 8] >> (7 - i % 8) & 1:
            bits |= 1 << i
    if not 0 < bits <= ALL_KEY_USAGES:
        raise CertificateError(f"keyUsage bits 0x{bits:X} are not representable (§6.5 key-usage)")
    return KeyUsage(bits)


def _parse_extended_key_usage(value: der.Element) -> tuple[KeyPurpose, ...]:
    purposes = []
    for item in value.expect(der.SEQUENCE).children():
        purpose = _KEY_PURPOSE_BY_OID.get(item.as_oid())
        if purpose is None:
            raise CertificateError(f"extended key usage {item.as_oid()} has no Matter key-purpose-id")
        purposes.append(purpose)
    return tuple(purposes)


def _parse_key_id(value: der.Element) -> bytes:
    key_id = value.expect(der.OCTET_STRING).content
    if len(key_id) != KEY_IDENTIFIER_LENGTH:
        raise CertificateError(f"key identifiers must be {KEY_IDENTIFIER_LENGTH} bytes")
    return key_id


def _parse_authority_key_id(value: der.Element) -> bytes:
    (key_id,) = _children(value, der.SEQUENCE, 1, "AuthorityKeyIdentifier (keyIdentifier only)")
    return _parse_key_id(der.Element(der.OCTET_STRING, key_id.expect(der.context(0, False)).content, b""))


_EXTENSION_VALUE_PARSERS: dict[ExtensionTag, Callable[[der.Element], ExtensionValue]] = {
    ExtensionTag.BASIC_CONSTRAINTS: _parse_basic_constraints,
    ExtensionTag.KEY_USAGE: _parse_key_usage,
    ExtensionTag.EXTENDED_KEY_USAGE: _parse_extended_key_usage,
    ExtensionTag.SUBJECT_KEY_ID: _parse_key_id,
    ExtensionTag.AUTHORITY_KEY_ID: _parse_authority_key_id,
}
