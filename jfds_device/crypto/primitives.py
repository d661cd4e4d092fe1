"""Thin wrappers over ``cryptography`` for the primitives Matter names in Core spec §3.

Everything here is byte-oriented and stateless. Failed verifications and malformed key material raise
:class:`~jfds_device.errors.CryptoError`, never a ``cryptography`` exception, so callers handle one type.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jfds_device.errors import CryptoError

SYMMETRIC_KEY_LENGTH = 16  # CRYPTO_SYMMETRIC_KEY_LENGTH_BITS / 8, Core spec §3.6
AEAD_NONCE_LENGTH = 13  # CRYPTO_AEAD_NONCE_LENGTH_BYTES
AEAD_MIC_LENGTH = 16  # CRYPTO_AEAD_MIC_LENGTH_BYTES
HASH_LENGTH = 32  # SHA-256
P256_PUBLIC_KEY_LENGTH = 65  # uncompressed point 04 || X || Y
P256_SCALAR_LENGTH = 32
P256_SIGNATURE_LENGTH = 64  # raw r || s, Core spec §3.5


def check_length(data: bytes, length: int, what: str) -> bytes:
    """Return ``data`` if it is exactly ``length`` bytes, else raise CryptoError naming ``what``."""
    if len(data) != length:
        raise CryptoError(f"{what} must be {length} bytes, got {len(data)}")
    return data


# --- Hashes, MAC, KDFs (Core spec §3.3, §3.4, §3.8, §3.9) ----------------------------------------------


def sha256(data: bytes) -> bytes:
    """Crypto_Hash: SHA-256."""
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """Crypto_HMAC: HMAC-SHA256."""
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf_sha256(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """Crypto_KDF: HKDF-SHA256 (RFC 5869). An empty salt means HashLen zero bytes, as RFC 5869 says."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


def pbkdf2_sha256(password: bytes, salt: bytes, iterations: int, length: int) -> bytes:
    """Crypto_PBKDF: PBKDF2-HMAC-SHA256."""
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations, length)


# --- AES-128-CCM, the message nonce and privacy (Core spec §3.6, §3.7, §4.8, §4.9) ---------------------


def aes_ccm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Crypto_AEAD_GenerateEncrypt: returns ciphertext || 16-byte MIC."""
    return _ccm(key, nonce).encrypt(nonce, plaintext, aad)


def aes_ccm_decrypt(key: bytes, nonce: bytes, ciphertext_and_mic: bytes, aad: bytes = b"") -> bytes:
    """Crypto_AEAD_DecryptVerify: returns the plaintext; a wrong MIC raises CryptoError."""
    if len(ciphertext_and_mic) < AEAD_MIC_LENGTH:
        raise CryptoError("AEAD input shorter than the MIC")
    try:
        return _ccm(key, nonce).decrypt(nonce, ciphertext_and_mic, aad)
    except InvalidTag:
        raise CryptoError("AES-CCM MIC check failed") from None


def _ccm(key: bytes, nonce: bytes) -> AESCCM:
    check_length(key, SYMMETRIC_KEY_LENGTH, "AES-CCM key")
    check_length(nonce, AEAD_NONCE_LENGTH, "AES-CCM nonce")
    return AESCCM(key, tag_length=AEAD_MIC_LENGTH)


def message_nonce(security_flags: int, message_counter: int, source_node_id: int) -> bytes:
    """Core spec §4.8.1.1: security flags || counter LE32 || source node id LE64.

    ``security_flags`` is the byte exactly as sent (privacy and session-type bits included), and
    ``source_node_id`` is the sender's operational node id, 0 when it has none (PASE). The AAD that goes with
    this nonce is the whole message header as sent.
    """
    return struct.pack("<BIQ", security_flags, message_counter, source_node_id)


def privacy_nonce(session_id: int, mic: bytes) -> bytes:
    """Core spec §4.9 (privacy nonce): session id BE16 || the last 11 bytes of the message MIC."""
    check_length(mic, AEAD_MIC_LENGTH, "MIC")
    return struct.pack(">H", session_id) + mic[5:]


def privacy_obfuscate(privacy_key: bytes, nonce: bytes, data: bytes) -> bytes:
    """Core spec §3.7, §4.9 (Crypto_Privacy_Encrypt): XOR with AES-CTR from block 0x01||nonce||0x0001.

    The same call both obfuscates and de-obfuscates.
    """
    check_length(privacy_key, SYMMETRIC_KEY_LENGTH, "privacy key")
    check_length(nonce, AEAD_NONCE_LENGTH, "privacy nonce")
    counter_block = b"\x01" + nonce + b"\x00\x01"
    encryptor = Cipher(algorithms.AES(privacy_key), modes.CTR(counter_block)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


# --- P-256 (Core spec §3.5) ---------------------------------------------------------------------------


def public_key_from_bytes(data: bytes) -> ec.EllipticCurvePublicKey:
    """Parse a 65-byte uncompressed P-256 point; one that is malformed or off the curve raises CryptoError."""
    check_length(data, P256_PUBLIC_KEY_LENGTH, "P-256 public key")
    if data[0] != 0x04:
        raise CryptoError("P-256 public key must be an uncompressed point (0x04 prefix)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except ValueError:
        raise CryptoError("P-256 public key is not a point on the curve") from None


def public_key_to_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte uncompressed encoding Matter uses in messages and certificates."""
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def signature_raw_to_der(signature: bytes) -> bytes:
    """Raw r || s (Matter) to DER (X.509 / ``cryptography``)."""
    check_length(signature, P256_SIGNATURE_LENGTH, "ECDSA signature")
    return encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))


def signature_der_to_raw(signature: bytes) -> bytes:
    """DER (X.509 / ``cryptography``) to raw r || s (Matter)."""
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        raise CryptoError("malformed DER ECDSA signature") from None
    return r.to_bytes(P256_SCALAR_LENGTH, "big") + s.to_bytes(P256_SCALAR_LENGTH, "big")


def ecdsa_verify(public_key: bytes | ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> None:
    """Crypto_Verify: ECDSA-P256-SHA256 over ``message`` with a raw r || s signature; raises CryptoError."""
    key = public_key_from_bytes(public_key) if isinstance(public_key, bytes) else public_key
    try:
        key.verify(signature_raw_to_der(signature), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CryptoError("ECDSA signature does not verify") from None


class P256Keypair:
    """A P-256 private key with the operations Matter needs: ECDH and raw-signature ECDSA."""

    __slots__ = ("_private_key", "public_key_bytes")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise CryptoError("Matter keys are P-256 only")
        self._private_key = private_key
        self.public_key_bytes: bytes = public_key_to_bytes(private_key.public_key())
        """The 65-byte uncompressed public point."""

    @classmethod
    def generate(cls) -> P256Keypair:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_private_bytes(cls, scalar: bytes) -> P256Keypair:
        """Rebuild from the 32-byte big-endian private scalar (for storage and fixed test vectors)."""
        check_length(scalar, P256_SCALAR_LENGTH, "P-256 private scalar")
        try:
            return cls(ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1()))
        except ValueError:
            raise CryptoError("P-256 private scalar out of range") from None

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return self._private_key

    def private_bytes(self) -> bytes:
        return self._private_key.private_numbers().private_value.to_bytes(P256_SCALAR_LENGTH, "big")

    def ecdh(self, peer_public_key: bytes) -> bytes:
        """Crypto_ECDH: the 32-byte X coordinate of the shared point."""
        return self._private_key.exchange(ec.ECDH(), public_key_from_bytes(peer_public_key))

    def sign(self, message: bytes) -> bytes:
        """Crypto_Sign: ECDSA-P256-SHA256, returned as raw r || s (64 bytes)."""
        return signature_der_to_raw(self._private_key.sign(message, ec.ECDSA(hashes.SHA256())))
