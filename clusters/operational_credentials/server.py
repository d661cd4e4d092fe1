"""Operational Credentials server (Core spec 11.18): attestation, CSR, NOC installation and the fabric list.

The fabric table (``jfds_device.fabrics``) owns fabrics and their pending state; this server turns commands
into table operations under the armed fail-safe and reports the table through the cluster's attributes.

Every state change a command makes before CommissioningComplete is provisional (Core spec 11.10.7.2): the
first one registers ``table.revert`` as a fail-safe rollback and ``table.commit`` as its commit. Undoing a
pending AddNOC removes the fabric from the table, whose ``fabric_removed`` event drops the fabric's ACL
entries (this server's listener) and anything else keyed by the index (other listeners: group keys,
sessions, resumption records).

Statuses follow the CHIP SDK where the spec leaves the choice open (SDK operational-credentials-server.cpp):
malformed lengths answer INVALID_COMMAND, the fail-safe rules FAILSAFE_REQUIRED / CONSTRAINT_ERROR, and
certificate problems an NOCResponse status. Where the SDK and matter.js differ, the choice is noted inline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from clusters.access_control.server import AccessControlServer, admin_entry
from clusters.general_commissioning.logic import FailSafe
from clusters.operational_credentials import schema
from clusters.operational_credentials.schema import (
    AddNOC,
    AddTrustedRootCertificate,
    AttestationRequest,
    AttestationResponse,
    CertificateChainRequest,
    CertificateChainResponse,
    CertificateChainTypeEnum,
    CSRRequest,
    CSRResponse,
    FabricDescriptorStruct,
    NOCResponse,
    NOCStruct,
    RemoveFabric,
    UpdateFabricLabel,
    UpdateNOC,
)
from clusters.operational_credentials.schema import NodeOperationalCertStatusEnum as NocStatus
from jfds_device.codec.model import AuthMode
from jfds_device.codec.schema import NULL
from jfds_device.crypto.attestation import (
    ATTESTATION_CHALLENGE_LENGTH,
    AttestationMaterial,
    attestation_elements,
    attestation_tbs,
    nocsr_elements,
    sign_with_dac,
)
from jfds_device.crypto.cert_issuer import build_csr
from jfds_device.datamodel import acl
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.errors import ActionError, CryptoError, DecodeError
from jfds_device.fabrics import FabricError, FabricErrorCode, FabricInfo, FabricTable
from jfds_device.im.provider import RequestContext, Status

__all__ = ["OperationalCredentialsServer"]

log = logging.getLogger(__name__)

_STATUS = {
    FabricErrorCode.INVALID_PUBLIC_KEY: NocStatus.INVALID_PUBLIC_KEY,
    FabricErrorCode.INVALID_NODE_OP_ID: NocStatus.INVALID_NODE_OP_ID,
    FabricErrorCode.INVALID_NOC: NocStatus.INVALID_NOC,
    FabricErrorCode.MISSING_CSR: NocStatus.MISSING_CSR,
    FabricErrorCode.TABLE_FULL: NocStatus.TABLE_FULL,
    FabricErrorCode.FABRIC_CONFLICT: NocStatus.FABRIC_CONFLICT,
    FabricErrorCode.LABEL_CONFLICT: NocStatus.LABEL_CONFLICT,
    FabricErrorCode.INVALID_FABRIC_INDEX: NocStatus.INVALID_FABRIC_INDEX,
}

# FailSafe.flags markers (they reset at each new arming).
_ROOT_ADDED = "opcreds:root"
_ADD_NOC = "add_noc"
_UPDATE_NOC = "update_noc"
_TRACKED = "opcreds:tracked"

MAX_VENDOR_ID = 0xFFF4  # the SDK's IsVendorIdValidOperationally: not 0 (Common), at most TestVendor4


def _error(status: NocStatus, text: str) -> NOCResponse:
    return NOCResponse(status_code=status, debug_text=text[: schema.MAX_DEBUG_TEXT])


def _from_fabric_error(exc: FabricError) -> NOCResponse:
    return _error(_STATUS[exc.code], str(exc))


def _too_long(*certs: bytes | None) -> bool:
    return any(cert is not None and len(cert) > schema.MAX_CERT_LENGTH for cert in certs)


class _FabricEvents:
    """The server's fabric-table listener: ACL cleanup and attribute reporting."""

    def __init__(self, server: OperationalCredentialsServer) -> None:
        self._server = server

    def fabric_removed(self, fabric_index: int) -> None:
        # RemoveFabric, or the rollback of AddNOC: the fabric's ACL entries go with it (11.18.6.12).
        if self._server.access_control is not None:
            self._server.access_control.remove_fabric(fabric_index)

    def fabrics_changed(self) -> None:
        server = self._server
        if server.endpoint is not None:
            # NOCs has the C quality (changes omitted); the others are reported.
            for attribute in (schema.FABRICS, schema.COMMISSIONED_FABRICS, schema.TRUSTED_ROOT_CERTIFICATES):
                server.touch(attribute)


class OperationalCredentialsServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(
        self,
        fabric_table: FabricTable,
        failsafe: FailSafe,
        attestation: AttestationMaterial,
        *,
        access_control: AccessControlServer | None = None,
        set_ipk: Callable[[int, bytes], None] | None = None,
        now: Callable[[], float] | None = None,
        fabric_leaving: Callable[[int], None] | None = None,
    ) -> None:
        """``fabric_leaving(fabric_index)`` runs as RemoveFabric starts (BasicInformation's Leave event, 11.1.6.3).
        ``set_ipk(fabric_index, epoch_key)`` installs AddNOC's IPKValue as GroupKeyManagement key set 0;
        its undo is that cluster's ``fabric_removed`` listener. ``now`` (monotonic seconds) lets commands
        treat a fail-safe whose deadline passed, before the shell's timer fired, as not armed."""
        super().__init__()
        self.fabric_table = fabric_table
        self.failsafe = failsafe
        self.access_control = access_control
        self._attestation = attestation
        self._set_ipk = set_ipk or (lambda _index, _key: None)
        self._now = now
        self._fabric_leaving = fabric_leaving
        self._events = _FabricEvents(self)
        fabric_table.add_listener(self._events)
        self.set(schema.SUPPORTED_FABRICS, fabric_table.max_fabrics)

    # ------------------------------------------------------------------------------------------ attributes

    def _visible(self) -> list[FabricInfo]:
        # The pending fabric is listed too: after AddNOC the commissioner reads it back over PASE/CASE.
        return self.fabric_table.fabrics(include_pending=True)

    def read_no_cs(self, ctx: RequestContext | None) -> list[NOCStruct]:
        return [
            NOCStruct(noc=f.noc, icac=f.icac if f.icac is not None else NULL, fabric_index=f.fabric_index)
            for f in self._visible()
        ]

    def read_fabrics(self, ctx: RequestContext | None) -> list[FabricDescriptorStruct]:
        return [
            FabricDescriptorStruct(
                root_public_key=f.root_public_key,
                vendor_id=f.vendor_id,
                fabric_id=f.fabric_id,
                node_id=f.node_id,
                label=f.label,
                fabric_index=f.fabric_index,
            )
            for f in self._visible()
        ]

    def read_commissioned_fabrics(self, ctx: RequestContext | None) -> int:
        return len(self._visible())

    def read_trusted_root_certificates(self, ctx: RequestContext | None) -> list[bytes]:
        roots = [f.rcac for f in self._visible()]
        table = self.fabric_table
        if table.pending_root is not None and table.pending_fabric is None:
            roots.append(table.pending_root)  # installed, not yet used by a fabric (the SDK lists it too)
        return roots

    def read_current_fabric_index(self, ctx: RequestContext | None) -> int:
        return 0 if ctx is None else ctx.subject.fabric_index

    # ------------------------------------------------------------------------------------------ fail-safe

    def _require_failsafe(self, ctx: RequestContext) -> FailSafe:
        failsafe = self.failsafe
        # A context past its deadline holds nothing, but it is not expired here: this invoke's transaction
        # is about to fail, and its rollback would also undo the expiry's ACL cleanup while the fabric
        # table's revert stayed. The shell's timer expires it in a transaction of its own.
        overdue = self._now is not None and failsafe.deadline is not None and self._now() >= failsafe.deadline
        if overdue or not failsafe.held_by(ctx.subject.fabric_index, ctx.session_id):
            raise ActionError(Status.FAILSAFE_REQUIRED)
        return failsafe

    def _track(self, failsafe: FailSafe) -> None:
        """Register the table's rollback and commit once per arming (11.10.7.2.2 steps 5-8)."""
        if _TRACKED in failsafe.flags:
            return
        failsafe.flags.add(_TRACKED)
        failsafe.add_rollback(self.fabric_table.revert)
        failsafe.add_commit(self.fabric_table.commit)

    @staticmethod
    def _noc_invoked(failsafe: FailSafe) -> bool:
        return bool(failsafe.flags & {_ADD_NOC, _UPDATE_NOC})

    def _sign(self, ctx: RequestContext, elements: bytes) -> bytes:
        challenge = ctx.attestation_challenge
        if len(challenge) != ATTESTATION_CHALLENGE_LENGTH:
            # Only PASE/CASE sessions have one; the SDK fails the same way (an empty challenge).
            raise ActionError(Status.FAILURE, message="the session has no attestation challenge")
        return sign_with_dac(self._attestation.dac_key, attestation_tbs(elements, challenge))

    # ------------------------------------------------------------------------------------------ attestation

    def on_attestation_request(self, ctx: RequestContext, request: AttestationRequest) -> AttestationResponse:
        """11.18.6.1: AttestationElements signed with the DAC key over elements || attestation challenge."""
        if len(request.attestation_nonce) != schema.NONCE_LENGTH:
            raise ActionError(Status.INVALID_COMMAND, message="AttestationNonce must be 32 bytes")
        # Timestamp 0: the node has no trusted time (the SDK sends 0 as well).
        elements = attestation_elements(self._attestation.cd, request.attestation_nonce, timestamp=0)
        return AttestationResponse(attestation_elements=elements, attestation_signature=self._sign(ctx, elements))

    def on_certificate_chain_request(
        self, ctx: RequestContext, request: CertificateChainRequest
    ) -> CertificateChainResponse:
        """11.18.6.3: the DAC or PAI as X.509 DER."""
        match request.certificate_type:
            case CertificateChainTypeEnum.DAC_CERTIFICATE:
                return CertificateChainResponse(certificate=self._attestation.dac_cert)
            case CertificateChainTypeEnum.PAI_CERTIFICATE:
                return CertificateChainResponse(certificate=self._attestation.pai_cert)
        raise ActionError(Status.INVALID_COMMAND, message=f"unknown certificate type {request.certificate_type}")

    def on_csr_request(self, ctx: RequestContext, request: CSRRequest) -> CSRResponse:
        """11.18.6.5: a fresh operational key per request, its CSR signed with the DAC key."""
        if len(request.csr_nonce) != schema.NONCE_LENGTH:
            raise ActionError(Status.INVALID_COMMAND, message="CSRNonce must be 32 bytes")
        subject = ctx.subject
        for_update = bool(request.is_for_update_noc)
        if for_update and (
            subject.auth_mode is not AuthMode.CASE or self.fabric_table.get(subject.fabric_index) is None
        ):
            raise ActionError(Status.INVALID_COMMAND, message="IsForUpdateNOC needs a CASE session on a fabric")
        failsafe = self._require_failsafe(ctx)
        if self._noc_invoked(failsafe):
            raise ActionError(Status.CONSTRAINT_ERROR, message="AddNOC/UpdateNOC already ran in this fail-safe")
        if len(ctx.attestation_challenge) != ATTESTATION_CHALLENGE_LENGTH:
            raise ActionError(Status.FAILURE, message="the session has no attestation challenge")
        keypair = self.fabric_table.allocate_pending_key(for_update=subject.fabric_index if for_update else None)
        self._track(failsafe)
        elements = nocsr_elements(build_csr(keypair.private_key), request.csr_nonce)
        return CSRResponse(nocsr_elements=elements, attestation_signature=self._sign(ctx, elements))

    # ------------------------------------------------------------------------------------------ credentials

    def on_add_trusted_root_certificate(self, ctx: RequestContext, request: AddTrustedRootCertificate) -> None:
        """11.18.6.13: one RCAC per fail-safe, held for AddNOC. A root equal to an existing one is fine.

        Capacity is not checked here (the SDK answers RESOURCE_EXHAUSTED when the table is full, matter.js
        does not): a full table surfaces as AddNOC's TableFull, which tells the commissioner why.
        """
        certificate = request.root_ca_certificate
        if _too_long(certificate):
            raise ActionError(Status.INVALID_COMMAND, message="certificate longer than 400 bytes")
        failsafe = self._require_failsafe(ctx)
        if _ROOT_ADDED in failsafe.flags or self._noc_invoked(failsafe):
            raise ActionError(Status.CONSTRAINT_ERROR, message="a root was added, or AddNOC/UpdateNOC ran")
        try:
            self.fabric_table.set_pending_root(certificate)
        except (CryptoError, DecodeError, ValueError) as exc:
            raise ActionError(Status.INVALID_COMMAND, message=f"invalid RCAC: {exc}") from exc
        failsafe.flags.add(_ROOT_ADDED)
        self._track(failsafe)

    def on_add_noc(self, ctx: RequestContext, request: AddNOC) -> NOCResponse:
        """11.18.6.8: install a new fabric from the pending root and CSR key, plus its admin ACL entry and IPK."""
        if (
            _too_long(request.noc_value, request.icac_value)
            or len(request.ipk_value) != schema.IPK_LENGTH
            or not 0 < request.admin_vendor_id <= MAX_VENDOR_ID
        ):
            raise ActionError(Status.INVALID_COMMAND, message="bad NOC/ICAC/IPK length or AdminVendorId")
        failsafe = self._require_failsafe(ctx)
        if self._noc_invoked(failsafe):
            raise ActionError(Status.CONSTRAINT_ERROR, message="AddNOC/UpdateNOC already ran in this fail-safe")
        table = self.fabric_table
        key = table.pending_key
        if key is None:
            return _error(NocStatus.MISSING_CSR, "no CSRRequest in this fail-safe")
        if key.for_update is not None:
            raise ActionError(Status.CONSTRAINT_ERROR, message="the CSR was requested for UpdateNOC")
        if table.pending_root is None:
            return _error(NocStatus.INVALID_NOC, "no AddTrustedRootCertificate in this fail-safe")
        # Checked before anything changes, so this failure needs no undo (SDK order).
        if not acl.is_valid_subject(AuthMode.CASE, request.case_admin_subject):
            return _error(NocStatus.INVALID_ADMIN_SUBJECT, "CaseAdminSubject is neither a node id nor a CAT")
        try:
            info = table.add_pending_fabric(
                request.noc_value,
                request.icac_value,
                ipk_epoch_key=request.ipk_value,
                vendor_id=request.admin_vendor_id,
            )
        except FabricError as exc:
            return _from_fabric_error(exc)
        self._track(failsafe)
        index = info.fabric_index
        try:
            if self.access_control is not None:
                # Entries a crash left behind under this (reused) index must not grant anything now.
                self.access_control.remove_fabric(index)
                self.access_control.add_entry(index, admin_entry(request.case_admin_subject), by=ctx.subject)
            self._set_ipk(index, request.ipk_value)
            if ctx.subject.auth_mode is AuthMode.PASE and ctx.bind_fabric is not None:
                # The PASE session now acts for the new fabric (11.18.6.8 "augment the secure session").
                ctx.bind_fabric(index)
        except Exception as exc:
            # Like the SDK's needRevert: keep the root, drop the NOC and key; listeners undo ACL and IPK.
            log.exception("AddNOC side effects failed for fabric %d", index)
            table.revert(keep_root=True)
            raise ActionError(Status.FAILURE, message=f"AddNOC failed: {exc}") from exc
        failsafe.associate_fabric(index)
        failsafe.flags.add(_ADD_NOC)
        log.info("AddNOC: fabric %d (fabric id 0x%016X, node id 0x%016X) pending", index, info.fabric_id, info.node_id)
        return NOCResponse(status_code=NocStatus.OK, fabric_index=index)

    def on_update_noc(self, ctx: RequestContext, request: UpdateNOC) -> NOCResponse:
        """11.18.6.9: new NOC/ICAC and key for the accessing fabric, provisional until CommissioningComplete."""
        if _too_long(request.noc_value, request.icac_value):
            raise ActionError(Status.INVALID_COMMAND, message="certificate longer than 400 bytes")
        failsafe = self._require_failsafe(ctx)
        if self._noc_invoked(failsafe):
            raise ActionError(Status.CONSTRAINT_ERROR, message="AddNOC/UpdateNOC already ran in this fail-safe")
        key = self.fabric_table.pending_key
        if key is None:
            return _error(NocStatus.MISSING_CSR, "no CSRRequest in this fail-safe")
        if key.for_update is None:
            raise ActionError(Status.CONSTRAINT_ERROR, message="the CSR was requested for AddNOC")
        index = ctx.subject.fabric_index
        try:
            self.fabric_table.update_pending(index, request.noc_value, request.icac_value)
        except FabricError as exc:
            return _from_fabric_error(exc)
        self._track(failsafe)
        failsafe.flags.add(_UPDATE_NOC)
        return NOCResponse(status_code=NocStatus.OK, fabric_index=index)

    def on_update_fabric_label(self, ctx: RequestContext, request: UpdateFabricLabel) -> NOCResponse:
        """11.18.6.11: label of the accessing fabric; a non-empty label used by another fabric conflicts."""
        if len(request.label.encode("utf-8")) > schema.MAX_LABEL_LENGTH:
            raise ActionError(Status.INVALID_COMMAND, message="label longer than 32 bytes")
        index = ctx.subject.fabric_index
        try:
            self.fabric_table.set_label(index, request.label)
        except FabricError as exc:
            return _from_fabric_error(exc)
        return NOCResponse(status_code=NocStatus.OK, fabric_index=index)

    def on_remove_fabric(self, ctx: RequestContext, request: RemoveFabric) -> NOCResponse:
        """11.18.6.12: forget a fabric and everything scoped to it (through the table's listeners)."""
        index = request.fabric_index
        if not 1 <= index <= 254:
            raise ActionError(Status.INVALID_COMMAND, message="FabricIndex outside 1..254")
        table = self.fabric_table
        if table.get(index, include_pending=True) is None:
            return _error(NocStatus.INVALID_FABRIC_INDEX, f"fabric {index} does not exist")
        failsafe = self.failsafe
        if failsafe.armed and failsafe.fabric_index == index:
            # The fail-safe of a fabric that is going away ends now, before the removal: its rollbacks must
            # not restore anything (ACL entries, a pending UpdateNOC) for a removed fabric.
            failsafe.expire()
        if self._fabric_leaving is not None:
            self._fabric_leaving(index)
        table.remove(index)
        log.info("RemoveFabric: fabric %d removed", index)
        return NOCResponse(status_code=NocStatus.OK, fabric_index=index)
