"""The QR encoder, module for module against the ``qrcode`` package (test-only dependency)."""

from __future__ import annotations

import functools
import random

import pytest
import qrcode
from qrcode.util import MODE_8BIT_BYTE, MODE_ALPHA_NUM, QRData, lost_point, optimal_mode

from jfds_device.onboarding import DiscoveryCapability, SetupPayload
from jfds_device.qr import ALPHANUMERIC, encode, penalty, render

BASE38 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."


def _random_payloads() -> list[str]:
    rng = random.Random(0x752)
    return ["MT:" + "".join(rng.choices(BASE38, k=rng.randint(19, 30))) for _ in range(16)]


MATTER = [
    "MT:Y.K90AFN00KA0648G00",
    SetupPayload(discriminator=3840, passcode=20202021, vendor_id=0xFFF1, product_id=0x8001).to_qr(),
    SetupPayload(
        discriminator=0xABC, passcode=34567890, discovery_capabilities=DiscoveryCapability.BLE, tlv_data=b"\x15\x18"
    ).to_qr(),
    "MT:Y.K90AFN00KA0648G00*Y.K90AFN00KA0648G00",  # two concatenated payloads
    *_random_payloads(),
]
# Longer alphanumeric texts reach every version up to 10: version information (7+) and two block groups (8+).
LADDER = ["MT:" + (BASE38 * 8)[:n] for n in (7, 27, 47, 77, 107, 137, 167, 197, 237, 287)]
BYTES = ["mt:lower case", "héllo wörld ✓", "x" * 100, "Matter\n" * 20]
TEXTS = MATTER + LADDER + BYTES


@functools.cache
def _reference(text: str, mask: int | None) -> qrcode.QRCode:
    """``qrcode``'s symbol for ``text`` at level M, smallest version, the mode ``encode`` uses, and ``mask``."""
    mode = MODE_ALPHA_NUM if all(ch in ALPHANUMERIC for ch in text) else MODE_8BIT_BYTE
    symbol = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=mask, border=0)
    symbol.add_data(QRData(text, mode=mode))
    symbol.make(fit=True)
    return symbol


def test_matter_payloads_use_alphanumeric_mode() -> None:
    for text in MATTER:
        assert all(ch in ALPHANUMERIC for ch in text), text
        assert optimal_mode(text.encode()) == MODE_ALPHA_NUM  # what qrcode picks on its own, too


def test_texts_cover_every_version() -> None:
    assert {(len(encode(text, mask=0)) - 17) // 4 for text in LADDER} == set(range(1, 11))


@pytest.mark.parametrize("text", TEXTS)
def test_same_modules_as_qrcode_for_every_mask(text: str) -> None:
    for mask in range(8):
        ours = encode(text, mask=mask)
        theirs = _reference(text, mask)
        assert len(ours) == 4 * theirs.version + 17
        assert ours == theirs.modules, f"mask {mask}"


@pytest.mark.parametrize("text", TEXTS)
def test_automatic_mask_has_the_lowest_penalty(text: str) -> None:
    scores = [lost_point(_reference(text, mask).modules) for mask in range(8)]
    assert [penalty(_reference(text, mask).modules) for mask in range(8)] == scores  # the same scoring rules
    chosen = encode(text)
    assert chosen == _reference(text, scores.index(min(scores))).modules
    # qrcode scores its candidates with the format bits left light, so it may pick another mask: never a better one.
    assert penalty(chosen) <= lost_point(_reference(text, None).modules)


def test_too_long_or_bad_mask() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        encode("A" * 312)
    assert len(encode("A" * 311)) == 57  # the alphanumeric capacity of version 10-M
    with pytest.raises(ValueError, match="mask"):
        encode("MT:", mask=8)


def _unrender(text: str) -> list[list[bool]]:
    tops = {" ": False, "▀": True, "▄": False, "█": True}
    bottoms = {" ": False, "▀": False, "▄": True, "█": True}
    rows = []
    for line in text.split("\n"):
        rows += [[tops[ch] for ch in line], [bottoms[ch] for ch in line]]
    return rows


@pytest.mark.parametrize("quiet_zone", [0, 1, 2, 4])
@pytest.mark.parametrize("text", ["MT:Y.K90AFN00KA0648G00", "MT:Y"])
def test_render_dimensions_and_content(text: str, quiet_zone: int) -> None:
    matrix = encode(text)
    side = len(matrix) + 2 * quiet_zone
    drawn = render(matrix, quiet_zone=quiet_zone)
    lines = drawn.split("\n")
    assert len(lines) == (side + 1) // 2
    assert all(len(line) == side for line in lines)
    assert set(drawn) <= set(" ▀▄█\n")
    rows = _unrender(drawn)
    assert rows[side:] == [[False] * side] * (len(rows) - side)  # the padding row of an odd side
    framed = [row[quiet_zone : side - quiet_zone] for row in rows[quiet_zone : side - quiet_zone]]
    assert framed == matrix
    assert all(not any(row) for row in rows[:quiet_zone])
    inverted = _unrender(render(matrix, quiet_zone=quiet_zone, invert=True))
    assert inverted == [[not module for module in row] for row in rows]
