"""Who we are on each fabric, for CASE, and what resuming a CASE session needs (Core spec §4.14.2).

``OperationalIdentity`` is one fabric as CASE sees it (trust root, our NOC chain and key, IPK);
``ResumptionRecord``/``ResumptionStore`` keep what session resumption needs per peer; ``verify_peer`` is the
credential check both CASE roles run on the other side's NOC chain and TBSData signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from jfds_device.crypto.case_keys import compressed_fabric_id, operational_ipk
from jfds_device.crypto.cert_chain import VerifiedChain, verify_chain
from jfds_device.crypto.certs import MatterCertificate
from jfds_device.crypto.primitives import P256_PUBLIC_KEY_LENGTH, P256Keypair, ecdsa_verify
from jfds_device.crypto.session_keys import IPK_LENGTH, RESUMPTION_ID_LENGTH
from jfds_device.errors import CertificateError, LocalProtocolError
from jfds_device.securechannel import case_messages as cm

__all__ = [
    "InMemoryResumptionStore",
    "OperationalIdentity",
    "ResumptionRecord",
    "ResumptionStore",
    "verify_peer",
]

SHARED_SECRET_LENGTH: Final = 32  # Crypto_ECDH output: the shared point's X coordinate (Core spec §3.5)


@dataclass(frozen=True, slots=True)
class OperationalIdentity:
    """What CASE needs of one of our fabrics: its trust root, our credentials on it and its IPK.

    ``ipk`` is the operational group key derived from the current epoch key of group key set 0 (Core spec
    §4.14.2, §4.16); ``other_ipks`` are those of its other epoch keys, which a responder also accepts in a
    destination id (connectedhomeip tries every IPK epoch key), while an initiator always uses ``ipk``.
    """

    fabric_index: int
    fabric_id: int
    node_id: int
    root_public_key: bytes
    rcac: bytes = field(repr=False)
    noc: bytes = field(repr=False)
    icac: bytes | None = field(repr=False)
    keypair: P256Keypair = field(repr=False)
    ipk: bytes = field(repr=False)
    other_ipks: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.fabric_index <= 254:  # fabric-idx: 1..254 (0 means "no fabric")
            raise LocalProtocolError(f"fabric index {self.fabric_index} outside 1..254")
        if len(self.root_public_key) != P256_PUBLIC_KEY_LENGTH:
            raise LocalProtocolError("root public key must be a 65-byte uncompressed point")
        if any(len(k) != IPK_LENGTH for k in (self.ipk, *self.other_ipks)):
            raise LocalProtocolError(f"IPKs are {IPK_LENGTH} bytes")

    @classmethod
    def from_certificates(
        cls,
        fabric_index: int,
        *,
        rcac: bytes,
        noc: bytes,
        icac: bytes | None,
        keypair: P256Keypair,
        epoch_key: bytes,
        other_epoch_keys: Sequence[bytes] = (),
    ) -> OperationalIdentity:
        """Build an identity from our own chain (validated, ids read from it) and IPK epoch key(s).

        Raises ``CertificateError`` for a chain that does not validate and ``LocalProtocolError`` when
        ``keypair`` is not the NOC's key.
        """
        chain = verify_chain(noc, icac, rcac)
        if MatterCertificate.decode_tlv(noc).public_key_bytes != keypair.public_key_bytes:
            raise LocalProtocolError("the operational keypair does not match the NOC's public key")
        cfid = compressed_fabric_id(chain.root_public_key, chain.fabric_id)
        return cls(
            fabric_index=fabric_index,
            fabric_id=chain.fabric_id,
            node_id=chain.node_id,
            root_public_key=chain.root_public_key,
            rcac=rcac,
            noc=noc,
            icac=icac,
            keypair=keypair,
            ipk=operational_ipk(epoch_key, cfid),
            other_ipks=tuple(operational_ipk(k, cfid) for k in other_epoch_keys),
        )


@dataclass(frozen=True, slots=True)
class ResumptionRecord:
    """What resuming a CASE session with one peer takes (Core spec §4.14.2, "Session Resumption")."""

    resumption_id: bytes
    shared_secret: bytes = field(repr=False)
    fabric_index: int
    peer_node_id: int
    peer_cats: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.resumption_id) != RESUMPTION_ID_LENGTH or len(self.shared_secret) != SHARED_SECRET_LENGTH:
            raise LocalProtocolError("a resumption record needs a 16-byte id and a 32-byte shared secret")


class ResumptionStore(Protocol):
    """Resumption records, at most one per peer (a newer one replaces the older, as in the SDK's storage)."""

    def get_by_id(self, resumption_id: bytes) -> ResumptionRecord | None: ...

    def get_by_peer(self, fabric_index: int, peer_node_id: int) -> ResumptionRecord | None: ...

    def put(self, record: ResumptionRecord) -> None: ...

    def remove(self, resumption_id: bytes) -> None: ...

    def remove_fabric(self, fabric_index: int) -> None: ...


class InMemoryResumptionStore:
    """A ``ResumptionStore`` in two dicts; the oldest record goes first once ``max_entries`` is reached."""

    def __init__(self, max_entries: int | None = None) -> None:
        self.max_entries = max_entries
        self._by_id: dict[bytes, ResumptionRecord] = {}
        self._by_peer: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get_by_id(self, resumption_id: bytes) -> ResumptionRecord | None:
        return self._by_id.get(bytes(resumption_id))

    def get_by_peer(self, fabric_index: int, peer_node_id: int) -> ResumptionRecord | None:
        resumption_id = self._by_peer.get((fabric_index, peer_node_id))
        return None if resumption_id is None else self._by_id.get(resumption_id)

    def put(self, record: ResumptionRecord) -> None:
        old = self._by_peer.get((record.fabric_index, record.peer_node_id))
        for stale in (old, record.resumption_id):  # the peer's previous record, and any id clash
            if stale is not None:
                self.remove(stale)
        self._by_id[record.resumption_id] = record
        self._by_peer[(record.fabric_index, record.peer_node_id)] = record.resumption_id
        while self.max_entries is not None and len(self._by_id) > self.max_entries:
            self.remove(next(iter(self._by_id)))

    def remove(self, resumption_id: bytes) -> None:
        record = self._by_id.pop(bytes(resumption_id), None)
        if record is not None:
            self._by_peer.pop((record.fabric_index, record.peer_node_id), None)

    def remove_fabric(self, fabric_index: int) -> None:
        for record in [r for r in self._by_id.values() if r.fabric_index == fabric_index]:
            self.remove(record.resumption_id)


def verify_peer(
    fabric: OperationalIdentity,
    noc: bytes,
    icac: bytes | None,
    signature: bytes,
    *,
    sender_eph: bytes,
    receiver_eph: bytes,
    now: int | float | datetime | None,
) -> VerifiedChain:
    """Core spec §4.14.2.3 (Sigma2 / Sigma3 validation): the TBSData signature by the sender's NOC key, the
    NOC <- [ICAC] chain up to our fabric's root, and the sender on our fabric; else ``CryptoError``.

    The signature comes first: it is cheap, and a forged message then costs no chain walk (the SDK's TODO).
    """
    cert = MatterCertificate.decode_tlv(noc)
    tbs = cm.TbsData(sender_noc=noc, sender_icac=icac, sender_eph_pub_key=sender_eph, receiver_eph_pub_key=receiver_eph)
    ecdsa_verify(cert.public_key_bytes, tbs.encode(), signature)
    chain = verify_chain(cert, icac or None, fabric.rcac, now)  # empty ICAC = none (see case_messages)
    if chain.fabric_id != fabric.fabric_id:
        raise CertificateError(f"peer NOC is on fabric 0x{chain.fabric_id:016X}, not 0x{fabric.fabric_id:016X}")
    return chain
