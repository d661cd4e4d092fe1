"""A small QR code encoder (ISO/IEC 18004), for showing the Matter ``MT:`` payload on a terminal.

Only what a setup payload needs: error correction level M, versions 1-10 (the smallest that fits is
chosen), alphanumeric mode when every character is in the QR alphanumeric set (Matter's Base38 text,
``MT:`` and ``*`` all are) and byte mode (UTF-8) otherwise. The mask is the one with the lowest penalty
score (§7.8.3), scored on the finished symbol.

Usage: ``print(render(encode("MT:Y.K90AFN00KA0648G00")))``.
"""

from __future__ import annotations

import itertools
import re

__all__ = ["ALPHANUMERIC", "encode", "penalty", "render"]

Matrix = list[list[bool]]

ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

# Level M, per version 1..10: (EC codewords per block, [(block count, data codewords per block), ...]).
_BLOCKS_M: dict[int, tuple[int, list[tuple[int, int]]]] = {
    1: (10, [(1, 16)]),
    2: (16, [(1, 28)]),
    3: (26, [(1, 44)]),
    4: (18, [(2, 32)]),
    5: (24, [(2, 43)]),
    6: (16, [(4, 27)]),
    7: (18, [(4, 31)]),
    8: (22, [(2, 38), (2, 39)]),
    9: (22, [(3, 36), (2, 37)]),
    10: (26, [(4, 43), (1, 44)]),
}
_ALIGNMENT_CENTRES = {1: [], 2: [6, 18], 3: [6, 22], 4: [6, 26], 5: [6, 30], 6: [6, 34],
                      7: [6, 22, 38], 8: [6, 24, 42], 9: [6, 26, 46], 10: [6, 28, 50]}  # fmt: skip
_EC_LEVEL_M = 0b00  # the 2 format-information bits for level M (L=01, M=00, Q=11, H=10)

_MASKS = [
    lambda r, c: (r + c) % 2 == 0,
    lambda r, c: r % 2 == 0,
    lambda r, c: c % 3 == 0,
    lambda r, c: (r + c) % 3 == 0,
    lambda r, c: (r // 2 + c // 3) % 2 == 0,
    lambda r, c: (r * c) % 2 + (r * c) % 3 == 0,
    lambda r, c: ((r * c) % 2 + (r * c) % 3) % 2 == 0,
    lambda r, c: ((r + c) % 2 + (r * c) % 3) % 2 == 0,
]


# --- Data: bit stream and Reed-Solomon codewords ---------------------------------------------------------


def _data_bits(text: str, version: int) -> list[int]:
    """Mode indicator, character count and data bits (§7.4), without terminator or padding."""
    bits: list[int] = []

    def put(value: int, width: int) -> None:
        bits.extend((value >> i) & 1 for i in reversed(range(width)))

    if all(ch in ALPHANUMERIC for ch in text):
        put(0b0010, 4)
        put(len(text), 9 if version <= 9 else 11)
        for i in range(0, len(text) - 1, 2):
            put(ALPHANUMERIC.index(text[i]) * 45 + ALPHANUMERIC.index(text[i + 1]), 11)
        if len(text) % 2:
            put(ALPHANUMERIC.index(text[-1]), 6)
    else:
        data = text.encode()
        put(0b0100, 4)
        put(len(data), 8 if version <= 9 else 16)
        for byte in data:
            put(byte, 8)
    return bits


def _data_capacity(version: int) -> int:
    """Data codewords (bytes) in a level M symbol of ``version``."""
    return sum(count * size for count, size in _BLOCKS_M[version][1])


# GF(256) with the QR field polynomial x^8 + x^4 + x^3 + x^2 + 1: powers of the generator α = 2, and logs.
_EXP = [1] * 255
for _i in range(1, 255):
    _EXP[_i] = (_EXP[_i - 1] << 1) ^ (0x11D if _EXP[_i - 1] & 0x80 else 0)
_LOG = {value: power for power, value in enumerate(_EXP)}
del _i


def _gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[(_LOG[a] + _LOG[b]) % 255]


def _rs_ecc(data: list[int], n_ecc: int) -> list[int]:
    """The ``n_ecc`` Reed-Solomon check codewords of ``data`` (generator roots α^0 .. α^(n_ecc-1))."""
    generator = [1]  # coefficients, highest power first
    for power in range(n_ecc):  # multiply by (x - α^power)
        generator = [a ^ _gf_mul(b, _EXP[power]) for a, b in zip([*generator, 0], [0, *generator], strict=True)]
    remainder = [0] * n_ecc
    for byte in data:  # polynomial long division, one data codeword at a time
        factor = byte ^ remainder[0]
        remainder = [*remainder[1:], 0]
        for i in range(n_ecc):
            remainder[i] ^= _gf_mul(generator[i + 1], factor)
    return remainder


def _codewords(text: str) -> tuple[int, list[int]]:
    """The smallest version that holds ``text``, and its final (interleaved) codeword sequence."""
    for version in _BLOCKS_M:
        bits = _data_bits(text, version)
        capacity = _data_capacity(version)
        if len(bits) <= capacity * 8:
            break
    else:
        raise ValueError(f"{len(text)} characters do not fit in a version {max(_BLOCKS_M)} QR code")
    bits += [0] * min(4, capacity * 8 - len(bits))  # terminator
    bits += [0] * (-len(bits) % 8)
    data = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    data += [(0xEC, 0x11)[i % 2] for i in range(capacity - len(data))]

    n_ecc, groups = _BLOCKS_M[version]
    blocks: list[list[int]] = []
    for count, size in groups:
        for _ in range(count):
            blocks.append(data[:size])
            data = data[size:]
    eccs = [_rs_ecc(block, n_ecc) for block in blocks]
    result = [block[i] for i in range(max(map(len, blocks))) for block in blocks if i < len(block)]
    result += [ecc[i] for i in range(n_ecc) for ecc in eccs]
    return version, result


# --- Symbol: function patterns, data placement, masking ---------------------------------------------------


def _bch(value: int, generator: int) -> int:
    """``value`` followed by its BCH remainder for ``generator`` (as in format and version information)."""
    degree = generator.bit_length() - 1
    remainder = value << degree
    while remainder.bit_length() > degree:
        remainder ^= generator << (remainder.bit_length() - generator.bit_length())
    return (value << degree) | remainder


def _function_patterns(version: int) -> tuple[Matrix, Matrix]:
    """The symbol with finder, timing and alignment patterns, and the mask of reserved (function) modules.

    Format and version information areas are reserved here and drawn by ``_draw_info``."""
    size = 4 * version + 17
    dark = [[False] * size for _ in range(size)]
    reserved = [[False] * size for _ in range(size)]

    def put(r: int, c: int, value: bool) -> None:
        dark[r][c], reserved[r][c] = value, True

    for i in range(size):  # timing patterns (finders and alignments overwrite what they cover)
        put(6, i, i % 2 == 0)
        put(i, 6, i % 2 == 0)
    for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):  # finders with their light separators
        for r in range(top - 1, top + 8):
            for c in range(left - 1, left + 8):
                if 0 <= r < size and 0 <= c < size:
                    ring = max(abs(r - top - 3), abs(c - left - 3))
                    put(r, c, ring in (0, 1, 3))
    centres = _ALIGNMENT_CENTRES[version]
    for r0 in centres:
        for c0 in centres:
            if (r0, c0) in ((6, 6), (6, centres[-1]), (centres[-1], 6)):
                continue  # would overlap a finder
            for r in range(r0 - 2, r0 + 3):
                for c in range(c0 - 2, c0 + 3):
                    put(r, c, max(abs(r - r0), abs(c - c0)) != 1)
    _draw_info(dark, reserved, version, mask=0)  # placeholder bits; only the reservation matters here
    return dark, reserved


def _draw_info(dark: Matrix, reserved: Matrix, version: int, mask: int) -> None:
    """Format information (§7.9) for level M and ``mask``, the dark module, and version information (§7.10)."""
    size = len(dark)

    def put(r: int, c: int, value: bool) -> None:
        dark[r][c], reserved[r][c] = value, True

    bits = _bch(_EC_LEVEL_M << 3 | mask, 0x537) ^ 0x5412
    for i in range(15):
        bit = bool(bits >> i & 1)
        put(*((i, 8) if i < 6 else (i + 1, 8) if i < 8 else (8, 7) if i == 8 else (8, 14 - i)), bit)
        put(*((8, size - 1 - i) if i < 8 else (size - 15 + i, 8)), bit)
    put(size - 8, 8, True)
    if version >= 7:
        bits = _bch(version, 0x1F25)
        for i in range(18):
            a, b = size - 11 + i % 3, i // 3
            put(a, b, bool(bits >> i & 1))
            put(b, a, bool(bits >> i & 1))


def _place_data(dark: Matrix, reserved: Matrix, codewords: list[int]) -> None:
    """Fill the non-reserved modules two columns at a time in the zigzag order of §7.7.3."""
    size = len(dark)
    bits = [byte >> (7 - i) & 1 for byte in codewords for i in range(8)]
    index = 0
    right = size - 1
    while right >= 1:
        if right == 6:  # the vertical timing pattern column is skipped
            right = 5
        upward = (right + 1) & 2 == 0
        for step in range(size):
            r = size - 1 - step if upward else step
            for c in (right, right - 1):
                if not reserved[r][c]:
                    dark[r][c] = index < len(bits) and bits[index] == 1  # remainder bits are 0
                    index += 1
        right -= 2


def _masked(dark: Matrix, reserved: Matrix, version: int, mask: int) -> Matrix:
    """A copy of the unmasked symbol with its data modules flipped by ``mask``, and the format information."""
    apply = _MASKS[mask]
    masked = [[m != (not reserved[r][c] and apply(r, c)) for c, m in enumerate(row)] for r, row in enumerate(dark)]
    _draw_info(masked, reserved, version, mask)
    return masked


def penalty(matrix: Matrix) -> int:
    """The mask penalty score (§7.8.3): runs of 5+, 2x2 blocks, finder-like 1:1:3:1:1 patterns, dark balance.

    Finder-like patterns are looked for inside the symbol only (not into the quiet zone), as ``qrcode`` does."""
    size = len(matrix)
    score = 0
    for line in [*matrix, *zip(*matrix, strict=True)]:  # rows, then columns
        bits = "".join("1" if module else "0" for module in line)
        score += sum(len(run) - 2 for run in re.findall("0{5,}|1{5,}", bits))  # N1 = 3, +1 per module past 5
        # N3 = 40 per 1:1:3:1:1 pattern with 4 light modules on one side; neither pattern can overlap itself.
        score += 40 * (bits.count("10111010000") + bits.count("00001011101"))
    for upper, lower in itertools.pairwise(matrix):  # N2 = 3 per 2x2 block of one colour
        score += 3 * sum(a == b == c == d for a, b, c, d in zip(upper, upper[1:], lower, lower[1:], strict=False))
    dark_percent = 100 * sum(map(sum, matrix)) / size**2
    return score + 10 * int(abs(dark_percent - 50) / 5)  # N4 = 10 per 5% away from half dark


def encode(text: str, *, mask: int | None = None) -> Matrix:
    """The modules (``True`` = dark, no quiet zone) of the smallest level M QR code holding ``text``.

    ``mask`` (0-7) forces a mask pattern; by default the one with the lowest ``penalty`` is used."""
    if mask is not None and mask not in range(8):
        raise ValueError(f"mask must be 0-7, not {mask}")
    version, codewords = _codewords(text)
    dark, reserved = _function_patterns(version)
    _place_data(dark, reserved, codewords)
    if mask is not None:
        return _masked(dark, reserved, version, mask)
    return min((_masked(dark, reserved, version, m) for m in range(8)), key=penalty)


def render(matrix: Matrix, *, quiet_zone: int = 2, invert: bool = False) -> str:
    """Text lines drawing ``matrix`` with Unicode half blocks, two module rows per line.

    Dark modules are drawn as ink (``█``), which suits dark-on-light terminals; ``invert=True`` draws the
    light modules instead, for light-on-dark ones. The spec asks for a 4-module quiet zone; 2 usually scans."""
    width = len(matrix[0]) if matrix else 0
    blank = [False] * (width + 2 * quiet_zone)
    rows = [blank] * quiet_zone + [[False] * quiet_zone + row + [False] * quiet_zone for row in matrix]
    rows += [blank] * quiet_zone
    if len(rows) % 2:
        rows.append(blank)
    glyphs = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
    return "\n".join(
        "".join(glyphs[top != invert, bottom != invert] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    )
