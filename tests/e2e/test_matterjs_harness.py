"""The matter.js harness works: matter.js devices in the device namespace, commissioned over the veth pair by the
CHIP SDK controller and by the matter.js controller from the controller namespace.

Two matter.js lights run side by side in one namespace (distinct ports, storage and short discriminators).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ChipController, Topology, topology, workdir
from tests.e2e.matterjs import MatterJsController, MatterJsDevice, MatterJsError, ensure_matterjs

pytestmark = [pytest.mark.netns, pytest.mark.interop]

PASSCODE = 20202021
CHIP_NODE_ID = 0x4321
MJS_NODE_ID = 0x1234_5678_9ABC_DEF0  # above 2**53: node ids must cross the JSON pipe without loss
ADMINISTER, OPERATE, CASE = 5, 3, 2


@pytest.fixture(scope="module")
def net() -> Iterator[Topology]:
    ensure_matterjs()
    with topology() as topo:
        yield topo


@pytest.fixture(scope="module")
def tmp(net: Topology) -> Iterator[Path]:
    with workdir("jfds-e2e-matterjs-") as path:
        yield path


@pytest.fixture(scope="module")
def lights(net: Topology, tmp: Path) -> Iterator[tuple[MatterJsDevice, MatterJsDevice]]:
    """light1 for the CHIP controller, light2 for the matter.js controller; started together."""
    started: list[MatterJsDevice] = []
    try:
        started.append(MatterJsDevice(net.dev, tmp / "light1", wait=False, id="light1", port=5540,
                                      discriminator=3840, vendor_name="jfds interop"))
        started.append(MatterJsDevice(net.dev, tmp / "light2", wait=False, id="light2", port=5541,
                                      discriminator=0x7A5, acl_entries=6))
        for light in started:
            light.wait_ready()
        yield started[0], started[1]
    finally:
        for light in started:
            light.stop()


def test_device_prints_its_pairing_data(lights: tuple[MatterJsDevice, MatterJsDevice]) -> None:
    light1, light2 = lights
    assert light1.info["commissioned"] is False
    assert (light1.manual_code, light1.port, light1.discriminator) == ("34970112332", 5540, 3840)
    assert light1.qr.startswith("MT:")
    assert (light2.port, light2.discriminator, light2.passcode) == (5541, 0x7A5, PASSCODE)
    assert light2.manual_code != light1.manual_code


def test_chip_controller_commissions_matterjs_device_and_reads_it(
    net: Topology, tmp: Path, lights: tuple[MatterJsDevice, MatterJsDevice]
) -> None:
    clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
    from chip.discovery import FilterType

    light1, _ = lights
    ctrl = ChipController(net.ctl, tmp / "chip")
    try:
        node_id = ctrl.call("CommissionOnNetwork", CHIP_NODE_ID, PASSCODE, FilterType.LONG_DISCRIMINATOR,
                            light1.discriminator, timeout=45)
        assert node_id == CHIP_NODE_ID
        bi, acl = clusters.BasicInformation, clusters.AccessControl
        result = ctrl.call("ReadAttribute", CHIP_NODE_ID,
                           [(0, bi.Attributes.VendorName), (0, bi.Attributes.VendorID), (0, acl.Attributes.Acl)])
        assert result[0][bi][bi.Attributes.VendorName] == "jfds interop"
        assert result[0][bi][bi.Attributes.VendorID] == 0xFFF1
        [entry] = result[0][acl][acl.Attributes.Acl]
        null = clusters.Types.NullValue
        assert (entry.privilege, entry.authMode, entry.subjects, entry.targets) == (ADMINISTER, CASE, [112233], null)
        assert entry.fabricIndex == 1
    finally:
        ctrl.close()
    # The device saw the commissioning.
    assert light1.wait_event("commissioned") is not None
    assert light1.events("acl")[-1][1][0]["subjects"] == [112233]


def test_matterjs_controller_commissions_matterjs_device(
    net: Topology, tmp: Path, lights: tuple[MatterJsDevice, MatterJsDevice]
) -> None:
    _, light2 = lights
    with MatterJsController(net.ctl, tmp / "mjs-ctrl") as ctrl:
        assert ctrl.commission(light2.manual_code, node_id=MJS_NODE_ID) == MJS_NODE_ID
        assert ctrl.nodes() == [MJS_NODE_ID]

        # Descriptor of the light endpoint and of the root.
        device_types = ctrl.read(MJS_NODE_ID, 1, "Descriptor", "deviceTypeList")
        assert 0x0100 in [entry["deviceType"] for entry in device_types]  # OnOffLight
        servers = ctrl.read(MJS_NODE_ID, 1, "Descriptor", "serverList")
        assert {0x0003, 0x0004, 0x0006, 0x001E, 0x001D} <= set(servers)  # Identify Groups OnOff Binding Descriptor
        assert ctrl.read(MJS_NODE_ID, 0, "Descriptor", "partsList") == [1]
        assert ctrl.read(MJS_NODE_ID, 0, 0x0028, 0x0001) == "matter.js test"  # BasicInformation.VendorName by id

        # ACL: read, write with an Operate entry added, read back; the device reports the change.
        [admin] = ctrl.read(MJS_NODE_ID, 0, "AccessControl", "acl")
        assert (admin["privilege"], admin["authMode"], admin["subjects"]) == (ADMINISTER, CASE, [ctrl.node_id])
        operate = {"privilege": OPERATE, "authMode": CASE, "subjects": [0x1122],
                   "targets": [{"cluster": 0x0006, "endpoint": 1, "deviceType": None}]}
        ctrl.write(MJS_NODE_ID, 0, "AccessControl", "acl", [admin, operate])
        assert ctrl.read(MJS_NODE_ID, 0, "AccessControl", "acl") == [admin, {**operate, "fabricIndex": 1}]
        assert light2.wait_event("acl", lambda value: len(value) == 2)[1]["subjects"] == [0x1122]

        # A write the device rejects carries the IM status: Group auth with Administer is CONSTRAINT_ERROR.
        group_admin = {"privilege": ADMINISTER, "authMode": 3, "subjects": [0x0101], "targets": None}
        with pytest.raises(MatterJsError) as rejected:
            ctrl.write(MJS_NODE_ID, 0, "AccessControl", "acl", [admin, group_admin])
        assert rejected.value.status == 0x87
        assert len(ctrl.read(MJS_NODE_ID, 0, "AccessControl", "acl")) == 2

        # Invoke, and an ECM for a next administrator.
        assert ctrl.invoke(MJS_NODE_ID, 1, "OnOff", "toggle") is None
        assert ctrl.read(MJS_NODE_ID, 1, "OnOff", "onOff") is True
        window = ctrl.open_ecm(MJS_NODE_ID)  # the window must be 180 s or more (else INVALID_COMMAND)
        assert len(window["manualCode"]) == 11 and window["qr"].startswith("MT:")

        with pytest.raises(MatterJsError, match="unknown attribute"):
            ctrl.read(MJS_NODE_ID, 0, "BasicInformation", "noSuchAttribute")
