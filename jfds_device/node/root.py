"""Endpoint layout of this node: endpoint 0 (Root Node) and endpoint 1 (Joint Fabric Administrator).

Endpoint 0 carries the node-wide clusters (Core spec 9.2, Root Node device type 0x0016 revision 3):
Descriptor, Access Control, Basic Information, General Commissioning, Network Commissioning (Ethernet),
General Diagnostics, Operational Credentials, Group Key Management, Administrator Commissioning and User
Label. The JFDS/JFA servers mount on endpoint 1 with ``node.add_server(1, ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clusters.access_control import schema as access_control_schema
from clusters.access_control.server import AccessControlServer
from clusters.administrator_commissioning.server import AdministratorCommissioningServer
from clusters.basic_information.server import BasicInformationConfig, BasicInformationServer
from clusters.descriptor.server import DescriptorServer
from clusters.general_commissioning.logic import FailSafe
from clusters.general_commissioning.server import GeneralCommissioningServer
from clusters.general_diagnostics.schema import BootReasonEnum, NetworkInterface
from clusters.general_diagnostics.server import GeneralDiagnosticsServer
from clusters.group_key_management import schema as group_key_management_schema
from clusters.group_key_management.server import GroupKeyManagementServer
from clusters.network_commissioning.server import EthernetNetworkCommissioningServer
from clusters.operational_credentials.server import OperationalCredentialsServer
from clusters.user_label.server import UserLabelServer
from jfds_device.crypto.attestation import AttestationMaterial, load_attestation
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.fabrics import FabricTable

__all__ = [
    "JFA_DEVICE_TYPE",
    "JFA_ENDPOINT",
    "ROOT_ENDPOINT",
    "ROOT_NODE_DEVICE_TYPE",
    "RootNode",
    "RootNodeConfig",
    "build_root_node",
]

ROOT_ENDPOINT = 0
JFA_ENDPOINT = 1  # jf-admin-app uses endpoint 1; clients find it by device type via the Descriptor
ROOT_NODE_DEVICE_TYPE = DeviceType(device_type=0x0016, revision=3)
JFA_DEVICE_TYPE = DeviceType(device_type=0x0130, revision=1)


@dataclass(frozen=True, slots=True)
class RootNodeConfig:
    """What the composition root knows about this node before building its data model."""

    basic_information: BasicInformationConfig = field(default_factory=BasicInformationConfig)
    """Product facts for Basic Information."""
    interface_name: str = "eth0"
    """Ethernet interface name; it is the NetworkID of Network Commissioning's one network entry."""
    network_interfaces: Sequence[NetworkInterface] = ()
    """General Diagnostics NetworkInterfaces at start (the shell updates them later)."""
    boot_reason: BootReasonEnum = BootReasonEnum.UNSPECIFIED
    """General Diagnostics BootReason."""
    acl_entries_per_fabric: int = access_control_schema.ENTRIES_PER_FABRIC
    """Access Control AccessControlEntriesPerFabric (Core spec 9.10.6.5; at least 4)."""
    max_groups_per_fabric: int = group_key_management_schema.MAX_GROUPS_PER_FABRIC
    """Group Key Management MaxGroupsPerFabric (Core spec 11.2.6.3)."""
    max_group_keys_per_fabric: int = group_key_management_schema.MAX_GROUP_KEYS_PER_FABRIC
    """Group Key Management MaxGroupKeysPerFabric, the IPK included (Core spec 11.2.6.4)."""


@dataclass(frozen=True, slots=True)
class RootNode:
    """The built node and the servers other subsystems need to reach directly."""

    node: Node
    failsafe: FailSafe
    access_control: AccessControlServer
    basic_information: BasicInformationServer
    general_commissioning: GeneralCommissioningServer
    network_commissioning: EthernetNetworkCommissioningServer
    general_diagnostics: GeneralDiagnosticsServer
    operational_credentials: OperationalCredentialsServer
    fabric_table: FabricTable
    group_key_management: GroupKeyManagementServer
    window: CommissioningWindow

    def get_timer(self) -> float | None:
        """The next deadline (monotonic seconds) the shell must call ``handle_timer`` at, if any."""
        return self.failsafe.get_timer()

    def handle_timer(self, now: float) -> None:
        """Expire the fail-safe if due; its rollbacks commit (or fail) as one storage transaction."""
        with self.node.atomic():
            self.failsafe.handle_timer(now)


def build_root_node(
    db: Database | None,
    config: RootNodeConfig | None = None,
    *,
    monotonic: Callable[[], float],
    wall_clock: Callable[[], float] | None = None,
    fabric_table: FabricTable | None = None,
    attestation: AttestationMaterial | None = None,
    window: CommissioningWindow | None = None,
    set_ipk: Callable[[int, bytes], None] | None = None,
    application_endpoint: tuple[DeviceType, Callable[[GroupKeyManagementServer], Sequence[ClusterServer]]]
    | None = None,
) -> RootNode:
    """Build endpoints 0 and 1 on a new ``Node`` over ``db`` (None: memory only).

    ``monotonic`` drives the fail-safe and uptime; ``wall_clock`` (POSIX seconds) feeds TimeSnapshot.
    The caller owns time: arm one loop timer at ``root.get_timer()`` and call
    ``root.handle_timer(monotonic())`` when it fires (re-read ``get_timer()`` after every invoke).

    ``fabric_table`` defaults to one over ``db`` (an in-memory database when ``db`` is None);
    ``attestation`` to the repository's development DAC/PAI/CD; ``window`` to a closed window for the
    default passcode (the node passes its own). AddNOC's IPK lands in GroupKeyManagement key set 0, which is
    also where CASE takes it from; ``set_ipk`` replaces that sink (tests use it to observe or break it).
    ``application_endpoint``: endpoint 1's device type and a factory of its servers (given the Group Key
    Management server, which a Groups server keeps its membership in) instead of the JFA endpoint (the fleet
    simulator's peers mount Groups and Binding there, as a light does).
    """
    config = config or RootNodeConfig()
    node = Node(db, endpoint_servers=lambda tree: [DescriptorServer(tree)])
    failsafe = FailSafe()
    access_control = AccessControlServer(entries_per_fabric=config.acl_entries_per_fabric)
    # ACL writes by the fail-safe holder are undone if the fail-safe expires (see AccessControlServer).
    access_control.track_failsafe(failsafe)
    basic_information = BasicInformationServer(config.basic_information)
    if fabric_table is None:
        fabric_table = FabricTable(db if db is not None else Database(":memory:"))
    if window is None:
        window = CommissioningWindow(20202021, 3840)
    group_key_management = GroupKeyManagementServer(db, max_groups_per_fabric=config.max_groups_per_fabric,
                                                    max_group_keys_per_fabric=config.max_group_keys_per_fabric)
    fabric_table.set_ipk_provider(_ipk_provider(group_key_management))
    fabric_table.add_listener(group_key_management)
    fabric_table.add_listener(window)
    operational_credentials = OperationalCredentialsServer(
        fabric_table,
        failsafe,
        attestation if attestation is not None else load_attestation(),
        access_control=access_control,
        set_ipk=set_ipk if set_ipk is not None else group_key_management.install_ipk,
        now=monotonic,
        fabric_leaving=basic_information.emit_leave,
    )
    administrator_commissioning = AdministratorCommissioningServer(
        window, failsafe, now=monotonic, fabric_vendor_id=lambda index: _vendor_of(fabric_table, index)
    )
    general_commissioning = GeneralCommissioningServer(
        failsafe, now=monotonic, commissioning_window_open=lambda: window.is_open
    )
    network_commissioning = EthernetNetworkCommissioningServer(config.interface_name)
    general_diagnostics = GeneralDiagnosticsServer(
        monotonic=monotonic,
        wall_clock=wall_clock,
        network_interfaces=config.network_interfaces,
        boot_reason=config.boot_reason,
    )
    node.add_endpoint(
        ROOT_ENDPOINT,
        [ROOT_NODE_DEVICE_TYPE],
        [
            access_control,
            basic_information,
            general_commissioning,
            network_commissioning,
            general_diagnostics,
            operational_credentials,
            group_key_management,
            administrator_commissioning,
            UserLabelServer(),
        ],
    )
    if application_endpoint is None:
        node.add_endpoint(JFA_ENDPOINT, [JFA_DEVICE_TYPE])
    else:
        device_type, servers = application_endpoint
        node.add_endpoint(JFA_ENDPOINT, [device_type], list(servers(group_key_management)))
    node.set_acl_source(access_control)
    return RootNode(
        node=node,
        failsafe=failsafe,
        access_control=access_control,
        basic_information=basic_information,
        general_commissioning=general_commissioning,
        network_commissioning=network_commissioning,
        general_diagnostics=general_diagnostics,
        operational_credentials=operational_credentials,
        fabric_table=fabric_table,
        group_key_management=group_key_management,
        window=window,
    )


def _ipk_provider(gkm: GroupKeyManagementServer) -> Callable[[int], list[bytes]]:
    def provider(fabric_index: int) -> list[bytes]:
        key = gkm.ipk_epoch_key(fabric_index)
        return [] if key is None else [key]

    return provider


def _vendor_of(fabric_table: FabricTable, fabric_index: int) -> int | None:
    info = fabric_table.get(fabric_index)
    return None if info is None else info.vendor_id
