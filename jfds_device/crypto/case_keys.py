"""CASE key material (Core spec §4.14.2) and the fabric/group keys it rests on (Core spec §4.3.2, §4.16).

Only derivations live here; building and parsing Sigma messages is securechannel's job. Every "sigma"
argument is a message payload (the TLV after the protocol header), exactly as sent, because the salts hash
the bytes on the wire.
"""

from __future__ import annotations

import struct
from enum import Enum

from jfds_device.crypto.primitives import (
    AEAD_MIC_LENGTH,
    P256_PUBLIC_KEY_LENGTH,
    SYMMETRIC_KEY_LENGTH,
    aes_ccm_decrypt,
    aes_ccm_encrypt,
    check_length,
    hkdf_sha256,
    hmac_sha256,
    sha256,
)
from jfds_device.crypto.session_keys import IPK_LENGTH, RANDOM_LENGTH, RESUMPTION_ID_LENGTH

COMPRESSED_FABRIC_ID_LENGTH = 8
COMPRESSED_FABRIC_INFO = b"CompressedFabric"
GROUP_KEY_INFO = b"GroupKey v1.0"
GROUP_KEY_HASH_INFO = b"GroupKeyHash"
PRIVACY_KEY_INFO = b"PrivacyKey"
SIGMA2_INFO = b"Sigma2"
SIGMA3_INFO = b"Sigma3"
# AES-CCM nonces for TBEData2 / TBEData3 (13 ASCII bytes each, used with no AAD).
TBE_DATA2_NONCE = b"NCASE_Sigma2N"
TBE_DATA3_NONCE = b"NCASE_Sigma3N"


# --- Fabric and group keys ------------------------------------------------------------------------------


def compressed_fabric_id(root_public_key: bytes, fabric_id: int) -> bytes:
    """Core spec §4.3.2: HKDF(salt=fabric id BE64, ikm=root key X||Y, "CompressedFabric", 8 bytes).

    Names the fabric in operational DNS-SD and salts every operational group key.
    """
    check_length(root_public_key, P256_PUBLIC_KEY_LENGTH, "root public key")
    salt = struct.pack(">Q", fabric_id)
    return hkdf_sha256(salt, root_public_key[1:], COMPRESSED_FABRIC_INFO, COMPRESSED_FABRIC_ID_LENGTH)


def operational_group_key(epoch_key: bytes, compressed_fabric_id: bytes) -> bytes:
    """Core spec §4.16: HKDF(salt=compressed fabric id, ikm=epoch key, "GroupKey v1.0", 16 bytes).

    The IPK used by CASE is this derivation applied to the epoch key of group key set 0.
    """
    check_length(epoch_key, SYMMETRIC_KEY_LENGTH, "epoch key")
    check_length(compressed_fabric_id, COMPRESSED_FABRIC_ID_LENGTH, "compressed fabric ID")
    return hkdf_sha256(compressed_fabric_id, epoch_key, GROUP_KEY_INFO, SYMMETRIC_KEY_LENGTH)


operational_ipk = operational_group_key
"""Core spec §4.14.2: the operational IPK is the operational group key of key set 0's epoch key."""


def group_session_id(operational_group_key: bytes) -> int:
    """Core spec §4.16: HKDF(salt=[], ikm=operational key, "GroupKeyHash", 2 bytes) as BE uint16."""
    return int.from_bytes(hkdf_sha256(b"", operational_group_key, GROUP_KEY_HASH_INFO, 2), "big")


def privacy_key(encryption_key: bytes) -> bytes:
    """Core spec §4.9: HKDF(salt=[], ikm=key, "PrivacyKey", 16); key = operational group or session key."""
    return hkdf_sha256(b"", encryption_key, PRIVACY_KEY_INFO, SYMMETRIC_KEY_LENGTH)


# --- Sigma1 destination and Sigma2/Sigma3 keys ----------------------------------------------------------


def destination_id(ipk: bytes, initiator_random: bytes, root_public_key: bytes, fabric_id: int, node_id: int) -> bytes:
    """Core spec §4.14.2: HMAC(IPK, initiatorRandom || root public key || fabric id LE64 || node id LE64)."""
    check_length(ipk, IPK_LENGTH, "IPK")
    check_length(initiator_random, RANDOM_LENGTH, "initiator random")
    check_length(root_public_key, P256_PUBLIC_KEY_LENGTH, "root public key")
    return hmac_sha256(ipk, initiator_random + root_public_key + struct.pack("<QQ", fabric_id, node_id))


def sigma2_salt(ipk: bytes, responder_random: bytes, responder_eph_public_key: bytes, sigma1: bytes) -> bytes:
    """Core spec §4.14.2: IPK || responderRandom || responder ephemeral public key || SHA-256(Sigma1)."""
    check_length(ipk, IPK_LENGTH, "IPK")
    check_length(responder_random, RANDOM_LENGTH, "responder random")
    check_length(responder_eph_public_key, P256_PUBLIC_KEY_LENGTH, "responder ephemeral public key")
    return ipk + responder_random + responder_eph_public_key + sha256(sigma1)


def sigma2_key(
    shared_secret: bytes, ipk: bytes, responder_random: bytes, responder_eph_public_key: bytes, sigma1: bytes
) -> bytes:
    """S2K = HKDF(salt=sigma2_salt(...), ikm=ECDH shared secret, "Sigma2", 16); seals TBEData2."""
    salt = sigma2_salt(ipk, responder_random, responder_eph_public_key, sigma1)
    return hkdf_sha256(salt, shared_secret, SIGMA2_INFO, SYMMETRIC_KEY_LENGTH)


def sigma3_salt(ipk: bytes, sigma1: bytes, sigma2: bytes) -> bytes:
    """Core spec §4.14.2: IPK || SHA-256(Sigma1 || Sigma2)."""
    check_length(ipk, IPK_LENGTH, "IPK")
    return ipk + sha256(sigma1 + sigma2)


def sigma3_key(shared_secret: bytes, ipk: bytes, sigma1: bytes, sigma2: bytes) -> bytes:
    """S3K = HKDF(salt=sigma3_salt(...), ikm=ECDH shared secret, "Sigma3", 16); seals TBEData3."""
    return hkdf_sha256(sigma3_salt(ipk, sigma1, sigma2), shared_secret, SIGMA3_INFO, SYMMETRIC_KEY_LENGTH)


# --- Session resumption (Core spec §4.14.2, "Sigma1 with Resumption" / "Sigma2_Resume") --------------------


class ResumeStep(Enum):
    """Which resumption MIC: the initiator's in Sigma1, or the responder's in Sigma2_Resume.

    SIGMA1 is keyed with the ResumptionID the initiator presents in Sigma1; SIGMA2 with the *new*
    ResumptionID the responder sends in Sigma2_Resume (connectedhomeip SendSigma2Resume, mNewResumptionId).
    """

    SIGMA1 = (b"Sigma1_Resume", b"NCASE_SigmaS1")
    SIGMA2 = (b"Sigma2_Resume", b"NCASE_SigmaS2")

    def __init__(self, info: bytes, nonce: bytes) -> None:
        self.info = info
        self.nonce = nonce


def resume_key(step: ResumeStep, shared_secret: bytes, initiator_random: bytes, resumption_id: bytes) -> bytes:
    """S1RK / S2RK = HKDF(salt=initiatorRandom || resumptionID, ikm=stored shared secret, info, 16)."""
    check_length(initiator_random, RANDOM_LENGTH, "initiator random")
    check_length(resumption_id, RESUMPTION_ID_LENGTH, "resumption ID")
    return hkdf_sha256(initiator_random + resumption_id, shared_secret, step.info, SYMMETRIC_KEY_LENGTH)


def resume_mic(step: ResumeStep, shared_secret: bytes, initiator_random: bytes, resumption_id: bytes) -> bytes:
    """The 16-byte MIC of AES-CCM(S1RK or S2RK, nonce, empty plaintext, empty AAD)."""
    key = resume_key(step, shared_secret, initiator_random, resumption_id)
    return aes_ccm_encrypt(key, step.nonce, b"")


def verify_resume_mic(
    step: ResumeStep, shared_secret: bytes, initiator_random: bytes, resumption_id: bytes, mic: bytes
) -> None:
    """Check a received resumption MIC by AEAD-decrypting it (as the SDK does); raises CryptoError."""
    check_length(mic, AEAD_MIC_LENGTH, "resumption MIC")
    key = resume_key(step, shared_secret, initiator_random, resumption_id)
    aes_ccm_decrypt(key, step.nonce, mic)
