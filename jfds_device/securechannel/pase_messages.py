"""PASE message schemas (Core spec §4.14.1.2): PBKDFParamRequest/Response and Pake1/2/3.

Each message payload is one anonymous TLV structure. Constraints the spec states are in the field types, so
a payload that decodes is already well-formed: randoms are 32 bytes, shares 65, confirmations 32, the salt
16..32 bytes and the iteration count inside the PBKDF bounds.
"""

from __future__ import annotations

from typing import Final, TypeVar

from jfds_device.codec import tlv
from jfds_device.codec.schema import BOOL, UINT16, Octets, Struct, StructType, UInt, field, struct
from jfds_device.crypto.primitives import HASH_LENGTH, P256_PUBLIC_KEY_LENGTH
from jfds_device.errors import SchemaError
from jfds_device.securechannel.session_params import SessionParameters

__all__ = [
    "DEFAULT_PASSCODE_ID",
    "PBKDF_ITERATIONS_MAX",
    "PBKDF_ITERATIONS_MIN",
    "PBKDF_SALT_MAX_LENGTH",
    "PBKDF_SALT_MIN_LENGTH",
    "RANDOM_LENGTH",
    "Pake1",
    "Pake2",
    "Pake3",
    "PbkdfParamRequest",
    "PbkdfParamResponse",
    "PbkdfParameters",
    "decode_message",
]

RANDOM_LENGTH: Final = 32  # initiatorRandom / responderRandom
DEFAULT_PASSCODE_ID: Final = 0  # the only passcode a commissioning window offers (Core spec §4.14.1.2)
# Core spec §3.9 (PBKDF): CRYPTO_PBKDF_ITERATIONS_MIN / _MAX; §4.14.1.2: salt is 16..32 bytes.
PBKDF_ITERATIONS_MIN: Final = 1000
PBKDF_ITERATIONS_MAX: Final = 100_000
PBKDF_SALT_MIN_LENGTH: Final = 16
PBKDF_SALT_MAX_LENGTH: Final = 32

_RANDOM: Final = Octets(RANDOM_LENGTH, RANDOM_LENGTH)
_SHARE: Final = Octets(P256_PUBLIC_KEY_LENGTH, P256_PUBLIC_KEY_LENGTH)  # uncompressed P-256 point
_CONFIRMATION: Final = Octets(HASH_LENGTH, HASH_LENGTH)  # HMAC-SHA256
# Session id 0 is the unsecured session (Core spec §4.4.1.2), so neither side may offer it.
_SESSION_ID: Final = UInt(16, minimum=1)
_SESSION_PARAMS: Final = StructType(SessionParameters)


@struct
class PbkdfParameters(Struct):
    iterations: int = field(1, UInt(32, PBKDF_ITERATIONS_MIN, PBKDF_ITERATIONS_MAX))
    salt: bytes = field(2, Octets(PBKDF_SALT_MAX_LENGTH, PBKDF_SALT_MIN_LENGTH))


@struct
class PbkdfParamRequest(Struct):
    initiator_random: bytes = field(1, _RANDOM)
    initiator_session_id: int = field(2, _SESSION_ID)
    passcode_id: int = field(3, UINT16)
    has_pbkdf_parameters: bool = field(4, BOOL)
    initiator_session_params: SessionParameters | None = field(5, _SESSION_PARAMS, optional=True)


@struct
class PbkdfParamResponse(Struct):
    initiator_random: bytes = field(1, _RANDOM)
    responder_random: bytes = field(2, _RANDOM)
    responder_session_id: int = field(3, _SESSION_ID)
    # Omitted when the request said hasPBKDFParameters = true (the initiator already knows them).
    pbkdf_parameters: PbkdfParameters | None = field(4, StructType(PbkdfParameters), optional=True)
    responder_session_params: SessionParameters | None = field(5, _SESSION_PARAMS, optional=True)


@struct
class Pake1(Struct):
    pa: bytes = field(1, _SHARE)


@struct
class Pake2(Struct):
    pb: bytes = field(1, _SHARE)
    cb: bytes = field(2, _CONFIRMATION)


@struct
class Pake3(Struct):
    ca: bytes = field(1, _CONFIRMATION)


M = TypeVar("M", bound=Struct)


def decode_message(cls: type[M], payload: bytes) -> M:
    """Decode a PASE payload: exactly one anonymous structure that fits ``cls``, else a ``DecodeError``."""
    tag, value = tlv.decode_element(payload)
    if tag is not None:
        raise SchemaError(f"{cls.__name__}: the message structure must be anonymous, got tag {tag!r}")
    decoded: M = cls.from_tlv(value)
    return decoded
