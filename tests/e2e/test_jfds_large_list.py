"""Issue 5: a NodeACLList at the spec maximum (8192 entries) is read completely through the CHIP controller."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, topology
from tests.e2e.jfds_seed import seed_acl_entries

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402

JF = Clusters.JointFabricDatastore
ENTRIES = 8192


def test_an_8192_entry_node_acl_list_reads_completely(tmp_path: Path) -> None:
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        ctrl = ChipController(net.ctl, tmp_path / "ctrl")
        try:
            assert ctrl.call("CommissionOnNetwork", 1, 20202021, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840,
                             timeout=90) == 1
            device.stop()
            seed_acl_entries(tmp_path / "state", node_id=7, count=ENTRIES)
            device.start()
            # The restarted device no longer knows the controller's CASE session (and, like every Matter node,
            # drops messages for unknown sessions): let the controller set up a new one, as it would after a
            # failed exchange.
            ctrl.call("MarkSessionDefunct", 1)
            started = time.monotonic()
            result = ctrl.call("ReadAttribute", 1, [(1, JF.Attributes.NodeACLList)], timeout=120)
            elapsed = time.monotonic() - started
            entries = result[1][JF][JF.Attributes.NodeACLList]
            assert len(entries) == ENTRIES
            assert sorted(e.ACLEntry.subjects[0] for e in entries) == [0x1_0000 + i for i in range(ENTRIES)]
            assert len({e.listID for e in entries}) == ENTRIES
            print(f"read {ENTRIES} NodeACLList entries in {elapsed:.2f} s")
        finally:
            ctrl.close()
            device.stop()
