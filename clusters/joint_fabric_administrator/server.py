"""Joint Fabric Administrator server, cluster 0x0753 (Core spec 11.25), for endpoint 1.

Scope: the commands a Joint Fabric Administrator answers as the *commissionee* of the Joint Commissioning
Method (JCM): the ICAC key/CSR and the cross-signed ICAC under the anchor's fail-safe, and the joint
commissioning window. The rest of JCM (trust verification of an announced administrator, Fabric Table
Vendor ID Verification, issuing NOCs with the ICAC, anchor transfer) is out of scope for this version; see
each handler. The node wires it: ``set_anchor_fabric`` when this node becomes (or stops being) the anchor.

Every command needs Administer (schema table; the IM engine checks the ACL). Statuses follow the CHIP SDK's
JointFabricAdministratorGlobalInstance (connectedhomeip, 2025/26) where the spec leaves them open, mapped
onto the cluster-status numbering this project pins (home-assistant-chip-clusters 2025.7.0, whose
StatusCodeEnum has only VIDNotVerified=2 and InvalidAdministratorFabricIndex=3):

=============================  ======================================================================
ICACCSRRequest / AddICAC       not CASE → INVALID_COMMAND (SDK; "must be invoked over CASE"); no armed
                               fail-safe held by the accessing fabric → FAILSAFE_REQUIRED (TC-JFADMIN-2.2);
                               an AddICAC already succeeded in this fail-safe → CONSTRAINT_ERROR (the spec's
                               "successfully executed"; the SDK also counts a refused AddICAC)
ICACCSRRequest only            VID not verified → FAILURE + VIDNotVerified (only with a ``vid_verified``
                               hook); AdministratorFabricIndex null → FAILURE + InvalidAdministratorFabricIndex
AddICAC certificate checks     ICACResponse InvalidICAC / InvalidPublicKey (see ``logic``)
OpenJointCommissioningWindow   no accessing fabric → INVALID_COMMAND; AdministratorFabricIndex null or not
                               the accessing fabric → InvalidAdministratorFabricIndex; fail-safe armed or
                               window open → BUSY (IM status: the pinned enum has no Busy);
                               CommissioningTimeout outside 180..900 → INVALID_COMMAND (as
                               AdministratorCommissioning); verifier that does not parse
                               → INVALID_COMMAND (PAKEParameterError is not in the pinned enum). Iterations,
                               salt length, verifier length and discriminator are schema constraints, so
                               the decoder answers CONSTRAINT_ERROR before the handler runs.
TransferAnchorRequest          not the joint fabric → InvalidAdministratorFabricIndex; else
                               TransferAnchorResponse(NoUserConsent), always
TransferAnchorComplete         not the joint fabric → InvalidAdministratorFabricIndex; else INVALID_IN_STATE
AnnounceJointFabricAdministr.  EndpointID 0xFFFF → CONSTRAINT_ERROR; else recorded, SUCCESS
=============================  ======================================================================

Which fabric each command serves (the cluster is readable by any fabric's Administer: AdministratorFabricIndex
is a local index and no secret): ICACCSRRequest and AddICAC serve the fabric that holds the fail-safe (they are
about that fabric's ICAC), AnnounceJointFabricAdministrator the accessing fabric (recorded per fabric);
OpenJointCommissioningWindow and TransferAnchor* act on the joint fabric and serve only the anchor fabric. The
Joint Fabric Datastore itself serves only the anchor fabric (``JointFabricDatastoreServer.serves``).

Every check runs before any state changes (the node rolls back only attribute changes of a failed invoke).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType

from clusters.administrator_commissioning.schema import MAX_COMMISSIONING_TIMEOUT_S, MIN_COMMISSIONING_TIMEOUT_S
from clusters.general_commissioning.logic import FailSafe
from clusters.joint_fabric_administrator import schema
from clusters.joint_fabric_administrator.logic import (
    IcacCredentials,
    IcacRequest,
    check_icac,
    new_icac_request,
)
from clusters.joint_fabric_administrator.schema import (
    AddICAC,
    AnnounceJointFabricAdministrator,
    ICACCSRRequest,
    ICACCSRResponse,
    ICACResponse,
    ICACResponseStatus,
    OpenJointCommissioningWindow,
    StatusCode,
    TransferAnchorComplete,
    TransferAnchorRequest,
    TransferAnchorResponse,
    TransferAnchorResponseStatus,
)
from jfds_device.codec.model import AuthMode
from jfds_device.codec.schema import NULL
from jfds_device.crypto.primitives import P256Keypair
from jfds_device.crypto.spake2p import PaseVerifier
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.errors import ActionError, LocalProtocolError, MatterError
from jfds_device.fabrics import FabricTable
from jfds_device.im.provider import RequestContext, Status

__all__ = ["ADMINISTRATOR_FABRIC_INDEX", "INVALID_ENDPOINT", "JointFabricAdministratorServer"]

log = logging.getLogger(__name__)

ADMINISTRATOR_FABRIC_INDEX = 0x0000
INVALID_ENDPOINT = 0xFFFF  # the SDK's kInvalidEndpointId: never a valid endpoint number

# FailSafe.flags markers; FailSafe resets its flags at each new arming.
_TRACKED = "jfa:tracked"  # rollback/commit registered for this arming
_ICAC_ADDED = "jfa:add_icac"  # AddICAC succeeded in this arming


def _cluster_failure(code: StatusCode, message: str) -> ActionError:
    # A cluster-specific status travels as FAILURE plus ClusterStatus (Core spec 8.10.1).
    return ActionError(Status.FAILURE, cluster_status=int(code), message=message)


class JointFabricAdministratorServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(
        self,
        fabric_table: FabricTable,
        failsafe: FailSafe,
        window: CommissioningWindow,
        *,
        now: Callable[[], float],
        vid_verified: Callable[[int], bool] | None = None,
        generate_key: Callable[[], P256Keypair] = P256Keypair.generate,
        on_icac_committed: Callable[[IcacCredentials], None] | None = None,
    ) -> None:
        """``now`` is the monotonic clock (seconds) of the fail-safe and window deadlines.

        ``vid_verified(fabric_index)`` says whether Fabric Table Vendor ID Verification (11.25.7.1) ran
        against that fabric's administrator; None skips the check (this node does not implement it yet).
        ``generate_key`` makes the ICAC key (tests inject fixed keys). ``on_icac_committed`` receives the
        ICAC and its key once CommissioningComplete commits the fail-safe that added it.
        The server registers itself as a ``fabric_table`` listener (``fabric_removed``).
        """
        super().__init__()
        self.fabric_table = fabric_table
        self.failsafe = failsafe
        self.window = window
        self._now = now
        self._vid_verified = vid_verified
        self._generate_key = generate_key
        self._on_icac_committed = on_icac_committed
        self._request: IcacRequest | None = None  # ICACCSRRequest key, pending until AddICAC/fail-safe end
        self._pending_icac: IcacCredentials | None = None  # AddICAC result, pending until CommissioningComplete
        self._icac: IcacCredentials | None = None
        self._announcements: dict[int, int] = {}
        self.set(ADMINISTRATOR_FABRIC_INDEX, NULL)  # null until this node anchors a fabric (11.25.5.1)
        fabric_table.add_listener(self)
        failsafe.add_expiry_listener(self._failsafe_expired)

    # ------------------------------------------------------------------------------------------ node API

    @property
    def anchor_fabric_index(self) -> int | None:
        value = self.get(ADMINISTRATOR_FABRIC_INDEX)
        return None if value is NULL else int(value)

    def set_anchor_fabric(self, fabric_index: int | None) -> None:
        """Set AdministratorFabricIndex (11.25.5.1): the fabric this node is the Anchor Administrator of, or
        None. The fabric must be in the fabric table (committed or pending)."""
        if fabric_index is not None and self.fabric_table.get(fabric_index, include_pending=True) is None:
            raise LocalProtocolError(f"fabric {fabric_index} is not in the fabric table")
        self.set(ADMINISTRATOR_FABRIC_INDEX, NULL if fabric_index is None else fabric_index)

    @property
    def pending_icac(self) -> IcacCredentials | None:
        """The ICAC AddICAC accepted in the armed fail-safe (rolled back if it expires)."""
        return self._pending_icac if self._in_current_arming() else None

    @property
    def icac_credentials(self) -> IcacCredentials | None:
        """The committed ICAC and key (memory only: not persisted in this version)."""
        return self._icac

    @property
    def announcements(self) -> Mapping[int, int]:
        """AnnounceJointFabricAdministrator: accessing fabric index → announced JFA endpoint."""
        return MappingProxyType(self._announcements)

    def fabric_removed(self, fabric_index: int) -> None:
        """FabricTable listener: RemoveFabric, or rollback of a pending AddNOC."""
        if self.anchor_fabric_index == fabric_index:
            self.set(ADMINISTRATOR_FABRIC_INDEX, NULL)
        self._announcements.pop(fabric_index, None)
        if self._request is not None and self._request.fabric_index == fabric_index:
            self._request = self._pending_icac = None
        if self._icac is not None and self._icac.fabric_index == fabric_index:
            self._icac = None

    # ------------------------------------------------------------------------------------------ fail-safe

    def _require_case(self, ctx: RequestContext) -> int:
        subject = ctx.subject
        if subject.auth_mode is not AuthMode.CASE or subject.fabric_index == 0:
            raise ActionError(Status.INVALID_COMMAND, message="must be invoked over CASE")
        return subject.fabric_index

    def _require_failsafe(self, ctx: RequestContext) -> FailSafe:
        failsafe = self.failsafe
        # A context past its deadline holds nothing; the shell's timer expires it in its own transaction.
        deadline = failsafe.deadline
        overdue = deadline is not None and self._now() >= deadline
        if overdue or not failsafe.held_by(ctx.subject.fabric_index, ctx.session_id):
            raise ActionError(Status.FAILSAFE_REQUIRED, message="no armed fail-safe for the accessing fabric")
        return failsafe

    def _in_current_arming(self) -> bool:
        # State from a context that ended without a callback (FailSafe.disarm) is stale: flags reset per arming.
        return self.failsafe.armed and _TRACKED in self.failsafe.flags

    def _track(self, failsafe: FailSafe) -> None:
        """Register the rollback and the commit once per arming (11.10.7.2.2)."""
        if _TRACKED in failsafe.flags:
            return
        self._request = self._pending_icac = None
        failsafe.flags.add(_TRACKED)
        failsafe.add_rollback(self._discard_pending)
        failsafe.add_commit(self._commit_pending)

    def _discard_pending(self) -> None:
        self._request = self._pending_icac = None

    def _commit_pending(self) -> None:
        icac, self._pending_icac, self._request = self._pending_icac, None, None
        if icac is None:
            return
        self._icac = icac
        log.info("joint fabric ICAC committed for fabric %d", icac.fabric_index)
        if self._on_icac_committed is not None:
            self._on_icac_committed(icac)

    def _failsafe_expired(self) -> None:
        # As the SDK's OnFailSafeTimerExpired: an announcement belongs to the commissioning that failed.
        self._announcements.clear()

    # ------------------------------------------------------------------------------------------ ICAC

    def on_icaccsr_request(self, ctx: RequestContext, request: ICACCSRRequest) -> ICACCSRResponse:
        """11.25.7.1: a fresh P-256 key for an ICAC, kept until AddICAC or the end of the fail-safe; each
        request replaces the previous key. The response carries the PKCS#10 CSR (DER) for it."""
        fabric_index = self._require_case(ctx)
        failsafe = self._require_failsafe(ctx)
        if _ICAC_ADDED in failsafe.flags:
            raise ActionError(Status.CONSTRAINT_ERROR, message="AddICAC already succeeded in this fail-safe")
        if self._vid_verified is not None and not self._vid_verified(fabric_index):
            raise _cluster_failure(StatusCode.VID_NOT_VERIFIED, "Vendor ID Verification has not been executed")
        if self.anchor_fabric_index is None:
            raise _cluster_failure(StatusCode.INVALID_ADMINISTRATOR_FABRIC_INDEX, "AdministratorFabricIndex is null")
        request_state = new_icac_request(fabric_index, generate=self._generate_key)
        self._track(failsafe)
        self._request = request_state
        return ICACCSRResponse(icaccsr=request_state.csr)

    def on_add_icac(self, ctx: RequestContext, request: AddICAC) -> ICACResponse:
        """11.25.7.3: validate the ICAC the joint fabric's root signed for our CSR key (``logic.check_icac``)
        and hold it, with the key, until CommissioningComplete commits or the fail-safe rolls it back."""
        fabric_index = self._require_case(ctx)
        failsafe = self._require_failsafe(ctx)
        if _ICAC_ADDED in failsafe.flags:
            raise ActionError(Status.CONSTRAINT_ERROR, message="AddICAC already succeeded in this fail-safe")
        icac = bytes(request.icac_value)
        info = self.fabric_table.get(fabric_index, include_pending=True)  # the joint fabric may still be pending
        pending = self._request if self._in_current_arming() else None
        if pending is not None and pending.fabric_index != fabric_index:
            pending = None
        if info is None:
            status, reason = ICACResponseStatus.INVALID_ICAC, "the accessing fabric has no root"
        else:
            status, reason = check_icac(
                icac,
                rcac=info.rcac,
                fabric_id=info.fabric_id,
                node_id=info.node_id,
                keypair=None if pending is None else pending.keypair,
            )
        if status is not ICACResponseStatus.OK or pending is None:
            log.warning("AddICAC from fabric %d refused (%s): %s", fabric_index, status.name, reason)
            return ICACResponse(status_code=status)
        self._pending_icac = IcacCredentials(fabric_index, pending.keypair, icac)
        failsafe.flags.add(_ICAC_ADDED)
        return ICACResponse(status_code=ICACResponseStatus.OK)

    # ------------------------------------------------------------------------------------------ window

    def on_open_joint_commissioning_window(self, ctx: RequestContext, request: OpenJointCommissioningWindow) -> None:
        """11.25.7.5: an Enhanced Commissioning Method window with the caller's verifier, for JCM.

        The window is the node's one CommissioningWindow, opened in its enhanced mode, so DNS-SD
        advertises CM=2. Newer SDKs advertise a joint commissioning window as CM=3; the window has no
        such mode yet.
        """
        now = self._now()
        fabric_index = ctx.subject.fabric_index
        info = self.fabric_table.get(fabric_index, include_pending=True) if fabric_index != 0 else None
        if info is None:
            raise ActionError(Status.INVALID_COMMAND, message="the accessing fabric is unknown")
        self._require_anchor_fabric(ctx)
        self._check_not_busy(now)
        timeout = request.commissioning_timeout
        if not MIN_COMMISSIONING_TIMEOUT_S <= timeout <= MAX_COMMISSIONING_TIMEOUT_S:
            raise ActionError(Status.INVALID_COMMAND, message=f"commissioning timeout {timeout} s")
        verifier = self._verifier(request.pake_passcode_verifier)
        self.window.handle_timer(now)  # a window past its deadline is closed before the new one opens
        self.window.open_enhanced(
            now,
            timeout,
            verifier,
            request.salt,
            request.iterations,
            request.discriminator,
            admin_fabric_index=fabric_index,
            admin_vendor_id=info.vendor_id,
        )

    def _require_anchor_fabric(self, ctx: RequestContext) -> None:
        """Commands about the Joint Fabric itself serve only the fabric this node anchors (11.25.5.1: the
        AdministratorFabricIndex is the joint fabric); another fabric's admin must not open a window into it or
        move its anchor."""
        if self.anchor_fabric_index is None:
            raise _cluster_failure(StatusCode.INVALID_ADMINISTRATOR_FABRIC_INDEX, "AdministratorFabricIndex is null")
        if ctx.subject.fabric_index != self.anchor_fabric_index:
            raise _cluster_failure(
                StatusCode.INVALID_ADMINISTRATOR_FABRIC_INDEX,
                f"fabric {ctx.subject.fabric_index} is not the joint fabric {self.anchor_fabric_index}",
            )

    def _check_not_busy(self, now: float) -> None:
        # As AdministratorCommissioning (11.19.8.1): a running fail-safe means a commissioning is under way.
        failsafe_deadline = self.failsafe.deadline
        if self.failsafe.armed and (failsafe_deadline is None or now < failsafe_deadline):
            raise ActionError(Status.BUSY, message="the fail-safe is armed")
        deadline = self.window.get_timer()
        if self.window.is_open and (deadline is None or now < deadline):
            raise ActionError(Status.BUSY, message="a commissioning window is already open")

    @staticmethod
    def _verifier(data: bytes) -> PaseVerifier:
        """w0 || L (Core spec 3.10); w0 >= n or L off the curve → INVALID_COMMAND (length: schema)."""
        try:
            return PaseVerifier.from_bytes(data)
        except MatterError as exc:
            raise ActionError(Status.INVALID_COMMAND, message=f"invalid PAKE verifier: {exc}") from exc

    # ------------------------------------------------------------------------------------------ anchor

    def on_transfer_anchor_request(self, ctx: RequestContext, request: TransferAnchorRequest) -> TransferAnchorResponse:
        """11.25.7.6: always TransferAnchorStatusNoUserConsent.

        Giving up the anchor role needs the user's consent (and a datastore hand-over this version does not
        implement). This node is headless and has no way to ask for or record that consent, so consent is
        never given. DatastoreBusy would claim a transient condition and invite retries that cannot succeed.
        """
        self._require_anchor_fabric(ctx)
        log.info("TransferAnchorRequest from fabric %d refused: no user consent", ctx.subject.fabric_index)
        return TransferAnchorResponse(status_code=TransferAnchorResponseStatus.NO_USER_CONSENT)

    def on_transfer_anchor_complete(self, ctx: RequestContext, request: TransferAnchorComplete) -> None:
        """11.25.7.8: no transfer can be in progress (TransferAnchorRequest never says OK)."""
        self._require_anchor_fabric(ctx)
        raise ActionError(Status.INVALID_IN_STATE, message="no anchor transfer is in progress")

    def on_announce_joint_fabric_administrator(
        self, ctx: RequestContext, request: AnnounceJointFabricAdministrator
    ) -> None:
        """11.25.7.9: record which endpoint of the accessing administrator holds its JFA cluster.

        The spec then has this node verify trust in that administrator (read its JFA cluster, Fabric Table
        Vendor ID Verification). That remote verification, like the rest of the joint commissioning flow,
        is out of scope: the announcement is recorded (until the fail-safe expires or the fabric goes)
        and answered SUCCESS, as the newest SDK does once its verification passes.
        """
        if request.endpoint_id == INVALID_ENDPOINT:
            raise ActionError(Status.CONSTRAINT_ERROR, message="EndpointID 0xFFFF is not an endpoint")
        self._announcements[ctx.subject.fabric_index] = request.endpoint_id
