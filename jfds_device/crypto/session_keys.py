"""Secure-session key derivation: I2RKey || R2IKey || AttestationChallenge (Core spec §4.14).

PASE, CASE and CASE resumption all run the same 48-byte HKDF and differ only in salt and info, so one
function does the work and three small ones say what goes in.
"""

from __future__ import annotations

from dataclasses import dataclass

from jfds_device.crypto.primitives import (
    SYMMETRIC_KEY_LENGTH,
    check_length,
    hkdf_sha256,
    sha256,
)

SESSION_KEYS_INFO = b"SessionKeys"
SESSION_RESUMPTION_KEYS_INFO = b"SessionResumptionKeys"
IPK_LENGTH = SYMMETRIC_KEY_LENGTH
RANDOM_LENGTH = 32  # Sigma1 initiatorRandom / Sigma2 responderRandom
RESUMPTION_ID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The three keys a secure session is built from (Core spec §4.14.1, §4.14.2)."""

    i2r_key: bytes
    r2i_key: bytes
    attestation_challenge: bytes

    def for_role(self, is_initiator: bool) -> tuple[bytes, bytes]:
        """Return ``(encrypt_key, decrypt_key)``: the initiator encrypts with I2R, the responder with R2I."""
        return (self.i2r_key, self.r2i_key) if is_initiator else (self.r2i_key, self.i2r_key)


def derive_session_keys(secret: bytes, salt: bytes, info: bytes = SESSION_KEYS_INFO) -> SessionKeys:
    """HKDF-SHA256(ikm=secret, salt, info, 48) split into I2R, R2I and the attestation challenge."""
    n = SYMMETRIC_KEY_LENGTH
    okm = hkdf_sha256(salt, secret, info, 3 * n)
    return SessionKeys(okm[:n], okm[n : 2 * n], okm[2 * n :])


def pase_session_keys(ke: bytes) -> SessionKeys:
    """Core spec §4.14.1: keys from the SPAKE2+ shared key Ke with an empty salt."""
    return derive_session_keys(ke, b"")


def case_session_keys(shared_secret: bytes, ipk: bytes, sigma1: bytes, sigma2: bytes, sigma3: bytes) -> SessionKeys:
    """Core spec §4.14.2: salt = IPK || SHA-256(Sigma1 || Sigma2 || Sigma3), the message payloads as sent."""
    check_length(ipk, IPK_LENGTH, "IPK")
    return derive_session_keys(shared_secret, ipk + sha256(sigma1 + sigma2 + sigma3))


def case_resumption_session_keys(shared_secret: bytes, initiator_random: bytes, resumption_id: bytes) -> SessionKeys:
    """Core spec §4.14.2 (session resumption): salt = Sigma1.initiatorRandom || Sigma1.resumptionID.

    ``resumption_id`` is the *old* ID the initiator presented in Sigma1, not the new one carried in
    Sigma2_Resume: connectedhomeip (CASESession::DeriveSecureSession, kFinishedViaResume uses
    mResumeResumptionId) and matter.js (CaseServer: Bytes.concat(peerRandom, peerResumptionId)) agree, and
    interop depends on it. ``shared_secret`` is the one stored from the original CASE session.
    """
    check_length(initiator_random, RANDOM_LENGTH, "initiator random")
    check_length(resumption_id, RESUMPTION_ID_LENGTH, "resumption ID")
    return derive_session_keys(shared_secret, initiator_random + resumption_id, SESSION_RESUMPTION_KEYS_INFO)
