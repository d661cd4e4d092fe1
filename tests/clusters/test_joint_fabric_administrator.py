"""Joint Fabric Administrator 0x0753 (Core spec 11.25) on endpoint 1, driven through the provider API.

The anchor side of the Joint Commissioning Method is played with ``cert_issuer`` (the joint fabric's root
signs the ICAC for our CSR key); the fail-safe is driven directly, with injected time. Statuses are the ones
the server's docstring lists (CHIP SDK behaviour, TC-JFADMIN-2.2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clusters.general_commissioning.logic import FailSafe
from clusters.joint_fabric_administrator import schema
from clusters.joint_fabric_administrator.logic import IcacCredentials
from clusters.joint_fabric_administrator.schema import ICACResponseStatus as Icac
from clusters.joint_fabric_administrator.schema import StatusCode
from clusters.joint_fabric_administrator.server import JointFabricAdministratorServer
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.crypto.cert_chain import verify_chain
from jfds_device.crypto.cert_issuer import CertificateIssuer, IssuedCertificate, check_csr, issue_certificate
from jfds_device.crypto.certs import DNAttribute, DNTag, KeyUsage, MatterCertificate
from jfds_device.crypto.primitives import P256Keypair
from jfds_device.crypto.spake2p import P256_ORDER, make_verifier
from jfds_device.datamodel import acl
from jfds_device.datamodel.commissioning_window import CommissioningWindow, WindowState
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError, LocalProtocolError
from jfds_device.fabrics import FabricTable
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, CommandPath, RequestContext, Status, SubjectDescriptor
from jfds_device.im.server import InteractionServer
from tests.test_fabrics import Commissioner

JFA = schema.CLUSTER_ID
EP = 1
ROOT = DeviceType(device_type=0x0016, revision=3)
JFA_DEVICE = DeviceType(device_type=0x0130, revision=1)
CSR, ADD_ICAC, OJCW, TRANSFER, TRANSFER_COMPLETE, ANNOUNCE = 0x00, 0x02, 0x04, 0x05, 0x07, 0x08
ANCHOR_ADMIN, OPERATOR = 0x0000_0000_0001_B669, 0x5678
VENDOR, OTHER_VENDOR = 0xFFF1, 0xFFF2
SALT, ITERATIONS = b"0123456789abcdef", 1000
VERIFIER = make_verifier(34567890, SALT, ITERATIONS).to_bytes()
T0 = 1000.0
PASE_SESSION, CASE_SESSION = 7, 40


class Changes:
    def __init__(self) -> None:
        self.paths: list[AttributePath] = []

    def attributes_changed(self, paths: Iterable[AttributePath]) -> None:
        self.paths.extend(p for p in paths if p.cluster == JFA)


class Acl:
    def __init__(self, fabric: int) -> None:
        self.fabric = fabric

    def acl_entries(self) -> list[acl.AclEntry]:
        return [
            acl.AclEntry(self.fabric, Privilege.ADMINISTER, AuthMode.CASE, (ANCHOR_ADMIN,)),
            acl.AclEntry(self.fabric, Privilege.OPERATE, AuthMode.CASE, (OPERATOR,)),
        ]


def case(fabric: int, node: int = ANCHOR_ADMIN, session: int = CASE_SESSION) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, node, fabric), session_id=session)


def pase(fabric: int = 0) -> RequestContext:
    subject = SubjectDescriptor(AuthMode.PASE, 0, fabric, is_commissioning=True)
    return RequestContext(subject, session_id=PASE_SESSION)


def ojcw(timeout: int = 300, verifier: bytes = VERIFIER, discriminator: int = 0x0ABC,
         iterations: int = ITERATIONS, salt: bytes = SALT) -> dict[int, Any]:  # fmt: skip
    return {0: timeout, 1: verifier, 2: discriminator, 3: iterations, 4: salt}


class Harness:
    """Endpoint 0 (root) and endpoint 1 (JFA) over a fabric table with one committed fabric: the node's own
    ecosystem fabric, which it anchors (``own``). ``join`` stages a second, joint fabric under a fail-safe
    as the anchor's AddNOC would."""

    def __init__(
        self, *, vid_verified: Any = None, generate_key: Callable[[], P256Keypair] = P256Keypair.generate
    ) -> None:
        self.now = T0
        self.table = FabricTable(Database(":memory:"))
        self.failsafe = FailSafe()
        self.window = CommissioningWindow(20202021, 3840)
        self.committed: list[IcacCredentials] = []
        self.jfa = JointFabricAdministratorServer(self.table, self.failsafe, self.window, now=lambda: self.now,
                                                  vid_verified=vid_verified, generate_key=generate_key,
                                                  on_icac_committed=self.committed.append)  # fmt: skip
        self.node = Node()
        self.node.add_endpoint(0, [ROOT])
        self.node.add_endpoint(EP, [JFA_DEVICE], [self.jfa])
        self.changes = Changes()
        self.node.subscribe_changes(self.changes)
        self.own = Commissioner(fabric_id=0xE1)
        self.own_index = self._add_fabric(self.own, commit=True)
        self.jfa.set_anchor_fabric(self.own_index)
        self.anchor = Commissioner(fabric_id=0xA1)  # the joint fabric's anchor administrator

    def _add_fabric(self, commissioner: Commissioner, *, commit: bool, vendor: int = VENDOR) -> int:
        self.table.set_pending_root(commissioner.rcac)
        key = self.table.allocate_pending_key()
        noc, icac = commissioner.chain(key.public_key_bytes, node_id=0x1234)
        info = self.table.add_pending_fabric(noc, icac, ipk_epoch_key=commissioner.ipk, vendor_id=vendor)
        if commit:
            self.table.commit()
        return info.fabric_index

    def join(self, seconds: float = 60) -> int:
        """ArmFailSafe over PASE, then AddNOC of the joint fabric (pending until CommissioningComplete)."""
        self.failsafe.arm(seconds, self.now, fabric_index=0, session_id=PASE_SESSION)
        index = self._add_fabric(self.anchor, commit=False, vendor=OTHER_VENDOR)
        self.failsafe.associate_fabric(index)
        self.failsafe.add_rollback(self.table.revert)
        self.failsafe.add_commit(self.table.commit)
        return index

    def arm(self, fabric: int, seconds: float = 60) -> None:
        self.failsafe.arm(seconds, self.now, fabric_index=fabric, session_id=CASE_SESSION)

    def invoke(self, ctx: RequestContext, command: int, fields: dict[int, Any] | None = None) -> Any:
        response = self.node.invoke(ctx, CommandPath(EP, JFA, command), fields or {})
        return None if response is None else response.fields

    def failure(self, ctx: RequestContext, command: int, fields: dict[int, Any] | None = None) -> Any:
        """(IM status, cluster status) of a command expected to fail."""
        with pytest.raises(ActionError) as info:
            self.invoke(ctx, command, fields)
        return info.value.status, info.value.cluster_status

    def csr_key(self, fabric: int) -> bytes:
        """ICACCSRRequest; returns the public key of the (verified) CSR."""
        response = self.invoke(case(fabric), CSR)
        assert set(response) == {0}
        return check_csr(response[0])

    def add_icac(self, fabric: int, icac: bytes) -> Icac:
        response = self.invoke(case(fabric), ADD_ICAC, {0: icac})
        return Icac(response[0])

    def read_anchor(self) -> Any:
        return self.node.read_attribute(case(self.own_index), AttributePath(EP, JFA, 0x0000))

    def expire(self) -> None:
        self.now += 1000
        with self.node.atomic():
            self.failsafe.handle_timer(self.now)


@pytest.fixture
def h() -> Harness:
    return Harness()


def icac_for(issuer: CertificateIssuer, public_key: bytes | ec.EllipticCurvePublicKey, **kwargs: Any) -> bytes:
    return issuer.issue_icac(public_key, 0x5A, **kwargs).tlv


def ca_like(issuer: CertificateIssuer, public_key: bytes, *, is_ca: bool = True,
            key_usage: KeyUsage = KeyUsage.KEY_CERT_SIGN | KeyUsage.CRL_SIGN,
            signing_key: ec.EllipticCurvePrivateKey | None = None) -> bytes:  # fmt: skip
    """An ICAC-shaped certificate with one rule bent; it names ``issuer`` as its issuer either way."""
    return issue_certificate(
        subject=[DNAttribute(DNTag.MATTER_ICAC_ID, 0x5A)],
        public_key=public_key,
        issuer=issuer.certificate.subject,
        signing_key=signing_key or issuer.private_key,
        authority_key_id=issuer.certificate.subject_key_id,
        is_ca=is_ca,
        key_usage=key_usage,
    ).tlv


# ---------------------------------------------------------------------------------------------------- ICAC flow


def test_jcm_icac_flow_commits_with_commissioning_complete(h: Harness) -> None:
    joint = h.join()
    key = h.csr_key(joint)
    assert h.add_icac(joint, icac_for(h.anchor.root, key)) is Icac.OK
    pending = h.jfa.pending_icac
    assert pending is not None and pending.fabric_index == joint and pending.keypair.public_key_bytes == key
    assert h.jfa.icac_credentials is None
    # One AddICAC per fail-safe, and no new CSR after it (CONSTRAINT_ERROR, as the SDK).
    assert h.failure(case(joint), ADD_ICAC, {0: icac_for(h.anchor.root, key)}) == (Status.CONSTRAINT_ERROR, None)
    assert h.failure(case(joint), CSR) == (Status.CONSTRAINT_ERROR, None)
    h.failsafe.commit()
    assert h.jfa.pending_icac is None
    assert h.jfa.icac_credentials == pending and h.committed == [pending]
    assert h.table.get(joint) is not None  # the joint fabric committed too
    # With the ICAC and its key this node issues NOCs on the joint fabric that verify up to the anchor's root.
    icac = MatterCertificate.decode_tlv(pending.icac)
    issuer = CertificateIssuer(pending.keypair.private_key, IssuedCertificate(icac.to_x509_der(), pending.icac, icac))
    noc = issuer.issue_noc(P256Keypair.generate().public_key_bytes, 0x77, h.anchor.fabric_id)
    assert verify_chain(noc.certificate, icac, h.anchor.rcac).node_id == 0x77


def test_icac_on_a_committed_fabric_with_case_failsafe(h: Harness) -> None:
    h.arm(h.own_index)
    key = h.csr_key(h.own_index)
    assert h.add_icac(h.own_index, icac_for(h.own.root, key, fabric_id=h.own.fabric_id)) is Icac.OK


def test_each_csr_request_replaces_the_key(h: Harness) -> None:
    joint = h.join()
    first, second = h.csr_key(joint), h.csr_key(joint)
    assert first != second
    assert h.add_icac(joint, icac_for(h.anchor.root, first)) is Icac.INVALID_PUBLIC_KEY
    assert h.add_icac(joint, icac_for(h.anchor.root, second)) is Icac.OK


def test_generate_key_is_injectable() -> None:
    fixed = P256Keypair.from_private_bytes(bytes(31) + b"\x07")
    h = Harness(generate_key=lambda: fixed)
    joint = h.join()
    assert h.csr_key(joint) == fixed.public_key_bytes


# ---------------------------------------------------------------------------------------------------- statuses


def test_icac_commands_need_a_failsafe(h: Harness) -> None:
    """TC-JFADMIN-2.2 steps 1 and 4: FAILSAFE_REQUIRED without an armed fail-safe and after it expired."""
    assert h.failure(case(h.own_index), CSR) == (Status.FAILSAFE_REQUIRED, None)
    assert h.failure(case(h.own_index), ADD_ICAC, {0: b"\x15\x18"}) == (Status.FAILSAFE_REQUIRED, None)
    h.arm(h.own_index, seconds=10)
    assert h.csr_key(h.own_index)
    h.now += 10  # deadline reached, the shell's timer has not fired yet
    assert h.failure(case(h.own_index), ADD_ICAC, {0: b"\x15\x18"}) == (Status.FAILSAFE_REQUIRED, None)
    h.expire()
    assert h.failure(case(h.own_index), ADD_ICAC, {0: b"\x15\x18"}) == (Status.FAILSAFE_REQUIRED, None)


def test_failsafe_of_another_fabric_is_not_ours(h: Harness) -> None:
    joint = h.join()
    assert h.failure(case(h.own_index), CSR) == (Status.FAILSAFE_REQUIRED, None)
    assert h.csr_key(joint)


@pytest.mark.parametrize("command", [CSR, ADD_ICAC])
def test_icac_commands_need_case(h: Harness, command: int) -> None:
    joint = h.join()
    fields = {0: b"\x15\x18"} if command == ADD_ICAC else {}
    assert h.failure(pase(), command, fields) == (Status.INVALID_COMMAND, None)
    assert h.failure(pase(joint), command, fields) == (Status.INVALID_COMMAND, None)  # PASE bound by AddNOC


def test_csr_needs_an_anchor_fabric_index(h: Harness) -> None:
    h.jfa.set_anchor_fabric(None)
    joint = h.join()
    assert h.failure(case(joint), CSR) == (Status.FAILURE, StatusCode.INVALID_ADMINISTRATOR_FABRIC_INDEX)


def test_csr_needs_vid_verification_when_hooked() -> None:
    verified: set[int] = set()
    h = Harness(vid_verified=verified.__contains__)
    joint = h.join()
    assert h.failure(case(joint), CSR) == (Status.FAILURE, StatusCode.VID_NOT_VERIFIED)
    verified.add(joint)
    assert h.csr_key(joint)


def test_oversized_icac_is_a_constraint_error(h: Harness) -> None:
    joint = h.join()
    assert h.failure(case(joint), ADD_ICAC, {0: bytes(401)}) == (Status.CONSTRAINT_ERROR, None)


# ---------------------------------------------------------------------------------------------------- ICAC checks


def test_add_icac_without_csr_is_invalid_public_key(h: Harness) -> None:
    joint = h.join()
    other = ec.generate_private_key(ec.SECP256R1())
    assert h.add_icac(joint, icac_for(h.anchor.root, other.public_key())) is Icac.INVALID_PUBLIC_KEY


def _invalid_icacs(h: Harness, key: bytes) -> dict[str, bytes]:
    good = MatterCertificate.decode_tlv(icac_for(h.anchor.root, key))
    bad_signature = bytes([good.signature[0] ^ 0x01]) + good.signature[1:]
    same_dn_root = CertificateIssuer.create_root(1)  # same subject DN as the anchor's root, another key
    return {
        "not-a-ca": ca_like(h.anchor.root, key, is_ca=False),
        "no-keycertsign": ca_like(h.anchor.root, key, key_usage=KeyUsage.CRL_SIGN),
        "no-crlsign": ca_like(h.anchor.root, key, key_usage=KeyUsage.KEY_CERT_SIGN),
        "wrong-root": icac_for(same_dn_root, key),
        "other-root-dn": icac_for(CertificateIssuer.create_root(77), key),
        "own-fabric-root": icac_for(h.own.root, key),  # the root is the *accessing* fabric's, not any of ours
        "forged-akid": ca_like(h.anchor.root, key, signing_key=same_dn_root.private_key),
        "tampered-signature": dataclasses.replace(good, signature=bad_signature).encode_tlv(),
        "tampered-subject": dataclasses.replace(good, subject=(DNAttribute(DNTag.MATTER_ICAC_ID, 0x5B),)).encode_tlv(),
        "other-fabric-id": icac_for(h.anchor.root, key, fabric_id=h.anchor.fabric_id + 1),
        "rcac-instead": h.anchor.rcac,
        "not-tlv": b"\x01\x02\x03",
        "empty": b"",
    }


@pytest.mark.parametrize(
    "case_name",
    ["not-a-ca", "no-keycertsign", "no-crlsign", "wrong-root", "other-root-dn", "own-fabric-root", "forged-akid",
     "tampered-signature", "tampered-subject", "other-fabric-id", "rcac-instead", "not-tlv", "empty"],
)  # fmt: skip
def test_invalid_icac(h: Harness, case_name: str) -> None:
    joint = h.join()
    key = h.csr_key(joint)
    assert h.add_icac(joint, _invalid_icacs(h, key)[case_name]) is Icac.INVALID_ICAC
    assert h.jfa.pending_icac is None
    # A refused ICAC does not use up the fail-safe's one AddICAC.
    assert h.add_icac(joint, icac_for(h.anchor.root, key, fabric_id=h.anchor.fabric_id)) is Icac.OK


def test_wrong_key_is_invalid_public_key(h: Harness) -> None:
    joint = h.join()
    h.csr_key(joint)
    other = h.anchor.root.create_intermediate(3)  # a proper ICAC, for someone else's key
    assert h.add_icac(joint, other.issued.tlv) is Icac.INVALID_PUBLIC_KEY


def test_chain_is_checked_before_the_key(h: Harness) -> None:
    """SDK order: an ICAC with a foreign root *and* a foreign key is InvalidICAC."""
    joint = h.join()
    h.csr_key(joint)
    stranger = CertificateIssuer.create_root(9).create_intermediate(3)
    assert h.add_icac(joint, stranger.issued.tlv) is Icac.INVALID_ICAC


# ---------------------------------------------------------------------------------------------------- rollback


def test_failsafe_expiry_discards_the_pending_icac_and_key(h: Harness) -> None:
    joint = h.join()
    key = h.csr_key(joint)
    icac = icac_for(h.anchor.root, key)
    assert h.add_icac(joint, icac) is Icac.OK
    h.expire()
    assert h.jfa.pending_icac is None and h.jfa.icac_credentials is None and h.committed == []
    assert h.table.get(joint, include_pending=True) is None  # the joint fabric went with it
    # A new attempt: the old key is gone, so its ICAC no longer matches; a new CSR works again.
    joint = h.join()
    assert h.add_icac(joint, icac) is Icac.INVALID_PUBLIC_KEY
    new_key = h.csr_key(joint)
    assert new_key != key
    assert h.add_icac(joint, icac_for(h.anchor.root, new_key)) is Icac.OK


def test_failsafe_expiry_after_csr_only_discards_the_key(h: Harness) -> None:
    h.arm(h.own_index)
    key = h.csr_key(h.own_index)
    h.failsafe.expire()  # ArmFailSafe(0)
    h.arm(h.own_index)
    assert h.add_icac(h.own_index, icac_for(h.own.root, key)) is Icac.INVALID_PUBLIC_KEY


def test_a_disarmed_context_leaves_no_usable_key(h: Harness) -> None:
    h.arm(h.own_index)
    key = h.csr_key(h.own_index)
    h.failsafe.disarm()  # ends the context without running callbacks
    assert h.jfa.pending_icac is None
    h.arm(h.own_index)
    assert h.add_icac(h.own_index, icac_for(h.own.root, key)) is Icac.INVALID_PUBLIC_KEY


def test_commit_without_add_icac_keeps_nothing(h: Harness) -> None:
    joint = h.join()
    key = h.csr_key(joint)
    h.failsafe.commit()
    assert h.jfa.icac_credentials is None and h.committed == []
    h.arm(joint)
    assert h.add_icac(joint, icac_for(h.anchor.root, key)) is Icac.INVALID_PUBLIC_KEY


def test_removing_the_fabric_drops_its_icac(h: Harness) -> None:
    joint = h.join()
    key = h.csr_key(joint)
    assert h.add_icac(joint, icac_for(h.anchor.root, key)) is Icac.OK
    h.failsafe.commit()
    assert h.jfa.icac_credentials is not None
    h.table.remove(joint)
    assert h.jfa.icac_credentials is None


# ---------------------------------------------------------------------------------------------------- attribute


def test_administrator_fabric_index() -> None:
    h = Harness()
    assert h.node.attribute_ids(EP, JFA)[0] == 0x0000
    assert h.read_anchor() == h.own_index
    version = h.node.data_version(EP, JFA)
    h.jfa.set_anchor_fabric(None)
    assert h.read_anchor() is None and h.jfa.anchor_fabric_index is None  # TLV null
    assert h.node.data_version(EP, JFA) == (version + 1) & 0xFFFF_FFFF
    assert AttributePath(EP, JFA, 0x0000) in h.changes.paths
    h.changes.paths.clear()
    h.jfa.set_anchor_fabric(None)
    assert h.changes.paths == []  # no change, no report
    h.jfa.set_anchor_fabric(h.own_index)
    assert h.read_anchor() == h.own_index
    with pytest.raises(LocalProtocolError):
        h.jfa.set_anchor_fabric(200)  # not in the fabric table
    h.table.remove(h.own_index)
    assert h.read_anchor() is None


def test_administrator_fabric_index_starts_null() -> None:
    server = JointFabricAdministratorServer(FabricTable(Database(":memory:")), FailSafe(),
                                            CommissioningWindow(20202021, 3840), now=lambda: T0)  # fmt: skip
    assert server.anchor_fabric_index is None and server.read(None, 0x0000) is None  # TLV null


def test_metadata_and_privileges(h: Harness) -> None:
    assert h.node.accepted_command_ids(EP, JFA) == [CSR, ADD_ICAC, OJCW, TRANSFER, TRANSFER_COMPLETE, ANNOUNCE]
    assert h.jfa.generated_command_ids() == [0x01, 0x03, 0x06]
    assert all(c.privilege is Privilege.ADMINISTER and not c.timed for c in schema.CLUSTER.commands)
    assert schema.CLUSTER.attribute_by_id[0].read_privilege is Privilege.ADMINISTER


def _im_invoke(im: InteractionServer, ctx: RequestContext, command: int, fields: dict[int, Any]) -> Any:
    data = m.CommandDataIB(path=m.CommandPathIB(endpoint=EP, cluster=JFA, command=command), fields=fields)
    [out] = im.on_message(
        object(), ctx, Op.INVOKE_REQUEST, m.InvokeRequest(timed_request=False, invoke_requests=[data]).encode(), T0
    )
    [ib] = m.InvokeResponse.decode(out.payload).invoke_responses
    if ib.status is None:
        return ib.command.fields
    return ib.status.status.status, ib.status.status.cluster_status


def test_im_enforces_administer(h: Harness) -> None:
    h.node.set_acl_source(Acl(h.own_index))
    im = InteractionServer(h.node)
    operator = case(h.own_index, node=OPERATOR, session=41)
    for command, fields in ((CSR, {}), (ADD_ICAC, {0: b""}), (OJCW, ojcw()), (TRANSFER, {}),
                            (TRANSFER_COMPLETE, {}), (ANNOUNCE, {0: 1})):  # fmt: skip
        assert _im_invoke(im, operator, command, fields) == (Status.UNSUPPORTED_ACCESS, None)
    admin = case(h.own_index)
    assert _im_invoke(im, admin, TRANSFER, {}) == {0: 2}
    assert _im_invoke(im, admin, CSR, {}) == (Status.FAILSAFE_REQUIRED, None)
    h.jfa.set_anchor_fabric(None)
    h.arm(h.own_index)
    assert _im_invoke(im, admin, CSR, {}) == (Status.FAILURE, StatusCode.INVALID_ADMINISTRATOR_FABRIC_INDEX)


# ---------------------------------------------------------------------------------------------------- window


def test_open_joint_commissioning_window(h: Harness) -> None:
    assert h.invoke(case(h.own_index), OJCW, ojcw(timeout=180, discriminator=0x0ABC)) is None
    window = h.window
    assert window.state is WindowState.ENHANCED and window.discriminator == 0x0ABC
    assert window.deadline == T0 + 180 and window.salt == SALT and window.iterations == ITERATIONS
    assert window.pase_verifier is not None and window.pase_verifier.to_bytes() == VERIFIER
    assert (window.admin_fabric_index, window.admin_vendor_id) == (h.own_index, VENDOR)
    # Busy while it is open; once its deadline passed, a new window may open (timeout 900 is the maximum).
    assert h.failure(case(h.own_index), OJCW, ojcw()) == (Status.BUSY, None)
    h.now += 180
    assert h.invoke(case(h.own_index), OJCW, ojcw(timeout=900)) is None
    assert window.deadline == h.now + 900


def test_open_joint_commissioning_window_is_busy_under_a_failsafe(h: Harness) -> None:
    h.arm(h.own_index, seconds=30)
    assert h.failure(case(h.own_index), OJCW, ojcw()) == (Status.BUSY, None)
    assert not h.window.is_open
    h.now += 30  # overdue: no longer busy
    assert h.invoke(case(h.own_index), OJCW, ojcw()) is None


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (ojcw(timeout=179), Status.INVALID_COMMAND),
        (ojcw(timeout=901), Status.INVALID_COMMAND),
        (ojcw(verifier=P256_ORDER.to_bytes(32, "big") + VERIFIER[32:]), Status.INVALID_COMMAND),  # w0 >= n
        (ojcw(verifier=VERIFIER[:33] + bytes(64)), Status.INVALID_COMMAND),  # L off the curve
        (ojcw(verifier=VERIFIER[:96]), Status.CONSTRAINT_ERROR),
        (ojcw(iterations=999), Status.CONSTRAINT_ERROR),
        (ojcw(iterations=100001), Status.CONSTRAINT_ERROR),
        (ojcw(salt=bytes(15)), Status.CONSTRAINT_ERROR),
        (ojcw(salt=bytes(33)), Status.CONSTRAINT_ERROR),
        (ojcw(discriminator=4096), Status.CONSTRAINT_ERROR),
        ({0: 300, 1: VERIFIER}, Status.INVALID_COMMAND),  # fields missing
    ],
    ids=["timeout-low", "timeout-high", "w0", "L", "verifier-96", "iter-low", "iter-high", "salt-short",
         "salt-long", "discriminator", "missing"],
)  # fmt: skip
def test_open_joint_commissioning_window_field_checks(h: Harness, fields: dict[int, Any], status: Status) -> None:
    assert h.failure(case(h.own_index), OJCW, fields) == (status, None)
    assert not h.window.is_open


def test_open_joint_commissioning_window_needs_a_fabric_and_an_anchor(h: Harness) -> None:
    assert h.failure(pase(), OJCW, ojcw()) == (Status.INVALID_COMMAND, None)
    assert h.failure(case(99), OJCW, ojcw()) == (Status.INVALID_COMMAND, None)
    h.jfa.set_anchor_fabric(None)
    assert h.failure(case(h.own_index), OJCW, ojcw()) == (Status.FAILURE, StatusCode.INVALID_ADMINISTRATOR_FABRIC_INDEX)
    assert not h.window.is_open


# ---------------------------------------------------------------------------------------------------- anchor


def test_transfer_anchor(h: Harness) -> None:
    assert h.invoke(case(h.own_index), TRANSFER) == {0: schema.TransferAnchorResponseStatus.NO_USER_CONSENT}
    assert h.failure(case(h.own_index), TRANSFER_COMPLETE) == (Status.INVALID_IN_STATE, None)
    assert h.jfa.anchor_fabric_index == h.own_index  # nothing changed


def test_commands_about_the_joint_fabric_serve_only_the_anchor_fabric(h: Harness) -> None:
    other = h.join()  # an administrator of another fabric on this node
    refused = (Status.FAILURE, StatusCode.INVALID_ADMINISTRATOR_FABRIC_INDEX)
    assert h.failure(case(other), OJCW, ojcw()) == refused
    assert not h.window.is_open
    assert h.failure(case(other), TRANSFER) == refused
    assert h.failure(case(other), TRANSFER_COMPLETE) == refused
    assert h.jfa.anchor_fabric_index == h.own_index
    # The anchor fabric passes the fabric check (and meets the joining fabric's armed fail-safe).
    assert h.failure(case(h.own_index), OJCW, ojcw()) == (Status.BUSY, None)


def test_announce_joint_fabric_administrator(h: Harness) -> None:
    joint = h.join()
    assert h.invoke(case(joint), ANNOUNCE, {0: 1}) is None
    assert h.invoke(case(h.own_index), ANNOUNCE, {0: 3}) is None
    assert dict(h.jfa.announcements) == {joint: 1, h.own_index: 3}
    assert h.failure(case(joint), ANNOUNCE, {0: 0xFFFF}) == (Status.CONSTRAINT_ERROR, None)
    assert h.failure(case(joint), ANNOUNCE, {0: 0x1_0000}) == (Status.CONSTRAINT_ERROR, None)
    assert h.failure(case(joint), ANNOUNCE, {}) == (Status.INVALID_COMMAND, None)
    h.table.remove(h.own_index)
    assert dict(h.jfa.announcements) == {joint: 1}
    h.expire()  # the commissioning the announcement belonged to failed
    assert dict(h.jfa.announcements) == {}
