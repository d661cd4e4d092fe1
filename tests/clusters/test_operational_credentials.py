"""Operational Credentials 0x003E (Core spec 11.18) driven through the provider API of a whole root node.

The commissioner side is played with ``cert_issuer``: the sequence is the CHIP controller's (connectedhomeip
src/controller/AutoCommissioner.cpp): ArmFailSafe, AttestationRequest, CertificateChainRequest, CSRRequest,
AddTrustedRootCertificate, AddNOC, then CASE on the new fabric and CommissioningComplete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clusters.access_control import schema as acl_schema
from clusters.general_commissioning import schema as gc
from clusters.operational_credentials import schema
from clusters.operational_credentials.schema import NodeOperationalCertStatusEnum as S
from jfds_device.codec import tlv
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.crypto.attestation import load_attestation
from jfds_device.crypto.cert_issuer import check_csr
from jfds_device.crypto.primitives import P256Keypair, ecdsa_verify
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError
from jfds_device.im.provider import (
    AttributePath,
    CommandPath,
    ListOperation,
    RequestContext,
    Status,
    SubjectDescriptor,
)
from jfds_device.node.root import RootNode, build_root_node
from tests.test_fabrics import Commissioner, Recorder

OC, GC = schema.CLUSTER_ID, gc.CLUSTER_ID
ATTESTATION, CHAIN, CSR, ADD_NOC, UPDATE_NOC, LABEL, REMOVE, ADD_ROOT = 0x00, 0x02, 0x04, 0x06, 0x07, 0x09, 0x0A, 0x0B
ARM, COMPLETE = 0x00, 0x04
ADMIN = 0x0000_0000_0001_B669
VENDOR = 0xFFF1
CHALLENGE = bytes(range(16))
MATERIAL = load_attestation()
DAC_PUBLIC_KEY = (
    x509.load_der_x509_certificate(MATERIAL.dac_cert)
    .public_key()
    .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
)


class Harness:
    """A root node with a manual clock, a PASE session that AddNOC can bind, and an IPK sink."""

    def __init__(self, db: Database | None = None) -> None:
        self.now = 1000.0
        self.ipks: dict[int, bytes] = {}
        self.root: RootNode = build_root_node(db, monotonic=lambda: self.now, set_ipk=self.ipks.__setitem__)
        self.node = self.root.node
        self.table = self.root.fabric_table
        self.pase_session, self.pase_fabric = 7, 0

    def new_pase(self) -> None:
        self.pase_session, self.pase_fabric = self.pase_session + 1, 0

    def _bind(self, fabric_index: int) -> None:
        self.pase_fabric = fabric_index

    def pase(self) -> RequestContext:
        subject = SubjectDescriptor(AuthMode.PASE, 0, self.pase_fabric, is_commissioning=True)
        return RequestContext(
            subject, session_id=self.pase_session, attestation_challenge=CHALLENGE, bind_fabric=self._bind
        )

    def case(self, fabric: int, node_id: int = ADMIN, session: int = 40, filtered: bool = True) -> RequestContext:
        subject = SubjectDescriptor(AuthMode.CASE, node_id, fabric)
        return RequestContext(subject, session_id=session, attestation_challenge=CHALLENGE, fabric_filtered=filtered)

    def invoke(self, ctx: RequestContext, command: int, fields: dict[int, Any], cluster: int = OC) -> Any:
        response = self.node.invoke(ctx, CommandPath(0, cluster, command), fields)
        return None if response is None else response.fields

    def status(self, ctx: RequestContext, command: int, fields: dict[int, Any]) -> Status:
        with pytest.raises(ActionError) as info:
            self.invoke(ctx, command, fields)
        return info.value.status

    def arm(self, ctx: RequestContext, seconds: int = 60) -> None:
        assert self.invoke(ctx, ARM, {0: seconds, 1: 1}, cluster=GC)[0] == 0

    def complete(self, ctx: RequestContext) -> int:
        return int(self.invoke(ctx, COMPLETE, {}, cluster=GC)[0])

    def csr(self, ctx: RequestContext, for_update: bool = False) -> bytes:
        fields: dict[int, Any] = {0: os.urandom(32)}
        if for_update:
            fields[1] = True
        elements = tlv.decode(self.invoke(ctx, CSR, fields)[0])
        return check_csr(elements[1])

    def add_noc(
        self, ctx: RequestContext, noc: bytes, icac: bytes | None, ipk: bytes, subject: int = ADMIN
    ) -> dict[int, Any]:
        fields: dict[int, Any] = {0: noc, 2: ipk, 3: subject, 4: VENDOR}
        if icac is not None:
            fields[1] = icac
        return self.invoke(ctx, ADD_NOC, fields)  # type: ignore[no-any-return]

    def read(self, ctx: RequestContext, attribute: int, cluster: int = OC) -> Any:
        return self.node.read_attribute(ctx, AttributePath(0, cluster, attribute))

    def expire(self) -> None:
        self.now += 1000
        self.root.handle_timer(self.now)

    def commission(self, commissioner: Commissioner, node_id: int = 0x1234, subject: int = ADMIN) -> int:
        """The whole sequence over a fresh PASE session, then CommissioningComplete over CASE."""
        self.new_pase()
        self.arm(self.pase())
        self.invoke(self.pase(), ADD_ROOT, {0: commissioner.rcac})
        noc, icac = commissioner.chain(self.csr(self.pase()), node_id)
        response = self.add_noc(self.pase(), noc, icac, commissioner.ipk, subject)
        assert response[0] == S.OK, response
        index = int(response[1])
        assert self.complete(self.case(index, subject)) == 0
        return index


@pytest.fixture
def h() -> Harness:
    return Harness()


def acl_of(h: Harness, fabric: int) -> list[Any]:
    return h.root.access_control.entries(fabric)


# ---------------------------------------------------------------------------------------------------- commissioning


def test_full_commissioning_sequence(h: Harness) -> None:
    commissioner = Commissioner(with_icac=True)
    recorder = Recorder()
    h.table.add_listener(recorder)
    h.arm(h.pase())
    assert h.read(h.pase(), schema.CURRENT_FABRIC_INDEX) == 0

    nonce = os.urandom(32)
    elements, signature = h.invoke(h.pase(), ATTESTATION, {0: nonce}).values()
    ecdsa_verify(DAC_PUBLIC_KEY, elements + CHALLENGE, signature)
    assert tlv.decode(elements) == {1: MATERIAL.cd, 2: nonce, 3: 0}

    assert h.invoke(h.pase(), CHAIN, {0: 1}) == {0: MATERIAL.dac_cert}
    assert h.invoke(h.pase(), CHAIN, {0: 2}) == {0: MATERIAL.pai_cert}

    csr_nonce = os.urandom(32)
    nocsr, signature = h.invoke(h.pase(), CSR, {0: csr_nonce}).values()
    ecdsa_verify(DAC_PUBLIC_KEY, nocsr + CHALLENGE, signature)
    csr, echoed = tlv.decode(nocsr).values()
    assert echoed == csr_nonce
    public_key = check_csr(csr)

    assert h.invoke(h.pase(), ADD_ROOT, {0: commissioner.rcac}) is None
    assert h.read(h.pase(), schema.TRUSTED_ROOT_CERTIFICATES) == [commissioner.rcac]

    noc, icac = commissioner.chain(public_key, 0x1234)
    assert h.add_noc(h.pase(), noc, icac, commissioner.ipk) == {0: S.OK, 1: 1}
    # The PASE session now acts for fabric 1; fabric, admin entry and IPK are in place but pending.
    assert h.pase_fabric == 1 and h.root.failsafe.fabric_index == 1
    assert h.read(h.pase(), schema.CURRENT_FABRIC_INDEX) == 1
    fabrics = h.read(h.pase(), schema.FABRICS)
    assert fabrics == [
        {
            1: commissioner.root.certificate.public_key_bytes,
            2: VENDOR,
            3: commissioner.fabric_id,
            4: 0x1234,
            5: "",
            0xFE: 1,
        }
    ]
    assert h.read(h.pase(), schema.NOCS) == [{1: noc, 2: icac, 0xFE: 1}]
    assert h.read(h.pase(), schema.COMMISSIONED_FABRICS) == 1
    assert h.read(h.pase(), schema.TRUSTED_ROOT_CERTIFICATES) == [commissioner.rcac]
    assert [(e.privilege, e.auth_mode, e.subjects, e.fabric_index) for e in acl_of(h, 1)] == [(5, 2, [ADMIN], 1)]
    assert h.ipks == {1: commissioner.ipk}
    assert [i.node_id for i in h.table.identities()] == [0x1234] and h.table.fabrics() == []
    assert recorder.take() == [("pending", 1)]

    # The commissioner's CASE session on the new fabric completes; nothing over PASE may.
    assert h.complete(h.pase()) == gc.CommissioningErrorEnum.INVALID_AUTHENTICATION
    assert h.complete(h.case(1)) == gc.CommissioningErrorEnum.OK
    assert [f.fabric_index for f in h.table.fabrics()] == [1] and not h.root.failsafe.armed
    assert recorder.take() == [("added", 1)]
    assert h.node.allowed(h.case(1).subject, 0, OC, Privilege.ADMINISTER)


def test_failsafe_expiry_rolls_everything_back(h: Harness) -> None:
    commissioner = Commissioner()
    recorder = Recorder()
    h.table.add_listener(recorder)
    h.arm(h.pase())
    h.invoke(h.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, _ = commissioner.chain(h.csr(h.pase()))
    assert h.add_noc(h.pase(), noc, None, commissioner.ipk)[0] == S.OK
    h.expire()
    assert not h.root.failsafe.armed
    assert h.table.fabrics(include_pending=True) == [] and not h.table.has_pending_changes
    assert acl_of(h, 1) == []
    assert h.read(h.case(1), schema.TRUSTED_ROOT_CERTIFICATES) == []
    assert h.read(h.case(1, filtered=False), schema.FABRICS) == []
    assert recorder.take() == [("pending", 1), ("removed", 1)]  # GroupKeyManagement drops the IPK here
    # A new commissioning reuses index 1 and starts clean.
    assert h.commission(Commissioner(), subject=0x77) == 1
    assert [e.subjects for e in acl_of(h, 1)] == [[0x77]]


def test_expiry_after_root_only_removes_the_root(h: Harness) -> None:
    h.arm(h.pase())
    h.invoke(h.pase(), ADD_ROOT, {0: Commissioner().rcac})
    h.csr(h.pase())
    h.invoke(h.pase(), ARM, {0: 0, 1: 0}, cluster=GC)  # ArmFailSafe(0) expires at once
    assert h.read(h.pase(), schema.TRUSTED_ROOT_CERTIFICATES) == [] and not h.table.has_pending_changes


def test_persistence_across_restart(tmp_path: Path) -> None:
    commissioner = Commissioner(with_icac=True)
    with Database(tmp_path / "node.sqlite") as db:
        h = Harness(db)
        h.commission(commissioner)
        h.invoke(h.case(1), LABEL, {0: "office"})
        before = h.read(h.case(1), schema.FABRICS)
    with Database(tmp_path / "node.sqlite") as db:
        h = Harness(db)
        assert h.read(h.case(1), schema.FABRICS) == before
        assert before[0][5] == "office"
        assert [e.subjects for e in acl_of(h, 1)] == [[ADMIN]]
        assert h.table.identities()[0].noc == h.table.fabrics()[0].noc


# ------------------------------------------------------------------------------------------ NOCResponse statuses


def test_add_noc_statuses(h: Harness) -> None:
    commissioner = Commissioner()
    h.arm(h.pase())
    h.invoke(h.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, _ = commissioner.chain(P256Keypair.generate().public_key_bytes)
    assert h.add_noc(h.pase(), noc, None, commissioner.ipk)[0] == S.MISSING_CSR
    key = h.csr(h.pase())
    assert h.add_noc(h.pase(), noc, None, commissioner.ipk)[0] == S.INVALID_PUBLIC_KEY
    assert h.add_noc(h.pase(), commissioner.bad_node_id_noc(key), None, commissioner.ipk)[0] == S.INVALID_NODE_OP_ID
    stranger, _ = Commissioner().chain(key)
    assert h.add_noc(h.pase(), stranger, None, commissioner.ipk)[0] == S.INVALID_NOC
    good, _ = commissioner.chain(key)
    for subject in (0, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFD_0001_0000):  # not a node id; CAT version 0
        response = h.add_noc(h.pase(), good, None, commissioner.ipk, subject)
        assert response[0] == S.INVALID_ADMIN_SUBJECT and 1 not in response
    assert h.table.fabrics(include_pending=True) == [] and h.pase_fabric == 0  # nothing changed so far


def test_add_noc_without_root_is_invalid_noc(h: Harness) -> None:
    h.arm(h.pase())
    commissioner = Commissioner()
    noc, _ = commissioner.chain(h.csr(h.pase()))
    assert h.add_noc(h.pase(), noc, None, commissioner.ipk)[0] == S.INVALID_NOC


def test_table_full_and_fabric_conflict() -> None:
    h = Harness()
    first = Commissioner(fabric_id=1)
    for fabric_id in range(1, 6):
        h.commission(first if fabric_id == 1 else Commissioner(fabric_id=fabric_id))
    assert h.read(h.case(1), schema.SUPPORTED_FABRICS) == 5 and h.read(h.case(1), schema.COMMISSIONED_FABRICS) == 5
    h.new_pase()
    h.arm(h.pase())
    h.invoke(h.pase(), ADD_ROOT, {0: first.rcac})
    noc, _ = first.chain(h.csr(h.pase()))
    assert h.add_noc(h.pase(), noc, None, first.ipk)[0] == S.TABLE_FULL
    h.invoke(h.case(5), REMOVE, {0: 5})
    assert h.add_noc(h.pase(), noc, None, first.ipk)[0] == S.FABRIC_CONFLICT  # same root and fabric id as 1


def test_update_fabric_label(h: Harness) -> None:
    h.commission(Commissioner(fabric_id=1))
    h.commission(Commissioner(fabric_id=2))
    assert h.invoke(h.case(1), LABEL, {0: "den"}) == {0: S.OK, 1: 1}
    assert h.invoke(h.case(2), LABEL, {0: "den"})[0] == S.LABEL_CONFLICT
    assert h.invoke(h.case(2), LABEL, {0: ""}) == {0: S.OK, 1: 2}
    assert h.status(h.case(2), LABEL, {0: "x" * 33}) is Status.INVALID_COMMAND
    h.new_pase()
    assert h.status(h.pase(), LABEL, {0: "y"}) is Status.UNSUPPORTED_ACCESS  # no accessing fabric
    labels = [f[5] for f in h.read(h.case(1, filtered=False), schema.FABRICS)]
    assert labels == ["den", ""]


def test_remove_fabric(h: Harness) -> None:
    h.commission(Commissioner(fabric_id=1))
    h.commission(Commissioner(fabric_id=2), subject=0x42)
    recorder = Recorder()
    h.table.add_listener(recorder)
    assert h.invoke(h.case(2, 0x42), REMOVE, {0: 1}) == {0: S.OK, 1: 1}
    assert [f.fabric_index for f in h.table.fabrics()] == [2]
    assert acl_of(h, 1) == [] and len(acl_of(h, 2)) == 1
    assert recorder.take() == [("removed", 1)]
    response = h.invoke(h.case(2, 0x42), REMOVE, {0: 1})
    assert response[0] == S.INVALID_FABRIC_INDEX and 1 not in response
    assert h.status(h.case(2, 0x42), REMOVE, {0: 0}) is Status.INVALID_COMMAND
    assert h.read(h.case(2, 0x42), schema.COMMISSIONED_FABRICS) == 1


def test_remove_fabric_holding_the_failsafe_expires_it_first(h: Harness) -> None:
    h.commission(Commissioner(fabric_id=1))
    h.commission(Commissioner(fabric_id=2))
    h.arm(h.case(1))
    operate = {1: 3, 2: 2, 3: [0x99], 4: None}
    acl_path = AttributePath(0, acl_schema.CLUSTER_ID, acl_schema.ACL)
    h.node.write_attribute(h.case(1), acl_path, [{1: 5, 2: 2, 3: [ADMIN], 4: None}, operate], ListOperation.REPLACE)
    assert h.invoke(h.case(2), REMOVE, {0: 1})[0] == S.OK
    assert not h.root.failsafe.armed and acl_of(h, 1) == []  # the ACL rollback did not resurrect entries


def test_remove_pending_fabric(h: Harness) -> None:
    commissioner = Commissioner()
    h.arm(h.pase())
    h.invoke(h.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, _ = commissioner.chain(h.csr(h.pase()))
    h.add_noc(h.pase(), noc, None, commissioner.ipk)
    assert h.invoke(h.pase(), REMOVE, {0: 1}) == {0: S.OK, 1: 1}
    assert h.table.fabrics(include_pending=True) == [] and acl_of(h, 1) == [] and not h.root.failsafe.armed


# ---------------------------------------------------------------------------------------------------- UpdateNOC


def _update(h: Harness, commissioner: Commissioner, node_id: int) -> dict[int, Any]:
    h.arm(h.case(1))
    noc, icac = commissioner.chain(h.csr(h.case(1), for_update=True), node_id)
    fields: dict[int, Any] = {0: noc} if icac is None else {0: noc, 1: icac}
    return h.invoke(h.case(1), UPDATE_NOC, fields)  # type: ignore[no-any-return]


def test_update_noc_commit(h: Harness) -> None:
    commissioner = Commissioner(with_icac=True)
    h.commission(commissioner)
    assert _update(h, commissioner, 0x5678) == {0: S.OK, 1: 1}
    assert h.read(h.case(1), schema.FABRICS)[0][4] == 0x5678  # visible at once
    assert h.table.fabrics()[0].node_id == 0x1234
    assert h.complete(h.case(1, node_id=ADMIN, session=41)) == 0
    assert h.table.fabrics()[0].node_id == 0x5678


def test_update_noc_rollback(h: Harness) -> None:
    commissioner = Commissioner()
    h.commission(commissioner)
    old = h.table.fabrics()[0]
    assert _update(h, commissioner, 0x5678)[0] == S.OK
    h.expire()
    assert h.table.fabrics(include_pending=True) == [old]


def test_update_noc_statuses(h: Harness) -> None:
    commissioner = Commissioner()
    h.commission(commissioner)
    noc, _ = commissioner.chain(P256Keypair.generate().public_key_bytes)
    assert h.status(h.case(1), UPDATE_NOC, {0: noc}) is Status.FAILSAFE_REQUIRED
    h.arm(h.case(1))
    assert h.invoke(h.case(1), UPDATE_NOC, {0: noc})[0] == S.MISSING_CSR
    h.csr(h.case(1))  # for AddNOC
    assert h.status(h.case(1), UPDATE_NOC, {0: noc}) is Status.CONSTRAINT_ERROR
    key = h.csr(h.case(1), for_update=True)
    assert h.status(h.case(1), ADD_NOC, {0: noc, 2: commissioner.ipk, 3: ADMIN, 4: VENDOR}) is Status.CONSTRAINT_ERROR
    other, _ = commissioner.chain(key, fabric_id=commissioner.fabric_id + 1)
    assert h.invoke(h.case(1), UPDATE_NOC, {0: other})[0] == S.INVALID_FABRIC_INDEX
    assert h.invoke(h.case(1), UPDATE_NOC, {0: noc})[0] == S.INVALID_PUBLIC_KEY
    good, _ = commissioner.chain(key, 0x5678)
    assert h.invoke(h.case(1), UPDATE_NOC, {0: good})[0] == S.OK
    assert h.status(h.case(1), UPDATE_NOC, {0: good}) is Status.CONSTRAINT_ERROR  # once per fail-safe
    assert h.status(h.case(1), CSR, {0: os.urandom(32)}) is Status.CONSTRAINT_ERROR
    h.new_pase()
    assert h.status(h.pase(), UPDATE_NOC, {0: good}) is Status.UNSUPPORTED_ACCESS  # no accessing fabric


# ---------------------------------------------------------------------------------------------------- IM statuses


def test_failsafe_rules(h: Harness) -> None:
    commissioner = Commissioner()
    nonce = {0: os.urandom(32)}
    assert h.status(h.pase(), CSR, nonce) is Status.FAILSAFE_REQUIRED
    assert h.status(h.pase(), ADD_ROOT, {0: commissioner.rcac}) is Status.FAILSAFE_REQUIRED
    noc, _ = commissioner.chain(P256Keypair.generate().public_key_bytes)
    add = {0: noc, 2: commissioner.ipk, 3: ADMIN, 4: VENDOR}
    assert h.status(h.pase(), ADD_NOC, add) is Status.FAILSAFE_REQUIRED
    h.arm(h.pase())
    other_pase = RequestContext(h.pase().subject, session_id=99, attestation_challenge=CHALLENGE)
    assert h.status(other_pase, CSR, nonce) is Status.FAILSAFE_REQUIRED  # held by another session
    h.invoke(h.pase(), ADD_ROOT, {0: commissioner.rcac})
    assert h.status(h.pase(), ADD_ROOT, {0: commissioner.rcac}) is Status.CONSTRAINT_ERROR  # one root per fail-safe
    noc, _ = commissioner.chain(h.csr(h.pase()))
    assert h.add_noc(h.pase(), noc, None, commissioner.ipk)[0] == S.OK
    assert h.status(h.pase(), ADD_NOC, {**add, 0: noc}) is Status.CONSTRAINT_ERROR  # one AddNOC per fail-safe
    assert h.status(h.pase(), CSR, nonce) is Status.CONSTRAINT_ERROR
    h.now += 61  # past the deadline, before the shell's timer fired: the context holds nothing any more
    assert h.status(h.pase(), CSR, nonce) is Status.FAILSAFE_REQUIRED
    # The expiry itself belongs to the shell's timer (its own transaction): an expiry run inside this
    # failed invoke would have been rolled back with it, leaving the admin ACL entry behind.
    h.root.handle_timer(h.now)
    assert h.table.fabrics(include_pending=True) == [] and acl_of(h, 1) == []


def test_malformed_requests_are_invalid_command(h: Harness) -> None:
    commissioner = Commissioner()
    assert h.status(h.pase(), ATTESTATION, {0: b"short"}) is Status.INVALID_COMMAND
    assert h.status(h.pase(), CHAIN, {0: 3}) is Status.INVALID_COMMAND
    h.arm(h.pase())
    assert h.status(h.pase(), CSR, {0: b"short"}) is Status.INVALID_COMMAND
    assert h.status(h.pase(), CSR, {0: os.urandom(32), 1: True}) is Status.INVALID_COMMAND  # UpdateNOC over PASE
    assert h.status(h.pase(), ADD_ROOT, {0: b"\x15\x18"}) is Status.INVALID_COMMAND
    assert h.status(h.pase(), ADD_ROOT, {0: bytes(401)}) is Status.INVALID_COMMAND
    noc, _ = commissioner.chain(P256Keypair.generate().public_key_bytes)
    for bad in ({2: bytes(15)}, {4: 0}, {4: 0xFFF5}, {0: bytes(401)}):
        fields = {0: noc, 2: commissioner.ipk, 3: ADMIN, 4: VENDOR, **bad}
        assert h.status(h.pase(), ADD_NOC, fields) is Status.INVALID_COMMAND
    assert h.status(h.pase(), CSR, {0: "not bytes"}) is Status.INVALID_COMMAND  # schema decoding


def test_attestation_needs_a_session_challenge(h: Harness) -> None:
    ctx = RequestContext(h.pase().subject, session_id=h.pase_session)
    assert h.status(ctx, ATTESTATION, {0: os.urandom(32)}) is Status.FAILURE


# ---------------------------------------------------------------------------------------------------- reads


def test_fabric_scoped_and_sensitive_reads(h: Harness) -> None:
    one, two = Commissioner(fabric_id=1), Commissioner(fabric_id=2, with_icac=True)
    h.commission(one, node_id=0x11)
    h.commission(two, node_id=0x22)
    nocs = [f.noc for f in h.table.fabrics()]
    assert h.read(h.case(1), schema.NOCS) == [{1: nocs[0], 2: None, 0xFE: 1}]
    # Unfiltered: the other fabric's NOC and ICAC are fabric-sensitive and left out (Core spec 7.13.6).
    assert h.read(h.case(1, filtered=False), schema.NOCS) == [{1: nocs[0], 2: None, 0xFE: 1}, {0xFE: 2}]
    assert [f[0xFE] for f in h.read(h.case(2), schema.FABRICS)] == [2]
    unfiltered = h.read(h.case(2, filtered=False), schema.FABRICS)
    assert [(f[0xFE], f[4]) for f in unfiltered] == [(1, 0x11), (2, 0x22)]  # descriptors are not sensitive
    assert h.read(h.case(2), schema.CURRENT_FABRIC_INDEX) == 2
    assert h.read(h.case(2), schema.TRUSTED_ROOT_CERTIFICATES) == [one.rcac, two.rcac]
    h.new_pase()
    assert h.read(h.pase(), schema.NOCS) == [] and h.read(h.pase(), schema.FABRICS) == []  # no accessing fabric
    assert h.read(h.pase(), schema.CURRENT_FABRIC_INDEX) == 0
    # Only administrators read NOCs; everyone with View reads the rest.
    attributes = {a.id: a for a in schema.CLUSTER.attributes}
    assert attributes[schema.NOCS].read_privilege is Privilege.ADMINISTER
    assert attributes[schema.FABRICS].read_privilege is Privilege.VIEW
    assert all(c.privilege is Privilege.ADMINISTER for c in schema.CLUSTER.commands)


def test_metadata_and_reporting(h: Harness) -> None:
    assert h.read(h.pase(), 0xFFF9) == [0x00, 0x02, 0x04, 0x06, 0x07, 0x09, 0x0A, 0x0B]
    assert h.read(h.pase(), 0xFFF8) == [0x01, 0x03, 0x05, 0x08]
    assert h.read(h.pase(), 0xFFFB) == [0, 1, 2, 3, 4, 5, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD]
    assert h.read(h.pase(), 0xFFFD) == 2  # the 1.4.2 revision
    version = h.node.data_version(0, OC)
    h.commission(Commissioner())
    assert h.node.data_version(0, OC) != version  # Fabrics/CommissionedFabrics/TrustedRoots were reported


# --------------------------------------------------------------------------------------- ACL under the fail-safe


ACL_PATH = AttributePath(0, acl_schema.CLUSTER_ID, acl_schema.ACL)
ADMIN_ENTRY = {1: 5, 2: 2, 3: [ADMIN], 4: None}
OPERATE_ENTRY = {1: 3, 2: 2, 3: [0x99], 4: None}


def test_acl_writes_under_the_failsafe_roll_back(h: Harness) -> None:
    h.commission(Commissioner())
    h.arm(h.case(1))
    h.node.write_attribute(h.case(1), ACL_PATH, [ADMIN_ENTRY, OPERATE_ENTRY], ListOperation.REPLACE)
    h.node.write_attribute(h.case(1), ACL_PATH, OPERATE_ENTRY, ListOperation.APPEND)
    assert len(acl_of(h, 1)) == 3
    h.expire()
    assert [e.subjects for e in acl_of(h, 1)] == [[ADMIN]]


def test_acl_writes_committed_by_commissioning_complete(h: Harness) -> None:
    h.commission(Commissioner())
    h.arm(h.case(1))
    h.node.write_attribute(h.case(1), ACL_PATH, [ADMIN_ENTRY, OPERATE_ENTRY], ListOperation.REPLACE)
    assert h.complete(h.case(1)) == 0
    h.arm(h.case(1))
    h.expire()  # a later, empty arming rolls nothing back
    assert [e.subjects for e in acl_of(h, 1)] == [[ADMIN], [0x99]]


def test_acl_writes_of_other_fabrics_are_not_part_of_the_failsafe(h: Harness) -> None:
    h.commission(Commissioner(fabric_id=1))
    h.commission(Commissioner(fabric_id=2))
    h.arm(h.case(1))
    h.node.write_attribute(h.case(2), ACL_PATH, [ADMIN_ENTRY, OPERATE_ENTRY], ListOperation.REPLACE)
    h.expire()
    assert len(acl_of(h, 2)) == 2


def test_acl_on_a_new_fabric_goes_with_it(h: Harness) -> None:
    commissioner = Commissioner()
    h.arm(h.pase())
    h.invoke(h.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, _ = commissioner.chain(h.csr(h.pase()))
    h.add_noc(h.pase(), noc, None, commissioner.ipk)
    h.node.write_attribute(h.case(1), ACL_PATH, [ADMIN_ENTRY, OPERATE_ENTRY], ListOperation.REPLACE)
    h.expire()
    assert acl_of(h, 1) == []


def test_add_noc_over_case_adds_a_second_fabric(h: Harness) -> None:
    h.commission(Commissioner(fabric_id=1))
    second = Commissioner(fabric_id=2)
    h.arm(h.case(1))
    h.invoke(h.case(1), ADD_ROOT, {0: second.rcac})
    noc, _ = second.chain(h.csr(h.case(1)))
    bound_before = h.pase_fabric
    assert h.add_noc(h.case(1), noc, None, second.ipk, subject=0x77) == {0: S.OK, 1: 2}
    assert h.pase_fabric == bound_before  # only a PASE session adopts the new fabric
    assert h.root.failsafe.fabric_index == 2  # the new fabric's admin completes, not fabric 1's
    assert h.complete(h.case(1)) == gc.CommissioningErrorEnum.INVALID_AUTHENTICATION
    assert h.complete(h.case(2, 0x77)) == gc.CommissioningErrorEnum.OK
    assert [f.fabric_index for f in h.table.fabrics()] == [1, 2]


def test_add_noc_side_effect_failure_reverts_all_but_the_root() -> None:
    def broken_ipk_store(index: int, key: bytes) -> None:
        raise RuntimeError("key store full")

    h = Harness()
    h.root = build_root_node(None, monotonic=lambda: h.now, set_ipk=broken_ipk_store)
    h.node, h.table = h.root.node, h.root.fabric_table
    commissioner = Commissioner()
    h.arm(h.pase())
    h.invoke(h.pase(), ADD_ROOT, {0: commissioner.rcac})
    noc, _ = commissioner.chain(h.csr(h.pase()))
    fields = {0: noc, 2: commissioner.ipk, 3: ADMIN, 4: VENDOR}
    assert h.status(h.pase(), ADD_NOC, fields) is Status.FAILURE
    assert h.table.fabrics(include_pending=True) == [] and h.table.pending_key is None
    assert h.table.pending_root == commissioner.rcac  # like the SDK's RevertPendingOpCertsExceptRoot
    assert acl_of(h, 1) == [] and h.pase_fabric == 0 and h.root.failsafe.fabric_index == 0
