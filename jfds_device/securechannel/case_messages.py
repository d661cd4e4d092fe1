"""CASE message schemas (Core spec §4.14.2.3): Sigma1, Sigma2, Sigma3, Sigma2_Resume and the TBE/TBS blobs.

Each payload is one anonymous TLV structure; sizes the spec states are in the field types, so a payload that
decodes is already well-formed (randoms and destination ids 32 bytes, ephemeral keys 65, signatures 64,
resumption ids and MICs 16, certificates at most 400 bytes). Only the key derivations live in
``crypto.case_keys``; this module adds the AES-CCM sealing of the TBE blobs, which is message layout.

TBSData2 and TBSData3 have the same shape: {1 sender NOC, 2 sender ICAC (optional), 3 sender ephemeral key,
4 receiver ephemeral key}, the responder being the sender in Sigma2 and the initiator in Sigma3 (the SDK's
ConstructTBSData takes them in that order too), so one ``TbsData`` struct serves both.
"""

from __future__ import annotations

from typing import Final, TypeVar

from jfds_device.codec.schema import Octets, Struct, StructType, UInt, field, struct
from jfds_device.crypto.primitives import (
    AEAD_MIC_LENGTH,
    HASH_LENGTH,
    P256_PUBLIC_KEY_LENGTH,
    P256_SIGNATURE_LENGTH,
    aes_ccm_decrypt,
    aes_ccm_encrypt,
)
from jfds_device.crypto.session_keys import RANDOM_LENGTH, RESUMPTION_ID_LENGTH
from jfds_device.securechannel.pase_messages import decode_message
from jfds_device.securechannel.session_params import SessionParameters

__all__ = [
    "MAX_CERTIFICATE_LENGTH",
    "RANDOM_LENGTH",
    "RESUMPTION_ID_LENGTH",
    "Sigma1",
    "Sigma2",
    "Sigma2Resume",
    "Sigma3",
    "TbeData2",
    "TbeData3",
    "TbsData",
    "decode_message",
    "open_tbe",
    "seal_tbe",
]

# A Matter TLV certificate is at most 400 bytes (connectedhomeip kMaxCHIPCertLength, Core spec §6.1).
MAX_CERTIFICATE_LENGTH: Final = 400

_RANDOM: Final = Octets(RANDOM_LENGTH, RANDOM_LENGTH)
_DESTINATION_ID: Final = Octets(HASH_LENGTH, HASH_LENGTH)  # HMAC-SHA256
_EPH_KEY: Final = Octets(P256_PUBLIC_KEY_LENGTH, P256_PUBLIC_KEY_LENGTH)  # uncompressed P-256 point
_RESUMPTION_ID: Final = Octets(RESUMPTION_ID_LENGTH, RESUMPTION_ID_LENGTH)
_MIC: Final = Octets(AEAD_MIC_LENGTH, AEAD_MIC_LENGTH)
_SIGNATURE: Final = Octets(P256_SIGNATURE_LENGTH, P256_SIGNATURE_LENGTH)  # raw r || s (Core spec §3.5)
_CERT: Final = Octets(MAX_CERTIFICATE_LENGTH, 1)
# An empty ICAC element means "no ICAC": the SDK's Sigma2/Sigma3 readers accept it (an empty span is no ICAC
# to ValidatePeerIdentity), and the TBSData of matter.js packages/protocol/test/session/secure/CasePairingTest.ts
# @ b851ce019504 ("generates the right signature") carries one. The TBSData that is verified keeps the element
# exactly as received, so the signature covers the bytes the sender signed.
_ICAC: Final = Octets(MAX_CERTIFICATE_LENGTH, 0)
# An encrypted blob is a non-empty TLV structure plus the MIC (the SDK insists on more than the MIC alone).
_ENCRYPTED: Final = Octets(None, AEAD_MIC_LENGTH + 1)
# Session id 0 is the unsecured session (Core spec §4.4.1.2), so neither side may offer it.
_SESSION_ID: Final = UInt(16, minimum=1)
_SESSION_PARAMS: Final = StructType(SessionParameters)


@struct
class Sigma1(Struct):
    """Initiator → responder. Resumption fields come as a pair or not at all (checked by the responder)."""

    initiator_random: bytes = field(1, _RANDOM)
    initiator_session_id: int = field(2, _SESSION_ID)
    destination_id: bytes = field(3, _DESTINATION_ID)
    initiator_eph_pub_key: bytes = field(4, _EPH_KEY)
    initiator_session_params: SessionParameters | None = field(5, _SESSION_PARAMS, optional=True)
    resumption_id: bytes | None = field(6, _RESUMPTION_ID, optional=True)
    initiator_resume_mic: bytes | None = field(7, _MIC, optional=True)


@struct
class Sigma2(Struct):
    responder_random: bytes = field(1, _RANDOM)
    responder_session_id: int = field(2, _SESSION_ID)
    responder_eph_pub_key: bytes = field(3, _EPH_KEY)
    encrypted2: bytes = field(4, _ENCRYPTED)  # TBEData2 sealed with S2K
    responder_session_params: SessionParameters | None = field(5, _SESSION_PARAMS, optional=True)


@struct
class Sigma3(Struct):
    encrypted3: bytes = field(1, _ENCRYPTED)  # TBEData3 sealed with S3K


@struct
class Sigma2Resume(Struct):
    resumption_id: bytes = field(1, _RESUMPTION_ID)  # the responder's *new* resumption id
    sigma2_resume_mic: bytes = field(2, _MIC)
    responder_session_id: int = field(3, _SESSION_ID)
    responder_session_params: SessionParameters | None = field(4, _SESSION_PARAMS, optional=True)


@struct
class TbeData2(Struct):
    responder_noc: bytes = field(1, _CERT)
    responder_icac: bytes | None = field(2, _ICAC, optional=True)
    signature: bytes = field(3, _SIGNATURE)  # over TbsData(responder NOC/ICAC, responder eph, initiator eph)
    resumption_id: bytes = field(4, _RESUMPTION_ID)


@struct
class TbeData3(Struct):
    initiator_noc: bytes = field(1, _CERT)
    initiator_icac: bytes | None = field(2, _ICAC, optional=True)
    signature: bytes = field(3, _SIGNATURE)  # over TbsData(initiator NOC/ICAC, initiator eph, responder eph)


@struct
class TbsData(Struct):
    """TBSData2 (sender = responder) and TBSData3 (sender = initiator): what the sender's NOC key signs."""

    sender_noc: bytes = field(1, _CERT)
    sender_icac: bytes | None = field(2, _ICAC, optional=True)
    sender_eph_pub_key: bytes = field(3, _EPH_KEY)
    receiver_eph_pub_key: bytes = field(4, _EPH_KEY)


M = TypeVar("M", bound=Struct)


def seal_tbe(key: bytes, nonce: bytes, blob: Struct) -> bytes:
    """AES-CCM(S2K or S3K, "NCASE_Sigma2N"/"NCASE_Sigma3N", no AAD) over the blob's TLV: ciphertext || MIC."""
    return aes_ccm_encrypt(key, nonce, blob.encode())


def open_tbe(cls: type[M], key: bytes, nonce: bytes, encrypted: bytes) -> M:
    """Decrypt and decode a TBE blob: ``CryptoError`` if the MIC fails, ``DecodeError`` if the TLV is bad."""
    return decode_message(cls, aes_ccm_decrypt(key, nonce, encrypted))
