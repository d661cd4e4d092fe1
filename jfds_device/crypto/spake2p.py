"""SPAKE2+ as PASE uses it (Core spec §3.10, §4.14.1): draft-bar-cfrg-spake2plus-01, P-256, SHA-256.

Matter pins the *draft-01* key schedule, not RFC 9383's: Ka || Ke = SHA-256(TT) and
KcA || KcB = HKDF(Ka, "ConfirmationKeys"). Identities are empty and the context is
SHA-256("CHIP PAKE V1 Commissioning" || PBKDFParamRequest || PBKDFParamResponse).

The prover is the commissioner (it knows the passcode, so w0 and w1); the verifier is the device (it stores
only w0 and L = w1·G). Both are plain objects: call them in protocol order and they return bytes.
pycryptodome supplies only the point arithmetic; ``cryptography`` has no public API for it.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from dataclasses import dataclass
from typing import NamedTuple

from Crypto.PublicKey.ECC import EccPoint

from jfds_device.crypto.primitives import (
    HASH_LENGTH,
    P256_PUBLIC_KEY_LENGTH,
    P256_SCALAR_LENGTH,
    check_length,
    hkdf_sha256,
    hmac_sha256,
    pbkdf2_sha256,
    sha256,
)
from jfds_device.errors import CryptoError, LocalProtocolError

# P-256 group order and generator (SEC 2 §2.4.2).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = EccPoint(
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    "p256",
)

# draft-bar-cfrg-spake2plus-01 P-256 ciphersuite constants, as connectedhomeip's spake2p_M_p256 / spake2p_N_p256.
M_BYTES = bytes.fromhex(
    "04886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
    "5ff355163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d55a12e2d20"
)
N_BYTES = bytes.fromhex(
    "04d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"
    "07d60aa6bfade45008a636337f5168c64d9bd36034808cd564490b1e656edbe7"
)

CONTEXT_PREFIX = b"CHIP PAKE V1 Commissioning"
CONFIRMATION_KEYS_INFO = b"ConfirmationKeys"
W_SEED_LENGTH = 40  # each of w0s, w1s: ceil(log2(n)/8) + 8 bytes, Core spec §3.10
VERIFIER_LENGTH = P256_SCALAR_LENGTH + P256_PUBLIC_KEY_LENGTH  # serialized w0 || L


def _decode_point(data: bytes, what: str) -> EccPoint:
    """Uncompressed point → EccPoint; off-curve or identity raises CryptoError (the checks draft-01 requires)."""
    check_length(data, P256_PUBLIC_KEY_LENGTH, what)
    if data[0] != 0x04:
        raise CryptoError(f"{what} must be an uncompressed point")
    try:
        point = EccPoint(int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big"), "p256")
    except ValueError:
        raise CryptoError(f"{what} is not on P-256") from None
    if point.is_point_at_infinity():
        raise CryptoError(f"{what} is the identity element")
    return point


def _encode_point(point: EccPoint) -> bytes:
    if point.is_point_at_infinity():
        # Only reachable when a peer picked its share to cancel ours (e.g. X = w0·M): abort, as draft-01 says.
        raise CryptoError("SPAKE2+ produced the identity element")
    return b"\x04" + int(point.x).to_bytes(32, "big") + int(point.y).to_bytes(32, "big")


_M = _decode_point(M_BYTES, "M")
_N = _decode_point(N_BYTES, "N")


def _check_scalar(value: int, what: str, *, allow_zero: bool) -> int:
    if not (0 if allow_zero else 1) <= value < P256_ORDER:
        raise CryptoError(f"{what} is out of range for P-256")
    return value


def _random_scalar() -> int:
    return secrets.randbelow(P256_ORDER - 1) + 1


# --- Passcode verifier (Core spec §3.10, §4.14.1) ----------------------------------------------------


def pase_context(pbkdf_param_request: bytes, pbkdf_param_response: bytes) -> bytes:
    """Core spec §4.14.1: the SPAKE2+ Context is a hash over both PBKDF messages (payloads only)."""
    return sha256(CONTEXT_PREFIX + pbkdf_param_request + pbkdf_param_response)


def compute_w0_w1(passcode: int, salt: bytes, iterations: int) -> tuple[int, int]:
    """w0s || w1s = PBKDF2(passcode as LE32, salt, iterations, 80); each half is reduced mod n."""
    if not 0 <= passcode <= 0xFFFFFFFF:
        raise LocalProtocolError("passcode must fit in 32 bits")
    ws = pbkdf2_sha256(struct.pack("<I", passcode), salt, iterations, 2 * W_SEED_LENGTH)
    w0 = int.from_bytes(ws[:W_SEED_LENGTH], "big") % P256_ORDER
    w1 = int.from_bytes(ws[W_SEED_LENGTH:], "big") % P256_ORDER
    return w0, w1


class PaseVerifier(NamedTuple):
    """What a device stores instead of its passcode: w0 and L = w1·G."""

    w0: int
    L: bytes

    def to_bytes(self) -> bytes:
        """The 97-byte w0 (BE32) || L blob the SDK's spake2p tool emits (usually base64)."""
        return self.w0.to_bytes(P256_SCALAR_LENGTH, "big") + self.L

    @classmethod
    def from_w0_w1(cls, w0: int, w1: int) -> PaseVerifier:
        _check_scalar(w0, "w0", allow_zero=True)
        return cls(w0, _encode_point(_G * _check_scalar(w1, "w1", allow_zero=True)))

    @classmethod
    def from_bytes(cls, data: bytes) -> PaseVerifier:
        check_length(data, VERIFIER_LENGTH, "PASE verifier")
        w0 = _check_scalar(int.from_bytes(data[:P256_SCALAR_LENGTH], "big"), "w0", allow_zero=True)
        L = data[P256_SCALAR_LENGTH:]
        _decode_point(L, "L")
        return cls(w0, L)


def make_verifier(passcode: int, salt: bytes, iterations: int) -> PaseVerifier:
    return PaseVerifier.from_w0_w1(*compute_w0_w1(passcode, salt, iterations))


# --- Key schedule (draft-01) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spake2pKeys:
    ka: bytes
    ke: bytes
    kca: bytes
    kcb: bytes


def key_schedule(
    context: bytes,
    prover_id: bytes,
    verifier_id: bytes,
    x_share: bytes,
    y_share: bytes,
    z: bytes,
    v: bytes,
    w0: int,
) -> Spake2pKeys:
    """TT = each field prefixed by its length as LE64; Ka || Ke = SHA-256(TT); KcA || KcB = HKDF(Ka)."""
    fields = (context, prover_id, verifier_id, M_BYTES, N_BYTES, x_share, y_share, z, v)
    tt = b"".join(struct.pack("<Q", len(f)) + f for f in (*fields, w0.to_bytes(P256_SCALAR_LENGTH, "big")))
    digest = sha256(tt)
    half = HASH_LENGTH // 2
    kc = hkdf_sha256(b"", digest[:half], CONFIRMATION_KEYS_INFO, HASH_LENGTH)
    return Spake2pKeys(ka=digest[:half], ke=digest[half:], kca=kc[:half], kcb=kc[half:])


def _check_confirmation(key: bytes, share: bytes, received: bytes) -> None:
    if not hmac.compare_digest(hmac_sha256(key, share), received):
        raise CryptoError("SPAKE2+ key confirmation failed")


# --- The two parties ----------------------------------------------------------------------------------


class Spake2pProver:
    """Commissioner side: ``share`` is pA (X); ``finish(pB, cB)`` checks cB and returns ``(cA, Ke)``."""

    def __init__(
        self,
        context: bytes,
        w0: int,
        w1: int,
        *,
        prover_id: bytes = b"",
        verifier_id: bytes = b"",
        x: int | None = None,
    ) -> None:
        self._context, self._ids = context, (prover_id, verifier_id)
        self._w0 = _check_scalar(w0, "w0", allow_zero=True)
        self._w1 = _check_scalar(w1, "w1", allow_zero=True)
        self._x = _check_scalar(_random_scalar() if x is None else x, "x", allow_zero=False)
        self.share: bytes = _encode_point(_G * self._x + _M * self._w0)
        self._done = False

    def finish(self, peer_share: bytes, peer_confirmation: bytes) -> tuple[bytes, bytes]:
        if self._done:
            raise LocalProtocolError("SPAKE2+ prover already finished")
        self._done = True
        y_point = _decode_point(peer_share, "pB")
        base = y_point + (-(_N * self._w0))  # Y - w0·N
        z, v = _encode_point(base * self._x), _encode_point(base * self._w1)
        keys = key_schedule(self._context, *self._ids, self.share, peer_share, z, v, self._w0)
        _check_confirmation(keys.kcb, self.share, peer_confirmation)
        return hmac_sha256(keys.kca, peer_share), keys.ke


class Spake2pVerifier:
    """Device side: ``respond(pA)`` returns ``(pB, cB)``; ``finish(cA)`` checks cA and returns Ke."""

    def __init__(
        self,
        context: bytes,
        w0: int,
        L: bytes,
        *,
        prover_id: bytes = b"",
        verifier_id: bytes = b"",
        y: int | None = None,
    ) -> None:
        self._context, self._ids = context, (prover_id, verifier_id)
        self._w0 = _check_scalar(w0, "w0", allow_zero=True)
        self._l_point = _decode_point(L, "L")
        self._y = _check_scalar(_random_scalar() if y is None else y, "y", allow_zero=False)
        self.share: bytes = _encode_point(_G * self._y + _N * self._w0)
        self._keys: Spake2pKeys | None = None
        self._done = False

    def respond(self, peer_share: bytes) -> tuple[bytes, bytes]:
        if self._keys is not None:
            raise LocalProtocolError("SPAKE2+ verifier already responded")
        x_point = _decode_point(peer_share, "pA")
        z = _encode_point((x_point + (-(_M * self._w0))) * self._y)  # y·(X - w0·M)
        v = _encode_point(self._l_point * self._y)
        self._keys = key_schedule(self._context, *self._ids, peer_share, self.share, z, v, self._w0)
        return self.share, hmac_sha256(self._keys.kcb, peer_share)

    def finish(self, peer_confirmation: bytes) -> bytes:
        if self._keys is None or self._done:
            raise LocalProtocolError("SPAKE2+ verifier finish() needs exactly one respond() first")
        self._done = True
        _check_confirmation(self._keys.kca, self.share, peer_confirmation)
        return self._keys.ke
