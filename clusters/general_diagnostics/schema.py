"""General Diagnostics cluster 0x0033 (Core spec 11.12): every id, enum, struct, attribute and command.

Revision 2 (spec 1.3/1.4: TimeSnapshot mandatory). The DataModelTest feature is not implemented
(FeatureMap 0; MaxPathsPerInvoke is 1), so PayloadTestRequest/Response are not declared.
"""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, ClusterDef, CommandDef, EventDef, EventPriority, Privilege
from jfds_device.codec.schema import (
    BOOL,
    UINT16,
    UINT32,
    UINT64,
    Enum,
    List,
    Octets,
    Str,
    Struct,
    StructType,
    field,
    struct,
)

CLUSTER_ID = 0x0033

ENABLE_KEY_LENGTH = 16

# Event ids (11.12.8); only BootReason is emitted (the fault events are optional and we track no faults).
EVENT_HARDWARE_FAULT_CHANGE = 0x00
EVENT_RADIO_FAULT_CHANGE = 0x01
EVENT_NETWORK_FAULT_CHANGE = 0x02
EVENT_BOOT_REASON = 0x03


class BootReasonEnum(enum.IntEnum):
    UNSPECIFIED = 0
    POWER_ON_REBOOT = 1
    BROWN_OUT_RESET = 2
    SOFTWARE_WATCHDOG_RESET = 3
    HARDWARE_WATCHDOG_RESET = 4
    SOFTWARE_UPDATE_COMPLETED = 5
    SOFTWARE_RESET = 6


class HardwareFaultEnum(enum.IntEnum):
    UNSPECIFIED = 0
    RADIO = 1
    SENSOR = 2
    RESETTABLE_OVER_TEMP = 3
    NON_RESETTABLE_OVER_TEMP = 4
    POWER_SOURCE = 5
    VISUAL_DISPLAY_FAULT = 6
    AUDIO_OUTPUT_FAULT = 7
    USER_INTERFACE_FAULT = 8
    NON_VOLATILE_MEMORY_ERROR = 9
    TAMPER_DETECTED = 10


class RadioFaultEnum(enum.IntEnum):
    UNSPECIFIED = 0
    WIFI_FAULT = 1
    CELLULAR_FAULT = 2
    THREAD_FAULT = 3
    NFC_FAULT = 4
    BLE_FAULT = 5
    ETHERNET_FAULT = 6


class NetworkFaultEnum(enum.IntEnum):
    UNSPECIFIED = 0
    HARDWARE_FAILURE = 1
    NETWORK_JAMMED = 2
    CONNECTION_FAILED = 3


class InterfaceTypeEnum(enum.IntEnum):
    UNSPECIFIED = 0
    WIFI = 1
    ETHERNET = 2
    CELLULAR = 3
    THREAD = 4


@struct
class NetworkInterface(Struct):
    name: str = field(0, Str(max_length=32))
    is_operational: bool = field(1, BOOL)
    off_premise_services_reachable_ipv4: object = field(2, BOOL, nullable=True)
    off_premise_services_reachable_ipv6: object = field(3, BOOL, nullable=True)
    hardware_address: bytes = field(4, Octets(max_length=8))  # EUI-48 or EUI-64
    ipv4_addresses: list[bytes] = field(5, List(Octets(min_length=4, max_length=4), max_length=4))
    ipv6_addresses: list[bytes] = field(6, List(Octets(min_length=16, max_length=16), max_length=8))
    type: InterfaceTypeEnum = field(7, Enum(InterfaceTypeEnum))


@struct
class TestEventTrigger(Struct):
    enable_key: bytes = field(0, Octets(min_length=ENABLE_KEY_LENGTH, max_length=ENABLE_KEY_LENGTH))
    event_trigger: int = field(1, UINT64)


@struct
class TimeSnapshot(Struct):
    pass


@struct
class TimeSnapshotResponse(Struct):
    system_time_ms: int = field(0, UINT64)
    posix_time_ms: object = field(1, UINT64, nullable=True)


NETWORK_INTERFACES = 0x0000
REBOOT_COUNT = 0x0001
UP_TIME = 0x0002
TOTAL_OPERATIONAL_HOURS = 0x0003
BOOT_REASON = 0x0004
TEST_EVENT_TRIGGERS_ENABLED = 0x0008

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="GeneralDiagnostics",
    revision=2,
    attributes=(
        AttributeDef(NETWORK_INTERFACES, "NetworkInterfaces", List(StructType(NetworkInterface), max_length=8)),
        AttributeDef(REBOOT_COUNT, "RebootCount", UINT16, persistent=True, default=0),
        AttributeDef(UP_TIME, "UpTime", UINT64),
        AttributeDef(TOTAL_OPERATIONAL_HOURS, "TotalOperationalHours", UINT32),
        AttributeDef(BOOT_REASON, "BootReason", Enum(BootReasonEnum)),
        AttributeDef(0x0005, "ActiveHardwareFaults", List(Enum(HardwareFaultEnum), max_length=11)),
        AttributeDef(0x0006, "ActiveRadioFaults", List(Enum(RadioFaultEnum), max_length=7)),
        AttributeDef(0x0007, "ActiveNetworkFaults", List(Enum(NetworkFaultEnum), max_length=4)),
        AttributeDef(TEST_EVENT_TRIGGERS_ENABLED, "TestEventTriggersEnabled", BOOL),
    ),
    commands=(
        CommandDef(0x00, "TestEventTrigger", TestEventTrigger, privilege=Privilege.MANAGE),
        CommandDef(0x01, "TimeSnapshot", TimeSnapshot, 0x02, TimeSnapshotResponse, Privilege.OPERATE),
    ),
    events=(EventDef(EVENT_BOOT_REASON, "BootReason", EventPriority.CRITICAL),),
)
