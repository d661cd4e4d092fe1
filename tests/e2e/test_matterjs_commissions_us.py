"""Issue 4 end to end: the matter.js controller (a second, independent implementation) commissions jfds-device
by its manual code and reads BasicInformation and the Descriptor over CASE."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import DeviceProcess, topology
from tests.e2e.matterjs import MatterJsController, ensure_matterjs

pytestmark = [pytest.mark.netns, pytest.mark.interop]


def test_matterjs_commissions_by_manual_code_and_reads(tmp_path: Path) -> None:
    ensure_matterjs()
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        try:
            with MatterJsController(net.ctl, tmp_path / "mjs") as ctrl:
                node_id = ctrl.commission("34970112332", node_id=0x42, timeout=90)
                assert node_id == 0x42
                assert ctrl.read(node_id, 0, "BasicInformation", "vendorId") == 0xFFF1
                assert ctrl.read(node_id, 0, "BasicInformation", "productId") == 0x8000
                assert ctrl.read(node_id, 0, "BasicInformation", "vendorName") == "jfds-device"
                servers = ctrl.read(node_id, 0, "Descriptor", "serverList")
                assert {0x1D, 0x1F, 0x28, 0x30, 0x31, 0x3C, 0x3E, 0x3F} <= set(servers)
                device_types = ctrl.read(node_id, 1, "Descriptor", "deviceTypeList")
                assert [d["deviceType"] for d in device_types] == [0x0130]
                fabrics = ctrl.read(node_id, 0, "OperationalCredentials", "fabrics")
                assert [f["nodeId"] for f in fabrics] == [0x42]
        finally:
            device.stop()
