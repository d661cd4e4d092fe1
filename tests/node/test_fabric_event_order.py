"""What the node does around a message that removes or reverts a fabric, and in which order.

* A rolled-back UpdateNOC (ArmFailSafe(0), TC_OPCREDS_3_5 step 9) ends the fabric's sessions only after the
  message being handled is answered: its InvokeResponse leaves on one of them.
* RemoveFabric withdraws the fabric's DNS-SD record before its response (TC_CADMIN_1_15 step 12), and ends the
  fabric's sessions after it.

The Device's collaborators are stand-ins that record calls; nothing is sent.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from jfds_device.node.app import Device
from jfds_device.node.config import NodeConfig

CFID, NODE = bytes.fromhex("5D5E4932E92C812A"), 0x1234


def device(calls: list[Any], remaining_fabrics: int = 1) -> Device:
    dev = Device(NodeConfig())
    dev.stack = SimpleNamespace(  # type: ignore[assignment]
        im=None, close_fabric_sessions=lambda index: calls.append(("closed", f"session of fabric {index}")))
    dev.advertiser = SimpleNamespace(  # type: ignore[assignment]
        withdraw_operational_now=lambda cfid, node: calls.append(("withdrawn", cfid, node)),
        add_operational=lambda cfid, node: asyncio.sleep(0, calls.append(("advertised", cfid, node))))
    other = SimpleNamespace(compressed_fabric_id=b"\x00" * 8, node_id=1)  # a fabric that stays
    dev.fabrics = SimpleNamespace(fabrics=lambda include_pending=False: [other] * remaining_fabrics)  # type: ignore
    dev.anchor = SimpleNamespace(fabric_removed=lambda index: calls.append(("anchor", index)))  # type: ignore
    return dev


async def test_a_reverted_update_noc_closes_the_fabrics_sessions_after_the_current_message() -> None:
    calls: list[Any] = []
    dev = device(calls)
    dev.fabric_reverted(SimpleNamespace(fabric_index=2, compressed_fabric_id=CFID, node_id=NODE))  # type: ignore
    # The committed credentials are advertised again; no session is closed yet: the handler of ArmFailSafe(0)
    # still has to answer on them.
    assert calls == [("advertised", CFID, NODE)]
    await asyncio.sleep(0)
    assert calls[-1] == ("closed", "session of fabric 2")
    await asyncio.gather(*dev._background)


async def test_remove_fabric_withdraws_the_record_before_its_response_and_closes_sessions_after() -> None:
    calls: list[Any] = []
    dev = device(calls, remaining_fabrics=1)
    dev._advertised = {(CFID, NODE)}
    dev.fabric_removed(2)
    assert calls == [("anchor", 2), ("withdrawn", CFID, NODE)]  # before the handler returns: no await involved
    assert dev._background == set()
    await asyncio.sleep(0)
    assert calls[-1] == ("closed", "session of fabric 2")
    assert dev._advertised == set()
