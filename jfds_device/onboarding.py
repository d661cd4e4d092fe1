"""Onboarding payloads (Core spec §5.1): the ``MT:`` QR code and the 11/21-digit manual pairing code.

Three levels of checking, after the CHIP SDK's produce/consume split:

- construction checks that every field fits its bit width (``LocalProtocolError``);
- ``to_qr()`` / ``to_manual_code()`` also enforce the spec's value rules (passcode, version, VID/PID), so we
  never print a code a commissioner must refuse (``LocalProtocolError``);
- ``from_qr()`` / ``from_manual_code()`` raise ``DecodeError`` for bad characters, length, Base38 or check
  digit, and by default for the same value rules; ``strict=False`` returns what the code says.

The optional TLV data after the 88 packed bits is kept as raw bytes; nothing here parses TLV.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from jfds_device.errors import DecodeError, LocalProtocolError

__all__ = [
    "QR_PREFIX",
    "CommissioningFlow",
    "DiscoveryCapability",
    "SetupPayload",
    "is_valid_passcode",
]

QR_PREFIX = "MT:"


class CommissioningFlow(IntEnum):
    """Custom Flow field (Core spec §5.1.3.1); 3 is reserved."""

    STANDARD = 0
    USER_INTENT = 1
    CUSTOM = 2


class DiscoveryCapability(IntFlag):
    """Discovery Capabilities bitmask (Core spec §5.1.3.1); Wi-Fi PAF was added in Matter 1.4."""

    SOFT_AP = 0x01
    BLE = 0x02
    ON_NETWORK = 0x04
    WIFI_PAF = 0x08


_KNOWN_CAPABILITIES = 0x0F

# Passcodes a device shall not use (Core spec §5.1.7.1): 00000000 and 99999999 fall outside the range anyway.
_TRIVIAL_PASSCODES = frozenset({11111111 * d for d in range(10)} | {12345678, 87654321})
_MAX_PASSCODE = 99999998

# Highest vendor id valid on a fabric (the last test vendor, 0xFFF4); 0 means "not specified" in a payload.
_MAX_VENDOR_ID = 0xFFF4


def is_valid_passcode(passcode: int) -> bool:
    """Whether ``passcode`` may be a setup passcode (Core spec §5.1.7.1): 1..99999998 and not trivial."""
    return 1 <= passcode <= _MAX_PASSCODE and passcode not in _TRIVIAL_PASSCODES


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupPayload:
    """The onboarding payload fields (Core spec §5.1.3.1, Table "Packed Binary Data Structure for Onboarding
    Payload"). Manual codes carry less than QR codes; see ``discriminator_is_short`` and
    ``discovery_capabilities``."""

    discriminator: int
    """The 12-bit discriminator, or only its 4 high bits (0..15) when ``discriminator_is_short``."""
    passcode: int
    """The 27-bit setup passcode; see ``is_valid_passcode``."""
    version: int = 0
    vendor_id: int = 0
    product_id: int = 0
    commissioning_flow: CommissioningFlow = CommissioningFlow.STANDARD
    discovery_capabilities: DiscoveryCapability | None = DiscoveryCapability.ON_NETWORK
    """``None`` when unknown: a manual code does not carry it."""
    discriminator_is_short: bool = False
    """True for a payload read from a manual code, which carries only the short (4-bit) discriminator."""
    tlv_data: bytes = b""
    """Optional TLV data that follows the packed bits in a QR code (Core spec §5.1.5), unparsed."""

    def __post_init__(self) -> None:
        if self.commissioning_flow not in set(CommissioningFlow):
            raise LocalProtocolError(f"commissioning flow {self.commissioning_flow} is reserved")
        for name, bits in _QR_FIELDS:
            if name == "discriminator" and self.discriminator_is_short:
                bits = 4
            value = int(getattr(self, name) or 0)
            if not 0 <= value < 1 << bits:
                raise LocalProtocolError(f"{name} {value} does not fit in {bits} bits")

    @property
    def short_discriminator(self) -> int:
        """The 4 high bits of the discriminator, which is all a manual code and DNS-SD ``_S`` carry."""
        return self.discriminator if self.discriminator_is_short else self.discriminator >> 8

    # --- QR code (Core spec §5.1.3) -------------------------------------------------------------------------

    def to_qr(self) -> str:
        """The ``MT:`` string: the 88 packed bits, then any TLV data, in Base38."""
        problem = self._spec_violation() or self._qr_violation()
        if problem:
            raise LocalProtocolError(f"cannot encode QR code: {problem}")
        return QR_PREFIX + _qr_body(self)

    @classmethod
    def from_qr(cls, text: str, *, strict: bool = True) -> SetupPayload:
        """Parse a QR code that holds exactly one payload."""
        payloads = cls.from_qr_all(text, strict=strict)
        if len(payloads) != 1:
            raise DecodeError(f"QR code holds {len(payloads)} concatenated payloads; use from_qr_all()")
        return payloads[0]

    @classmethod
    def from_qr_all(cls, text: str, *, strict: bool = True) -> tuple[SetupPayload, ...]:
        """Parse a QR code that may join several payloads with ``*`` after one prefix (Core spec §5.1.3)."""
        if not text.startswith(QR_PREFIX):
            raise DecodeError(f"QR code does not start with {QR_PREFIX!r}")
        return tuple(_parse_qr_body(body, strict) for body in text[len(QR_PREFIX) :].split("*"))

    # --- Manual pairing code (Core spec §5.1.4) -------------------------------------------------------------

    def to_manual_code(self) -> str:
        """The manual code digits: 11, or 21 with VID and PID when the flow is not standard."""
        problem = self._spec_violation()
        if problem:
            raise LocalProtocolError(f"cannot encode manual code: {problem}")
        with_ids = self.commissioning_flow != CommissioningFlow.STANDARD
        short = self.short_discriminator
        digits = (
            f"{(with_ids << 2) | (short >> 2)}"
            f"{((short & 0x3) << 14) | (self.passcode & 0x3FFF):05d}"
            f"{self.passcode >> 14:04d}"
        )
        if with_ids:
            digits += f"{self.vendor_id:05d}{self.product_id:05d}"
        return digits + _verhoeff_check_digit(digits)

    @classmethod
    def from_manual_code(cls, text: str, *, strict: bool = True) -> SetupPayload:
        """Parse a manual code; spaces and dashes between digit groups are ignored.

        The result has ``discriminator_is_short`` set and no discovery capabilities. The code says only
        whether the flow is standard; a non-standard one is reported as CUSTOM, as the CHIP SDK does.
        """
        digits = text.replace(" ", "").replace("-", "")
        if not (digits.isascii() and digits.isdigit()):
            raise DecodeError("manual code has characters other than digits, spaces and dashes")
        if len(digits) not in (11, 21):
            raise DecodeError(f"manual code has {len(digits)} digits, not 11 or 21")
        if _verhoeff_check_digit(digits[:-1]) != digits[-1]:
            raise DecodeError("manual code check digit does not match")
        first, low, high = int(digits[0]), int(digits[1:6]), int(digits[6:10])
        with_ids = bool(first & 0x4)
        if with_ids != (len(digits) == 21):
            raise DecodeError("manual code length disagrees with its VID/PID-present bit")
        if low > 0xFFFF or high > 0x1FFF:
            raise DecodeError("manual code digit group out of range")
        vendor_id, product_id = (int(digits[10:15]), int(digits[15:20])) if with_ids else (0, 0)
        if vendor_id > 0xFFFF or product_id > 0xFFFF:
            raise DecodeError("manual code vendor or product id out of range")
        payload = cls(
            version=first >> 3,
            vendor_id=vendor_id,
            product_id=product_id,
            commissioning_flow=CommissioningFlow.CUSTOM if with_ids else CommissioningFlow.STANDARD,
            discovery_capabilities=None,
            discriminator=((first & 0x3) << 2) | (low >> 14),
            discriminator_is_short=True,
            passcode=(high << 14) | (low & 0x3FFF),
        )
        return payload._checked(strict)

    # --- Validation -----------------------------------------------------------------------------------------

    def _spec_violation(self) -> str | None:
        """The first spec value rule this payload breaks (Core spec §5.1.3.1, §5.1.7.1), or None."""
        if self.version != 0:
            return f"version {self.version} (only 0 is defined)"
        if not is_valid_passcode(self.passcode):
            return f"invalid passcode {self.passcode}"
        if self.vendor_id > _MAX_VENDOR_ID:
            return f"vendor id {self.vendor_id:#06x} is reserved"
        if self.vendor_id != 0 and self.product_id == 0:
            # Product id 0 is kept for anonymised announcements; it only goes with "no vendor".
            return "product id 0 with a vendor id"
        return None

    def _qr_violation(self) -> str | None:
        """What stops this payload from being written as a QR code, or None."""
        if self.discriminator_is_short:
            return "a QR code needs the full 12-bit discriminator"
        if self.discovery_capabilities is None:
            return "a QR code needs the discovery capabilities"
        if self.discovery_capabilities & ~_KNOWN_CAPABILITIES:
            return f"reserved discovery capability bits in {int(self.discovery_capabilities):#04x}"
        return None

    def _checked(self, strict: bool) -> SetupPayload:
        problem = self._spec_violation() if strict else None
        if problem:
            raise DecodeError(f"onboarding payload rejected: {problem}")
        return self


# --- QR packing: LSB-first bit fields in an 88-bit little-endian integer (Core spec §5.1.3.1) ---------------

# (field, width in bits) in wire order from bit 0; 4 padding bits complete the 11 bytes.
_QR_FIELDS = (
    ("version", 3),
    ("vendor_id", 16),
    ("product_id", 16),
    ("commissioning_flow", 2),
    ("discovery_capabilities", 8),
    ("discriminator", 12),
    ("passcode", 27),
)
_QR_PACKED_BYTES = 11


def _qr_body(payload: SetupPayload) -> str:
    packed, offset = 0, 0
    for name, bits in _QR_FIELDS:
        packed |= int(getattr(payload, name)) << offset
        offset += bits
    return _base38_encode(packed.to_bytes(_QR_PACKED_BYTES, "little") + payload.tlv_data)


def _parse_qr_body(body: str, strict: bool) -> SetupPayload:
    data = _base38_decode(body)
    if len(data) < _QR_PACKED_BYTES:
        raise DecodeError(f"QR payload has {len(data)} bytes, fewer than the {_QR_PACKED_BYTES} packed ones")
    packed = int.from_bytes(data[:_QR_PACKED_BYTES], "little")
    values: dict[str, int] = {}
    for name, bits in _QR_FIELDS:
        values[name] = packed & ((1 << bits) - 1)
        packed >>= bits
    try:
        flow = CommissioningFlow(values.pop("commissioning_flow"))
    except ValueError:
        raise DecodeError("QR payload uses the reserved commissioning flow 3") from None
    payload = SetupPayload(
        commissioning_flow=flow,
        discovery_capabilities=DiscoveryCapability(values.pop("discovery_capabilities")),
        tlv_data=data[_QR_PACKED_BYTES:],
        **values,
    )
    return payload._checked(strict)


# --- Base38 (Core spec §5.1.3.2): 3/2/1-byte little-endian chunks as 5/4/2 digits, least significant first

_BASE38_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."
_BASE38_VALUES = {char: value for value, char in enumerate(_BASE38_ALPHABET)}
_BASE38_DIGITS_FOR_BYTES = {3: 5, 2: 4, 1: 2}
_BASE38_BYTES_FOR_DIGITS = {digits: n for n, digits in _BASE38_DIGITS_FOR_BYTES.items()}


def _base38_encode(data: bytes) -> str:
    out = []
    for start in range(0, len(data), 3):
        chunk = data[start : start + 3]
        value = int.from_bytes(chunk, "little")
        for _ in range(_BASE38_DIGITS_FOR_BYTES[len(chunk)]):
            value, digit = divmod(value, 38)
            out.append(_BASE38_ALPHABET[digit])
    return "".join(out)


def _base38_decode(text: str) -> bytes:
    out = bytearray()
    for start in range(0, len(text), 5):
        chunk = text[start : start + 5]
        n_bytes = _BASE38_BYTES_FOR_DIGITS.get(len(chunk))
        if n_bytes is None:
            raise DecodeError(f"Base38 text of length {len(text)} does not split into 5/4/2-digit chunks")
        value = 0
        for char in reversed(chunk):
            digit = _BASE38_VALUES.get(char)
            if digit is None:
                raise DecodeError(f"{char!r} is not a Base38 character")
            value = value * 38 + digit
        if value >> (8 * n_bytes):
            raise DecodeError(f"Base38 chunk {chunk!r} exceeds {n_bytes} bytes")
        out += value.to_bytes(n_bytes, "little")
    return bytes(out)


# --- Verhoeff check digit (Core spec §5.1.4.1) --------------------------------------------------------------
# The tables are derived rather than typed in: a commonly copied permutation table has a typo in row 4 that
# breaks some 21-digit codes. Multiplication is in the dihedral group D5 (0-4 rotations, 5-9 reflections);
# the permutation row i applies the base permutation i times.


def _d5_multiply(j: int, k: int) -> int:
    if j < 5:
        return (j + k) % 5 + (0 if k < 5 else 5)
    return (j - k) % 5 + (5 if k < 5 else 0)


def _permutation_powers(base: tuple[int, ...], count: int) -> tuple[tuple[int, ...], ...]:
    rows = [tuple(range(len(base)))]
    while len(rows) < count:
        rows.append(tuple(base[x] for x in rows[-1]))
    return tuple(rows)


_VERHOEFF_D = tuple(tuple(_d5_multiply(j, k) for k in range(10)) for j in range(10))
_VERHOEFF_P = _permutation_powers((1, 5, 7, 6, 2, 8, 3, 0, 9, 4), 8)
_VERHOEFF_INVERSE = tuple((5 - j) % 5 if j < 5 else j for j in range(10))


def _verhoeff_check_digit(digits: str) -> str:
    check = 0
    for position, char in enumerate(reversed(digits), start=1):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(char)]]
    return str(_VERHOEFF_INVERSE[check])
