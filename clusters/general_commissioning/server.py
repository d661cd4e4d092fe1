"""General Commissioning server: Breadcrumb, regulatory config and the fail-safe commands (Core spec 11.10)."""

from __future__ import annotations

from collections.abc import Callable

from clusters.general_commissioning import schema
from clusters.general_commissioning.logic import FailSafe
from clusters.general_commissioning.schema import (
    ArmFailSafe,
    ArmFailSafeResponse,
    BasicCommissioningInfo,
    CommissioningComplete,
    CommissioningCompleteResponse,
    CommissioningErrorEnum,
    RegulatoryLocationTypeEnum,
    SetRegulatoryConfig,
    SetRegulatoryConfigResponse,
)
from jfds_device.codec.model import AuthMode
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.im.provider import RequestContext

Error = CommissioningErrorEnum


class GeneralCommissioningServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(
        self,
        failsafe: FailSafe,
        *,
        now: Callable[[], float],
        location_capability: RegulatoryLocationTypeEnum = RegulatoryLocationTypeEnum.INDOOR_OUTDOOR,
        commissioning_window_open: Callable[[], bool] = lambda: False,
    ) -> None:
        """``now`` is a monotonic clock in seconds; ``commissioning_window_open`` comes from
        AdministratorCommissioning (next issue) and makes ArmFailSafe over CASE answer BusyWithOtherAdmin."""
        super().__init__()
        self.failsafe = failsafe
        self._now = now
        self._window_open = commissioning_window_open
        self.country_code = "XX"
        self.set(
            schema.BASIC_COMMISSIONING_INFO,
            BasicCommissioningInfo(
                fail_safe_expiry_length_seconds=schema.FAIL_SAFE_EXPIRY_LENGTH_S,
                max_cumulative_failsafe_seconds=int(failsafe.max_cumulative_s),
            ),
        )
        self.set(schema.REGULATORY_CONFIG, location_capability)
        self.set(schema.LOCATION_CAPABILITY, location_capability)
        # Ethernet: commissioning and operational traffic share the one network (11.10.5.5).
        self.set(schema.SUPPORTS_CONCURRENT_CONNECTION, True)
        # Breadcrumb resets to 0 whenever the fail-safe expires (11.10.5.1).
        failsafe.add_expiry_listener(lambda: self.set(schema.BREADCRUMB, 0))

    def on_arm_fail_safe(self, ctx: RequestContext, request: ArmFailSafe) -> ArmFailSafeResponse:
        failsafe, subject = self.failsafe, ctx.subject
        now = self._now()
        failsafe.handle_timer(now)
        if failsafe.armed and not failsafe.held_by(subject.fabric_index, ctx.session_id):
            return ArmFailSafeResponse(error_code=Error.BUSY_WITH_OTHER_ADMIN, debug_text="armed by another admin")
        if not failsafe.armed and self._window_open() and subject.auth_mode is not AuthMode.PASE:
            # An open commissioning window reserves the fail-safe for its PASE session (11.10.7.2).
            return ArmFailSafeResponse(error_code=Error.BUSY_WITH_OTHER_ADMIN, debug_text="commissioning window open")
        if request.expiry_length_seconds == 0:
            # Disarm with rollback; expiry resets Breadcrumb, so the request's breadcrumb is not stored.
            failsafe.expire()
            return ArmFailSafeResponse(error_code=Error.OK)
        failsafe.arm(request.expiry_length_seconds, now, fabric_index=subject.fabric_index, session_id=ctx.session_id)
        self.set(schema.BREADCRUMB, request.breadcrumb)
        return ArmFailSafeResponse(error_code=Error.OK)

    def on_set_regulatory_config(
        self, ctx: RequestContext, request: SetRegulatoryConfig
    ) -> SetRegulatoryConfigResponse:
        capability = self.get(schema.LOCATION_CAPABILITY)
        try:
            location = RegulatoryLocationTypeEnum(request.new_regulatory_config)
        except ValueError:
            location = None
        # An Indoor-only or Outdoor-only device accepts only its own location (11.10.7.4).
        if location is None or (capability != RegulatoryLocationTypeEnum.INDOOR_OUTDOOR and location != capability):
            return SetRegulatoryConfigResponse(error_code=Error.VALUE_OUTSIDE_RANGE, debug_text=request.country_code)
        self.set(schema.REGULATORY_CONFIG, location)
        self.country_code = request.country_code
        self.set(schema.BREADCRUMB, request.breadcrumb)
        return SetRegulatoryConfigResponse(error_code=Error.OK)

    def on_commissioning_complete(
        self, ctx: RequestContext, request: CommissioningComplete
    ) -> CommissioningCompleteResponse:
        failsafe = self.failsafe
        failsafe.handle_timer(self._now())
        if not failsafe.armed:
            return CommissioningCompleteResponse(error_code=Error.NO_FAIL_SAFE)
        # Only a CASE session on the fabric being commissioned may complete it (11.10.7.6).
        if ctx.subject.auth_mode is not AuthMode.CASE or ctx.subject.fabric_index != failsafe.fabric_index:
            return CommissioningCompleteResponse(error_code=Error.INVALID_AUTHENTICATION)
        failsafe.commit()
        self.set(schema.BREADCRUMB, 0)
        return CommissioningCompleteResponse(error_code=Error.OK)
