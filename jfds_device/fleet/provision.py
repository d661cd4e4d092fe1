"""Fast provisioning: a fabric's CA issues each simulated node its NOC, and the node installs it directly.

Real commissioning (PASE, attestation, CSRRequest, AddNOC, CommissioningComplete over the network) costs a
commissioner a second or more per node; for thousands of nodes the simulator offers the shortcut a factory or a
bulk provisioning tool would take, keeping everything a commissioner would leave behind on the node:

1. the node makes its operational key and NOCSRElements (``SimulatedNode.operational_csr``);
2. the fabric's CA issues the NOC for that key and node id: ``issue(csr_elements, node_id)`` returning an
   ``IssuedChain`` (in the end-to-end tests, the CHIP Python controller's ``IssueNOCChain`` over the test's
   controller process; here ``FabricCA``, a test CA in this process, for benches and unit tests);
3. the node installs root, NOC, ICAC and IPK with the CaseAdminSubject's Administer entry and the extra
   administrators' entries (``SimulatedNode.install_fabric``), committed as CommissioningComplete would.

Nodes provisioned this way show ``joined_by = "fast-provisioning"``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from jfds_device.crypto.cert_issuer import CertificateIssuer
from jfds_device.crypto.primitives import P256Keypair
from jfds_device.fleet.sim_node import SimulatedNode
from jfds_device.securechannel.case_identity import OperationalIdentity

__all__ = ["FabricCA", "IssuedChain", "provision"]

TEST_VENDOR_ID = 0xFFF1


@dataclass(frozen=True, slots=True)
class IssuedChain:
    """What a fabric's CA hands out for one node (the CHIP controller's ``IssueNOCChain`` result)."""

    rcac: bytes
    noc: bytes
    icac: bytes | None
    ipk: bytes
    admin_subject: int
    vendor_id: int = TEST_VENDOR_ID


class FabricCA:
    """A fabric in this process: its root, fabric id and IPK epoch key; issues NOCs for node public keys."""

    def __init__(self, *, fabric_id: int = 1, admin_subject: int = 112233, rcac_id: int = 1,
                 ipk: bytes | None = None) -> None:
        self.fabric_id, self.admin_subject = fabric_id, admin_subject
        self.root = CertificateIssuer.create_root(rcac_id)
        self.ipk = ipk or os.urandom(16)

    def chain_for(self, node: SimulatedNode, node_id: int) -> IssuedChain:
        """A NOC for the node's pending operational key (``operational_csr`` made it)."""
        noc = self.root.issue_noc(node.operational_public_key(), node_id, self.fabric_id)
        return IssuedChain(rcac=self.root.issued.tlv, noc=noc.tlv, icac=None, ipk=self.ipk,
                           admin_subject=self.admin_subject)

    def identity(self, node_id: int, *, fabric_index: int = 1) -> OperationalIdentity:
        """An operational identity on this fabric (a controller's, or jfds-device's in a loopback test)."""
        keypair = P256Keypair.generate()
        noc = self.root.issue_noc(keypair.public_key_bytes, node_id, self.fabric_id).tlv
        return OperationalIdentity.from_certificates(fabric_index, rcac=self.root.issued.tlv, noc=noc, icac=None,
                                                     keypair=keypair, epoch_key=self.ipk)

    async def issue(self, node: SimulatedNode, csr_elements: bytes, node_id: int) -> IssuedChain:
        return self.chain_for(node, node_id)


Issuer = Callable[[SimulatedNode, bytes, int], Awaitable[IssuedChain]]
"""``await issue(node, nocsr_elements, node_id)``: the chain for that node (the CA's side of fast provisioning)."""


async def provision(nodes: Iterable[tuple[SimulatedNode, int]], issue: Issuer, *,
                    administrators: Sequence[int] = ()) -> None:
    """Fast-provision each (node, node id): CSR, ``issue``, install with Administer for ``administrators``."""
    for node, node_id in nodes:
        chain = await issue(node, node.operational_csr(), node_id)
        node.install_fabric(rcac=chain.rcac, noc=chain.noc, icac=chain.icac, ipk=chain.ipk,
                            admin_subject=chain.admin_subject, vendor_id=chain.vendor_id,
                            administrators=administrators)
