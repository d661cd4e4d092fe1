"""Events end to end with the CHIP SDK's Python controller (Core spec 7.14, 8.5.4; issue 12 item 1).

Two CHIP controllers on two fabrics subscribe to every event (``('*', 1)``: wildcard, urgent). The node's
StartUp and BootReason are in the priming report; an ACL write by fabric 1 reaches fabric 1's subscription as
AccessControlEntryChanged within a second and never fabric 2's (fabric-sensitive, Core spec 9.10.7); SIGTERM
makes the node send ShutDown to both before it exits; after the restart the controllers resubscribe on their
own and get the new StartUp, numbered above every event of the first run.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, topology, workdir

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters.Types import NullValue  # noqa: E402

AC = Clusters.AccessControl
BASIC = Clusters.BasicInformation
DIAG = Clusters.GeneralDiagnostics
PASSCODE = 20202021
NODE_ID = 1
SECOND_NODE_ID = 0x5678
START_UP = (BASIC.id, BASIC.Events.StartUp.event_id)
SHUT_DOWN = (BASIC.id, BASIC.Events.ShutDown.event_id)
BOOT_REASON = (DIAG.id, DIAG.Events.BootReason.event_id)
ACL_CHANGED = (AC.id, AC.Events.AccessControlEntryChanged.event_id)


def kinds(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(e["cluster"], e["event"]) for e in events]


def wait_for(ctrl: ChipController, key: int, predicate: Any, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = ctrl.call("reports", key)
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            seen = [(e["cluster"], e["event"], e["number"]) for e in events]
            raise AssertionError(f"timed out; events so far: {seen}")
        time.sleep(0.05)


def acl_entry(privilege: Any, auth: Any, subjects: Any, fabric: int) -> Any:
    return AC.Structs.AccessControlEntryStruct(privilege=privilege, authMode=auth, subjects=subjects,
                                               targets=NullValue, fabricIndex=fabric)


def test_events_reach_subscribers_across_acl_writes_and_a_restart() -> None:
    with topology() as net, workdir("jfds-e2e-events-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname)
        first = ChipController(net.ctl, tmp / "ctrl1")
        second = ChipController(net.ctl, tmp / "ctrl2", node_id=0x4444, fabric_id=2)
        try:
            assert first.call("CommissionOnNetwork", NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              3840, timeout=90) == NODE_ID  # fmt: skip
            params = first.call("OpenCommissioningWindow", NODE_ID, 180, 1000, 3333, 1, timeout=30)
            second.call("EstablishPASESessionIP", net.dev_ip6, params.setupPinCode, SECOND_NODE_ID, 5540, timeout=30)
            assert second.call("Commission", SECOND_NODE_ID, timeout=90) == SECOND_NODE_ID

            key1 = first.call("subscribe_events", NODE_ID, [("*", 1)], 0, 30)
            key2 = second.call("subscribe_events", SECOND_NODE_ID, [("*", 1)], 0, 30)
            primed = first.call("reports", key1)
            assert START_UP in kinds(primed) and BOOT_REASON in kinds(primed), kinds(primed)
            start_up = next(e for e in primed if (e["cluster"], e["event"]) == START_UP)
            version = first.call("ReadAttribute", NODE_ID, [(0, BASIC.Attributes.SoftwareVersion)])
            assert start_up["data"].softwareVersion == version[0][BASIC][BASIC.Attributes.SoftwareVersion]
            numbers = [e["number"] for e in primed]
            assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
            # Fabric 1's AddNOC entry was added over PASE (passcode id 0); fabric 2 never sees it.
            mine = [e for e in primed if (e["cluster"], e["event"]) == ACL_CHANGED]
            assert mine and all(e["data"].fabricIndex == 1 for e in mine)
            assert mine[0]["data"].adminPasscodeID == 0 and isinstance(mine[0]["data"].adminNodeID, type(NullValue))
            assert all(e["data"].fabricIndex == 2 for e in second.call("reports", key2)
                       if (e["cluster"], e["event"]) == ACL_CHANGED)

            # Fabric 1 writes its ACL: admin entry kept, an Operate group entry added.
            before1, before2 = len(primed), len(second.call("reports", key2))
            entries = [
                acl_entry(AC.Enums.AccessControlEntryPrivilegeEnum.kAdminister,
                          AC.Enums.AccessControlEntryAuthModeEnum.kCase, [112233], 1),
                acl_entry(AC.Enums.AccessControlEntryPrivilegeEnum.kOperate,
                          AC.Enums.AccessControlEntryAuthModeEnum.kGroup, NullValue, 1),
            ]
            written_at = time.monotonic()
            result = first.call("WriteAttribute", NODE_ID, [(0, AC.Attributes.Acl(value=entries))])
            assert int(result[0].Status) == 0
            events = wait_for(first, key1, lambda ev: kinds(ev[before1:]).count(ACL_CHANGED) >= 2, timeout=5)
            changed = [e for e in events[before1:] if (e["cluster"], e["event"]) == ACL_CHANGED]
            assert changed[1]["at"] - written_at < 1.0, "AccessControlEntryChanged took over a second"
            assert [e["data"].changeType for e in changed] == [AC.Enums.ChangeTypeEnum.kChanged,
                                                               AC.Enums.ChangeTypeEnum.kAdded]
            assert all(e["data"].adminNodeID == 112233 and e["data"].fabricIndex == 1 for e in changed)
            time.sleep(1.0)
            assert ACL_CHANGED not in kinds(second.call("reports", key2)[before2:]), "fabric 2 saw fabric 1's ACL"

            # SIGTERM: ShutDown reaches both subscribers before the process ends.
            last_number = max(e["number"] for e in first.call("reports", key1))
            assert device.stop() == 0
            for ctrl, key in ((first, key1), (second, key2)):
                wait_for(ctrl, key, lambda ev: SHUT_DOWN in kinds(ev), timeout=2)
            shut_down = next(e for e in first.call("reports", key1) if (e["cluster"], e["event"]) == SHUT_DOWN)
            assert shut_down["number"] > last_number

            # The restart: the controllers resubscribe by themselves and get the new StartUp, numbered higher.
            count = len(first.call("reports", key1))
            device.start()
            events = wait_for(first, key1, lambda ev: START_UP in kinds(ev[count:]), timeout=90)
            new_start = next(e for e in events[count:] if (e["cluster"], e["event"]) == START_UP)
            assert new_start["number"] > shut_down["number"]
            wait_for(second, key2, lambda ev: kinds(ev).count(START_UP) >= 2, timeout=90)
            assert "Traceback" not in device.output()
        finally:
            first.close()
            second.close()
            device.stop()
