"""Network Commissioning cluster 0x0031 (Core spec 11.9): ids, enums, structs, attributes.

Revision 2 (spec 1.4). We implement only the Ethernet feature (FeatureMap bit 2), which has no commands
(11.9.7: every command is Wi-Fi or Thread only), so none are declared here; the Wi-Fi/Thread-only
attributes are declared for completeness and stay absent.
"""

from __future__ import annotations

import enum

from jfds_device.codec.model import AttributeDef, ClusterDef, Privilege
from jfds_device.codec.schema import BOOL, INT32, UINT8, UINT16, Enum, List, Octets, Struct, StructType, field, struct

CLUSTER_ID = 0x0031


class Feature(enum.IntFlag):
    WIFI_NETWORK_INTERFACE = 0x1
    THREAD_NETWORK_INTERFACE = 0x2
    ETHERNET_NETWORK_INTERFACE = 0x4
    PER_DEVICE_CREDENTIALS = 0x8


class NetworkCommissioningStatusEnum(enum.IntEnum):
    SUCCESS = 0
    OUT_OF_RANGE = 1
    BOUNDS_EXCEEDED = 2
    NETWORK_ID_NOT_FOUND = 3
    DUPLICATE_NETWORK_ID = 4
    NETWORK_NOT_FOUND = 5
    REGULATORY_ERROR = 6
    AUTH_FAILURE = 7
    UNSUPPORTED_SECURITY = 8
    OTHER_CONNECTION_FAILURE = 9
    IPV6_FAILED = 10
    IP_BIND_FAILED = 11
    UNKNOWN_ERROR = 12


class WiFiBandEnum(enum.IntEnum):
    BAND_2G4 = 0
    BAND_3G65 = 1
    BAND_5G = 2
    BAND_6G = 3
    BAND_60G = 4
    BAND_1G = 5


NETWORK_ID = Octets(min_length=1, max_length=32)


@struct
class NetworkInfoStruct(Struct):
    network_id: bytes = field(0, NETWORK_ID)
    connected: bool = field(1, BOOL)
    network_identifier: object = field(2, Octets(min_length=1, max_length=20), optional=True, nullable=True)
    client_identifier: object = field(3, Octets(min_length=1, max_length=20), optional=True, nullable=True)


MAX_NETWORKS = 0x0000
NETWORKS = 0x0001
INTERFACE_ENABLED = 0x0004
LAST_NETWORKING_STATUS = 0x0005
LAST_NETWORK_ID = 0x0006
LAST_CONNECT_ERROR_VALUE = 0x0007

_ADMIN_READ = Privilege.ADMINISTER

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="NetworkCommissioning",
    revision=2,
    feature_map=Feature.ETHERNET_NETWORK_INTERFACE,
    attributes=(
        AttributeDef(MAX_NETWORKS, "MaxNetworks", UINT8, read_privilege=_ADMIN_READ),
        AttributeDef(NETWORKS, "Networks", List(StructType(NetworkInfoStruct)), read_privilege=_ADMIN_READ),
        AttributeDef(0x0002, "ScanMaxTimeSeconds", UINT8),
        AttributeDef(0x0003, "ConnectMaxTimeSeconds", UINT8),
        AttributeDef(
            INTERFACE_ENABLED,
            "InterfaceEnabled",
            BOOL,
            writable=True,
            write_privilege=Privilege.ADMINISTER,
            persistent=True,
            default=True,
        ),
        AttributeDef(
            LAST_NETWORKING_STATUS,
            "LastNetworkingStatus",
            Enum(NetworkCommissioningStatusEnum),
            nullable=True,
            read_privilege=_ADMIN_READ,
        ),
        AttributeDef(LAST_NETWORK_ID, "LastNetworkID", NETWORK_ID, nullable=True, read_privilege=_ADMIN_READ),
        AttributeDef(
            LAST_CONNECT_ERROR_VALUE, "LastConnectErrorValue", INT32, nullable=True, read_privilege=_ADMIN_READ
        ),
        AttributeDef(0x0008, "SupportedWiFiBands", List(Enum(WiFiBandEnum), min_length=1)),
        AttributeDef(0x0009, "SupportedThreadFeatures", UINT16),
        AttributeDef(0x000A, "ThreadVersion", UINT16),
    ),
)
