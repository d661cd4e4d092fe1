"""The fabric table (Core spec 6.4, 11.18) and the persisted CASE resumption store."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jfds_device.crypto.case_keys import compressed_fabric_id, operational_ipk
from jfds_device.crypto.cert_issuer import CertificateIssuer, issue_certificate
from jfds_device.crypto.certs import DNAttribute, DNTag, KeyPurpose, KeyUsage
from jfds_device.crypto.primitives import P256Keypair
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import CertificateError, LocalProtocolError, StorageError
from jfds_device.fabrics import (
    FabricError,
    FabricErrorCode,
    FabricInfo,
    FabricTable,
    SqliteResumptionStore,
)
from jfds_device.securechannel.case_identity import OperationalIdentity, ResumptionRecord

VENDOR = 0xFFF1
NODE = 0x0000_0000_0000_1234
Code = FabricErrorCode


@dataclass
class Commissioner:
    """What a commissioner holds for one fabric: its CA (root, optional ICAC), fabric id and IPK epoch key."""

    fabric_id: int = 0xFAB1
    with_icac: bool = False
    root: CertificateIssuer = field(default_factory=lambda: CertificateIssuer.create_root(1))
    ipk: bytes = field(default_factory=lambda: os.urandom(16))

    def __post_init__(self) -> None:
        self.icac = self.root.create_intermediate(2) if self.with_icac else None

    @property
    def rcac(self) -> bytes:
        return self.root.issued.tlv

    def chain(self, public_key: bytes, node_id: int = NODE, fabric_id: int | None = None) -> tuple[bytes, bytes | None]:
        """NOC (and ICAC) for ``public_key``, as the commissioner sends them in AddNOC/UpdateNOC."""
        issuer = self.icac or self.root
        noc = issuer.issue_noc(public_key, node_id, self.fabric_id if fabric_id is None else fabric_id)
        return noc.tlv, None if self.icac is None else self.icac.issued.tlv

    def bad_node_id_noc(self, public_key: bytes) -> bytes:
        """A NOC whose node id is outside the operational range (Core spec 2.5.5); issuers refuse to make one."""
        return issue_certificate(
            subject=[DNAttribute(DNTag.MATTER_NODE_ID, 0xFFFF_FFFF_0000_0001), DNAttribute(DNTag.MATTER_FABRIC_ID, 1)],
            public_key=public_key,
            issuer=self.root.certificate.subject,
            signing_key=self.root.private_key,
            authority_key_id=self.root.certificate.subject_key_id,
            is_ca=False,
            key_usage=KeyUsage.DIGITAL_SIGNATURE,
            extended_key_usage=(KeyPurpose.CLIENT_AUTH, KeyPurpose.SERVER_AUTH),
        ).tlv


class Recorder:
    """A fabric-table listener that records every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def fabric_pending(self, info: FabricInfo) -> None:
        self.events.append(("pending", info.fabric_index))

    def fabric_added(self, info: FabricInfo) -> None:
        self.events.append(("added", info.fabric_index))

    def fabric_updated(self, info: FabricInfo) -> None:
        self.events.append(("updated", info.fabric_index))

    def fabric_removed(self, fabric_index: int) -> None:
        self.events.append(("removed", fabric_index))

    def fabric_reverted(self, info: FabricInfo) -> None:
        self.events.append(("reverted", info.node_id))

    def fabrics_changed(self) -> None:
        self.events.append(("changed", None))

    def take(self) -> list[tuple[str, Any]]:
        events, self.events = self.events, []
        return [e for e in events if e[0] != "changed"]


def stage(table: FabricTable, commissioner: Commissioner, node_id: int = NODE) -> FabricInfo:
    table.set_pending_root(commissioner.rcac)
    key = table.allocate_pending_key()
    noc, icac = commissioner.chain(key.public_key_bytes, node_id)
    return table.add_pending_fabric(noc, icac, ipk_epoch_key=commissioner.ipk, vendor_id=VENDOR)


def add(table: FabricTable, commissioner: Commissioner | None = None, node_id: int = NODE) -> FabricInfo:
    info = stage(table, commissioner or Commissioner(), node_id)
    assert table.commit() == info
    return info


class _Refused:
    """``with _Refused(code):`` expects a ``FabricError`` with that code."""

    def __init__(self, code: FabricErrorCode) -> None:
        self.code = code
        self._ctx = pytest.raises(FabricError)

    def __enter__(self) -> None:
        self._ctx.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        handled = self._ctx.__exit__(*exc)
        assert self._ctx.excinfo is not None and self._ctx.excinfo.value.code is self.code
        return bool(handled)


@pytest.fixture
def db() -> Database:
    return Database(":memory:")


@pytest.fixture
def table(db: Database) -> FabricTable:
    return FabricTable(db)


# ---------------------------------------------------------------------------------------------------- AddNOC


def test_pending_fabric_is_visible_but_not_committed(table: FabricTable) -> None:
    recorder = Recorder()
    table.add_listener(recorder)
    commissioner = Commissioner(with_icac=True)
    info = stage(table, commissioner)
    assert info.fabric_index == 1 and info.node_id == NODE and info.fabric_id == commissioner.fabric_id
    assert info.root_public_key == commissioner.root.certificate.public_key_bytes
    assert info.compressed_fabric_id == compressed_fabric_id(info.root_public_key, info.fabric_id)
    assert commissioner.icac is not None and info.icac == commissioner.icac.issued.tlv
    assert table.fabrics() == [] and table.get(1) is None
    assert table.fabrics(include_pending=True) == [info] and table.get(1, include_pending=True) == info
    assert [i.fabric_index for i in table.identities()] == [1]
    assert recorder.take() == [("pending", 1)]
    table.commit()
    assert table.fabrics() == [info] and not table.has_pending_changes
    assert recorder.take() == [("added", 1)]


def test_committed_fabrics_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    with Database(path) as db:
        table = FabricTable(db)
        first, second = add(table, Commissioner(with_icac=True)), add(table, Commissioner(fabric_id=7), node_id=9)
        table.set_label(2, "kitchen")
    with Database(path) as db:
        again = FabricTable(db)
        assert again.fabrics() == [first, FabricInfo(**{**_fields(second), "label": "kitchen"})]
        assert again.identities()[0].keypair.public_key_bytes == first.keypair().public_key_bytes


def _fields(info: FabricInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in FabricInfo.__dataclass_fields__}


def test_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    with Database(path) as db:
        os.chmod(path, 0o644)
        FabricTable(db)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(f"{path}-wal").st_mode) == 0o600


def test_a_removed_fabrics_index_is_not_reused_until_the_indexes_wrap(table: FabricTable, db: Database) -> None:
    """The CHIP SDK's FabricTable policy (UpdateNextAvailableFabricIndex): the next index follows the last one
    added, skipping those in use; TC_CADMIN_1_15 step 16 checks a re-commissioned controller gets a new one."""
    for fabric_id in (1, 2, 3):
        add(table, Commissioner(fabric_id=fabric_id))
    assert table.remove(2)
    assert add(table, Commissioner(fabric_id=4)).fabric_index == 4
    assert table.remove(4)
    stage(table, Commissioner(fabric_id=5))
    table.revert()  # a reverted AddNOC does not use its index up
    assert add(table, Commissioner(fabric_id=5)).fabric_index == 5
    assert FabricTable(db).next_fabric_index() == 6  # persisted across a restart
    db.put("fabrics", "next_index", bytes([254]))  # near the end of the range: 254, then wrap to the free 2
    assert add(table, Commissioner(fabric_id=6)).fabric_index == 254
    assert add(table, Commissioner(fabric_id=7)).fabric_index == 2
    assert [f.fabric_index for f in table.fabrics()] == [1, 2, 3, 5, 254]


def test_a_table_from_before_the_index_hint_continues_after_its_highest_index(db: Database) -> None:
    table = FabricTable(db)
    for fabric_id in (1, 2, 3):
        add(table, Commissioner(fabric_id=fabric_id))
    table.remove(3)
    db.delete("fabrics", "next_index")
    assert FabricTable(db).next_fabric_index() == 3  # nothing says 3 was used: after the highest, 2


def test_table_full(table: FabricTable) -> None:
    for fabric_id in range(1, 6):
        add(table, Commissioner(fabric_id=fabric_id))
    assert table.next_fabric_index() is None
    with _Refused(Code.TABLE_FULL):
        stage(table, Commissioner(fabric_id=6))


def test_fabric_conflict_is_same_root_and_fabric_id(table: FabricTable) -> None:
    commissioner = Commissioner()
    add(table, commissioner)
    with _Refused(Code.FABRIC_CONFLICT):
        stage(table, commissioner, node_id=0x99)
    table.revert()
    other = Commissioner(fabric_id=commissioner.fabric_id + 1, root=commissioner.root)
    assert add(table, other).fabric_index == 2  # same root, another fabric id: a different fabric


def test_add_refusals(table: FabricTable) -> None:
    commissioner = Commissioner()
    key = table.allocate_pending_key()
    noc, _ = commissioner.chain(key.public_key_bytes)
    with _Refused(Code.INVALID_NOC):  # no root in this fail-safe
        table.add_pending_fabric(noc, None, ipk_epoch_key=commissioner.ipk, vendor_id=VENDOR)
    table.set_pending_root(commissioner.rcac)
    with _Refused(Code.INVALID_NOC):
        table.add_pending_fabric(b"\x15\x18", None, ipk_epoch_key=commissioner.ipk, vendor_id=VENDOR)
    stranger, _ = Commissioner().chain(key.public_key_bytes)  # chains to another root
    with _Refused(Code.INVALID_NOC):
        table.add_pending_fabric(stranger, None, ipk_epoch_key=commissioner.ipk, vendor_id=VENDOR)
    other_key, _ = commissioner.chain(P256Keypair.generate().public_key_bytes)
    with _Refused(Code.INVALID_PUBLIC_KEY):
        table.add_pending_fabric(other_key, None, ipk_epoch_key=commissioner.ipk, vendor_id=VENDOR)
    with _Refused(Code.INVALID_NODE_OP_ID):
        bad = commissioner.bad_node_id_noc(key.public_key_bytes)
        table.add_pending_fabric(bad, None, ipk_epoch_key=commissioner.ipk, vendor_id=VENDOR)
    table.revert()
    table.set_pending_root(commissioner.rcac)
    with _Refused(Code.MISSING_CSR):
        table.add_pending_fabric(noc, None, ipk_epoch_key=commissioner.ipk, vendor_id=VENDOR)
    assert table.fabrics(include_pending=True) == []


def test_pending_root_and_key_rules(table: FabricTable) -> None:
    with pytest.raises(CertificateError):
        table.set_pending_root(Commissioner().root.issue_noc(P256Keypair.generate().public_key_bytes, 1, 1).tlv)
    first = table.allocate_pending_key()
    second = table.allocate_pending_key()
    assert first.public_key_bytes != second.public_key_bytes  # a fresh key per CSRRequest
    assert table.pending_key is not None and table.pending_key.keypair is second
    with pytest.raises(LocalProtocolError):
        table.allocate_pending_key(for_update=3)  # not a fabric
    table.revert()
    stage(table, Commissioner())
    with pytest.raises(LocalProtocolError):
        table.allocate_pending_key()
    with pytest.raises(LocalProtocolError):
        table.set_pending_root(Commissioner().rcac)


def test_commit_of_a_lone_root_or_key_keeps_nothing(table: FabricTable) -> None:
    table.set_pending_root(Commissioner().rcac)
    table.allocate_pending_key()
    assert table.commit() is None
    assert not table.has_pending_changes and table.fabrics() == []


def test_revert_of_pending_add_reports_removal(table: FabricTable) -> None:
    recorder = Recorder()
    table.add_listener(recorder)
    stage(table, Commissioner())
    recorder.take()
    table.revert()
    assert recorder.take() == [("removed", 1)]
    assert table.fabrics(include_pending=True) == [] and table.pending_root is None
    table.set_pending_root(Commissioner().rcac)
    table.revert()
    assert recorder.events == [("changed", None), ("changed", None)]  # TrustedRootCertificates changed


# ---------------------------------------------------------------------------------------------------- UpdateNOC


def _update(table: FabricTable, commissioner: Commissioner, node_id: int, index: int = 1) -> FabricInfo:
    key = table.allocate_pending_key(for_update=index)
    noc, icac = commissioner.chain(key.public_key_bytes, node_id)
    return table.update_pending(index, noc, icac)


def test_update_commit(tmp_path: Path) -> None:
    commissioner = Commissioner()
    with Database(tmp_path / "n.sqlite") as db:
        table = FabricTable(db)
        old = add(table, commissioner)
        table.set_label(1, "hall")
        recorder = Recorder()
        table.add_listener(recorder)
        new = _update(table, commissioner, node_id=0x55)
        assert new.node_id == 0x55 and new.label == "hall" and new.ipk_epoch_key == old.ipk_epoch_key
        assert table.get(1) == FabricInfo(**{**_fields(old), "label": "hall"})
        assert table.identities()[0].node_id == 0x55  # CASE uses the new NOC at once
        table.commit()
        assert recorder.take() == [("pending", 1), ("updated", 1)]
    with Database(tmp_path / "n.sqlite") as db:
        assert FabricTable(db).fabrics() == [new]


def test_update_revert(table: FabricTable) -> None:
    commissioner = Commissioner()
    old = add(table, commissioner)
    recorder = Recorder()
    table.add_listener(recorder)
    _update(table, commissioner, node_id=0x55)
    table.revert()
    assert recorder.take() == [("pending", 1), ("reverted", NODE)]
    assert table.fabrics(include_pending=True) == [old]
    assert table.identities()[0].noc == old.noc


def test_update_refusals(table: FabricTable) -> None:
    commissioner = Commissioner()
    add(table, commissioner)
    key = table.allocate_pending_key(for_update=1)
    other_fabric, _ = commissioner.chain(key.public_key_bytes, fabric_id=commissioner.fabric_id + 1)
    with _Refused(Code.INVALID_FABRIC_INDEX):
        table.update_pending(1, other_fabric, None)
    noc, _ = commissioner.chain(key.public_key_bytes)
    with _Refused(Code.MISSING_CSR):
        table.update_pending(2, noc, None)  # the key is for fabric 1
    with _Refused(Code.INVALID_NODE_OP_ID):
        table.update_pending(1, commissioner.bad_node_id_noc(key.public_key_bytes), None)
    with _Refused(Code.INVALID_PUBLIC_KEY):
        table.update_pending(1, commissioner.chain(P256Keypair.generate().public_key_bytes)[0], None)
    table.set_pending_root(commissioner.rcac)
    with _Refused(Code.MISSING_CSR):  # UpdateNOC cannot change the root
        table.update_pending(1, noc, None)
    table.revert()
    table.allocate_pending_key()
    with _Refused(Code.MISSING_CSR):  # the key is for AddNOC
        table.update_pending(1, noc, None)


# ---------------------------------------------------------------------------------------------------- remove, labels


def test_remove(table: FabricTable, db: Database) -> None:
    add(table, Commissioner(fabric_id=1))
    add(table, Commissioner(fabric_id=2))
    recorder = Recorder()
    table.add_listener(recorder)
    assert table.remove(1) and not table.remove(1) and not table.remove(9)
    assert [f.fabric_index for f in table.fabrics()] == [2]
    assert db.execute("SELECT fabric_index FROM fabrics").fetchall() == [(2,)]
    stage(table, Commissioner(fabric_id=3))
    assert table.remove(3)  # the pending fabric (the next index, 3): removing it is its rollback
    assert recorder.take() == [("removed", 1), ("pending", 3), ("removed", 3)]
    assert not table.has_pending_changes


def test_labels(table: FabricTable) -> None:
    add(table, Commissioner(fabric_id=1))
    add(table, Commissioner(fabric_id=2))
    assert table.set_label(1, "living room").label == "living room"
    with _Refused(Code.LABEL_CONFLICT):
        table.set_label(2, "living room")
    table.set_label(1, "")
    table.set_label(2, "")  # the empty default label never conflicts
    table.set_label(1, "living room")
    table.set_label(1, "living room")  # setting a fabric's own label again is fine
    with pytest.raises(LocalProtocolError):
        table.set_label(1, "x" * 33)
    with _Refused(Code.INVALID_FABRIC_INDEX):
        table.set_label(5, "nope")
    stage(table, Commissioner(fabric_id=3))
    table.set_label(3, "pending")
    assert table.get(3) is None and table.commit() is not None
    assert table.get(3) is not None and table.get(3).label == "pending"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------- CASE identities


def test_identities_match_the_case_constructor(table: FabricTable) -> None:
    commissioner = Commissioner(with_icac=True)
    info = add(table, commissioner)
    (identity,) = table.identities()
    assert identity == OperationalIdentity.from_certificates(
        1, rcac=info.rcac, noc=info.noc, icac=info.icac, keypair=identity.keypair, epoch_key=commissioner.ipk
    )
    assert identity.ipk == operational_ipk(commissioner.ipk, info.compressed_fabric_id)


def test_ipk_provider(table: FabricTable) -> None:
    info = add(table)
    current, previous = os.urandom(16), os.urandom(16)
    table.set_ipk_provider(lambda index: [current, previous] if index == 1 else [])
    (identity,) = table.identities()
    cfid = info.compressed_fabric_id
    assert identity.ipk == operational_ipk(current, cfid)
    assert identity.other_ipks == (operational_ipk(previous, cfid),)
    table.set_ipk_provider(lambda index: [])
    assert table.identities()[0].ipk == operational_ipk(info.ipk_epoch_key, cfid)


def test_keys_stay_out_of_reprs(table: FabricTable) -> None:
    info = add(table)
    text = repr(info) + repr(table.identities()[0])
    for secret in (info.operational_key, info.ipk_epoch_key):
        assert repr(secret) not in text and secret.hex() not in text


def test_fabric_info_validation() -> None:
    info = add(FabricTable(Database(":memory:")))
    for change in ({"fabric_index": 0}, {"fabric_index": 255}, {"label": "é" * 17}, {"ipk_epoch_key": b"x"}):
        with pytest.raises(LocalProtocolError):
            FabricInfo(**{**_fields(info), **change})


def test_max_fabrics_bounds(db: Database) -> None:
    for bad in (4, 255):
        with pytest.raises(LocalProtocolError):
            FabricTable(db, max_fabrics=bad)
    assert FabricTable(db, max_fabrics=254).max_fabrics == 254


def test_corrupt_storage_is_an_error(tmp_path: Path) -> None:
    with Database(tmp_path / "n.sqlite") as db:
        add(FabricTable(db))
        db.execute("UPDATE fabrics SET noc = x'1518'")
    with Database(tmp_path / "n.sqlite") as db, pytest.raises(StorageError):
        FabricTable(db)


def test_a_failing_listener_does_not_stop_the_others(table: FabricTable) -> None:
    class Broken:
        def fabric_pending(self, info: FabricInfo) -> None:
            raise RuntimeError("boom")

    recorder = Recorder()
    table.add_listener(Broken())
    table.add_listener(recorder)
    stage(table, Commissioner())
    assert recorder.take() == [("pending", 1)]
    table.remove_listener(recorder)
    table.commit()
    assert recorder.events == []


# ---------------------------------------------------------------------------------------------------- resumption


def record(n: int, fabric: int = 1, peer: int = 0xFFFF_FFEF_0000_0001, cats: tuple[int, ...] = ()) -> ResumptionRecord:
    return ResumptionRecord(bytes([n]) * 16, bytes([n]) * 32, fabric, peer, cats)


def test_resumption_store_round_trip(tmp_path: Path) -> None:
    with Database(tmp_path / "n.sqlite") as db:
        store = SqliteResumptionStore(db)
        first = record(1, cats=(0x0001_0001, 0xFFFF_0002))
        store.put(first)
        assert store.get_by_id(first.resumption_id) == first
        assert store.get_by_peer(1, first.peer_node_id) == first  # node ids above 2^63 survive
        assert store.get_by_peer(2, first.peer_node_id) is None
        newer = record(2)
        store.put(newer)  # same peer: replaces
        assert len(store) == 1 and store.get_by_id(first.resumption_id) is None
    with Database(tmp_path / "n.sqlite") as db:
        store = SqliteResumptionStore(db)
        assert store.get_by_peer(1, newer.peer_node_id) == newer
        store.remove(newer.resumption_id)
        assert len(store) == 0


def test_resumption_store_eviction_and_id_clash(db: Database) -> None:
    store = SqliteResumptionStore(db, max_entries=2)
    for n in range(1, 4):
        store.put(record(n, peer=n))
    assert store.get_by_id(record(1).resumption_id) is None and len(store) == 2  # the oldest went
    clash = ResumptionRecord(record(3).resumption_id, bytes(32), 2, 99)
    store.put(clash)
    assert store.get_by_peer(1, 3) is None and store.get_by_id(clash.resumption_id) == clash


def test_resumption_records_go_with_their_fabric(db: Database) -> None:
    table, store = FabricTable(db), SqliteResumptionStore(db)
    table.add_listener(store)
    add(table, Commissioner(fabric_id=1))
    add(table, Commissioner(fabric_id=2))
    store.put(record(1, fabric=1, peer=5))
    store.put(record(2, fabric=2, peer=5))
    table.remove(1)
    assert store.get_by_peer(1, 5) is None and store.get_by_peer(2, 5) is not None
