"""Issue 9 end to end: commissioning never wedges. A commissioner that opens a PASE session and goes away
leaves the node commissionable again, as the CHIP SDK does (CommissioningWindowManager arms a 60 s fail-safe
when PASE is established; its expiry closes the session and the window listens and advertises again).

Each test has its own device and namespaces; the commissioners are the CHIP SDK Python controller.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, Topology, topology

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402

PASSCODE = 20202021
DISCRIMINATOR = 3840
FAIL_SAFE_S = 60  # the fail-safe PASE establishment arms (SDK CHIP_DEVICE_CONFIG_FAILSAFE_EXPIRY_LENGTH_SEC)
RECOVERY_BUDGET_S = 90
MAX_FAILED_ATTEMPTS = 20  # Core spec 5.5
GC = Clusters.GeneralCommissioning
BI = Clusters.BasicInformation
OC = Clusters.OperationalCredentials
AC = Clusters.AdministratorCommissioning


def commissionable(ctrl: ChipController, timeout_s: int, discriminator: int = DISCRIMINATOR) -> list[Any]:
    """Browse ``_matterc._udp`` for a long discriminator (stops at the first answer)."""
    found = ctrl.call("DiscoverCommissionableNodes", filterType=DiscoveryFilterType.LONG_DISCRIMINATOR,
                      filter=discriminator, stopOnFirst=True, timeoutSecond=timeout_s, timeout=timeout_s + 30)
    return list(found or [])


def wait_commissionable(ctrl: ChipController, deadline: float, discriminator: int = DISCRIMINATOR) -> list[Any]:
    while time.monotonic() < deadline:
        found = commissionable(ctrl, 5, discriminator)
        if found:
            return found
    pytest.fail("the device never advertised itself as commissionable again")


def wait_for_log(device: DeviceProcess, pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, device.output())
        if match:
            return match
        time.sleep(0.1)
    pytest.fail(f"no {pattern!r} in the device log within {timeout} s")


def open_pase(ctrl: ChipController, net: Topology, node_id: int) -> None:
    ctrl.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, node_id, 5540, timeout=30)
    vendor = ctrl.call("ReadAttribute", node_id, [(0, BI.Attributes.VendorID)])[0][BI][BI.Attributes.VendorID]
    assert vendor == 0xFFF1  # the session works


def commission_fresh(net: Topology, tmp: Path, node_id: int, deadline: float) -> ChipController:
    """A new controller process finds the device by its long discriminator and commissions it."""
    fresh = ChipController(net.ctl, tmp / "fresh")
    try:
        [record] = wait_commissionable(fresh, deadline)
        assert record["commissioningMode"] == 1  # CM=1: the basic window accepts PASE again (Core spec 4.3.1)
        node = fresh.call("CommissionOnNetwork", node_id, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                          DISCRIMINATOR, timeout=max(5.0, deadline - time.monotonic()))
        assert node == node_id
        assert time.monotonic() < deadline, "commissioned, but later than the recovery budget"
        return fresh
    except BaseException:
        fresh.close()
        raise


def test_pase_abandoned_by_a_killed_controller_expires_and_the_node_is_commissionable_again(tmp_path: Path) -> None:
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        crashed = ChipController(net.ctl, tmp_path / "crashed")
        fresh: ChipController | None = None
        try:
            open_pase(crashed, net, 0x70)
            session = wait_for_log(device, r"PASE session (\d+): fail-safe armed for 60 s", 10).group(1)
            crashed.kill()  # SIGKILL: no CloseSession, no ArmFailSafe, nothing
            killed = time.monotonic()
            probe = ChipController(net.ctl, tmp_path / "probe")
            try:
                # While the abandoned session holds the fail-safe the node does not advertise _matterc._udp.
                assert commissionable(probe, 3) == []
            finally:
                probe.close()
            fresh = commission_fresh(net, tmp_path, 0x71, killed + RECOVERY_BUDGET_S)
            log = device.output()
            assert f"fail-safe expired: the commissioning attempt of PASE session {session} ends" in log
            # CloseSession (a StatusReport, SecureChannel opcode 0x40) went out on the abandoned session.
            assert re.search(rf"<<< \[E:\d+i S:{session} [^\n]*Type 0000:40", log)
            assert f"session S:{session} closed" in log
            assert re.search(r"commissioning attempt failed \(failures in this window: 1 of 20\); listening", log)
            assert "commissioning window closed: commissioning complete" in log
            # Recovery came from the fail-safe, not earlier: the node waited for its expiry.
            assert time.monotonic() - killed > FAIL_SAFE_S - 15
            fabrics = fresh.call("ReadAttribute", 0x71, [(0, OC.Attributes.Fabrics)])[0][OC][OC.Attributes.Fabrics]
            assert [f.nodeID for f in fabrics] == [0x71]
        finally:
            crashed.close()
            if fresh is not None:
                fresh.close()
            device.stop()


def test_pase_then_arm_fail_safe_0_frees_the_node_at_once_and_a_commissioned_node_prints_no_code(
    tmp_path: Path,
) -> None:
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        quitter = ChipController(net.ctl, tmp_path / "quitter")
        fresh: ChipController | None = None
        try:
            assert "Manual pairing code: 34970112332" in device.output()
            open_pase(quitter, net, 0x80)
            # The commissioner never armed the fail-safe; ArmFailSafe(0) expires the one PASE armed.
            response = quitter.call("SendCommand", 0x80, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=0,
                                                                                    breadcrumb=0))
            assert response.errorCode == GC.Enums.CommissioningErrorEnum.kOk
            disarmed = time.monotonic()
            quitter.kill()
            wait_for_log(device, r"commissioning attempt failed \(failures in this window: 1 of 20\); listening", 10)
            fresh = commission_fresh(net, tmp_path, 0x81, disarmed + RECOVERY_BUDGET_S)
            # Not the fail-safe timer: the node was commissionable again well before 60 s.
            assert time.monotonic() - disarmed < FAIL_SAFE_S

            # Restarted while commissioned (window closed): one line with the fabric count, no code.
            before = len(device.output())
            assert device.stop() == 0
            device.start()
            deadline = time.monotonic() + 20
            while "Commissioned on" not in device.output()[before:] and time.monotonic() < deadline:
                time.sleep(0.1)
            banner = device.output()[before:]
            assert "Commissioned on 1 fabric; the commissioning window is closed" in banner
            assert "Manual pairing code" not in banner and "QR code payload" not in banner
        finally:
            quitter.close()
            if fresh is not None:
                fresh.close()
            device.stop()


def establish_retrying_local_refusals(ctrl: ChipController, net: Topology, node_id: int) -> None:
    """PASE with the right passcode. The controller refuses to start one while it still winds down the previous
    session (CHIPDeviceController.cpp: "Incorrect state", nothing sent); that never reached the device."""
    for _ in range(10):
        try:
            ctrl.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, node_id, 5540, timeout=40)
            return
        except RemoteError as err:
            if "CHIPDeviceController.cpp" not in str(err):
                raise
            time.sleep(0.3)
    raise AssertionError("the controller stayed busy")


def test_twenty_abandoned_attempts_close_the_window_as_the_spec_limits(tmp_path: Path) -> None:
    """Core spec 5.5 (SDK kMaxFailedCommissioningAttempts): each PASE + ArmFailSafe(0) is a failed commissioning
    attempt; the 20th closes the window an Administrator opened, and the node keeps serving its fabric."""
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        admin = ChipController(net.ctl, tmp_path / "admin")
        quitter = ChipController(net.ctl, tmp_path / "quitter")
        try:
            assert admin.call("CommissionOnNetwork", 0x90, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              DISCRIMINATOR, timeout=90) == 0x90
            admin.call("SendCommand", 0x90, 0, AC.Commands.OpenBasicCommissioningWindow(commissioningTimeout=900),
                       timedRequestTimeoutMs=5000)
            for attempt in range(1, MAX_FAILED_ATTEMPTS + 1):
                establish_retrying_local_refusals(quitter, net, 0x100 + attempt)
                if attempt == 1:
                    # The fail-safe PASE armed has no fabric: the PASE commissioner may re-arm it, a CASE admin not.
                    busy = admin.call("SendCommand", 0x90, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=10,
                                                                                      breadcrumb=0))
                    assert busy.errorCode == GC.Enums.CommissioningErrorEnum.kBusyWithOtherAdmin
                    rearmed = quitter.call("SendCommand", 0x101, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=120,
                                                                                            breadcrumb=0))
                    assert rearmed.errorCode == GC.Enums.CommissioningErrorEnum.kOk
                response = quitter.call("SendCommand", 0x100 + attempt, 0,
                                        GC.Commands.ArmFailSafe(expiryLengthSeconds=0, breadcrumb=0))
                assert response.errorCode == GC.Enums.CommissioningErrorEnum.kOk
                wait_for_log(device, rf"failures in this window: {attempt} of {MAX_FAILED_ATTEMPTS}\)", 10)
            assert f"failures in this window: {MAX_FAILED_ATTEMPTS} of {MAX_FAILED_ATTEMPTS}); the window closed" in (
                device.output())
            assert "basic commissioning window closed: too many failed attempts" in device.output()
            status = admin.call("ReadAttribute", 0x90, [(0, AC.Attributes.WindowStatus)])[0][AC][
                AC.Attributes.WindowStatus]
            assert status == AC.Enums.CommissioningWindowStatusEnum.kWindowNotOpen
            with pytest.raises(RemoteError):  # the right passcode no longer opens a session
                quitter.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, 0x200, 5540, timeout=40)
        finally:
            quitter.close()
            admin.close()
            device.stop()


def test_a_second_admin_that_crashes_mid_pairing_does_not_use_up_the_enhanced_window(tmp_path: Path) -> None:
    """Multi-admin: an Administrator opens an enhanced window; the new admin's app dies right after PASE. The
    window, still within its CommissioningTimeout, listens again once the fail-safe expires, with the same
    one-time code and discriminator."""
    ecm_discriminator = 3333
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        admin = ChipController(net.ctl, tmp_path / "admin")
        crashed = ChipController(net.ctl, tmp_path / "crashed", node_id=0x4444, fabric_id=2)
        second: ChipController | None = None
        try:
            assert admin.call("CommissionOnNetwork", 0xA0, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              DISCRIMINATOR, timeout=90) == 0xA0
            params = admin.call("OpenCommissioningWindow", 0xA0, 600, 1000, ecm_discriminator, 1, timeout=30)
            crashed.call("EstablishPASESessionIP", net.dev_ip6, params.setupPinCode, 0xB0, 5540, timeout=30)
            wait_for_log(device, r"PASE session \d+: fail-safe armed for 60 s", 10)
            crashed.kill()
            killed = time.monotonic()
            second = ChipController(net.ctl, tmp_path / "second", node_id=0x4444, fabric_id=2)
            assert commissionable(second, 3, ecm_discriminator) == []
            [record] = wait_commissionable(second, killed + RECOVERY_BUDGET_S, ecm_discriminator)
            assert record["commissioningMode"] == 2  # CM=2: still the enhanced window (Core spec 4.3.1)
            assert second.call("CommissionWithCode", params.setupManualCode, 0xB1, timeout=60) == 0xB1
            assert time.monotonic() - killed < RECOVERY_BUDGET_S
            fabrics = admin.call("ReadAttribute", 0xA0, [(0, OC.Attributes.Fabrics)], fabricFiltered=False)[0][OC][
                OC.Attributes.Fabrics]
            assert sorted(f.fabricID for f in fabrics) == [1, 2]
        finally:
            crashed.close()
            if second is not None:
                second.close()
            admin.close()
            device.stop()
