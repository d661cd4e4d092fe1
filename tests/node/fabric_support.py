"""One test fabric for stacks that talk CASE to each other: a root CA, its IPK, and operational identities on it."""

from __future__ import annotations

import functools

from jfds_device.crypto.cert_issuer import CertificateIssuer
from jfds_device.crypto.primitives import P256Keypair
from jfds_device.securechannel.case_identity import OperationalIdentity

FABRIC_ID = 0xFAB1


@functools.cache
def fabric() -> tuple[CertificateIssuer, bytes]:
    return CertificateIssuer.create_root(0xCAFE), bytes(range(16))


def identity(node_id: int) -> OperationalIdentity:
    """A fresh key and NOC for ``node_id`` on the test fabric (fabric index 1)."""
    root, epoch_key = fabric()
    keypair = P256Keypair.generate()
    noc = root.issue_noc(keypair.public_key_bytes, node_id, FABRIC_ID).tlv
    return OperationalIdentity.from_certificates(1, rcac=root.issued.tlv, noc=noc, icac=None, keypair=keypair,
                                                 epoch_key=epoch_key)
