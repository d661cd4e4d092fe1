"""Issue 3 end to end: wrong passcodes fail PASE, and after the spec's 20 failures the window closes.

The device is commissioned first, so that "it keeps serving" is checked over CASE while a second
controller exhausts the attempts of a basic window the first one opened (Core spec 5.5, 11.19).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, Topology, topology, workdir

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402

PASSCODE = 20202021
WRONG = 20202022
GOOD_NODE = 0x10
MAX_FAILED_ATTEMPTS = 20  # Core spec 5.5: the node exits commissioning mode after 20 failed attempts


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[Topology, DeviceProcess, ChipController, ChipController]]:
    """A device, a controller that holds a good session, and a second one that guesses wrong."""
    with topology() as net, workdir("jfds-e2e-limits-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname)
        controllers: list[ChipController] = []
        try:
            controllers.append(ChipController(net.ctl, tmp / "good"))
            controllers.append(ChipController(net.ctl, tmp / "guesser"))
            yield net, device, controllers[0], controllers[1]
        finally:
            for ctrl in controllers:
                ctrl.close()
            device.stop()


def wait_for_log(device: DeviceProcess, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while text not in device.output():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def establish(ctrl: ChipController, net: Topology, passcode: int, node_id: int) -> None:
    """One PASE attempt. The controller refuses to start one while it still winds down the previous attempt
    (CHIPDeviceController.cpp: "Incorrect state", nothing sent); that is retried, since it never reached the
    device. A failed handshake is reported from the pairing delegate instead and is not retried."""
    for _ in range(10):
        try:
            ctrl.call("EstablishPASESessionIP", net.dev_ip6, passcode, node_id, 5540, timeout=40)
            return
        except RemoteError as err:
            if "CHIPDeviceController.cpp" not in str(err):
                raise
            time.sleep(0.3)
    raise AssertionError("the controller stayed busy")


def test_wrong_passcodes_fail_and_the_window_closes_after_the_limit(
    env: tuple[Topology, DeviceProcess, ChipController, ChipController],
) -> None:
    net, device, good, guesser = env
    node = good.call("CommissionOnNetwork", GOOD_NODE, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840,
                     timeout=90)
    assert node == GOOD_NODE
    good.call("SendCommand", GOOD_NODE, 0, Clusters.AdministratorCommissioning.Commands.OpenBasicCommissioningWindow(
        commissioningTimeout=180), timedRequestTimeoutMs=5000)
    # Every wrong guess fails. An attempt the device never saw reach the confirmation step (a commissioner that
    # gave up early under load) is not a guess and is not counted, so keep guessing until the device closes the
    # window, and then check it counted exactly the spec's 20 failures.
    for attempt in range(MAX_FAILED_ATTEMPTS + 20):
        with pytest.raises(RemoteError):
            establish(guesser, net, WRONG, 0x100 + attempt)
        if attempt + 1 >= MAX_FAILED_ATTEMPTS and wait_for_log(device, "closing the commissioning window", 2.0):
            break
    assert f"{MAX_FAILED_ATTEMPTS} failed PASE attempts: closing the commissioning window" in device.output()
    with pytest.raises(RemoteError):
        establish(guesser, net, PASSCODE, 0x200)  # the right passcode no longer opens a session
    result = good.call("ReadAttribute", GOOD_NODE, [(0, Clusters.BasicInformation.Attributes.VendorID)])
    assert result[0][Clusters.BasicInformation][Clusters.BasicInformation.Attributes.VendorID] == 0xFFF1
    assert device.proc is not None and device.proc.poll() is None


def test_fewer_failures_leave_the_window_open(tmp_path: Path) -> None:
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        guesser = ChipController(net.ctl, tmp_path / "guesser")
        ctrl: ChipController | None = None
        try:
            for attempt in range(3):
                with pytest.raises(RemoteError):
                    establish(guesser, net, WRONG, 0x300 + attempt)
            # The right passcode from a fresh controller process: after a failed handshake the SDK controller
            # sometimes reports that failure again for its next attempt without sending anything (seen in about 2
            # of 5 runs), which would say nothing about the device's window.
            ctrl = ChipController(net.ctl, tmp_path / "ctrl")
            establish(ctrl, net, PASSCODE, 0x400)
            ctrl.call("ReadAttribute", 0x400, [(0, Clusters.BasicInformation.Attributes.VendorID)])
        finally:
            for controller in (guesser, ctrl):
                if controller is not None:
                    controller.close()
            device.stop()
