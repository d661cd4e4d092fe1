"""Chunked ACL writes keep the writer's access (issue 9), with both real controllers.

A list write that does not fit one message arrives as replace-all, then appends in later WriteRequests
(Core spec 8.7.3.3). The access decision is taken once per attribute per write interaction, so a writer whose
own Administer entry comes last in the list is not locked out half-way. The device log proves the chunking.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, topology
from tests.e2e.matterjs import MatterJsController, ensure_matterjs

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters.Types import Nullable, NullValue  # noqa: E402

AC = Clusters.AccessControl
UL = Clusters.UserLabel
PASSCODE = 20202021
NODE_ID = 0x1234
ADMIN_NODE_ID = 112233
ACL = "0x0000/0x001f/0x0000"
LABELS = "0x0000/0x0041/0x0000"
# The device logs each WriteRequest message at debug level: whether more chunks follow and the IBs it carries.
WRITE_LINE = re.compile(r"write request on .* \(more chunks: (True|False)\): (.*)")
# Large subjects and manufacturer-specific targets: 15 such entries and the writer's own do not fit one message.
TARGETS = [(0xFFF1FC00, 0x1234, None), (0xFFF1FC01, 0x1235, None), (0xFFF1FC02, None, None)]
PRIVILEGES = (1, 3, 4)  # View, Operate, Manage


def subjects(i: int) -> list[int]:
    return [0x0FFF_FFEF_0000_0000 + 4 * i + k for k in range(4)]


def write_messages(device: DeviceProcess, since: int) -> list[tuple[bool, str]]:
    return [(more == "True", ibs) for more, ibs in WRITE_LINE.findall(device.output()[since:])]


def nullable(value: Any) -> Any:
    return NullValue if value is None else value


def plain(value: Any) -> Any:
    return None if isinstance(value, Nullable) else value


def strip(entry: Any) -> tuple[Any, ...]:
    """An entry without its FabricIndex (the writer does not send it; the node stamps it)."""
    targets = None if isinstance(entry.targets, Nullable) else [
        (plain(t.cluster), plain(t.endpoint), plain(t.deviceType)) for t in entry.targets
    ]
    return int(entry.privilege), int(entry.authMode), list(entry.subjects), targets


def test_chip_controller_keeps_access_through_a_chunked_acl_write(tmp_path: Path) -> None:
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        ctrl = ChipController(net.ctl, tmp_path / "ctrl")
        try:
            assert ctrl.call("CommissionOnNetwork", NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840,
                             timeout=90) == NODE_ID  # fmt: skip
            targets = [AC.Structs.AccessControlTargetStruct(cluster=c, endpoint=nullable(e), deviceType=NullValue)
                       for c, e, _ in TARGETS]  # fmt: skip
            entries = [
                AC.Structs.AccessControlEntryStruct(privilege=PRIVILEGES[i % 3], subjects=subjects(i), targets=targets,
                                                    authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase)
                for i in range(15)
            ]  # fmt: skip
            entries.append(AC.Structs.AccessControlEntryStruct(
                privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kAdminister,
                authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase, subjects=[ADMIN_NODE_ID], targets=NullValue))
            since = len(device.output())
            [status] = ctrl.call("WriteAttribute", NODE_ID, [(0, AC.Attributes.Acl(entries))])
            assert int(status.Status) == 0, status
            # The SDK's WriteClient put what fit into a replace-all IB, then appended the rest (the writer's own
            # entry among them) in a second WriteRequest.
            messages = write_messages(device, since)
            assert messages[0][0] and f"{ACL} replace x1" in messages[0][1], messages
            assert not messages[1][0] and f"{ACL} append" in messages[1][1], messages
            acl = ctrl.call("ReadAttribute", NODE_ID, [(0, AC.Attributes.Acl)])[0][AC][AC.Attributes.Acl]
            assert [strip(e) for e in acl] == [strip(e) for e in entries]
            # The writer still administers.
            [status] = ctrl.call("WriteAttribute", NODE_ID, [(0, Clusters.BasicInformation.Attributes.NodeLabel("x"))])
            assert int(status.Status) == 0
        finally:
            ctrl.close()
            device.stop()


def mjs_strip(entry: dict[str, Any]) -> tuple[Any, ...]:
    targets = entry.get("targets")
    if targets is not None:
        targets = [(t.get("cluster"), t.get("endpoint"), t.get("deviceType")) for t in targets]
    return entry["privilege"], entry["authMode"], list(entry.get("subjects") or []), targets


def test_matterjs_controller_keeps_access_through_its_list_writes(tmp_path: Path) -> None:
    """matter.js 0.17.9 writes lists as replace-all [] plus one append IB per item, except the ACL, which it sends
    whole in one IB (its Write.js follows connectedhomeip PR #38263), and it never splits a write over several
    messages: an ACL that does not fit one message cannot be written by it at all (the oversized datagram is
    dropped). So it writes the largest ACL that fits one message, ending with its own Administer entry, and a
    label list that it chunks into appends, in one write interaction each."""
    ensure_matterjs()
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        try:
            with MatterJsController(net.ctl, tmp_path / "mjs") as ctrl:
                node_id = ctrl.commission("34970112332", node_id=0x42, timeout=90)
                admin = ctrl.read(node_id, 0, "AccessControl", "acl")[-1]
                entries = [
                    {"privilege": PRIVILEGES[i % 3], "authMode": 2, "subjects": subjects(i),
                     "targets": [{"cluster": c, "endpoint": e, "deviceType": d} for c, e, d in TARGETS],
                     "fabricIndex": admin["fabricIndex"]}
                    for i in range(10)
                ]  # fmt: skip
                entries.append(admin)
                since = len(device.output())
                ctrl.write(node_id, 0, "AccessControl", "acl", entries)
                assert write_messages(device, since) == [(False, f"{ACL} replace x1")]
                assert [mjs_strip(e) for e in ctrl.read(node_id, 0, "AccessControl", "acl")] == [
                    mjs_strip(e) for e in entries
                ]
                labels = [{"label": f"label-{i:02d}", "value": "v" * 16} for i in range(12)]
                since = len(device.output())
                ctrl.write(node_id, 0, "UserLabel", "labelList", labels)
                assert write_messages(device, since) == [(False, f"{LABELS} replace x1, {LABELS} append x12")]
                assert ctrl.read(node_id, 0, "UserLabel", "labelList") == labels
                ctrl.write(node_id, 0, "BasicInformation", "nodeLabel", "still admin")
                assert ctrl.read(node_id, 0, "BasicInformation", "nodeLabel") == "still admin"
        finally:
            device.stop()
