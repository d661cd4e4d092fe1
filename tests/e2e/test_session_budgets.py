"""Issue 9, session budgets end to end, against the CHIP SDK's Python controller (home-assistant-chip-core 2025.7.0).

Unprivileged nodes of the admin's fabric (a second CHIP controller process on the same fabric, hosting two node ids
without an ACL entry) open CASE sessions to jfds-device far beyond its inbound budget (17: 3 per supported fabric
+ 2). The admin's session is never evicted: its subscription keeps reporting, its reads and writes keep working, and
every eviction the device logs names one of the flooding node ids (transport/eviction.py: a node that opens many
sessions loses its own first).

Many node ids with one session each (no duplicated peer to evict first): the admin's idle session, the least
recently used of all, stays because it carries a subscription.

A second fabric's nodes flooding sessions take nothing from the first fabric's 3 sessions (its guaranteed minimum):
every eviction is on the flooding fabric.

The flood runs in its own controller process because the controller forgets a session with ExpireSessions(node),
which in the SDK matches sessions by (compressed fabric id, node id): in one process it would also drop the
admin's session on the controller side.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, Topology, topology, workdir

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters import Attribute  # noqa: E402

BI = Clusters.BasicInformation
OC = Clusters.OperationalCredentials
PASSCODE = 20202021
NODE_ID = 1
ADMIN_NODE_ID = 112233  # ChipController's default: the commissioner, holder of the fabric's Administer entry
STRANGERS = (0x5001, 0x5002)  # same fabric, no ACL entry: CASE works, every read is UNSUPPORTED_ACCESS
INBOUND_BUDGET = 3 * 5 + 2
UNSUPPORTED_ACCESS = 0x7E
FABRIC2_ADMIN, FABRIC2_STRANGER, FABRIC2_DEVICE_NODE_ID = 0x4444, 0x4445, 0x5678
FABRIC1_OTHERS = (0x6001, 0x6002)  # two more fabric-1 node ids: with the admin, exactly the fabric's minimum of 3
CASE_ESTABLISHED = re.compile(r"jfds_device\.node\.handshakes: CASE session \d+ established")
EVICTION = re.compile(r"inbound session budget \((\d+)\) full: evicting session \d+ "
                      r"\(fabric (\d+), peer ([0-9A-F]{16})")


@dataclass
class Env:
    net: Topology
    tmp: Path
    device: DeviceProcess
    ctrl: ChipController


@pytest.fixture
def env() -> Iterator[Env]:
    with topology() as net, workdir("jfds-e2e-sessions-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname)
        ctrl = ChipController(net.ctl, tmp / "ctrl")
        try:
            assert ctrl.call("CommissionOnNetwork", NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840,
                             timeout=90) == NODE_ID
            yield Env(net, tmp, device, ctrl)
        finally:
            ctrl.close()
            device.stop()


def read_one(env: Env, path: tuple[int, Any], **kwargs: Any) -> Any:
    endpoint, attribute = path
    result = env.ctrl.call("ReadAttribute", NODE_ID, [path], **kwargs)
    return result[endpoint][BI][attribute]


def wait_for_report(env: Env, key: int, label: str, timeout: float) -> float:
    """Seconds until subscription ``key`` reported NodeLabel == ``label``; fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(value == label for _, value in env.ctrl.call("reports", key)):
            return time.monotonic() - started
        time.sleep(0.1)
    lines = [line for line in env.device.output().splitlines() if "evict" in line or "ubscri" in line]
    pytest.fail(f"no report of NodeLabel {label!r} in {timeout} s: {env.ctrl.call('reports', key)[-3:]}; "
                f"resubscribe attempts {env.ctrl.call('resubscriptions', key)}; device log:\n" + "\n".join(lines[-30:]))


def evictions(env: Env) -> list[tuple[int, int, int]]:
    """(budget, fabric index, peer node id) of every inbound eviction the device logged."""
    return [(int(b), int(f), int(p, 16)) for b, f, p in EVICTION.findall(env.device.output())]


@contextlib.contextmanager
def flooder(env: Env, node_ids: tuple[int, ...] = STRANGERS) -> Iterator[tuple[ChipController, list[int]]]:
    """Another controller process on the admin's fabric (a copy of its storage: same root CA and fabric) with a
    controller for each of ``node_ids`` (at most 12: each takes a slot of the process's fabric table); yields it
    and the controller indexes to flood from."""
    directory = env.tmp / f"flooder-{node_ids[0]:x}"
    directory.mkdir()
    storage = directory / "chip_storage.json"
    shutil.copy(env.ctrl.storage, storage)
    ctrl = ChipController(env.net.ctl, directory, node_id=node_ids[0], storage=storage)
    try:
        yield ctrl, [0, *(ctrl.call("new_controller", node_id) for node_id in node_ids[1:])]
    finally:
        ctrl.close()


def test_an_unprivileged_node_flooding_sessions_never_evicts_the_admin(env: Env) -> None:
    # The admin subscribes with a long MaxInterval: if its session were evicted, the controller would only notice
    # after ~60 s (liveness), so a lost session shows up below as missing reports and a failing write.
    key = env.ctrl.call("subscribe", NODE_ID, [(0, BI.Attributes.NodeLabel)], 0, 60)
    with flooder(env) as (flood, strangers):
        denied = flood.call("ReadAttribute", NODE_ID, [(0, BI.Attributes.VendorName)])
        denied_value = denied[0][BI][BI.Attributes.VendorName]
        assert isinstance(denied_value, Attribute.ValueDecodeFailure)
        assert int(denied_value.Reason.status) == UNSUPPORTED_ACCESS

        # The flood runs in a thread (its own controller process) while the admin keeps writing, reading and
        # getting its subscription's reports: all of it must keep working throughout.
        bursts: list[int] = []
        failures: list[BaseException] = []

        def run_flood() -> None:
            try:
                for _ in range(3):  # each burst alone is more than the whole inbound budget
                    for via in strangers:
                        bursts.append(flood.call("open_sessions", NODE_ID, INBOUND_BUDGET // 2 + 2, via, timeout=120))
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        started = time.monotonic()
        thread = threading.Thread(target=run_flood, name="flood")
        thread.start()
        rounds = 0
        try:
            while thread.is_alive() or rounds == 0:
                label = f"admin round {rounds}"
                [status] = env.ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel(label))])
                assert int(status.Status) == 0, status
                wait_for_report(env, key, label, timeout=5)
                assert read_one(env, (0, BI.Attributes.NodeLabel)) == label
                rounds += 1
        finally:
            thread.join(180)
        flood_seconds = time.monotonic() - started
        assert not failures, failures
        opened = sum(bursts)
        [status] = env.ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel("after the flood"))])
        assert int(status.Status) == 0, status
        wait_for_report(env, key, "after the flood", timeout=5)

    logged = evictions(env)
    assert opened == 3 * len(STRANGERS) * (INBOUND_BUDGET // 2 + 2)
    # The flood really overflowed the table (every session past the budget evicted one) ...
    assert len(logged) >= opened - INBOUND_BUDGET, (len(logged), opened)
    assert {budget for budget, _, _ in logged} == {INBOUND_BUDGET}
    # ... and only ever a stranger's session went: the admin's (and its subscription) stayed.
    assert {peer for _, _, peer in logged} <= set(STRANGERS), logged
    assert env.ctrl.call("resubscriptions", key) == []
    # One CASE session served the admin throughout: it never had to reconnect.
    case_sessions = re.findall(r"CASE session \d+ established", env.device.output())
    assert len(case_sessions) == 1 + opened + 1, len(case_sessions)  # commissioning, the flood, its first read
    assert rounds >= 3, rounds  # the admin's checks really ran during the flood
    print(f"TIMING {opened} flooding sessions in {flood_seconds:.1f} s, {len(logged)} evictions, {rounds} admin "
          f"rounds during the flood")


def test_a_second_fabric_flooding_sessions_takes_nothing_from_the_first_fabrics_minimum(env: Env) -> None:
    key = env.ctrl.call("subscribe", NODE_ID, [(0, BI.Attributes.NodeLabel)], 0, 60)
    others = [env.ctrl.call("new_controller", node_id) for node_id in FABRIC1_OTHERS]
    for via in others:  # each sets up its CASE session (its read is denied: no ACL entry)
        env.ctrl.call("ReadAttribute", NODE_ID, [(0, BI.Attributes.VendorName)], _controller=via)
    params = env.ctrl.call("OpenCommissioningWindow", NODE_ID, 180, 1000, 3333, 1, timeout=30)
    fabric2 = ChipController(env.net.ctl, env.tmp / "fabric2", node_id=FABRIC2_ADMIN, fabric_id=2)
    try:
        assert fabric2.call("CommissionWithCode", params.setupManualCode, FABRIC2_DEVICE_NODE_ID,
                            timeout=90) == FABRIC2_DEVICE_NODE_ID
        fabric2_index = fabric2.call("ReadAttribute", FABRIC2_DEVICE_NODE_ID, [(0, OC.Attributes.CurrentFabricIndex)]
                                     )[0][OC][OC.Attributes.CurrentFabricIndex]
        floods = [0, fabric2.call("new_controller", FABRIC2_STRANGER)]
        case_before = len(CASE_ESTABLISHED.findall(env.device.output()))
        opened = 0
        for via in floods:
            opened += fabric2.call("open_sessions", FABRIC2_DEVICE_NODE_ID, 3 * INBOUND_BUDGET // 2, via, timeout=180)
    finally:
        fabric2.close()

    # Fabric 1's three sessions all served on: the admin's subscription reports, the other two read, and none of
    # them had to set up CASE again.
    [status] = env.ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel("fabric 1 is fine"))])
    assert int(status.Status) == 0, status
    wait_for_report(env, key, "fabric 1 is fine", timeout=5)
    for via in others:
        denied = env.ctrl.call("ReadAttribute", NODE_ID, [(0, BI.Attributes.VendorName)], _controller=via)
        assert int(denied[0][BI][BI.Attributes.VendorName].Reason.status) == UNSUPPORTED_ACCESS
    assert len(CASE_ESTABLISHED.findall(env.device.output())) == case_before + opened
    logged = evictions(env)
    assert len(logged) >= opened - INBOUND_BUDGET, (len(logged), opened)
    assert {fabric for _, fabric, _ in logged} == {fabric2_index}, logged
    assert env.ctrl.call("resubscriptions", key) == []


def test_many_node_ids_with_one_session_each_leave_the_subscribers_session_alone(env: Env) -> None:
    key = env.ctrl.call("subscribe", NODE_ID, [(0, BI.Attributes.NodeLabel)], 0, 60)
    # One session per node id, 24 of them, all more recent than the admin's: every peer holds one session, so only
    # the use key (a subscription is evicted last) and LRU decide, and the admin's session is the least recent.
    opened = 0
    for first in (0x5100, 0x5200):
        with flooder(env, tuple(range(first, first + 12))) as (flood, indexes):
            for index in indexes:
                opened += flood.call("open_sessions", NODE_ID, 1, index, timeout=60)
    [status] = env.ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel("still here"))])
    assert int(status.Status) == 0, status
    wait_for_report(env, key, "still here", timeout=5)
    logged = evictions(env)
    assert opened == 24 and len(logged) >= opened - INBOUND_BUDGET + 1, (len(logged), opened)
    assert ADMIN_NODE_ID not in {peer for _, _, peer in logged}
    assert env.ctrl.call("resubscriptions", key) == []
