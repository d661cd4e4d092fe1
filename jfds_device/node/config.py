"""Everything the node needs to start, validated once at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jfds_device.onboarding import is_valid_passcode


class ConfigError(ValueError):
    """An invalid start-up setting; the CLI prints it on one line and exits with status 2."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    storage: Path = Path("./jfds-state")
    """Directory for the SQLite state file and operational keys (created if missing, mode 0700)."""
    passcode: int = 20202021
    """Setup passcode for PASE (Core spec 5.1.7: 1..99999998, trivial values forbidden)."""
    discriminator: int = 3840
    """12-bit discriminator advertised while a commissioning window is open."""
    port: int = 5540
    """UDP port for Matter messages, IPv6 and IPv4 on one dual-stack socket; 0 picks a free port."""
    interface: str | None = None
    """Network interface to bind and advertise on; None means all."""
    vendor_id: int = 0xFFF1
    """Vendor id; must match the DAC and the Certification Declaration in certs/."""
    product_id: int = 0x8000
    """Product id; must match the DAC and the Certification Declaration in certs/."""
    friendly_name: str | None = None
    """The datastore's FriendlyName; defaults to the node label."""
    certs_dir: Path | None = None
    """Directory with the DAC, PAI and CD; None means the repository's certs/."""
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not is_valid_passcode(self.passcode):
            raise ConfigError(
                f"invalid passcode {self.passcode}: must be 1..99999998 and not a trivial value "
                "(00000000, 11111111, ..., 12345678, 87654321)"
            )
        if not 0 <= self.discriminator <= 0xFFF:
            raise ConfigError(f"invalid discriminator {self.discriminator}: must be 0..4095")
        if not 0 <= self.port <= 0xFFFF:
            raise ConfigError(f"invalid port {self.port}: must be 0..65535 (0 picks a free port)")
        if not 1 <= self.vendor_id <= 0xFFFE:
            raise ConfigError(f"invalid vendor id {self.vendor_id}: must be 1..65534")
        if not 1 <= self.product_id <= 0xFFFF:
            raise ConfigError(f"invalid product id {self.product_id}: must be 1..65535")
        if self.friendly_name is not None and len(self.friendly_name.encode()) > 32:
            raise ConfigError("invalid friendly name: at most 32 bytes")
