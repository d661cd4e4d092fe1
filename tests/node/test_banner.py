"""The start-up lines: the onboarding codes only while the node is commissionable, else its fabric count."""

from __future__ import annotations

from jfds_device import qr
from jfds_device.node.banner import startup_lines
from jfds_device.onboarding import SetupPayload

PAYLOAD = SetupPayload(discriminator=3840, passcode=20202021, vendor_id=0xFFF1, product_id=0x8000)


def test_commissionable_prints_the_manual_code_and_qr_payload() -> None:
    lines = startup_lines(PAYLOAD, commissionable=True, fabric_count=0, picture=False)
    assert lines == ["Manual pairing code: 34970112332", f"QR code payload: {PAYLOAD.to_qr()}"]
    assert PAYLOAD.to_qr().startswith("MT:")
    assert SetupPayload.from_qr(lines[1].removeprefix("QR code payload: ")) == PAYLOAD


def test_commissionable_on_a_terminal_adds_the_qr_picture() -> None:
    lines = startup_lines(PAYLOAD, commissionable=True, fabric_count=0, picture=True)
    assert len(lines) == 3 and lines[:2] == startup_lines(PAYLOAD, commissionable=True, fabric_count=0,
                                                         picture=False)
    assert lines[2] == qr.render(qr.encode(PAYLOAD.to_qr()), quiet_zone=4, invert=True)


def test_commissioned_with_the_window_closed_prints_one_line_with_the_fabric_count() -> None:
    for count, expected in ((1, "1 fabric;"), (3, "3 fabrics;")):
        lines = startup_lines(PAYLOAD, commissionable=False, fabric_count=count, picture=True)
        assert len(lines) == 1 and expected in lines[0] and "commissioning window is closed" in lines[0]
        assert "34970112332" not in lines[0] and "MT:" not in lines[0]
