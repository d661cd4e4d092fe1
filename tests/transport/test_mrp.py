"""MRP backoff (Core spec §4.12.2.1) against the CHIP SDK's BackoffComplianceTestVector table."""

from __future__ import annotations

import pytest

from jfds_device.errors import LocalProtocolError
from jfds_device.transport.mrp import MRP_MAX_TRANSMISSIONS, MrpParameters, backoff_interval, max_delivery_time

# project-chip/connectedhomeip src/messaging/tests/TestReliableMessageProtocol.cpp,
# theBackoffComplianceTestVector: (sendCount, backoffBase ms, backoffMin ms, backoffMax ms). The SDK rounds to
# whole milliseconds, so bounds are checked with 1 ms of slack. Rows past sendCount 4 are omitted: they only
# exist because the SDK caps the exponent, and MRP_MAX_TRANSMISSIONS stops us at 4 retransmissions.
BACKOFF_COMPLIANCE = [
    (0, 300, 330, 413),
    (1, 300, 330, 413),
    (2, 300, 528, 660),
    (3, 300, 844, 1057),
    (4, 300, 1351, 1690),
    (0, 4000, 4400, 5500),
    (1, 4000, 4400, 5500),
    (2, 4000, 7040, 8800),
    (3, 4000, 11264, 14081),
    (4, 4000, 18022, 22529),
]


@pytest.mark.parametrize(("send_count", "base_ms", "min_ms", "max_ms"), BACKOFF_COMPLIANCE)
def test_backoff_within_chip_compliance_bounds(send_count: int, base_ms: int, min_ms: int, max_ms: int) -> None:
    low = backoff_interval(base_ms / 1000, send_count, 0.0) * 1000
    high = backoff_interval(base_ms / 1000, send_count, 1.0) * 1000
    assert min_ms - 1 <= low <= min_ms + 1
    assert max_ms - 1 <= high <= max_ms + 1
    for jitter in (0.25, 0.5, 0.999):
        assert low <= backoff_interval(base_ms / 1000, send_count, jitter) * 1000 <= high


def test_formula_terms() -> None:
    # i * 1.1 * 1.6^max(0, n-1) * (1 + 0.25 * jitter)
    assert backoff_interval(1.0, 0, 0.0) == pytest.approx(1.1)
    assert backoff_interval(1.0, 3, 0.0) == pytest.approx(1.1 * 1.6**2)
    assert backoff_interval(1.0, 2, 1.0) == pytest.approx(1.1 * 1.6 * 1.25)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        backoff_interval(0.3, -1, 0.0)
    with pytest.raises(LocalProtocolError):
        backoff_interval(0.3, 0, 1.5)
    with pytest.raises(LocalProtocolError):
        MrpParameters(idle_interval=-1.0)
    with pytest.raises(LocalProtocolError):
        MrpParameters(active_threshold=70.0)


def test_parameters_from_milliseconds() -> None:
    assert MrpParameters.from_ms() == MrpParameters(0.5, 0.3, 4.0)
    assert MrpParameters.from_ms(5000, 300, None) == MrpParameters(5.0, 0.3, 4.0)
    assert MrpParameters().base_interval(True) == 0.3 and MrpParameters().base_interval(False) == 0.5


def test_max_delivery_time_switches_to_idle_after_the_threshold() -> None:
    params = MrpParameters(idle_interval=2.0, active_interval=0.3, active_threshold=1.0)
    all_active = sum(backoff_interval(0.3, n, 1.0) for n in range(MRP_MAX_TRANSMISSIONS))
    assert max_delivery_time(params, False) == pytest.approx(
        sum(backoff_interval(2.0, n, 1.0) for n in range(MRP_MAX_TRANSMISSIONS))
    )
    # Active for the first backoffs only: more than all-active, less than all-idle.
    assert all_active < max_delivery_time(params, True) < max_delivery_time(params, False)
