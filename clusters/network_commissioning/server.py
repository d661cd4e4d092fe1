"""Network Commissioning server for one Ethernet interface (Core spec 11.9, Ethernet feature).

The node is already on its network when commissioned, so there is nothing to configure: one network
entry (the interface name as NetworkID, connected) and null "last" results, since no connect attempt
is ever made through this cluster.
"""

from __future__ import annotations

from clusters.network_commissioning import schema
from clusters.network_commissioning.schema import NetworkInfoStruct
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.cluster import ClusterServer


class EthernetNetworkCommissioningServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(self, interface_name: str) -> None:
        super().__init__()
        network_id = interface_name.encode()
        self.set(schema.MAX_NETWORKS, 1)
        self.set(schema.NETWORKS, [NetworkInfoStruct(network_id=network_id, connected=True)])
        self.set(schema.LAST_NETWORKING_STATUS, NULL)
        self.set(schema.LAST_NETWORK_ID, NULL)
        self.set(schema.LAST_CONNECT_ERROR_VALUE, NULL)

    @property
    def interface_enabled(self) -> bool:
        return bool(self.get(schema.INTERFACE_ENABLED))
