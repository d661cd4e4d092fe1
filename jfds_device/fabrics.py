"""The fabric table (Core spec 6.4, 11.18): committed fabrics in SQLite, plus the one set of pending changes an
armed fail-safe may hold (a trusted root, an operational key, one added or updated fabric).

Pending state lives in memory only, like the SDK's FabricTable: the fail-safe commits it
(CommissioningComplete → ``commit()``) or throws it away (expiry → ``revert()``, Core spec 11.10.7.2.2).
A pending fabric is nevertheless *visible*: reads of the Operational Credentials cluster and ``identities()``
include it, because the commissioner opens CASE on the new fabric (and finds it through operational DNS-SD)
before it sends CommissioningComplete.

Listeners (``add_listener``) may define any of these methods; each runs after the state change, and an
exception in one is logged, never propagated (the table is already changed, and other listeners must run):

* ``fabric_pending(info)``: AddNOC/UpdateNOC staged ``info`` under the fail-safe; it is usable for CASE and
  should be advertised now (the SDK advertises right after AddNOC);
* ``fabric_added(info)`` / ``fabric_updated(info)``: committed (CommissioningComplete), or a label change;
* ``fabric_removed(fabric_index)``: RemoveFabric, *or* the rollback of a pending AddNOC; drop everything
  keyed by that index (ACL entries, group keys, sessions, subscriptions, resumption records, advertisement);
* ``fabric_reverted(info)``: a pending UpdateNOC was rolled back; ``info`` (the committed credentials) is in
  force again;
* ``fabrics_changed()``: any visible change, pending root included (attribute reporting).

Storage: operational private keys are stored in the database file. The node keeps its directory 0700;
this module also restricts the database file (and its WAL/SHM files) to 0600 when it opens the table.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from jfds_device.crypto.case_keys import COMPRESSED_FABRIC_ID_LENGTH, compressed_fabric_id, operational_ipk
from jfds_device.crypto.cert_chain import validate_rcac, verify_chain
from jfds_device.crypto.certs import MAX_OPERATIONAL_NODE_ID, MIN_OPERATIONAL_NODE_ID, MatterCertificate
from jfds_device.crypto.primitives import P256_PUBLIC_KEY_LENGTH, P256_SCALAR_LENGTH, P256Keypair
from jfds_device.crypto.session_keys import IPK_LENGTH
from jfds_device.datastore.sqlite import Database, Migration
from jfds_device.errors import CryptoError, DecodeError, LocalProtocolError, MatterError, StorageError
from jfds_device.securechannel.case_identity import OperationalIdentity, ResumptionRecord

__all__ = [
    "FABRIC_MIGRATIONS",
    "MAX_LABEL_LENGTH",
    "FabricError",
    "FabricErrorCode",
    "FabricInfo",
    "FabricTable",
    "PendingKey",
    "SqliteResumptionStore",
]

log = logging.getLogger(__name__)

MIN_FABRIC_INDEX: Final = 1
MAX_FABRIC_INDEX: Final = 254  # fabric-idx (Core spec 7.5.2); 0 means "no fabric"
MIN_SUPPORTED_FABRICS: Final = 5  # SupportedFabrics constraint 5..254 (11.18.5.3)
MAX_LABEL_LENGTH: Final = 32  # FabricDescriptorStruct Label, bytes (11.18.4.5)
_INDEX_NAMESPACE, _NEXT_INDEX_KEY = "fabrics", "next_index"  # kv: the index allocation starts from (one byte)

FABRIC_MIGRATIONS: Final = (
    Migration(
        1,
        (
            # Ids, root key and compressed fabric id are derived from the certificates on load, so they can
            # never disagree with them; 64-bit ids would not fit SQLite's signed INTEGER anyway.
            "CREATE TABLE fabrics (fabric_index INTEGER PRIMARY KEY CHECK (fabric_index BETWEEN 1 AND 254),"
            " vendor_id INTEGER NOT NULL, label TEXT NOT NULL, rcac BLOB NOT NULL, noc BLOB NOT NULL, icac BLOB,"
            " ipk_epoch_key BLOB NOT NULL, operational_key BLOB NOT NULL)",
            # Node ids are 8-byte big-endian blobs (they exceed 2^63); CATs are packed big-endian uint32s.
            "CREATE TABLE case_resumption (resumption_id BLOB PRIMARY KEY, fabric_index INTEGER NOT NULL,"
            " peer_node_id BLOB NOT NULL, shared_secret BLOB NOT NULL, peer_cats BLOB NOT NULL,"
            " UNIQUE (fabric_index, peer_node_id))",
        ),
    ),
)


class FabricErrorCode(enum.Enum):
    """Why a fabric operation was refused; the server maps these onto NodeOperationalCertStatusEnum."""

    INVALID_PUBLIC_KEY = "invalid public key"
    INVALID_NODE_OP_ID = "invalid node operational id"
    INVALID_NOC = "invalid NOC"
    MISSING_CSR = "missing CSR"
    TABLE_FULL = "table full"
    FABRIC_CONFLICT = "fabric conflict"
    LABEL_CONFLICT = "label conflict"
    INVALID_FABRIC_INDEX = "invalid fabric index"


class FabricError(MatterError):
    """A fabric operation refused for a reason the peer is told about (an NOCResponse status)."""

    def __init__(self, code: FabricErrorCode, message: str = "") -> None:
        super().__init__(message or code.value)
        self.code = code


@dataclass(frozen=True, slots=True)
class FabricInfo:
    """One fabric we belong to (Core spec 6.4): our credentials on it and what the cluster reports.

    Certificates are Matter TLV. Key material (IPK epoch key, operational private key) never shows in a repr.
    """

    fabric_index: int
    fabric_id: int
    node_id: int
    vendor_id: int
    label: str
    compressed_fabric_id: bytes
    root_public_key: bytes = field(repr=False)
    rcac: bytes = field(repr=False)
    noc: bytes = field(repr=False)
    icac: bytes | None = field(repr=False)
    ipk_epoch_key: bytes = field(repr=False)
    operational_key: bytes = field(repr=False)
    """The 32-byte P-256 private scalar of our NOC's key."""

    def __post_init__(self) -> None:
        if not MIN_FABRIC_INDEX <= self.fabric_index <= MAX_FABRIC_INDEX:
            raise LocalProtocolError(f"fabric index {self.fabric_index} outside 1..254")
        if len(self.label.encode("utf-8")) > MAX_LABEL_LENGTH:
            raise LocalProtocolError(f"fabric label longer than {MAX_LABEL_LENGTH} bytes")
        if not 0 <= self.vendor_id <= 0xFFFF:
            raise LocalProtocolError("vendor id is a uint16")
        checks = (
            (self.compressed_fabric_id, COMPRESSED_FABRIC_ID_LENGTH, "compressed fabric id"),
            (self.root_public_key, P256_PUBLIC_KEY_LENGTH, "root public key"),
            (self.ipk_epoch_key, IPK_LENGTH, "IPK epoch key"),
            (self.operational_key, P256_SCALAR_LENGTH, "operational private key"),
        )
        for value, length, what in checks:
            if len(value) != length:
                raise LocalProtocolError(f"{what} must be {length} bytes")

    def keypair(self) -> P256Keypair:
        return P256Keypair.from_private_bytes(self.operational_key)


@dataclass(frozen=True, slots=True)
class PendingKey:
    """The operational key a CSRRequest generated, and the fabric it is for (None: a new fabric, AddNOC)."""

    keypair: P256Keypair = field(repr=False)
    for_update: int | None


@dataclass(slots=True)
class _Pending:
    root: bytes | None = None
    key: PendingKey | None = None
    fabric: FabricInfo | None = None  # added (index not committed) or updated (index committed)


def _restrict_permissions(path: str) -> None:
    # The file holds operational private keys; WAL/SHM hold recent pages of it too.
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path + suffix, 0o600)


def _optional_icac(icac: bytes | None) -> bytes | None:
    return icac or None  # an empty ICAC means "none" (as in CASE, Core spec 4.14.2)


def _decode_noc(noc: bytes) -> MatterCertificate:
    try:
        cert = MatterCertificate.decode_tlv(noc)
    except (DecodeError, CryptoError, ValueError) as exc:
        raise FabricError(FabricErrorCode.INVALID_NOC, f"NOC does not decode: {exc}") from exc
    # Checked before chain validation so that the peer hears InvalidNodeOpId, not InvalidNOC (11.18.6.8).
    node_id = cert.node_id
    if node_id is not None and not MIN_OPERATIONAL_NODE_ID <= node_id <= MAX_OPERATIONAL_NODE_ID:
        raise FabricError(FabricErrorCode.INVALID_NODE_OP_ID, f"node id 0x{node_id:016X} is not operational")
    return cert


def _build(fabric_index: int, rcac: bytes, noc: bytes, icac: bytes | None, now: int | None, **rest: Any) -> FabricInfo:
    """Validate NOC <- [ICAC] <- RCAC (Core spec 6.5) and derive the fabric's identity from it.

    ``rest``: vendor_id, label, ipk_epoch_key, operational_key.
    """
    try:
        chain = verify_chain(noc, icac, rcac, now)
    except (DecodeError, CryptoError, ValueError) as exc:
        raise FabricError(FabricErrorCode.INVALID_NOC, str(exc)) from exc
    return FabricInfo(
        fabric_index=fabric_index,
        fabric_id=chain.fabric_id,
        node_id=chain.node_id,
        compressed_fabric_id=compressed_fabric_id(chain.root_public_key, chain.fabric_id),
        root_public_key=chain.root_public_key,
        rcac=rcac,
        noc=noc,
        icac=icac,
        **rest,
    )


class FabricTable:
    """Committed fabrics (persisted) and the pending changes of the armed fail-safe (memory only)."""

    def __init__(self, db: Database, *, max_fabrics: int = MIN_SUPPORTED_FABRICS) -> None:
        if not MIN_SUPPORTED_FABRICS <= max_fabrics <= MAX_FABRIC_INDEX:
            raise LocalProtocolError(f"max_fabrics must be {MIN_SUPPORTED_FABRICS}..{MAX_FABRIC_INDEX}")
        self._db = db
        self._max = max_fabrics
        db.migrate("fabrics", FABRIC_MIGRATIONS)
        _restrict_permissions(db.path)
        self._fabrics: dict[int, FabricInfo] = {info.fabric_index: info for info in self._load()}
        self._pending = _Pending()
        self._listeners: list[Any] = []
        self._keypairs: dict[int, tuple[bytes, P256Keypair]] = {}
        self._ipk_provider: Callable[[int], Sequence[bytes]] | None = None

    def _load(self) -> list[FabricInfo]:
        rows = self._db.execute(
            "SELECT fabric_index, vendor_id, label, rcac, noc, icac, ipk_epoch_key, operational_key"
            " FROM fabrics ORDER BY fabric_index"
        ).fetchall()
        out = []
        for index, vendor_id, label, rcac, noc, icac, ipk, key in rows:
            try:
                info = _build(int(index), bytes(rcac), bytes(noc), None if icac is None else bytes(icac), None,
                              vendor_id=int(vendor_id), label=str(label), ipk_epoch_key=bytes(ipk),
                              operational_key=bytes(key))  # fmt: skip
            except (FabricError, LocalProtocolError) as exc:
                raise StorageError(f"stored fabric {index} is invalid: {exc}") from exc
            out.append(info)
        return out

    # ------------------------------------------------------------------------------------------ queries

    @property
    def max_fabrics(self) -> int:
        """SupportedFabrics."""
        return self._max

    def fabrics(self, *, include_pending: bool = False) -> list[FabricInfo]:
        """Fabrics by index: committed ones, or (``include_pending``) what is visible during the fail-safe."""
        found = dict(self._fabrics)
        pending = self._pending.fabric
        if include_pending and pending is not None:
            found[pending.fabric_index] = pending
        return [found[i] for i in sorted(found)]

    def get(self, fabric_index: int, *, include_pending: bool = False) -> FabricInfo | None:
        pending = self._pending.fabric
        if include_pending and pending is not None and pending.fabric_index == fabric_index:
            return pending
        return self._fabrics.get(fabric_index)

    def find_by_root_and_fabric_id(
        self, root_public_key: bytes, fabric_id: int, *, include_pending: bool = False
    ) -> FabricInfo | None:
        """The fabric with this trust root and fabric id (the pair that identifies a fabric, Core spec 2.5.1)."""
        for info in self.fabrics(include_pending=include_pending):
            if info.fabric_id == fabric_id and info.root_public_key == root_public_key:
                return info
        return None

    def next_fabric_index(self) -> int | None:
        """The first free index from the one after the last fabric added, wrapping; None when the table is full.

        A removed fabric's index is not handed out again until the indices wrap, as the CHIP SDK's FabricTable
        allocates (UpdateNextAvailableFabricIndex, persisted), so a controller of a removed fabric never meets a
        new fabric under its old index (TC_CADMIN_1_15 step 16). A reverted AddNOC does not advance it."""
        used = {info.fabric_index for info in self.fabrics(include_pending=True)}
        if len(self._fabrics) >= self._max:
            return None
        stored = self._db.get(_INDEX_NAMESPACE, _NEXT_INDEX_KEY)
        start = stored[0] if stored else max(self._fabrics, default=0) + 1  # before the hint: after the highest
        span = MAX_FABRIC_INDEX - MIN_FABRIC_INDEX + 1
        candidates = (MIN_FABRIC_INDEX + (start - MIN_FABRIC_INDEX + i) % span for i in range(span))
        return next(i for i in candidates if i not in used)

    def set_ipk_provider(self, provider: Callable[[int], Sequence[bytes]] | None) -> None:
        """Where ``identities()`` reads IPK epoch keys (GroupKeyManagement key set 0, current key first).

        Without a provider, or when it returns no key, the IPK given to AddNOC is used.
        """
        self._ipk_provider = provider

    def identities(self) -> list[OperationalIdentity]:
        """One CASE identity per visible fabric; a pending AddNOC/UpdateNOC fabric replaces or joins them."""
        out = []
        for info in self.fabrics(include_pending=True):
            keys = list(self._ipk_provider(info.fabric_index)) if self._ipk_provider is not None else []
            ipks = [operational_ipk(k, info.compressed_fabric_id) for k in keys or [info.ipk_epoch_key]]
            out.append(
                OperationalIdentity(
                    fabric_index=info.fabric_index, fabric_id=info.fabric_id, node_id=info.node_id,
                    root_public_key=info.root_public_key, rcac=info.rcac, noc=info.noc, icac=info.icac,
                    keypair=self._keypair(info), ipk=ipks[0], other_ipks=tuple(ipks[1:]),
                )
            )  # fmt: skip
        return out

    def _keypair(self, info: FabricInfo) -> P256Keypair:
        # Rebuilding a key from its scalar costs a point multiplication; CASE asks on every Sigma1.
        cached = self._keypairs.get(info.fabric_index)
        if cached is None or cached[0] != info.operational_key:
            cached = (info.operational_key, info.keypair())
            self._keypairs[info.fabric_index] = cached
        return cached[1]

    # ------------------------------------------------------------------------------------------ pending

    @property
    def pending_root(self) -> bytes | None:
        """The RCAC AddTrustedRootCertificate installed in this fail-safe (also while a fabric uses it)."""
        return self._pending.root

    @property
    def pending_key(self) -> PendingKey | None:
        return self._pending.key

    @property
    def pending_fabric(self) -> FabricInfo | None:
        return self._pending.fabric

    @property
    def has_pending_changes(self) -> bool:
        pending = self._pending
        return pending.root is not None or pending.key is not None or pending.fabric is not None

    def set_pending_root(self, rcac: bytes, *, now: int | None = None) -> MatterCertificate:
        """AddTrustedRootCertificate: validate ``rcac`` (Core spec 6.5) and hold it for the next AddNOC.

        Raises ``CertificateError``/``DecodeError`` for an invalid root. Duplicates of existing roots are
        allowed: fabrics are told apart by root *and* fabric id.
        """
        if self._pending.fabric is not None:
            raise LocalProtocolError("a root cannot be added after AddNOC/UpdateNOC in the same fail-safe")
        cert = validate_rcac(rcac, now)
        self._pending.root = rcac
        self._notify("fabrics_changed")
        return cert

    def allocate_pending_key(self, *, for_update: int | None = None) -> P256Keypair:
        """CSRRequest: a fresh operational key, replacing any earlier pending one (11.18.6.5).

        ``for_update`` names the committed fabric an UpdateNOC will use it for; None means AddNOC.
        """
        if self._pending.fabric is not None:
            raise LocalProtocolError("a new key cannot be allocated after AddNOC/UpdateNOC in the same fail-safe")
        if for_update is not None and for_update not in self._fabrics:
            raise LocalProtocolError(f"fabric {for_update} does not exist")
        keypair = P256Keypair.generate()
        self._pending.key = PendingKey(keypair, for_update)
        return keypair

    def _pending_keypair(self, for_update: int | None) -> P256Keypair:
        key = self._pending.key
        if key is None or key.for_update != for_update:
            raise FabricError(FabricErrorCode.MISSING_CSR, "no CSRRequest for this operation in the fail-safe")
        return key.keypair

    def add_pending_fabric(
        self, noc: bytes, icac: bytes | None, *, ipk_epoch_key: bytes, vendor_id: int, now: int | None = None
    ) -> FabricInfo:
        """AddNOC (11.18.6.8): stage a new fabric from the pending root and key; raises ``FabricError``."""
        pending, icac = self._pending, _optional_icac(icac)
        if pending.fabric is not None:
            raise LocalProtocolError("one AddNOC/UpdateNOC per fail-safe")
        if len(ipk_epoch_key) != IPK_LENGTH:
            raise LocalProtocolError(f"the IPK epoch key is {IPK_LENGTH} bytes")
        keypair = self._pending_keypair(None)
        if pending.root is None:
            raise FabricError(FabricErrorCode.INVALID_NOC, "no trusted root was added in this fail-safe")
        index = self.next_fabric_index()
        if index is None:
            raise FabricError(FabricErrorCode.TABLE_FULL, f"all {self._max} fabrics are in use")
        cert = _decode_noc(noc)
        info = _build(index, pending.root, noc, icac, now, vendor_id=vendor_id, label="",
                      ipk_epoch_key=ipk_epoch_key, operational_key=keypair.private_bytes())  # fmt: skip
        if self.find_by_root_and_fabric_id(info.root_public_key, info.fabric_id) is not None:
            raise FabricError(FabricErrorCode.FABRIC_CONFLICT, "a fabric with this root and fabric id exists")
        return self._stage(info, cert, keypair)

    def update_pending(
        self, fabric_index: int, noc: bytes, icac: bytes | None, *, now: int | None = None
    ) -> FabricInfo:
        """UpdateNOC (11.18.6.9): stage new NOC/ICAC and key for a committed fabric; raises ``FabricError``."""
        pending, icac = self._pending, _optional_icac(icac)
        if pending.fabric is not None:
            raise LocalProtocolError("one AddNOC/UpdateNOC per fail-safe")
        if pending.root is not None:
            # UpdateNOC cannot change the root; the SDK and test plans answer MissingCsr here.
            raise FabricError(FabricErrorCode.MISSING_CSR, "a new root was added: UpdateNOC cannot change it")
        keypair = self._pending_keypair(fabric_index)
        current = self._fabrics.get(fabric_index)
        if current is None:
            raise FabricError(FabricErrorCode.INVALID_FABRIC_INDEX, f"fabric {fabric_index} does not exist")
        cert = _decode_noc(noc)
        if cert.fabric_id != current.fabric_id:
            # The SDK looks the NOC's fabric up by root + fabric id and must find this very fabric.
            raise FabricError(FabricErrorCode.INVALID_FABRIC_INDEX, "the NOC is for another fabric")
        info = _build(fabric_index, current.rcac, noc, icac, now, vendor_id=current.vendor_id, label=current.label,
                      ipk_epoch_key=current.ipk_epoch_key, operational_key=keypair.private_bytes())  # fmt: skip
        return self._stage(info, cert, keypair)

    def _stage(self, info: FabricInfo, cert: MatterCertificate, keypair: P256Keypair) -> FabricInfo:
        if cert.public_key_bytes != keypair.public_key_bytes:
            raise FabricError(FabricErrorCode.INVALID_PUBLIC_KEY, "the NOC is not for the CSR's key")
        self._pending.fabric = info
        self._notify("fabric_pending", info)
        self._notify("fabrics_changed")
        return info

    def commit(self) -> FabricInfo | None:
        """Make the pending fabric permanent (CommissioningComplete); a lone root or key is dropped."""
        pending, self._pending = self._pending, _Pending()
        info = pending.fabric
        if info is None:
            if pending.root is not None:
                self._notify("fabrics_changed")
            return None
        added = info.fabric_index not in self._fabrics
        try:
            self._store(info)
        except BaseException:
            self._pending = pending  # storage refused: keep it pending for the fail-safe to sort out
            raise
        self._fabrics[info.fabric_index] = info
        self._notify("fabric_added" if added else "fabric_updated", info)
        self._notify("fabrics_changed")
        return info

    def revert(self, *, keep_root: bool = False) -> None:
        """Drop the pending changes (fail-safe expiry, 11.10.7.2.2); ``keep_root`` keeps only the root.

        A pending AddNOC ends as ``fabric_removed`` so listeners drop what they keyed by its index; a pending
        UpdateNOC ends as ``fabric_reverted`` with the committed credentials.
        """
        pending, self._pending = self._pending, _Pending(root=self._pending.root if keep_root else None)
        info = pending.fabric
        if info is not None:
            committed = self._fabrics.get(info.fabric_index)
            if committed is None:
                self._keypairs.pop(info.fabric_index, None)
                self._notify("fabric_removed", info.fabric_index)
            else:
                self._notify("fabric_reverted", committed)
        if info is not None or (pending.root is not None and not keep_root):
            self._notify("fabrics_changed")

    def remove(self, fabric_index: int) -> bool:
        """RemoveFabric (11.18.6.12): forget the fabric, pending or committed. Returns whether it existed."""
        pending = self._pending.fabric
        if pending is not None and pending.fabric_index == fabric_index:
            if fabric_index not in self._fabrics:
                self.revert()  # a fabric that only exists pending: its removal is its rollback
                return True
            self._pending = _Pending()
        if fabric_index not in self._fabrics:
            return False
        with self._db.transaction():
            self._db.execute("DELETE FROM fabrics WHERE fabric_index = ?", (fabric_index,))
        del self._fabrics[fabric_index]
        self._keypairs.pop(fabric_index, None)
        self._notify("fabric_removed", fabric_index)
        self._notify("fabrics_changed")
        return True

    def set_label(self, fabric_index: int, label: str) -> FabricInfo:
        """UpdateFabricLabel (11.18.6.11). A pending fabric keeps the label only if it is committed later.

        Two fabrics cannot share a non-empty label (LabelConflict); the empty label is every fabric's
        default, so it never conflicts.
        """
        if len(label.encode("utf-8")) > MAX_LABEL_LENGTH:
            raise LocalProtocolError(f"fabric label longer than {MAX_LABEL_LENGTH} bytes")
        if label and any(
            f.label == label and f.fabric_index != fabric_index for f in self.fabrics(include_pending=True)
        ):
            raise FabricError(FabricErrorCode.LABEL_CONFLICT, f"label {label!r} is used by another fabric")
        pending = self._pending.fabric
        if pending is not None and pending.fabric_index == fabric_index:
            self._pending.fabric = info = replace(pending, label=label)
            self._notify("fabrics_changed")
            return info
        current = self._fabrics.get(fabric_index)
        if current is None:
            raise FabricError(FabricErrorCode.INVALID_FABRIC_INDEX, f"fabric {fabric_index} does not exist")
        info = replace(current, label=label)
        with self._db.transaction():
            self._db.execute("UPDATE fabrics SET label = ? WHERE fabric_index = ?", (label, fabric_index))
        self._fabrics[fabric_index] = info
        self._notify("fabric_updated", info)
        self._notify("fabrics_changed")
        return info

    def _store(self, info: FabricInfo) -> None:
        columns = "fabric_index, vendor_id, label, rcac, noc, icac, ipk_epoch_key, operational_key"
        with self._db.transaction():
            if info.fabric_index not in self._fabrics:  # a new fabric: the next one starts after it
                self._db.put(_INDEX_NAMESPACE, _NEXT_INDEX_KEY, bytes([info.fabric_index % MAX_FABRIC_INDEX + 1]))
            self._db.execute(
                f"INSERT OR REPLACE INTO fabrics ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (info.fabric_index, info.vendor_id, info.label, info.rcac, info.noc, info.icac, info.ipk_epoch_key,
                 info.operational_key),
            )  # fmt: skip

    # ------------------------------------------------------------------------------------------ listeners

    def add_listener(self, listener: object) -> None:
        """Register an object with any of the methods listed in the module docstring."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: object) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _notify(self, event: str, *args: object) -> None:
        for listener in list(self._listeners):
            method = getattr(listener, event, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:
                log.exception("fabric listener %r failed on %s", listener, event)


# ---------------------------------------------------------------------------------------------------- resumption


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


class SqliteResumptionStore:
    """A persisted ``ResumptionStore`` (Core spec 4.14.2.2): one record per peer, the oldest evicted first.

    Register it on the fabric table (``table.add_listener(store)``) so RemoveFabric drops its records.
    """

    def __init__(self, db: Database, max_entries: int | None = None) -> None:
        self._db = db
        self.max_entries = max_entries
        db.migrate("fabrics", FABRIC_MIGRATIONS)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM case_resumption").fetchone()[0])

    @staticmethod
    def _record(row: Sequence[Any]) -> ResumptionRecord:
        resumption_id, fabric_index, peer, secret, cats = row
        cats = bytes(cats)
        return ResumptionRecord(
            resumption_id=bytes(resumption_id),
            shared_secret=bytes(secret),
            fabric_index=int(fabric_index),
            peer_node_id=int.from_bytes(bytes(peer), "big"),
            peer_cats=tuple(int.from_bytes(cats[i : i + 4], "big") for i in range(0, len(cats), 4)),
        )

    _COLUMNS = "resumption_id, fabric_index, peer_node_id, shared_secret, peer_cats"

    def get_by_id(self, resumption_id: bytes) -> ResumptionRecord | None:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM case_resumption WHERE resumption_id = ?", (bytes(resumption_id),)
        ).fetchone()
        return None if row is None else self._record(row)

    def get_by_peer(self, fabric_index: int, peer_node_id: int) -> ResumptionRecord | None:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM case_resumption WHERE fabric_index = ? AND peer_node_id = ?",
            (fabric_index, _u64(peer_node_id)),
        ).fetchone()
        return None if row is None else self._record(row)

    def put(self, record: ResumptionRecord) -> None:
        cats = b"".join(cat.to_bytes(4, "big") for cat in record.peer_cats)
        with self._db.transaction():
            # The peer's previous record and any id clash go; the insert then takes the newest rowid.
            self._db.execute(
                "DELETE FROM case_resumption WHERE resumption_id = ? OR (fabric_index = ? AND peer_node_id = ?)",
                (record.resumption_id, record.fabric_index, _u64(record.peer_node_id)),
            )
            self._db.execute(
                f"INSERT INTO case_resumption ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (record.resumption_id, record.fabric_index, _u64(record.peer_node_id), record.shared_secret, cats),
            )
            if self.max_entries is not None:
                self._db.execute(
                    "DELETE FROM case_resumption WHERE rowid NOT IN"
                    " (SELECT rowid FROM case_resumption ORDER BY rowid DESC LIMIT ?)",
                    (self.max_entries,),
                )

    def remove(self, resumption_id: bytes) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM case_resumption WHERE resumption_id = ?", (bytes(resumption_id),))

    def remove_fabric(self, fabric_index: int) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM case_resumption WHERE fabric_index = ?", (fabric_index,))

    def fabric_removed(self, fabric_index: int) -> None:
        """Fabric-table listener hook: RemoveFabric (or a rolled-back AddNOC) drops the fabric's records."""
        self.remove_fabric(fabric_index)
