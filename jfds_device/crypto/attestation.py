"""Device attestation material (Core spec §6.2) and the Certification Declaration (§6.3), device side.

What the device needs at run time:

* the development DAC, PAI, DAC private key and CD that ``certs/make_attestation.py`` generated
  (:func:`load_attestation`);
* the TLV it signs in the Attestation and CSR responses (:func:`attestation_elements`,
  :func:`nocsr_elements`), the to-be-signed buffer (:func:`attestation_tbs`) and the raw r || s DAC
  signature (:func:`sign_with_dac`);
* the CD's CMS envelope, built (:func:`sign_cd`), parsed (:func:`parse_cd`) and verified (:func:`verify_cd`)
  exactly as the CHIP SDK's ``CMS_Sign``/``CMS_Verify`` (``src/credentials/CertificationDeclaration.cpp``) do.

The CD envelope is the reduced CMS SignedData profile of §6.3.1::

    ContentInfo ::= SEQUENCE {
      contentType  id-signedData (1.2.840.113549.1.7.2),
      content [0] EXPLICIT SEQUENCE {                 -- SignedData
        version INTEGER (3),
        digestAlgorithms SET { SEQUENCE { id-sha256 } },
        encapContentInfo SEQUENCE { id-data, [0] EXPLICIT OCTET STRING <CD TLV> },
        -- no certificates, no crls
        signerInfos SET { SEQUENCE {
          version INTEGER (3),
          sid [0] IMPLICIT OCTET STRING <SKID of the CD signing certificate>,
          digestAlgorithm SEQUENCE { id-sha256 },
          -- no signedAttrs
          signatureAlgorithm SEQUENCE { ecdsa-with-SHA256 },
          signature OCTET STRING <DER ECDSA-SHA256 signature over the CD TLV> } } } }
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from jfds_device.codec import tlv
from jfds_device.crypto import der
from jfds_device.crypto.primitives import P256Keypair, public_key_to_bytes, signature_der_to_raw
from jfds_device.errors import CertificateError, CryptoError, DecodeError, LocalProtocolError

__all__ = [
    "ATTESTATION_CHALLENGE_LENGTH",
    "ATTESTATION_NONCE_LENGTH",
    "CD_FILE",
    "CERTIFICATE_ID_LENGTH",
    "CSR_NONCE_LENGTH",
    "DAC_CERT_FILE",
    "DAC_KEY_FILE",
    "DEFAULT_CERTS_DIR",
    "DEVICE_TYPE_JOINT_FABRIC_ADMINISTRATOR",
    "OID_MATTER_PID",
    "OID_MATTER_VID",
    "PAI_CERT_FILE",
    "PRODUCT_ID",
    "VENDOR_ID",
    "AttestationMaterial",
    "CertificationDeclaration",
    "SignedCD",
    "attestation_elements",
    "attestation_tbs",
    "certificate_vid_pid",
    "load_attestation",
    "nocsr_elements",
    "parse_cd",
    "sign_cd",
    "sign_with_dac",
    "verify_cd",
]

# --- Identities the committed development material carries ---------------------------------------------

VENDOR_ID = 0xFFF1  # a CSA test vendor id
PRODUCT_ID = 0x8000  # test product id range 0x8000..0x801F
DEVICE_TYPE_JOINT_FABRIC_ADMINISTRATOR = 0x0130

# --- OIDs ------------------------------------------------------------------------------------------------

OID_MATTER_VID = "1.3.6.1.4.1.37244.2.1"  # Matter DN attribute: Vendor ID, 4 uppercase hex digits (§6.2.2.2)
OID_MATTER_PID = "1.3.6.1.4.1.37244.2.2"  # Matter DN attribute: Product ID
OID_DATA = "1.2.840.113549.1.7.1"  # id-data (pkcs7-data)
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"  # id-signedData
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
CMS_VERSION = 3

# --- Sizes -----------------------------------------------------------------------------------------------

ATTESTATION_NONCE_LENGTH = 32
ATTESTATION_CHALLENGE_LENGTH = 16
CSR_NONCE_LENGTH = 32
CERTIFICATE_ID_LENGTH = 19
MAX_ELEMENTS_LENGTH = 900  # RESP_MAX: the bound on AttestationElements / NOCSRElements

# --- Files -----------------------------------------------------------------------------------------------

DEFAULT_CERTS_DIR = Path(__file__).resolve().parents[2] / "certs"
"""The repository's ``certs/`` directory (works from a checkout or an editable install)."""

DAC_CERT_FILE = "dac_cert.der"  # X.509 DER
PAI_CERT_FILE = "pai_cert.der"  # X.509 DER
DAC_KEY_FILE = "dac_key.der"  # PKCS#8 DER, unencrypted P-256 private key
CD_FILE = "cd.der"  # CMS SignedData DER


# ---------------------------------------------------------------------------------------------------- CD


# TLV context tags of the CD content (§6.3.1, CHIP SDK kTag_*).
_CD_FORMAT_VERSION = 0
_CD_VENDOR_ID = 1
_CD_PRODUCT_ID_ARRAY = 2
_CD_DEVICE_TYPE_ID = 3
_CD_CERTIFICATE_ID = 4
_CD_SECURITY_LEVEL = 5
_CD_SECURITY_INFORMATION = 6
_CD_VERSION_NUMBER = 7
_CD_CERTIFICATION_TYPE = 8
_CD_DAC_ORIGIN_VENDOR_ID = 9
_CD_DAC_ORIGIN_PRODUCT_ID = 10
_CD_AUTHORIZED_PAA_LIST = 11


@dataclass(frozen=True, slots=True)
class CertificationDeclaration:
    """The TLV content of a Certification Declaration (Core spec §6.3.1).

    ``certification_type``: 0 = development and test, 1 = provisional, 2 = official. CDs signed with the
    CSA test CD key are accepted by the CHIP SDK only with type 0 (1 only in builds that allow it).
    """

    vendor_id: int
    product_ids: tuple[int, ...]
    device_type_id: int
    certificate_id: str
    security_level: int = 0
    security_information: int = 0
    version_number: int = 0
    certification_type: int = 0
    format_version: int = 1
    dac_origin_vendor_id: int | None = None
    dac_origin_product_id: int | None = None
    authorized_paa_list: tuple[bytes, ...] = ()

    def to_tlv(self) -> bytes:
        """The anonymous TLV structure, fields in tag order."""
        if not 1 <= len(self.product_ids) <= 100:
            raise LocalProtocolError("a CD lists 1..100 product ids")
        if len(self.certificate_id) != CERTIFICATE_ID_LENGTH:
            raise LocalProtocolError(f"certificate_id must be {CERTIFICATE_ID_LENGTH} characters")
        if (self.dac_origin_vendor_id is None) != (self.dac_origin_product_id is None):
            raise LocalProtocolError("dac_origin_vendor_id and dac_origin_product_id go together")
        fields: dict[int, Any] = {
            _CD_FORMAT_VERSION: self.format_version,
            _CD_VENDOR_ID: self.vendor_id,
            _CD_PRODUCT_ID_ARRAY: list(self.product_ids),
            _CD_DEVICE_TYPE_ID: self.device_type_id,
            _CD_CERTIFICATE_ID: self.certificate_id,
            _CD_SECURITY_LEVEL: self.security_level,
            _CD_SECURITY_INFORMATION: self.security_information,
            _CD_VERSION_NUMBER: self.version_number,
            _CD_CERTIFICATION_TYPE: self.certification_type,
        }
        if self.dac_origin_vendor_id is not None:
            fields[_CD_DAC_ORIGIN_VENDOR_ID] = self.dac_origin_vendor_id
            fields[_CD_DAC_ORIGIN_PRODUCT_ID] = self.dac_origin_product_id
        if self.authorized_paa_list:
            fields[_CD_AUTHORIZED_PAA_LIST] = list(self.authorized_paa_list)
        return tlv.encode(fields)

    @classmethod
    def from_tlv(cls, data: bytes) -> CertificationDeclaration:
        """Decode and check the CD content; raise CertificateError if it is malformed."""
        try:
            value = tlv.decode(data)
        except DecodeError as exc:
            raise CertificateError(f"CD content is not valid TLV: {exc}") from exc
        if not isinstance(value, dict):
            raise CertificateError("CD content is not a TLV structure")

        def opt_uint(tag: int, bits: int) -> int | None:
            item = value.get(tag)
            if item is None:
                return None
            if type(item) is not int or not 0 <= item < (1 << bits):
                raise CertificateError(f"CD field {tag} must be a uint{bits}")
            return item

        def uint(tag: int, bits: int) -> int:
            item = opt_uint(tag, bits)
            if item is None:
                raise CertificateError(f"CD field {tag} is missing")
            return item

        pids = value.get(_CD_PRODUCT_ID_ARRAY)
        if not isinstance(pids, list) or not 1 <= len(pids) <= 100:
            raise CertificateError("CD product_id_array must be an array of 1..100 product ids")
        if any(type(p) is not int or not 0 <= p <= 0xFFFF for p in pids):
            raise CertificateError("CD product ids must be uint16")
        cert_id = value.get(_CD_CERTIFICATE_ID)
        if not isinstance(cert_id, str) or len(cert_id) != CERTIFICATE_ID_LENGTH:
            raise CertificateError(f"CD certificate_id must be a {CERTIFICATE_ID_LENGTH}-character string")
        origin_vid = opt_uint(_CD_DAC_ORIGIN_VENDOR_ID, 16)
        origin_pid = opt_uint(_CD_DAC_ORIGIN_PRODUCT_ID, 16)
        if (origin_vid is None) != (origin_pid is None):
            raise CertificateError("CD dac_origin_vendor_id and dac_origin_product_id must appear together")
        paas = value.get(_CD_AUTHORIZED_PAA_LIST, [])
        if not isinstance(paas, list) or any(not isinstance(p, bytes) or len(p) != 20 for p in paas):
            raise CertificateError("CD authorized_paa_list must be an array of 20-byte key identifiers")
        unknown = set(value) - set(range(_CD_FORMAT_VERSION, _CD_AUTHORIZED_PAA_LIST + 1))
        if unknown:
            raise CertificateError(f"CD has unknown fields {sorted(unknown, key=str)}")
        return cls(
            format_version=uint(_CD_FORMAT_VERSION, 16),
            vendor_id=uint(_CD_VENDOR_ID, 16),
            product_ids=tuple(pids),
            device_type_id=uint(_CD_DEVICE_TYPE_ID, 32),
            certificate_id=cert_id,
            security_level=uint(_CD_SECURITY_LEVEL, 8),
            security_information=uint(_CD_SECURITY_INFORMATION, 16),
            version_number=uint(_CD_VERSION_NUMBER, 16),
            certification_type=uint(_CD_CERTIFICATION_TYPE, 8),
            dac_origin_vendor_id=origin_vid,
            dac_origin_product_id=origin_pid,
            authorized_paa_list=tuple(paas),
        )


@dataclass(frozen=True, slots=True)
class SignedCD:
    """A parsed (not yet verified) CMS-enveloped Certification Declaration."""

    content: bytes
    """The CD TLV (the encapsulated content)."""
    signer_key_id: bytes
    """The subject key identifier of the CD signing certificate (SignerInfo sid)."""
    signature: bytes
    """The DER ECDSA-SHA256 signature over ``content``."""

    @property
    def declaration(self) -> CertificationDeclaration:
        return CertificationDeclaration.from_tlv(self.content)


def _algorithm(dotted: str) -> bytes:
    return der.sequence(der.oid(dotted))  # parameters absent, as the CHIP SDK writes them


def sign_cd(content: bytes, signer_key_id: bytes, signing_key: ec.EllipticCurvePrivateKey) -> bytes:
    """Wrap the CD TLV ``content`` in the CMS SignedData envelope, signed with ``signing_key``."""
    if not isinstance(signing_key.curve, ec.SECP256R1):
        raise LocalProtocolError("the CD signing key must be P-256")
    signature = signing_key.sign(content, ec.ECDSA(hashes.SHA256()))
    signer_info = der.sequence(
        der.integer(CMS_VERSION),
        der.tlv(der.context(0, constructed=False), signer_key_id),  # sid: [0] IMPLICIT SubjectKeyIdentifier
        _algorithm(OID_SHA256),
        _algorithm(OID_ECDSA_WITH_SHA256),
        der.octet_string(signature),
    )
    signed_data = der.sequence(
        der.integer(CMS_VERSION),
        der.set_of(_algorithm(OID_SHA256)),
        der.sequence(der.oid(OID_DATA), der.tlv(der.context(0), der.octet_string(content))),
        der.set_of(signer_info),
    )
    return der.sequence(der.oid(OID_SIGNED_DATA), der.tlv(der.context(0), signed_data))


def _expect_algorithm(element: der.Element, dotted: str, what: str) -> None:
    parts = element.expect(der.SEQUENCE).children()
    if not parts or parts[0].as_oid() != dotted or len(parts) > 2 or (len(parts) == 2 and parts[1].tag != der.NULL):
        raise CertificateError(f"CD {what} must be {dotted}")


def _expect_version(element: der.Element, what: str) -> None:
    if element.as_int() != CMS_VERSION:
        raise CertificateError(f"CD {what} version must be {CMS_VERSION}")


def parse_cd(cms: bytes) -> SignedCD:
    """Parse the CMS envelope of a CD (the §6.3.1 profile); raise CertificateError if it deviates."""
    try:
        content_info = der.read_one(cms).expect(der.SEQUENCE).children()
        if len(content_info) != 2 or content_info[0].as_oid() != OID_SIGNED_DATA:
            raise CertificateError("CD is not a CMS SignedData ContentInfo")
        (signed_data,) = content_info[1].expect(der.context(0)).children()
        fields = signed_data.expect(der.SEQUENCE).children()
        if len(fields) != 4:
            raise CertificateError("CD SignedData must hold version, digestAlgorithms, encapContentInfo, signerInfos")
        version, digests, encap, signer_infos = fields
        _expect_version(version, "SignedData")
        digest_list = digests.expect(der.SET).children()
        if len(digest_list) != 1:
            raise CertificateError("CD digestAlgorithms must hold only SHA-256")
        _expect_algorithm(digest_list[0], OID_SHA256, "digestAlgorithm")
        encap_fields = encap.expect(der.SEQUENCE).children()
        if len(encap_fields) != 2 or encap_fields[0].as_oid() != OID_DATA:
            raise CertificateError("CD encapContentInfo must be id-data with content")
        (econtent,) = encap_fields[1].expect(der.context(0)).children()
        content = econtent.expect(der.OCTET_STRING).content
        signers = signer_infos.expect(der.SET).children()
        if len(signers) != 1:
            raise CertificateError("CD must have exactly one SignerInfo")
        signer = signers[0].expect(der.SEQUENCE).children()
        if len(signer) != 5:
            raise CertificateError("CD SignerInfo must hold version, sid, digest, signatureAlgorithm, signature")
        _expect_version(signer[0], "SignerInfo")
        key_id = signer[1].expect(der.context(0, constructed=False)).content
        _expect_algorithm(signer[2], OID_SHA256, "SignerInfo digestAlgorithm")
        _expect_algorithm(signer[3], OID_ECDSA_WITH_SHA256, "signatureAlgorithm")
        signature = signer[4].expect(der.OCTET_STRING).content
    except (DecodeError, ValueError) as exc:  # ValueError: a one-element unpack that found more
        raise CertificateError(f"malformed CD envelope: {exc}") from exc
    return SignedCD(content=content, signer_key_id=key_id, signature=signature)


def _subject_key_id(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        raise CertificateError("certificate has no subject key identifier") from None


def verify_cd(cms: bytes, signer: x509.Certificate | bytes | ec.EllipticCurvePublicKey) -> CertificationDeclaration:
    """Verify a CD's signature and return its decoded content; raise CertificateError on any failure.

    ``signer`` is the CD signing certificate (a ``cryptography`` object, DER or PEM bytes), or its public key.
    With a certificate, the envelope's signer key id must also equal the certificate's SKID.
    """
    signed = parse_cd(cms)
    if isinstance(signer, bytes):
        signer = _load_certificate(signer)
    if isinstance(signer, x509.Certificate):
        if _subject_key_id(signer) != signed.signer_key_id:
            raise CertificateError("CD signer key id does not match the signing certificate's SKID")
        public_key = signer.public_key()
    else:
        public_key = signer
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise CertificateError("the CD signing key must be P-256")
    try:
        public_key.verify(signed.signature, signed.content, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CertificateError("CD signature does not verify") from None
    return signed.declaration


# ---------------------------------------------------------------------------------------------------- certs


def _load_certificate(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"malformed certificate: {exc}") from exc


def certificate_vid_pid(cert: x509.Certificate | bytes) -> tuple[int | None, int | None]:
    """The Matter Vendor ID and Product ID DN attributes of a PAA/PAI/DAC subject (None when absent)."""
    if isinstance(cert, bytes):
        cert = _load_certificate(cert)

    def attribute(dotted: str) -> int | None:
        values = cert.subject.get_attributes_for_oid(x509.ObjectIdentifier(dotted))
        if not values:
            return None
        text = values[0].value
        if len(values) > 1 or not isinstance(text, str) or len(text) != 4 or text.upper() != text:
            raise CertificateError(f"DN attribute {dotted} must be 4 uppercase hex digits")
        try:
            return int(text, 16)
        except ValueError:
            raise CertificateError(f"DN attribute {dotted} must be 4 uppercase hex digits") from None

    return attribute(OID_MATTER_VID), attribute(OID_MATTER_PID)


@dataclass(frozen=True, slots=True)
class AttestationMaterial:
    """The device's attestation credentials: DAC and PAI as DER, the DAC private key, the CD envelope."""

    dac_cert: bytes
    pai_cert: bytes
    dac_key: ec.EllipticCurvePrivateKey
    cd: bytes

    @property
    def dac(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.dac_cert)

    @property
    def pai(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.pai_cert)

    @property
    def keypair(self) -> P256Keypair:
        return P256Keypair(self.dac_key)

    @property
    def dac_public_key(self) -> bytes:
        """The DAC's 65-byte uncompressed public key."""
        return public_key_to_bytes(self.dac_key.public_key())

    @property
    def declaration(self) -> CertificationDeclaration:
        return parse_cd(self.cd).declaration


def load_attestation(certs_dir: Path | str | None = None) -> AttestationMaterial:
    """Load ``dac_cert.der``, ``pai_cert.der``, ``dac_key.der`` and ``cd.der`` from ``certs_dir``.

    The default is the repository's ``certs/`` directory. Checks that every file parses and that the key
    belongs to the DAC; raises CertificateError otherwise (or if a file is missing).
    """
    directory = Path(certs_dir) if certs_dir is not None else DEFAULT_CERTS_DIR
    try:
        dac_raw = (directory / DAC_CERT_FILE).read_bytes()
        pai_raw = (directory / PAI_CERT_FILE).read_bytes()
        key_raw = (directory / DAC_KEY_FILE).read_bytes()
        cd_raw = (directory / CD_FILE).read_bytes()
    except OSError as exc:
        raise CertificateError(f"attestation material missing in {directory}: {exc}") from exc
    dac = _load_certificate(dac_raw)
    _load_certificate(pai_raw)
    try:
        key = serialization.load_der_private_key(key_raw, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"malformed DAC private key {directory / DAC_KEY_FILE}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CertificateError("the DAC private key must be P-256")
    if public_key_to_bytes(key.public_key()) != dac.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ):
        raise CertificateError("the DAC private key does not match the DAC")
    parse_cd(cd_raw)
    return AttestationMaterial(dac_cert=dac_raw, pai_cert=pai_raw, dac_key=key, cd=cd_raw)


# ---------------------------------------------------------------------------------------------------- TBS


def _check_nonce(nonce: bytes, length: int, what: str) -> None:
    if not isinstance(nonce, bytes) or len(nonce) != length:
        raise LocalProtocolError(f"{what} must be {length} bytes")


def attestation_elements(cd: bytes, nonce: bytes, timestamp: int = 0, firmware_info: bytes | None = None) -> bytes:
    """The AttestationElements of an AttestationResponse (Operational Credentials cluster, §11.18).

    An anonymous TLV structure: 1 certification_declaration, 2 attestation_nonce (32 bytes),
    3 timestamp (uint32 epoch-s, 0 when the device has no time), 4 firmware_information (optional).
    """
    _check_nonce(nonce, ATTESTATION_NONCE_LENGTH, "the attestation nonce")
    if not 0 <= timestamp <= 0xFFFFFFFF:
        raise LocalProtocolError("the attestation timestamp is a uint32 (epoch-s)")
    fields: dict[int, Any] = {1: cd, 2: nonce, 3: timestamp}
    if firmware_info is not None:
        fields[4] = firmware_info
    encoded = tlv.encode(fields)
    if len(encoded) > MAX_ELEMENTS_LENGTH:
        raise LocalProtocolError(f"AttestationElements exceed {MAX_ELEMENTS_LENGTH} bytes")
    return encoded


def attestation_tbs(elements: bytes, attestation_challenge: bytes) -> bytes:
    """The signed message of AttestationResponse and CSRResponse: elements || attestation challenge."""
    _check_nonce(attestation_challenge, ATTESTATION_CHALLENGE_LENGTH, "the attestation challenge")
    return elements + attestation_challenge


def nocsr_elements(csr_der: bytes, csr_nonce: bytes) -> bytes:
    """The NOCSRElements of a CSRResponse (§11.18): {1 csr (PKCS#10 DER), 2 CSRNonce (32 bytes)}."""
    _check_nonce(csr_nonce, CSR_NONCE_LENGTH, "the CSR nonce")
    encoded = tlv.encode({1: csr_der, 2: csr_nonce})
    if len(encoded) > MAX_ELEMENTS_LENGTH:
        raise LocalProtocolError(f"NOCSRElements exceed {MAX_ELEMENTS_LENGTH} bytes")
    return encoded


def sign_with_dac(key: ec.EllipticCurvePrivateKey | P256Keypair, message: bytes) -> bytes:
    """ECDSA-P256-SHA256 over ``message`` with the DAC key, as the raw 64-byte r || s Matter sends."""
    if isinstance(key, P256Keypair):
        return key.sign(message)
    if not isinstance(key.curve, ec.SECP256R1):
        raise CryptoError("the DAC key must be P-256")
    return signature_der_to_raw(key.sign(message, ec.ECDSA(hashes.SHA256())))
