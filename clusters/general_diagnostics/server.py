"""General Diagnostics server: interfaces, reboot count, uptime, boot reason, TimeSnapshot (Core spec 11.12).

Time comes in as callables (``monotonic`` seconds, optional ``wall_clock`` POSIX seconds), so tests
inject fixed clocks and nothing here reads the system clock. ``wall_clock`` is only for a node whose UTC time is
valid, i.e. one with a Time Synchronization cluster (Core spec 11.12.7.2: PosixTimeMs is null otherwise; the
SDK's TC_DGGEN_2_4 checks it); this node has none and passes no wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clusters.general_diagnostics import schema
from clusters.general_diagnostics.schema import (
    BootReasonEnum,
    NetworkInterface,
    TestEventTrigger,
    TimeSnapshot,
    TimeSnapshotResponse,
)
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.errors import ActionError
from jfds_device.im.provider import RequestContext, Status

MAX_REBOOT_COUNT = 0xFFFF


class GeneralDiagnosticsServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(
        self,
        *,
        monotonic: Callable[[], float],
        wall_clock: Callable[[], float] | None = None,
        network_interfaces: Sequence[NetworkInterface] = (),
        boot_reason: BootReasonEnum = BootReasonEnum.UNSPECIFIED,
    ) -> None:
        super().__init__()
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._boot = monotonic()
        self.set(schema.NETWORK_INTERFACES, list(network_interfaces))
        self.set(schema.BOOT_REASON, boot_reason)
        # No enable key is provisioned, so test event triggers are off (11.12.6.9).
        self.set(schema.TEST_EVENT_TRIGGERS_ENABLED, False)

    def emit_boot_reason(self) -> None:
        """BootReason (11.12.8.4): after every boot, with the BootReason attribute's value."""
        self.emit_event(schema.EVENT_BOOT_REASON, {0: int(self.get(schema.BOOT_REASON))})

    def started(self) -> None:
        # One more boot (11.12.6.2); saturate rather than wrap, so the count never appears to reset.
        self.set(schema.REBOOT_COUNT, min(int(self.get(schema.REBOOT_COUNT)) + 1, MAX_REBOOT_COUNT))

    @property
    def reboot_count(self) -> int:
        return int(self.get(schema.REBOOT_COUNT))

    def update_network_interfaces(self, interfaces: Sequence[NetworkInterface]) -> None:
        """Replace the interface list (the shell calls this when addresses change)."""
        self.set(schema.NETWORK_INTERFACES, list(interfaces))

    def _uptime_s(self) -> float:
        return max(0.0, self._monotonic() - self._boot)

    def read_up_time(self, ctx: RequestContext | None) -> int:
        # Changes every second; not reported as a change (the spec marks it "changes omitted").
        return int(self._uptime_s())

    def on_test_event_trigger(self, ctx: RequestContext, request: TestEventTrigger) -> None:
        # Without a provisioned enable key every key (all-zero ones included) mismatches: CONSTRAINT_ERROR
        # (11.12.7.1; the SDK's TC_TestEventTrigger expects exactly this).
        raise ActionError(Status.CONSTRAINT_ERROR, message="test event triggers are disabled")

    def on_time_snapshot(self, ctx: RequestContext, request: TimeSnapshot) -> TimeSnapshotResponse:
        posix_ms: object = NULL if self._wall_clock is None else int(self._wall_clock() * 1000)
        return TimeSnapshotResponse(system_time_ms=int(self._uptime_s() * 1000), posix_time_ms=posix_ms)
