"""Issue 12 end to end: Home Assistant's Matter server (python-matter-server 7.0.1 with its own CHIP wheel
2024.11.4), driven through its websocket client, commissions jfds-device; after a SIGTERM + restart of the node
the server shows it available again.

"Available again" means the server holds a live subscription to the restarted process, not merely that its
``available`` flag never dropped (python-matter-server marks a node unavailable only after two failed
resubscriptions: home-assistant-libs/python-matter-server, ``matter_server/server/device_controller.py``,
``NODE_RESUBSCRIBE_ATTEMPTS_UNAVAILABLE``): the node must be shown available with the RebootCount
(GeneralDiagnostics 0x0033 attribute 0x0001, Core spec 11.12.6.2) that the restarted process counted, which the
server can only have from a report of the new process.

Without BasicInformation StartUp/ShutDown events (Core spec 11.1.6.1, 11.1.6.2) the server notices the restart
only when its subscription's liveness timeout runs out; on ShutDown it forces a resubscription within 5 s
(same file, ``NODE_RESUBSCRIBE_FORCE_TIMEOUT``). jfds-device sends ShutDown before it stops and StartUp when it
starts, so the server has it back well within the 10 s bound.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, DeviceProcess, topology, workdir
from tests.e2e.matter_server import MatterServer, MatterServerError, require_matter_server

pytestmark = [pytest.mark.netns, pytest.mark.interop]

MANUAL_CODE = "34970112332"  # the default passcode 20202021 and discriminator 3840
WRONG_PASSCODE_CODE = "34970212338"  # passcode 20202022, discriminator 3840
REBOOT_COUNT = "0/51/1"  # GeneralDiagnostics.RebootCount on the root endpoint
NODE_LABEL = "0/40/5"  # BasicInformation.NodeLabel
BASIC_INFORMATION = {  # the node's defaults (clusters/basic_information/server.py BasicInformationConfig)
    "0/40/1": "jfds-device",  # VendorName
    "0/40/2": 0xFFF1,  # VendorID
    "0/40/3": "JFDS Device",  # ProductName
    "0/40/4": 0x8000,  # ProductID
}
RESTART_BOUND_S = 10.0  # issue 12's bound
SERVER_RESTART_BOUND_S = 60.0  # generous: a loaded 2-core machine; it takes ~1 s
RESTART_PATIENCE_S = 150.0  # to measure and print the time even past the bound (liveness timeout ~72 s)


def device_status(device: DeviceProcess) -> dict[str, Any]:
    """``jfds-device status --json`` on the running node's storage (read-only beside it)."""
    result = subprocess.run([sys.executable, "-m", "jfds_device", "status", "--storage", str(device.storage),
                             "--json"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_matter_server_with_a_wrong_code_fails_cleanly() -> None:
    """A mistyped code (passcode 20202022, same discriminator): PASE fails, the server answers the command with
    NodeCommissionFailed instead of hanging, and the node is left without a fabric.

    The server's CHIP controller retries PASE on every address it discovered for the whole discovery window, so
    it makes the 20 failed attempts after which the node closes its commissioning window (Core spec 5.5; the SDK's
    CommissioningWindowManager does the same) within seconds: like a user, the test power-cycles the node before
    trying the right code."""
    require_matter_server()
    with topology() as net, workdir("jfds-hass-wrong-") as work:
        device = DeviceProcess(net.dev, work / "state", "--interface", net.dev_ifname)
        server: MatterServer | None = None
        try:
            server = MatterServer(net.ctl, work, interface="veth-ctl")
            with pytest.raises(MatterServerError) as refused:
                server.commission_with_code(WRONG_PASSCODE_CODE)
            assert refused.value.info["type"] == "NodeCommissionFailed", refused.value.info
            assert all(e["event"] != "node_added" for e in server.events())
            assert device_status(device)["node"]["fabrics"] == []
            assert "PaseResponder handshake failed" in device.output()
            print(f"\nwindow closed after 20 failed attempts: {'20 failed PASE attempts' in device.output()}")
            device.restart()
            node_id = server.commission_with_code(MANUAL_CODE)
            state = server.node(node_id)
            assert state is not None and state["available"] is True
            assert len(device_status(device)["node"]["fabrics"]) == 1
        finally:
            if server is not None:
                server.close()
            device.stop()


@dataclass
class Commissioned:
    device: DeviceProcess
    server: MatterServer
    node_id: int


@pytest.fixture(scope="module")
def commissioned() -> Iterator[Commissioned]:
    """jfds-device commissioned by the Matter server; setup failures raise RuntimeError, never AssertionError
    (a failed setup is not a failed bound)."""
    require_matter_server()
    with topology() as net, workdir("jfds-hass-") as work:
        device = DeviceProcess(net.dev, work / "state", "--interface", net.dev_ifname)
        server: MatterServer | None = None
        try:
            server = MatterServer(net.ctl, work, interface="veth-ctl")
            node_id = server.commission_with_code(MANUAL_CODE)
            yield Commissioned(device, server, node_id)
        finally:
            if server is not None:
                server.close()
            device.stop()


def test_matter_server_commissions_the_node(commissioned: Commissioned) -> None:
    node = commissioned.server.node(commissioned.node_id)
    assert node is not None, "the server's client does not know the node it commissioned"
    assert node["available"] is True
    attributes = node["attributes"]
    for path, value in BASIC_INFORMATION.items():
        assert attributes.get(path) == value, path
    assert isinstance(attributes.get(REBOOT_COUNT), int)
    # Its interview read the datastore the node bootstrapped from the server's fabric, as its anchor
    # (JointFabricDatastore 0x0752 / JointFabricAdministrator 0x0753 on endpoint 1, ids as chip.clusters.Objects).
    node_id = commissioned.node_id
    assert attributes.get("1/1874/1") == node_id  # AnchorNodeID: the node itself
    assert attributes.get("1/1874/2") == 0xFFF1  # AnchorVendorID: the server's AdminVendorId
    assert [admin["1"] for admin in attributes.get("1/1874/7", [])] == [node_id]  # AdminList: the anchor first
    assert attributes.get("1/1874/8", {}).get("0") == 1  # Status: Committed
    assert attributes.get("1/1875/0") == 1  # AdministratorFabricIndex: the server's fabric
    # No download was even tried: the PAA directory the harness gave it counts as freshly fetched.
    assert "Skip fetching certificates" in commissioned.server.server_log()


def test_matter_server_writes_the_node_label_and_gets_the_report(commissioned: Commissioned) -> None:
    """Renaming the device in Home Assistant: a write through the server, seen back through its subscription."""
    server, node_id = commissioned.server, commissioned.node_id
    written = server.write_attribute(node_id, NODE_LABEL, "Kitchen")
    assert [(r["Path"], r["Status"]) for r in written] == [
        ({"EndpointId": 0, "ClusterId": 40, "AttributeId": 5}, 0)], written
    assert server.wait_attribute(node_id, NODE_LABEL, "Kitchen", timeout=30) is not None
    assert server.read_attribute(node_id, NODE_LABEL) == {NODE_LABEL: "Kitchen"}
    # A value out of the attribute's constraint (NodeLabel is at most 32 bytes) is refused: CONSTRAINT_ERROR.
    refused = server.write_attribute(node_id, NODE_LABEL, "x" * 33)
    assert [r["Status"] for r in refused] == [0x87], refused
    assert server.read_attribute(node_id, NODE_LABEL) == {NODE_LABEL: "Kitchen"}


def test_matter_server_sees_the_node_again_within_10s_of_a_restart(commissioned: Commissioned) -> None:
    server, device, node_id = commissioned.server, commissioned.device, commissioned.node_id
    before = server.node(node_id)
    if before is None or not before["available"]:
        raise RuntimeError(f"node {node_id} is not available before the restart: {before}")
    reboot_count = server.attribute(node_id, REBOOT_COUNT)
    if not isinstance(reboot_count, int):
        raise RuntimeError(f"the server has no RebootCount for node {node_id}: {reboot_count!r}")
    seen = len(server.events())

    sigterm_at = time.monotonic()
    exit_code = device.stop()
    if exit_code != 0:
        raise RuntimeError(f"jfds-device exited with {exit_code} on SIGTERM")
    device.start()  # returns once the restarted node listens
    restarted_at = time.monotonic()

    back_at = server.wait_attribute(node_id, REBOOT_COUNT, reboot_count + 1, timeout=RESTART_PATIENCE_S)
    transitions = [(round(e["t"] - restarted_at, 2), e.get("available"))
                   for e in server.events(seen) if e["event"] == "node_updated"]
    if back_at is None:
        raise TimeoutError(f"the server did not see the restarted node in {RESTART_PATIENCE_S} s (RebootCount "
                           f"{server.attribute(node_id, REBOOT_COUNT)}, expected {reboot_count + 1}); "
                           f"availability changes (s after restart, available): {transitions}; "
                           f"server log:\n{server.tail(server.server_log_path, 80)}")
    elapsed = back_at - restarted_at
    print(f"\nmatter-server shows node {node_id} available again {elapsed:.1f} s after the restart "
          f"({back_at - sigterm_at:.1f} s after SIGTERM); availability changes: {transitions}")
    assert elapsed <= RESTART_BOUND_S, f"{elapsed:.1f} s > {RESTART_BOUND_S} s"


def test_matter_server_finds_the_node_again_after_its_own_restart(commissioned: Commissioned) -> None:
    """Home Assistant restarting: the server loads the node from its storage as unavailable and sets it up again
    once it browses the node's operational record (_matter._tcp, Core spec 4.3.1) with python-zeroconf."""
    server, node_id = commissioned.server, commissioned.node_id
    log_before = len(server.server_log())
    sigterm_at = time.monotonic()
    server.restart()
    back_at = server.wait_attribute(node_id, "0/40/2", BASIC_INFORMATION["0/40/2"], timeout=SERVER_RESTART_BOUND_S)
    assert back_at is not None, (f"the restarted server did not set the node up again in {SERVER_RESTART_BOUND_S} s:"
                                 f"\n{server.tail(server.server_log_path, 80)}")
    print(f"\nthe restarted matter-server shows node {node_id} available {back_at - sigterm_at:.1f} s after its "
          "SIGTERM")
    assert "Discovered on mDNS" in server.server_log()[log_before:]  # found by browsing, not a stored address
    node = server.node(node_id)
    assert node is not None and node["available"] is True
    for path, value in BASIC_INFORMATION.items():
        assert node["attributes"].get(path) == value, path


def test_matter_server_removes_the_node_and_commissions_it_again(commissioned: Commissioned) -> None:
    """Removing the device in Home Assistant sends RemoveFabric: the node forgets the fabric, opens its
    commissioning window again (it has no fabric left), and the server commissions it anew."""
    server, device, node_id = commissioned.server, commissioned.device, commissioned.node_id
    seen = len(server.events())
    server.remove_node(node_id)
    assert {"event": "node_removed"} in [{"event": e["event"]} for e in server.events(seen)]
    assert server.node(node_id) is None
    deadline = time.monotonic() + 30
    while (node := device_status(device)["node"])["fabrics"]:
        assert time.monotonic() < deadline, f"the node still has fabrics after RemoveFabric: {node}"
        time.sleep(0.2)
    assert node["commissionable"] is True and node["manual_code"] == MANUAL_CODE
    again = server.commission_with_code(MANUAL_CODE)
    assert again != node_id  # the server never reuses a node id
    commissioned.node_id = again
    state = server.node(again)
    assert state is not None and state["available"] is True
    assert state["attributes"].get("0/40/2") == BASIC_INFORMATION["0/40/2"]
    assert len(device_status(device)["node"]["fabrics"]) == 1


def test_require_matter_server_skips_without_the_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JFDS_MATTER_SERVER_VENV", str(tmp_path / "absent"))
    with pytest.raises(pytest.skip.Exception, match=r"matter_server_setup\.sh"):
        require_matter_server()
