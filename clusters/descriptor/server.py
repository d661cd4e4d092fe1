"""Descriptor server: every list is derived from the node's endpoint tree, never written (Core spec 9.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from clusters.descriptor import schema
from clusters.descriptor.schema import DeviceTypeStruct
from jfds_device.datamodel.cluster import ClusterServer


class NodeStructure(Protocol):
    """The view of the endpoint tree a Descriptor needs (``datamodel.node.Node`` provides it)."""

    def device_types(self, endpoint: int) -> Sequence[DeviceTypeStruct]: ...

    def server_cluster_ids(self, endpoint: int) -> Sequence[int]: ...

    def client_cluster_ids(self, endpoint: int) -> Sequence[int]: ...

    def parts(self, endpoint: int) -> Sequence[int]: ...


class DescriptorServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(self, structure: NodeStructure) -> None:
        super().__init__()
        self._structure = structure

    def started(self) -> None:
        self.refresh()

    def structure_changed(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute the lists; ``set`` bumps the DataVersion only for lists that actually changed."""
        if self.endpoint is None:
            return
        tree, endpoint = self._structure, self.endpoint
        self.set(schema.DEVICE_TYPE_LIST, list(tree.device_types(endpoint)))
        self.set(schema.SERVER_LIST, sorted(tree.server_cluster_ids(endpoint)))
        self.set(schema.CLIENT_LIST, sorted(tree.client_cluster_ids(endpoint)))
        self.set(schema.PARTS_LIST, sorted(tree.parts(endpoint)))
