"""The node's Joint Fabric role: the JFDS and JFA servers on endpoint 1, and the anchor datastore's life cycle.

The node becomes its first fabric's anchor administrator when that fabric is committed (CommissioningComplete):
the datastore is bootstrapped from the fabric (Core spec 11.24.6: AnchorRootCA, AnchorNodeID, AnchorVendorID,
key set 0 = the IPK, the Administrator and Anchor CAT groups, ourselves at AdminList index 0) and the JFA
cluster's AdministratorFabricIndex points at it. Removing that fabric wipes the datastore.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from clusters.basic_information import schema as basic
from clusters.joint_fabric_administrator.server import JointFabricAdministratorServer
from clusters.joint_fabric_datastore import schema as jfds
from clusters.joint_fabric_datastore.server import JointFabricDatastoreServer
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.root import JFA_ENDPOINT, RootNode
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.fabrics import FabricInfo

log = logging.getLogger(__name__)

DEFAULT_FRIENDLY_NAME = "jfds-device"


class AnchorRole:
    def __init__(
        self, store: JfdsStore, root: RootNode, *, friendly_name: str | None, now: Callable[[], float]
    ) -> None:
        self.store = store
        self._root = root
        self.anchor_fabric_index: int | None = None
        self._friendly_name = friendly_name
        self.datastore = JointFabricDatastoreServer(store, anchor_fabric=lambda: self.anchor_fabric_index)
        self.administrator = JointFabricAdministratorServer(root.fabric_table, root.failsafe, root.window, now=now)
        root.node.add_server(JFA_ENDPOINT, self.datastore)
        root.node.add_server(JFA_ENDPOINT, self.administrator)
        self.anchor_fabric_index = self._find_anchor_fabric()
        self.administrator.set_anchor_fabric(self.anchor_fabric_index)

    def _find_anchor_fabric(self) -> int | None:
        """After a restart: the committed fabric whose root and node id the bootstrapped datastore records."""
        anchor = self.store.anchor() if self.store.is_bootstrapped else None
        if anchor is None:
            return None
        for fabric in self._root.fabric_table.fabrics():
            if fabric.rcac == anchor.root_ca and fabric.node_id == anchor.node_id:
                return fabric.fabric_index
        log.warning("the anchor fabric of the datastore is gone: wiping the datastore")
        self.store.wipe()
        return None

    def fabric_committed(self, info: FabricInfo) -> None:
        if self.anchor_fabric_index is not None or self.store.is_bootstrapped:
            return
        self.store.bootstrap_anchor(
            root_ca=info.rcac,
            node_id=info.node_id,
            vendor_id=info.vendor_id,
            friendly_name=self._friendly_name or self._node_label() or DEFAULT_FRIENDLY_NAME,
            ipk_key_set=jfds.GroupKeySet(
                group_key_set_id=jfds.IPK_KEY_SET_ID,
                group_key_security_policy=jfds.GroupKeySecurityPolicy.TRUST_FIRST,
                epoch_key0=info.ipk_epoch_key,
                epoch_start_time0=0,
                epoch_key1=NULL,
                epoch_start_time1=NULL,
                epoch_key2=NULL,
                epoch_start_time2=NULL,
                group_key_multicast_policy=jfds.GroupKeyMulticastPolicy.PER_GROUP_ID,
            ),
            icac=info.icac or b"",
        )
        self.anchor_fabric_index = info.fabric_index
        self.administrator.set_anchor_fabric(info.fabric_index)
        log.info("anchor administrator of fabric %d (fabric id 0x%016X)", info.fabric_index, info.fabric_id)

    def fabric_removed(self, fabric_index: int) -> None:
        if fabric_index != self.anchor_fabric_index:
            return
        log.info("anchor fabric %d removed: wiping the datastore", fabric_index)
        self.store.wipe()
        self.anchor_fabric_index = None

    def _node_label(self) -> str:
        label = self._root.basic_information.get(basic.NODE_LABEL)
        return label if isinstance(label, str) else ""
