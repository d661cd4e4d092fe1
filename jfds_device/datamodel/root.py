"""Endpoint layout of this node: endpoint 0 (Root Node) and endpoint 1 (Joint Fabric Administrator).

Endpoint 0 carries the node-wide clusters (Core spec 9.2, Root Node device type 0x0016 revision 3):
Descriptor, Access Control, Basic Information, General Commissioning, Network Commissioning (Ethernet)
and General Diagnostics. Operational Credentials, Group Key Management and Administrator Commissioning
come next and mount with ``node.add_server(0, ...)``; the JFDS/JFA servers mount on endpoint 1 the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clusters.access_control.server import AccessControlServer
from clusters.basic_information.server import BasicInformationConfig, BasicInformationServer
from clusters.general_commissioning.logic import FailSafe
from clusters.general_commissioning.server import GeneralCommissioningServer
from clusters.general_diagnostics.schema import BootReasonEnum, NetworkInterface
from clusters.general_diagnostics.server import GeneralDiagnosticsServer
from clusters.network_commissioning.server import EthernetNetworkCommissioningServer
from clusters.user_label.server import UserLabelServer
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database

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
    commissioning_window_open: Callable[[], bool] = lambda: False,
) -> RootNode:
    """Build endpoints 0 and 1 on a new ``Node`` over ``db`` (None: memory only).

    ``monotonic`` drives the fail-safe and uptime; ``wall_clock`` (POSIX seconds) feeds TimeSnapshot.
    The caller owns time: arm one loop timer at ``root.get_timer()`` and call
    ``root.handle_timer(monotonic())`` when it fires (re-read ``get_timer()`` after every invoke).
    """
    config = config or RootNodeConfig()
    node = Node(db)
    failsafe = FailSafe()
    access_control = AccessControlServer()
    basic_information = BasicInformationServer(config.basic_information)
    general_commissioning = GeneralCommissioningServer(
        failsafe, now=monotonic, commissioning_window_open=commissioning_window_open
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
            UserLabelServer(),
        ],
    )
    node.add_endpoint(JFA_ENDPOINT, [JFA_DEVICE_TYPE])
    node.set_acl_source(access_control)
    return RootNode(
        node=node,
        failsafe=failsafe,
        access_control=access_control,
        basic_information=basic_information,
        general_commissioning=general_commissioning,
        network_commissioning=network_commissioning,
        general_diagnostics=general_diagnostics,
    )
