"""Matter operational certificates (Core spec §6.5): the TLV data model and its codec.

A :class:`MatterCertificate` is the decoded ``matter-certificate`` TLV structure. The signature is
always made over the X.509 DER TBSCertificate that the TLV stands for, so the byte-exact
conversion in :mod:`jfds_device.crypto.cert_convert` is what every signature check goes through.
Its fields (DN attributes, extensions, limits) live in :mod:`jfds_device.crypto.cert_fields`, which the
converter reads, and are re-exported here.

Chain validation lives in :mod:`jfds_device.crypto.cert_chain`; issuance and CSRs in
:mod:`jfds_device.crypto.cert_issuer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from jfds_device.codec import tlv
from jfds_device.crypto import cert_convert
from jfds_device.crypto.cert_fields import (
    ALL_KEY_USAGES,
    DN_ATTRIBUTE_OIDS,
    KEY_IDENTIFIER_LENGTH,
    MATTER_DN_HEX_DIGITS,
    MATTER_EPOCH,
    MAX_CATS,
    MAX_DN_ATTRIBUTES,
    MAX_OPERATIONAL_NODE_ID,
    MAX_SERIAL_LENGTH,
    MIN_OPERATIONAL_NODE_ID,
    NO_EXPIRY,
    P256_PUBLIC_KEY_LENGTH,
    PRINTABLE,
    SIGNATURE_LENGTH,
    BasicConstraints,
    DistinguishedName,
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
from jfds_device.errors import CertificateError, TLVDecodeError

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


_UINT32_MAX = 0xFFFF_FFFF  # TLV certificate times are 32-bit (§6.5 not-before, not-after)

# Fixed algorithm identifiers in the TLV form (§6.5); Matter defines only one of each.
_SIG_ALGO_ECDSA_SHA256 = 1
_PUBKEY_ALGO_EC = 1
_CURVE_PRIME256V1 = 1


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

    # --- X.509 (§6.5) ------------------------------------------------------------------------------------

    def to_x509_der(self) -> bytes:
        return cert_convert.to_x509_der(self)

    def tbs_der(self) -> bytes:
        """The DER TBSCertificate, i.e. the bytes the signature covers."""
        return cert_convert.tbs_der(self)

    @classmethod
    def from_x509_der(cls, der_bytes: bytes) -> MatterCertificate:
        return cert_convert.from_x509_der(der_bytes, cls)

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
