"""Basic Information server: fixed product facts, three writable persisted settings and a UniqueID."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from clusters.basic_information import schema
from clusters.basic_information.schema import CapabilityMinimaStruct, ProductAppearanceStruct
from jfds_device.datamodel.cluster import ClusterServer

# Test vendor / product ids (Core spec 2.5.2: 0xFFF1..0xFFF4 are test vendors); they match the
# development attestation material (PAI/DAC/CD).
TEST_VENDOR_ID = 0xFFF1
TEST_PRODUCT_ID = 0x8000


@dataclass(frozen=True, slots=True)
class BasicInformationConfig:
    """Product facts reported by Basic Information; they must agree with the DAC and the CD."""

    vendor_name: str = "jfds-device"
    """VendorName, at most 32 bytes."""
    vendor_id: int = TEST_VENDOR_ID
    """VendorID; must equal the DAC's and the CD's vendor id."""
    product_name: str = "JFDS Device"
    """ProductName, at most 32 bytes."""
    product_id: int = TEST_PRODUCT_ID
    """ProductID; must be listed in the CD."""
    hardware_version: int = 1
    """HardwareVersion (uint16)."""
    hardware_version_string: str = "1"
    """HardwareVersionString, 1..64 bytes."""
    software_version: int = 1
    """SoftwareVersion (uint32); OTA compares these numerically."""
    software_version_string: str = "0.1.0"
    """SoftwareVersionString, 1..64 bytes."""
    serial_number: str | None = None
    """SerialNumber (optional attribute, omitted when None)."""
    product_appearance: ProductAppearanceStruct | None = None
    """ProductAppearance (optional attribute, omitted when None)."""
    case_sessions_per_fabric: int = schema.MIN_CASE_SESSIONS_PER_FABRIC
    """CapabilityMinima.CaseSessionsPerFabric: what the session layer guarantees (>= 3)."""
    subscriptions_per_fabric: int = schema.MIN_SUBSCRIPTIONS_PER_FABRIC
    """CapabilityMinima.SubscriptionsPerFabric: what the subscription engine guarantees (>= 3)."""
    max_paths_per_invoke: int = 1
    """MaxPathsPerInvoke; more than 1 would require the DMTEST feature of General Diagnostics."""


class BasicInformationServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(self, config: BasicInformationConfig | None = None) -> None:
        super().__init__()
        c = config or BasicInformationConfig()
        values = {
            schema.DATA_MODEL_REVISION_ID: schema.DATA_MODEL_REVISION,
            schema.VENDOR_NAME: c.vendor_name,
            schema.VENDOR_ID: c.vendor_id,
            schema.PRODUCT_NAME: c.product_name,
            schema.PRODUCT_ID: c.product_id,
            schema.HARDWARE_VERSION: c.hardware_version,
            schema.HARDWARE_VERSION_STRING: c.hardware_version_string,
            schema.SOFTWARE_VERSION: c.software_version,
            schema.SOFTWARE_VERSION_STRING: c.software_version_string,
            schema.SERIAL_NUMBER: c.serial_number,
            schema.PRODUCT_APPEARANCE: c.product_appearance,
            schema.CAPABILITY_MINIMA: CapabilityMinimaStruct(
                case_sessions_per_fabric=c.case_sessions_per_fabric,
                subscriptions_per_fabric=c.subscriptions_per_fabric,
            ),
            schema.SPECIFICATION_VERSION_ID: schema.SPECIFICATION_VERSION,
            schema.MAX_PATHS_PER_INVOKE: c.max_paths_per_invoke,
        }
        for attribute, value in values.items():
            self.set(attribute, value)  # validates the configuration against the schema

    def started(self) -> None:
        # UniqueID: random on first start, then persisted (11.1.5.19); a factory reset clears it.
        if not self.get(schema.UNIQUE_ID):
            self.set(schema.UNIQUE_ID, secrets.token_hex(16).upper())

    # ------------------------------------------------------------------------------------------ events (11.1.6)

    def emit_start_up(self) -> None:
        """StartUp (11.1.6.1), on every start, with the running SoftwareVersion."""
        self.emit_event(schema.EVENT_START_UP, {0: int(self.get(schema.SOFTWARE_VERSION))})

    def emit_shut_down(self) -> None:
        """ShutDown (11.1.6.2), as an orderly shutdown begins; the shell flushes it to the subscribers."""
        self.emit_event(schema.EVENT_SHUT_DOWN, {})

    def emit_leave(self, fabric_index: int) -> None:
        """Leave (11.1.6.3), as RemoveFabric starts to remove ``fabric_index``."""
        self.emit_event(schema.EVENT_LEAVE, {0: fabric_index})

    @property
    def unique_id(self) -> str:
        return str(self.get(schema.UNIQUE_ID))

    @property
    def node_label(self) -> str:
        return str(self.get(schema.NODE_LABEL))

    @property
    def local_config_disabled(self) -> bool:
        return bool(self.get(schema.LOCAL_CONFIG_DISABLED))
