"""What the node prints on standard output at start: how to commission it, or that it already is.

The manual pairing code and the QR payload (Core spec 5.1.3, 5.1.4) are shown only while the node is
commissionable, i.e. its commissioning window listens for PASE. A commissioned node with its window closed
would not accept them, so printing them would only invite failed attempts; it prints one line with its
fabric count instead. An Administrator opens a new window (and gets a one-time code) through the
Administrator Commissioning cluster (Core spec 11.19).
"""

from __future__ import annotations

from jfds_device import qr
from jfds_device.onboarding import SetupPayload

__all__ = ["startup_lines"]


def startup_lines(payload: SetupPayload, *, commissionable: bool, fabric_count: int, picture: bool) -> list[str]:
    """The lines to print at start. ``picture`` adds the QR code drawn for a terminal (only for a person at a
    tty, not for logs and pipes)."""
    if not commissionable:
        noun = "fabric" if fabric_count == 1 else "fabrics"
        return [f"Commissioned on {fabric_count} {noun}; the commissioning window is closed"]
    lines = [f"Manual pairing code: {payload.to_manual_code()}", f"QR code payload: {payload.to_qr()}"]
    if picture:
        lines.append(qr.render(qr.encode(payload.to_qr()), quiet_zone=4, invert=True))
    return lines
