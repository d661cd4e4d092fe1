"""Joint Fabric Administrator rules without cluster plumbing (Core spec 11.25): the ICAC key and its CSR
(ICACCSRRequest, 11.25.7.1) and the validation of the cross-signed ICAC (AddICAC, 11.25.7.3).

In the Joint Commissioning Method the Anchor Administrator commissions this node into the joint fabric and,
under that fail-safe, asks it for a CSR for a fresh intermediate CA key; it signs an ICAC for that key with
the joint fabric's root (the accessing fabric's RCAC) and sends it back with AddICAC. With that ICAC and its
private key this node can then issue NOCs on the joint fabric.

AddICAC checks run in the CHIP SDK's order (joint-fabric-administrator-server.cpp, HandleAddICAC), so a
certificate with several faults gets the same answer as from the SDK:

1. the ICAC decodes (Matter TLV, §6.5) and chains to the root: its subject is an ICAC's (matter-icac-id),
   basic constraints say CA, key usage has keyCertSign, issuer DN and authority key id name the root and
   the root's signature verifies → else InvalidICAC;
2. its public key is the key of the pending CSR → else InvalidPublicKey (also when no CSR is pending);
3. every remaining §6.5 rule for an ICAC (subject DN attributes, cRLSign, SKID, the root's path length, a
   fabric id in the subject that must be the joint fabric's) → else InvalidICAC. This step reuses the
   NOC chain validator: a throw-away NOC for this node, signed with the pending ICAC key, must verify as
   NOC <- ICAC <- RCAC on the joint fabric. That is exactly what the ICAC will be used for, and it needs
   no private helpers of ``crypto.cert_chain``. The probe NOC is discarded.

Validity periods are not checked (``now=None``): like the fabric table, the node has no trusted time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from clusters.joint_fabric_administrator.schema import ICACResponseStatus
from jfds_device.crypto.cert_chain import validate_rcac, verify_chain
from jfds_device.crypto.cert_issuer import CertificateIssuer, IssuedCertificate, build_csr
from jfds_device.crypto.certs import DNTag, KeyUsage, MatterCertificate
from jfds_device.crypto.primitives import P256Keypair
from jfds_device.errors import MatterError

__all__ = ["IcacCredentials", "IcacRequest", "IcacVerdict", "check_icac", "new_icac_request"]


@dataclass(frozen=True, slots=True)
class IcacRequest:
    """The key an ICACCSRRequest generated (11.25.7.1), the fabric that asked and the CSR sent back."""

    fabric_index: int
    keypair: P256Keypair = field(repr=False)
    csr: bytes = field(repr=False)
    """DER PKCS#10, signed with ``keypair`` (ecdsa-with-SHA256)."""


@dataclass(frozen=True, slots=True)
class IcacCredentials:
    """An ICAC the joint fabric's root signed for us (AddICAC) and its private key: enough to issue NOCs."""

    fabric_index: int
    keypair: P256Keypair = field(repr=False)
    icac: bytes = field(repr=False)
    """Matter TLV certificate, as received."""


class IcacVerdict(NamedTuple):
    status: ICACResponseStatus
    reason: str = ""


def new_icac_request(fabric_index: int, *, generate: Callable[[], P256Keypair] = P256Keypair.generate) -> IcacRequest:
    """A fresh P-256 key and its CSR for ICACCSRRequest; the subject is the SDK's minimal "O=CSR"."""
    keypair = generate()
    return IcacRequest(fabric_index, keypair, build_csr(keypair.private_key))


def check_icac(icac: bytes, *, rcac: bytes, fabric_id: int, node_id: int, keypair: P256Keypair | None) -> IcacVerdict:
    """Validate AddICAC's ICACValue (11.25.7.3) against the joint fabric's root ``rcac``.

    ``fabric_id``/``node_id`` are this node's ids on that fabric; ``keypair`` is the pending CSR key (None:
    no ICACCSRRequest in this fail-safe). Returns the ICACResponse status and, for a refusal, why.
    """
    try:
        root = validate_rcac(rcac)
        cert = MatterCertificate.decode_tlv(icac)
        _check_link(cert, root)
    except MatterError as exc:
        return IcacVerdict(ICACResponseStatus.INVALID_ICAC, str(exc))
    if keypair is None:
        return IcacVerdict(ICACResponseStatus.INVALID_PUBLIC_KEY, "no ICACCSRRequest in this fail-safe")
    if cert.public_key_bytes != keypair.public_key_bytes:
        return IcacVerdict(ICACResponseStatus.INVALID_PUBLIC_KEY, "the ICAC is not for the CSR's key")
    try:
        issuer = CertificateIssuer(keypair.private_key, IssuedCertificate(cert.to_x509_der(), icac, cert))
        probe = issuer.issue_noc(keypair.public_key_bytes, node_id, fabric_id)
        verify_chain(probe.certificate, cert, root)
    except MatterError as exc:
        return IcacVerdict(ICACResponseStatus.INVALID_ICAC, str(exc))
    return IcacVerdict(ICACResponseStatus.OK)


def _check_link(cert: MatterCertificate, root: MatterCertificate) -> None:
    """Step 1: a CA certificate issued and signed by ``root`` (the SDK's ValidateCert with kICA and
    keyCertSign). Raises a ``MatterError`` subclass naming the first rule broken."""
    if not cert.matter_ids(DNTag.MATTER_ICAC_ID) or cert.matter_ids(DNTag.MATTER_RCAC_ID):
        raise _Invalid("the certificate is not an ICAC (its subject needs a matter-icac-id, no matter-rcac-id)")
    if not cert.is_ca:
        raise _Invalid("the ICAC is not a CA certificate (basic constraints)")
    if cert.key_usage is None or KeyUsage.KEY_CERT_SIGN not in cert.key_usage:
        raise _Invalid("the ICAC key usage lacks keyCertSign")
    if cert.issuer != root.subject:
        raise _Invalid("the ICAC issuer is not the joint fabric's root")
    if cert.authority_key_id is None or cert.authority_key_id != root.subject_key_id:
        raise _Invalid("the ICAC authority key id is not the root's subject key id")
    cert.verify_signature(root.public_key())  # CertificateError if the root did not sign it


class _Invalid(MatterError):
    pass
