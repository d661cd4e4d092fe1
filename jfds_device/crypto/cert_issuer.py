"""Issuing Matter operational certificates and handling CSRs (Core spec §6.5; Operational Credentials NOCSR).

Certificates are built and signed in X.509 with ``cryptography`` (an encoder independent of ours), then
converted to TLV with :meth:`MatterCertificate.from_x509_der`, which insists on a byte-exact round trip.
So every issued certificate is also a check of the converter. This serves our own fabrics, the tests and
the reconciler's fixtures; a commissioner-grade CA (key storage, serial tracking) is out of scope.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type  # NameAttribute's only way to choose the string type
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from jfds_device.crypto import der
from jfds_device.crypto.cert_convert import KEY_PURPOSE_OIDS
from jfds_device.crypto.certs import (
    MATTER_DN_HEX_DIGITS,
    MAX_CATS,
    MAX_OPERATIONAL_NODE_ID,
    MIN_OPERATIONAL_NODE_ID,
    NO_EXPIRY,
    DNAttribute,
    DNTag,
    KeyPurpose,
    KeyUsage,
    MatterCertificate,
    datetime_from_matter_epoch,
    load_public_key,
    matter_epoch_seconds,
)
from jfds_device.errors import CertificateError, DecodeError

__all__ = [
    "DEFAULT_NOT_BEFORE",
    "CertificateIssuer",
    "IssuedCertificate",
    "build_csr",
    "check_csr",
    "issue_certificate",
    "key_identifier",
    "public_key_bytes",
]

# Deterministic defaults: valid from 2000-01-01T00:00:01Z with no expiry. Not-before 0 is avoided on
# purpose: the CHIP SDK writes a TLV time of 0 as 99991231235959Z even in not-before.
DEFAULT_NOT_BEFORE = 1
_X509_NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_CA_KEY_USAGE = KeyUsage.KEY_CERT_SIGN | KeyUsage.CRL_SIGN
# The SDK's order (connectedhomeip src/credentials/tests/CHIPCert_unit_test_vectors.cpp, UnitTest_JF_Node_A_crt).
_NOC_PURPOSES = (KeyPurpose.CLIENT_AUTH, KeyPurpose.SERVER_AUTH)

PublicKeyInput = bytes | ec.EllipticCurvePublicKey
TimeInput = int | datetime


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One certificate in both encodings plus its decoded form."""

    der: bytes
    tlv: bytes
    certificate: MatterCertificate


def public_key_bytes(key: PublicKeyInput | ec.EllipticCurvePrivateKey) -> bytes:
    """The 65-byte uncompressed P-256 point of a key (private keys give their public half)."""
    if isinstance(key, bytes):
        load_public_key(key)  # validates the point
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if not isinstance(key.curve, ec.SECP256R1):
        raise CertificateError(f"Matter keys are P-256, not {key.curve.name}")
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def key_identifier(key: PublicKeyInput | ec.EllipticCurvePrivateKey) -> bytes:
    """SHA-1 of the public point (RFC 5280 §4.2.1.2 method 1), as the CHIP SDK derives SKID/AKID."""
    return hashlib.sha1(public_key_bytes(key)).digest()


def issue_certificate(
    *,
    subject: Sequence[DNAttribute],
    public_key: PublicKeyInput,
    issuer: Sequence[DNAttribute],
    signing_key: ec.EllipticCurvePrivateKey,
    is_ca: bool,
    key_usage: KeyUsage,
    extended_key_usage: Sequence[KeyPurpose] = (),
    path_len: int | None = None,
    authority_key_id: bytes | None = None,
    not_before: TimeInput = DEFAULT_NOT_BEFORE,
    not_after: TimeInput = NO_EXPIRY,
    serial: int | None = None,
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> IssuedCertificate:
    """Build and sign any Matter-shaped certificate; no operational rules are applied here.

    Extensions come in the SDK's order (§6.5 extensions): basicConstraints, keyUsage, extendedKeyUsage (only if
    given), subjectKeyIdentifier, authorityKeyIdentifier (default: the signing key's identifier), then
    ``extra_extensions`` as ``(extension, critical)`` pairs, which become TLV future-extensions.
    """
    if not isinstance(signing_key.curve, ec.SECP256R1):
        raise CertificateError("Matter certificates are signed with P-256 keys")
    subject_key = load_public_key(public_key_bytes(public_key))
    if serial is None:
        serial = int.from_bytes(os.urandom(8), "big") >> 1 or 1  # positive 8-octet INTEGER, like the SDK
    akid = authority_key_id if authority_key_id is not None else key_identifier(signing_key)
    try:
        builder = (
            x509.CertificateBuilder()
            .serial_number(serial)
            .issuer_name(_x509_name(issuer))
            .subject_name(_x509_name(subject))
            .not_valid_before(_x509_time(not_before, "not-before"))
            .not_valid_after(_x509_time(not_after, "not-after"))
            .public_key(subject_key)
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_len), critical=True)
            .add_extension(_x509_key_usage(key_usage), critical=True)
        )
        if extended_key_usage:
            oids = [x509.ObjectIdentifier(KEY_PURPOSE_OIDS[p]) for p in extended_key_usage]
            builder = builder.add_extension(x509.ExtendedKeyUsage(oids), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier(key_identifier(subject_key)), critical=False)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(akid, None, None), critical=False)
        for extension, critical in extra_extensions:
            builder = builder.add_extension(extension, critical=critical)
        der_bytes = builder.sign(signing_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:  # cryptography's own checks (serial size, pathLen without cA, ...)
        raise CertificateError(f"cannot issue this certificate: {exc}") from exc
    cert = MatterCertificate.from_x509_der(der_bytes)
    return IssuedCertificate(der_bytes, cert.encode_tlv(), cert)


@dataclass(frozen=True, slots=True)
class CertificateIssuer:
    """An RCAC or ICAC together with its private key, able to issue ICACs and NOCs beneath it."""

    private_key: ec.EllipticCurvePrivateKey
    issued: IssuedCertificate

    @property
    def certificate(self) -> MatterCertificate:
        return self.issued.certificate

    @classmethod
    def create_root(
        cls,
        rcac_id: int,
        *,
        fabric_id: int | None = None,
        private_key: ec.EllipticCurvePrivateKey | None = None,
        path_len: int | None = None,
        extra_subject: Sequence[DNAttribute] = (),
        not_before: TimeInput = DEFAULT_NOT_BEFORE,
        not_after: TimeInput = NO_EXPIRY,
        serial: int | None = None,
    ) -> CertificateIssuer:
        """A self-signed RCAC (§6.5): subject = [extra_subject..., rcac-id, fabric-id?]."""
        key = private_key or ec.generate_private_key(ec.SECP256R1())
        subject = _ca_subject(extra_subject, DNTag.MATTER_RCAC_ID, rcac_id, fabric_id)
        issued = issue_certificate(
            subject=subject,
            public_key=key.public_key(),
            issuer=subject,
            signing_key=key,
            is_ca=True,
            path_len=path_len,
            key_usage=_CA_KEY_USAGE,
            not_before=not_before,
            not_after=not_after,
            serial=serial,
        )
        return cls(key, issued)

    def issue_icac(
        self,
        public_key: PublicKeyInput,
        icac_id: int,
        *,
        fabric_id: int | None = None,
        path_len: int | None = None,
        extra_subject: Sequence[DNAttribute] = (),
        not_before: TimeInput = DEFAULT_NOT_BEFORE,
        not_after: TimeInput = NO_EXPIRY,
        serial: int | None = None,
    ) -> IssuedCertificate:
        """An ICAC (§6.5) for ``public_key``: subject = [extra_subject..., icac-id, fabric-id?]."""
        return issue_certificate(
            issuer=self.certificate.subject,
            signing_key=self.private_key,
            authority_key_id=self.certificate.subject_key_id,
            subject=_ca_subject(extra_subject, DNTag.MATTER_ICAC_ID, icac_id, fabric_id),
            public_key=public_key,
            is_ca=True,
            path_len=path_len,
            key_usage=_CA_KEY_USAGE,
            not_before=not_before,
            not_after=not_after,
            serial=serial,
        )

    def create_intermediate(
        self,
        icac_id: int,
        *,
        fabric_id: int | None = None,
        private_key: ec.EllipticCurvePrivateKey | None = None,
        not_before: TimeInput = DEFAULT_NOT_BEFORE,
        not_after: TimeInput = NO_EXPIRY,
    ) -> CertificateIssuer:
        """Issue an ICAC for a fresh (or given) key and return it as an issuer in turn."""
        key = private_key or ec.generate_private_key(ec.SECP256R1())
        icac = self.issue_icac(
            key.public_key(), icac_id, fabric_id=fabric_id, not_before=not_before, not_after=not_after
        )
        return CertificateIssuer(key, icac)

    def issue_noc(
        self,
        public_key: PublicKeyInput,
        node_id: int,
        fabric_id: int,
        *,
        cats: Sequence[int] = (),
        extra_subject: Sequence[DNAttribute] = (),
        not_before: TimeInput = DEFAULT_NOT_BEFORE,
        not_after: TimeInput = NO_EXPIRY,
        serial: int | None = None,
    ) -> IssuedCertificate:
        """A NOC (§6.5): subject = [node-id, fabric-id, CATs..., extra_subject...]."""
        if not MIN_OPERATIONAL_NODE_ID <= node_id <= MAX_OPERATIONAL_NODE_ID:
            raise CertificateError(f"node id 0x{node_id:016X} is not an operational node id (Core spec §2.5)")
        if fabric_id == 0 or len(cats) > MAX_CATS:
            raise CertificateError("a NOC needs a non-zero fabric id and at most three CATs (§6.6.2)")
        subject = [
            DNAttribute(DNTag.MATTER_NODE_ID, node_id),
            DNAttribute(DNTag.MATTER_FABRIC_ID, fabric_id),
            *(DNAttribute(DNTag.MATTER_NOC_CAT, cat) for cat in cats),
            *extra_subject,
        ]
        return issue_certificate(
            issuer=self.certificate.subject,
            signing_key=self.private_key,
            authority_key_id=self.certificate.subject_key_id,
            subject=subject,
            public_key=public_key,
            is_ca=False,
            key_usage=KeyUsage.DIGITAL_SIGNATURE,
            extended_key_usage=_NOC_PURPOSES,
            not_before=not_before,
            not_after=not_after,
            serial=serial,
        )


# ---------------------------------------------------------------------------------------------------- CSR


def build_csr(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """A DER PKCS#10 CSR for the operational key (the csr field of the Operational Credentials NOCSRElements).

    The administrator ignores the subject, so it is the minimal "O=CSR" that the CHIP SDK's
    crypto PAL writes; attributes are empty, the signature is ecdsa-with-SHA256.
    """
    public_key_bytes(private_key)  # P-256 only
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CSR")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(private_key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def check_csr(der_bytes: bytes) -> bytes:
    """Validate a NOCSR CSR (well-formed DER, P-256 key, ecdsa-with-SHA256 signature that verifies).

    Returns the 65-byte public key to put in the NOC.
    """
    try:
        der.read_one(der_bytes)  # exactly one DER element: no trailing bytes smuggled in
        csr = x509.load_der_x509_csr(der_bytes)
        key = csr.public_key()
        algorithm = csr.signature_algorithm_oid
        valid = csr.is_signature_valid
    except (ValueError, DecodeError) as exc:
        raise CertificateError(f"malformed CSR: {exc}") from exc
    if algorithm != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise CertificateError("CSR must be signed with ecdsa-with-SHA256")
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CertificateError("CSR public key must be a P-256 EC key")
    if not valid:
        raise CertificateError("CSR signature does not verify")
    return public_key_bytes(key)


# ---------------------------------------------------------------------------------------------------- helpers


def _ca_subject(
    extra: Sequence[DNAttribute], id_tag: DNTag, ca_id: int, fabric_id: int | None
) -> tuple[DNAttribute, ...]:
    fabric = () if fabric_id is None else (DNAttribute(DNTag.MATTER_FABRIC_ID, fabric_id),)
    return (*extra, DNAttribute(id_tag, ca_id), *fabric)


def _x509_name(dn: Sequence[DNAttribute]) -> x509.Name:
    # The string type is passed explicitly so cryptography's per-OID defaults (PrintableString for
    # countryName, ...) never decide it: the TLV tag alone does (§6.5 dn).
    attributes = []
    for attribute in dn:
        if isinstance(attribute.value, int):
            text, kind = f"{attribute.value:0{MATTER_DN_HEX_DIGITS[attribute.kind]}X}", _ASN1Type.UTF8String
        elif attribute.kind is DNTag.DOMAIN_COMPONENT:
            text, kind = attribute.value, _ASN1Type.IA5String
        else:
            text = attribute.value
            kind = _ASN1Type.PrintableString if attribute.printable else _ASN1Type.UTF8String
        attributes.append(x509.NameAttribute(x509.ObjectIdentifier(attribute.oid), text, kind))
    return x509.Name(attributes)


def _x509_time(value: TimeInput, what: str) -> datetime:
    seconds = matter_epoch_seconds(value) if isinstance(value, datetime) else value
    if seconds == NO_EXPIRY and what == "not-after":
        return _X509_NO_EXPIRY
    if not 0 < seconds <= 0xFFFF_FFFF:
        raise CertificateError(f"{what} must be a non-zero 32-bit Matter epoch time")
    return datetime_from_matter_epoch(seconds)


def _x509_key_usage(usage: KeyUsage) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=KeyUsage.DIGITAL_SIGNATURE in usage,
        content_commitment=KeyUsage.NON_REPUDIATION in usage,
        key_encipherment=KeyUsage.KEY_ENCIPHERMENT in usage,
        data_encipherment=KeyUsage.DATA_ENCIPHERMENT in usage,
        key_agreement=KeyUsage.KEY_AGREEMENT in usage,
        key_cert_sign=KeyUsage.KEY_CERT_SIGN in usage,
        crl_sign=KeyUsage.CRL_SIGN in usage,
        encipher_only=KeyUsage.ENCIPHER_ONLY in usage,
        decipher_only=KeyUsage.DECIPHER_ONLY in usage,
    )
