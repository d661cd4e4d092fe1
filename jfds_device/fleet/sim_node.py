"""One simulated peer node of the fleet: the root node layout and the one ``Stack``, with a light's endpoint 1.

A ``SimulatedNode`` is a real Matter node built from this project's own parts, nothing faked: ``build_root_node``
(endpoint 0 with Descriptor, AccessControl, BasicInformation, GeneralCommissioning, OperationalCredentials,
GroupKeyManagement, ...; endpoint 1 with Descriptor, Groups and Binding, as the matter.js light's endpoint 1 has)
over a fabric table in memory, served by a ``Stack`` (CASE and PASE responders, the IM server, MRP) on its own
link (a UDP port, or a ``VirtualLink`` address in tests). What the simulator saves is the process: many nodes share
one asyncio loop, one interpreter, the cluster definitions and schemas (module-level tables every server points
to) and one copy of the attestation material.

How a node joins its fabric (``joined_by``):

* ``commissioning``: ``open_commissioning_window()``, then a commissioner runs PASE and the whole flow (ArmFailSafe,
  attestation, CSRRequest, AddTrustedRootCertificate, AddNOC, CommissioningComplete) against the node's own
  servers, exactly as with any node.
* ``fast-provisioning``: ``operational_csr()`` makes the operational key and its NOCSRElements (the CSRResponse a
  commissioner would get, minus the attestation signature: the issuer is the fabric's own CA, not a commissioner
  judging a device), the fabric's CA issues the NOC for it (the CHIP controller's ``IssueNOCChain``, or a test
  CA), and ``install_fabric()`` does what AddNOC followed by CommissioningComplete does: trusted root, NOC, IPK as
  key set 0, the CaseAdminSubject's Administer entry, plus the ACL entries the commissioner would then write
  (e.g. Administer for jfds-device's node id), committed as one step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clusters.access_control.server import admin_entry
from clusters.basic_information.server import BasicInformationConfig
from clusters.binding.server import DEFAULT_BINDING_ENTRIES, BindingServer
from clusters.group_key_management.server import GroupKeyManagementServer
from clusters.groups.server import GroupsServer
from jfds_device.clock import Clock
from jfds_device.crypto.attestation import AttestationMaterial, nocsr_elements
from jfds_device.crypto.cert_issuer import build_csr
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.datamodel.node import DeviceType
from jfds_device.fabrics import FabricInfo
from jfds_device.im.events import EventStore
from jfds_device.node.commissioning_attempt import CommissioningAttempt
from jfds_device.node.links import Link
from jfds_device.node.root import RootNode, RootNodeConfig, build_root_node
from jfds_device.node.stack import SessionBudget, Stack
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.transport.sessions import MIN_CASE_SESSIONS_PER_FABRIC, SecureSession, SessionAuthMode

__all__ = ["COMMISSIONING", "FAST_PROVISIONING", "LIGHT_DEVICE_TYPE", "NodeCapacities", "SimulatedNode"]

log = logging.getLogger(__name__)

COMMISSIONING = "commissioning"
FAST_PROVISIONING = "fast-provisioning"
LIGHT_DEVICE_TYPE = DeviceType(device_type=0x0100, revision=3)  # On/Off Light, as the matter.js light's endpoint 1
CSR_NONCE_LENGTH = 32


@dataclass(frozen=True, slots=True)
class NodeCapacities:
    """The limits a simulated node announces and enforces (RESOURCE_EXHAUSTED beyond them)."""

    acl_entries_per_fabric: int = 4
    """AccessControlEntriesPerFabric: the spec minimum (Core spec 9.10.6.5), as small peers have."""
    max_groups_per_fabric: int = 12
    """GroupKeyManagement MaxGroupsPerFabric (the endpoint memberships of a fabric)."""
    max_group_keys_per_fabric: int = 8
    """GroupKeyManagement MaxGroupKeysPerFabric, the IPK included."""
    binding_entries: int = DEFAULT_BINDING_ENTRIES
    """Binding table entries on endpoint 1, every fabric together."""


class SimulatedNode:
    """See the module docstring. ``on_fabric_pending(node, info)``: a fabric was staged (AddNOC) or installed; the
    fleet advertises the node's operational record from then on (as ``Device.fabric_pending`` does)."""

    def __init__(self, index: int, *, clock: Clock, attestation: AttestationMaterial,
                 capacities: NodeCapacities | None = None, passcode: int = 20202021, discriminator: int = 3840,
                 vendor_id: int = 0xFFF1, product_id: int = 0x8000,
                 on_fabric_pending: Callable[[SimulatedNode, FabricInfo], None] | None = None) -> None:
        self.index = index
        self.clock = clock
        self.capacities = capacities = capacities or NodeCapacities()
        self.window = CommissioningWindow(passcode, discriminator)
        self.joined_by: str | None = None
        self._installing = False
        self._on_fabric_pending = on_fabric_pending
        config = RootNodeConfig(
            basic_information=BasicInformationConfig(vendor_name="jfds-device fleet", vendor_id=vendor_id,
                                                     product_name="Simulated node", product_id=product_id,
                                                     serial_number=f"SIM-{index:05d}"),
            acl_entries_per_fabric=capacities.acl_entries_per_fabric,
            max_groups_per_fabric=capacities.max_groups_per_fabric,
            max_group_keys_per_fabric=capacities.max_group_keys_per_fabric,
        )
        self.root: RootNode = build_root_node(None, config, monotonic=clock.now, attestation=attestation,
                                              window=self.window,
                                              application_endpoint=(LIGHT_DEVICE_TYPE, self._light_servers))
        self.fabrics = self.root.fabric_table
        self.fabrics.add_listener(self)
        self.events = EventStore()
        started_at = clock.now()
        self.root.node.attach_events(self.events, lambda: int((clock.now() - started_at) * 1000))
        self.stack: Stack | None = None
        self._attempt: CommissioningAttempt | None = None

    def _light_servers(self, group_keys: GroupKeyManagementServer) -> Sequence[ClusterServer]:
        self.groups = GroupsServer(group_keys)
        self.binding = BindingServer(max_entries=self.capacities.binding_entries)
        return [self.groups, self.binding]

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self, link: Link) -> None:
        """Open the node's endpoint over ``link`` (``UdpBindError`` when it cannot) and serve."""
        root = self.root
        self.stack = stack = Stack(
            data_model=root.node, window=self.window, identities=self.fabrics.identities, clock=self.clock,
            events=self.events,
            # Inbound sessions sized as a node's (3 per supported fabric + 2, the CHIP SDK's CHIPConfig.h);
            # a peer opens no outbound session.
            budget=SessionBudget(max_inbound_sessions=MIN_CASE_SESSIONS_PER_FABRIC * self.fabrics.max_fabrics + 2,
                                 max_outbound_sessions=1),
            on_pase_established=self._pase_established, on_session_closed=self._session_closed)
        await stack.open(link)
        stack.add_timer(root.get_timer, root.handle_timer)
        stack.add_timer(self.window.get_timer, self.window.handle_timer)
        self._attempt = CommissioningAttempt(self.window, root.failsafe, end_pase_sessions=stack.close_pase_sessions)
        root.basic_information.emit_start_up()
        stack.rearm()

    async def close(self) -> None:
        if self.stack is not None:
            await self.stack.close()

    @property
    def port(self) -> int:
        assert self.stack is not None, "the node is not started"
        return int(self.stack.endpoint.local_address[1])

    @property
    def session_params(self) -> SessionParameters:
        assert self.stack is not None, "the node is not started"
        return self.stack.session_params

    @property
    def fabric(self) -> FabricInfo | None:
        """The node's one fabric once it joined (committed), else None."""
        fabrics = self.fabrics.fabrics()
        return fabrics[0] if fabrics else None

    @property
    def node_id(self) -> int | None:
        fabric = self.fabric
        return None if fabric is None else fabric.node_id

    # ------------------------------------------------------------------------------------------ commissioning

    def open_commissioning_window(self, timeout_s: float | None = None) -> None:
        """Accept PASE with the node's passcode (a commissioner reaches it by address and port)."""
        self.window.open_initial(self.clock.now(), timeout_s)
        if self.stack is not None:
            self.stack.rearm()

    def _pase_established(self, session: SecureSession) -> None:
        assert self._attempt is not None
        self._attempt.pase_established(session.local_session_id, self.clock.now())

    def _session_closed(self, session: SecureSession) -> None:
        if session.auth_mode is SessionAuthMode.PASE and self._attempt is not None:
            with self.root.node.atomic():
                self._attempt.pase_session_closed(session.local_session_id)

    # ------------------------------------------------------------------------------------------ fast provisioning

    def operational_csr(self) -> bytes:
        """A fresh operational key; its NOCSRElements (Core spec 11.18.5.1: the CSR and a nonce) for the CA."""
        keypair = self.fabrics.allocate_pending_key()
        return nocsr_elements(build_csr(keypair.private_key), os.urandom(CSR_NONCE_LENGTH))

    def operational_public_key(self) -> bytes:
        """The public key of the pending operational key (``operational_csr`` first): for a CA in this process."""
        pending = self.fabrics.pending_key
        if pending is None:
            raise RuntimeError("no operational key: call operational_csr() first")
        return pending.keypair.public_key_bytes

    def install_fabric(self, *, rcac: bytes, noc: bytes, icac: bytes | None, ipk: bytes, admin_subject: int,
                       vendor_id: int, administrators: Sequence[int] = ()) -> FabricInfo:
        """Join the fabric the NOC names with the key ``operational_csr`` made: AddTrustedRootCertificate, AddNOC
        (its CaseAdminSubject entry and the IPK) and CommissioningComplete in one step, then an Administer entry
        for each of ``administrators`` (what the commissioner writes next, e.g. for jfds-device)."""
        fabrics, root = self.fabrics, self.root
        self._installing = True
        try:
            with root.node.atomic():
                fabrics.set_pending_root(rcac)
                info = fabrics.add_pending_fabric(noc, icac, ipk_epoch_key=ipk, vendor_id=vendor_id)
                root.access_control.remove_fabric(info.fabric_index)
                root.access_control.add_entry(info.fabric_index, admin_entry(admin_subject))
                for subject in administrators:
                    root.access_control.add_entry(info.fabric_index, admin_entry(subject))
                root.group_key_management.install_ipk(info.fabric_index, ipk)
                committed = fabrics.commit()
        except BaseException:
            fabrics.revert()
            raise
        finally:
            self._installing = False
        assert committed is not None
        self.joined_by = FAST_PROVISIONING
        return committed

    # ------------------------------------------------------------------------------------------ fabric table listener

    def fabric_pending(self, info: FabricInfo) -> None:
        if self._on_fabric_pending is not None:
            self._on_fabric_pending(self, info)

    def fabric_added(self, info: FabricInfo) -> None:
        if not self._installing:
            self.joined_by = COMMISSIONING  # CommissioningComplete of a commissioner's AddNOC

    def fabric_removed(self, fabric_index: int) -> None:
        if self.stack is not None and self.stack.im is not None:
            self.stack.im.on_fabric_removed(fabric_index)
        self.events.forget_fabric(fabric_index)
        if not self.fabrics.fabrics():
            self.joined_by = None

    # ------------------------------------------------------------------------------------------ inspection

    def describe(self) -> dict[str, Any]:
        """One line's worth of facts for the simulator's output."""
        fabric = self.fabric
        return {
            "index": self.index,
            "port": self.port if self.stack is not None else None,
            "node_id": None if fabric is None else f"0x{fabric.node_id:016X}",
            "compressed_fabric_id": None if fabric is None else fabric.compressed_fabric_id.hex().upper(),
            "joined_by": self.joined_by,
            "acl_entries": len(self.root.access_control.get(0x0000) or ()),
        }
