"""Administrator Commissioning server (Core spec 11.19): opens and revokes commissioning windows.

The window itself is ``jfds_device.datamodel.commissioning_window.CommissioningWindow``, shared with the PASE
responder and DNS-SD; this server only validates commands and mirrors the window's state as attributes.

Check order follows the CHIP SDK's AdministratorCommissioningLogic, so controllers' certification tests see
the same status for a request with several faults: no accessing fabric -> PAKEParameterError; fail-safe armed
or window open -> Busy; Iterations/Salt out of range -> PAKEParameterError; CommissioningTimeout or
Discriminator out of range -> INVALID_COMMAND; verifier that does not parse -> PAKEParameterError.

Every check runs before any state changes: the node rolls back a failed invoke's attribute changes (their
DataVersion bumps) but not the window's or the fail-safe's own state, so a handler must not mutate and then
fail. That is also why expired-but-unhandled deadlines are judged from ``now`` rather than by running
``handle_timer`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clusters.administrator_commissioning import schema
from clusters.administrator_commissioning.schema import (
    MAX_COMMISSIONING_TIMEOUT_S,
    MAX_DISCRIMINATOR,
    MIN_COMMISSIONING_TIMEOUT_S,
    PAKE_PASSCODE_VERIFIER_LENGTH,
    OpenBasicCommissioningWindow,
    OpenCommissioningWindow,
    RevokeCommissioning,
    StatusCode,
)
from clusters.general_commissioning.logic import FailSafe
from jfds_device.codec.schema import NULL
from jfds_device.crypto.spake2p import PaseVerifier
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datamodel.commissioning_window import CloseReason, CommissioningWindow
from jfds_device.errors import ActionError, MatterError
from jfds_device.im.provider import RequestContext, Status
from jfds_device.securechannel import pase_messages as pm

__all__ = ["AdministratorCommissioningServer"]


def _cluster_failure(code: StatusCode, message: str) -> ActionError:
    # A cluster-specific status travels as FAILURE plus ClusterStatus (Core spec 8.10.1).
    return ActionError(Status.FAILURE, cluster_status=int(code), message=message)


class AdministratorCommissioningServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(
        self,
        window: CommissioningWindow,
        failsafe: FailSafe,
        *,
        now: Callable[[], float],
        fabric_vendor_id: Callable[[int], int | None],
    ) -> None:
        """``now`` is the monotonic clock in seconds the window's deadlines use. ``fabric_vendor_id`` gives the
        VendorID of a commissioned fabric (AdminVendorId, 11.19.7.3), or None if no such fabric exists."""
        super().__init__()
        self.window = window
        self.failsafe = failsafe
        self._now = now
        self._fabric_vendor_id = fabric_vendor_id
        self._snapshot = self._attributes()
        window.add_listener(self._window_changed)

    # ------------------------------------------------------------------------------------------ attributes

    def read_window_status(self, ctx: RequestContext | None) -> Any:
        return self.window.window_status

    def read_admin_fabric_index(self, ctx: RequestContext | None) -> Any:
        value = self.window.admin_fabric_index
        return NULL if value is None else value

    def read_admin_vendor_id(self, ctx: RequestContext | None) -> Any:
        value = self.window.admin_vendor_id
        return NULL if value is None else value

    def _attributes(self) -> dict[int, Any]:
        window = self.window
        return {
            schema.WINDOW_STATUS: window.window_status,
            schema.ADMIN_FABRIC_INDEX: window.admin_fabric_index,
            schema.ADMIN_VENDOR_ID: window.admin_vendor_id,
        }

    def _window_changed(self, window: CommissioningWindow) -> None:
        # Bump the DataVersion and report only the attributes whose value moved (Core spec 7.10.3).
        current = self._attributes()
        for attribute, value in current.items():
            if self._snapshot[attribute] != value:
                self.touch(attribute)
        self._snapshot = current

    # ------------------------------------------------------------------------------------------ commands

    def on_open_commissioning_window(self, ctx: RequestContext, request: OpenCommissioningWindow) -> None:
        """11.19.8.1: an Enhanced Commissioning Method window with the Administrator's one-time verifier."""
        now = self._now()
        fabric_index, vendor_id = self._admin(ctx)
        self._check_not_busy(now)
        if not pm.PBKDF_ITERATIONS_MIN <= request.iterations <= pm.PBKDF_ITERATIONS_MAX:
            raise _cluster_failure(StatusCode.PAKE_PARAMETER_ERROR, f"iterations {request.iterations}")
        if not pm.PBKDF_SALT_MIN_LENGTH <= len(request.salt) <= pm.PBKDF_SALT_MAX_LENGTH:
            raise _cluster_failure(StatusCode.PAKE_PARAMETER_ERROR, f"salt of {len(request.salt)} bytes")
        self._check_timeout(request.commissioning_timeout)
        if request.discriminator > MAX_DISCRIMINATOR:
            raise ActionError(Status.INVALID_COMMAND, message=f"discriminator {request.discriminator}")
        verifier = self._verifier(request.pake_passcode_verifier)
        self.window.handle_timer(now)  # a window past its deadline is closed before the new one opens
        self.window.open_enhanced(
            now,
            request.commissioning_timeout,
            verifier,
            request.salt,
            request.iterations,
            request.discriminator,
            admin_fabric_index=fabric_index,
            admin_vendor_id=vendor_id,
        )

    def on_open_basic_commissioning_window(self, ctx: RequestContext, request: OpenBasicCommissioningWindow) -> None:
        """11.19.8.2 (Basic feature): a window that accepts the device's own passcode."""
        now = self._now()
        fabric_index, vendor_id = self._admin(ctx)
        self._check_not_busy(now)
        self._check_timeout(request.commissioning_timeout)
        self.window.handle_timer(now)
        self.window.open_basic(
            now, request.commissioning_timeout, admin_fabric_index=fabric_index, admin_vendor_id=vendor_id
        )

    def on_revoke_commissioning(self, ctx: RequestContext, request: RevokeCommissioning) -> None:
        """11.19.8.3: close the window (forgetting an enhanced verifier) and expire a running fail-safe.

        The spec expires the fail-safe only "if the commissioning window was open and the fail-safe was
        armed"; the CHIP SDK expires it whatever the window state. We follow the spec: the WindowNotOpen
        failure must leave no side effect behind, because the node rolls back a failed invoke's attribute
        changes but could not roll back the fail-safe's own (NOC, trusted root, fabric table).
        """
        now = self._now()
        if not self._window_open(now):
            raise _cluster_failure(StatusCode.WINDOW_NOT_OPEN, "no commissioning window is open")
        if self.failsafe.armed:
            self.failsafe.expire()  # rollback as on expiry (11.10.7.2.2)
        self.window.close(CloseReason.REVOKED)

    # ------------------------------------------------------------------------------------------ checks

    def _admin(self, ctx: RequestContext) -> tuple[int, int]:
        """The opener's fabric and VendorID. Without an accessing fabric (PASE before AddNOC) there is no
        Administrator to record; the SDK answers PAKEParameterError, and so do we."""
        fabric_index = ctx.subject.fabric_index
        vendor_id = self._fabric_vendor_id(fabric_index) if fabric_index != 0 else None
        if vendor_id is None:
            raise _cluster_failure(StatusCode.PAKE_PARAMETER_ERROR, "the accessing fabric is unknown")
        return fabric_index, vendor_id

    def _window_open(self, now: float) -> bool:
        deadline = self.window.get_timer()
        return self.window.is_open and (deadline is None or now < deadline)

    def _check_not_busy(self, now: float) -> None:
        # A running fail-safe means another commissioning is likely under way (11.19.8.1, 11.19.8.2).
        deadline = self.failsafe.deadline
        if self.failsafe.armed and (deadline is None or now < deadline):
            raise _cluster_failure(StatusCode.BUSY, "the fail-safe is armed")
        if self._window_open(now):
            raise _cluster_failure(StatusCode.BUSY, "a commissioning window is already open")

    @staticmethod
    def _check_timeout(timeout_s: int) -> None:
        # 11.19.8.1: a CommissioningTimeout outside MinCommissioningTimeout..MaxCommissioningTimeout is
        # INVALID_COMMAND (not CONSTRAINT_ERROR).
        if not MIN_COMMISSIONING_TIMEOUT_S <= timeout_s <= MAX_COMMISSIONING_TIMEOUT_S:
            raise ActionError(Status.INVALID_COMMAND, message=f"commissioning timeout {timeout_s} s")

    @staticmethod
    def _verifier(data: bytes) -> PaseVerifier:
        """Parse w0 || L (Core spec 3.10); wrong length, w0 >= n or L off the curve -> PAKEParameterError."""
        if len(data) != PAKE_PASSCODE_VERIFIER_LENGTH:
            raise _cluster_failure(StatusCode.PAKE_PARAMETER_ERROR, f"verifier of {len(data)} bytes")
        try:
            return PaseVerifier.from_bytes(data)
        except MatterError as exc:
            raise _cluster_failure(StatusCode.PAKE_PARAMETER_ERROR, f"invalid verifier: {exc}") from exc
