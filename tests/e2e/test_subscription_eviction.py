"""Issue 9 end to end: the subscription pool shared by fabrics, and the Core spec 8.5.1 eviction rule, against
the CHIP SDK's Python controller on four fabrics (one controller process per fabric, several CASE identities each).

Fabrics 1 to 3 borrow beyond their guaranteed share until the node's pool is full. Fabric 4 then still gets its
whole share: each of its subscriptions evicts the oldest subscription of a fabric beyond its share, and never takes
a fabric below its own share. A fabric beyond its share is refused while the pool is full. The evicted subscriptions
just end (as the CHIP SDK's ReadHandler::Close: no message); every other one keeps reporting. The controllers of the
evicted ones subscribe again when they notice, and are refused while their fabric is at its share: no ping-pong.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from jfds_device.im.admission import SubscriptionLimits
from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, topology, workdir

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters import Attribute  # noqa: E402
from chip.clusters.Types import NullValue  # noqa: E402

PASSCODE = 20202021
BI = Clusters.BasicInformation
AC = Clusters.AccessControl
RESOURCE_EXHAUSTED = 0x89
LIMITS = SubscriptionLimits()
PER_SESSION = LIMITS.per_session.subscriptions
SHARE = LIMITS.fabric_share.subscriptions
BORROWED = LIMITS.per_fabric.subscriptions  # what a fabric may hold while others leave the pool unused
LENDERS = LIMITS.pool.subscriptions // BORROWED  # fabrics that fill the pool by borrowing
PATH = [(0, BI.Attributes.NodeLabel)]
# Short, so that the controllers of evicted subscriptions notice the silence (and subscribe again) within the test.
MAX_INTERVAL = 3


class Fabric:
    """One fabric: its controller process (commissioner identity at index 0, more CASE identities after)."""

    def __init__(self, index: int, ctrl: ChipController, device_node_id: int) -> None:
        self.index, self.ctrl, self.node = index, ctrl, device_node_id
        self.identities = [0]
        self.subscriptions: list[tuple[int, int]] = []  # (identity, key), oldest first

    def values(self, result: Any) -> list[Any]:
        return [d for c in result.values() for a in c.values() for k, d in a.items() if k is not Attribute.DataVersion]

    def add_identities(self, count: int) -> None:
        node_ids = [0x6000 + 0x100 * self.index + i for i in range(count)]
        admin_entry = self.values(self.ctrl.call("ReadAttribute", self.node, [(0, AC.Attributes.Acl)]))[0][0]
        view = AC.Structs.AccessControlEntryStruct(
            privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kView,
            authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase,
            subjects=node_ids,
            targets=NullValue,
        )
        [status] = self.ctrl.call("WriteAttribute", self.node, [(0, AC.Attributes.Acl([admin_entry, view]))])
        assert int(status.Status) == 0, status
        self.identities += [self.ctrl.call("new_controller", node_id) for node_id in node_ids]

    def subscribe(self, identity: int) -> int:
        key = self.ctrl.call("subscribe", self.node, PATH, 0, MAX_INTERVAL, controller=identity,
                             keep_subscriptions=True)
        self.subscriptions.append((identity, key))
        return key

    def fill(self, count: int) -> None:
        """``count`` subscriptions, each identity holding as many as its session may."""
        for i in range(count):
            self.subscribe(self.identities[i // PER_SESSION])

    def reported(self, key: int, label: str) -> bool:
        return any(report[1] == label for report in self.ctrl.call("reports", key))


@pytest.fixture(scope="module")
def fabrics() -> Iterator[tuple[DeviceProcess, list[Fabric]]]:
    with topology() as net, workdir("jfds-e2e-eviction-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname)
        controllers: list[ChipController] = []
        try:
            first = ChipController(net.ctl, tmp / "ctrl1")
            controllers.append(first)
            assert first.call("CommissionOnNetwork", 0x71, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840,
                              timeout=90) == 0x71
            result = [Fabric(1, first, 0x71)]
            for index in range(2, LENDERS + 2):
                params = first.call("OpenCommissioningWindow", 0x71, 180, 1000, 3000 + index, 1, timeout=30)
                ctrl = ChipController(net.ctl, tmp / f"ctrl{index}", node_id=0x7000 + index, fabric_id=index)
                controllers.append(ctrl)
                assert ctrl.call("CommissionWithCode", params.setupManualCode, 0x70 + index, timeout=90) == 0x70 + index
                result.append(Fabric(index, ctrl, 0x70 + index))
            yield device, result
        finally:
            for ctrl in controllers:
                ctrl.close()
            device.stop()


def refusal_status(err: RemoteError) -> int | None:
    code = err.info.get("code")  # a failed subscription carries the IM status as CHIP error 0x5xx
    return err.status if err.status is not None else (code & 0xFF if isinstance(code, int) and code >> 8 == 5 else None)


def test_a_fabric_within_its_share_evicts_borrowed_subscriptions_oldest_first(
    fabrics: tuple[DeviceProcess, list[Fabric]],
) -> None:
    device, all_fabrics = fabrics
    lenders, newcomer = all_fabrics[:LENDERS], all_fabrics[LENDERS]
    assert LIMITS.pool.subscriptions == LENDERS * BORROWED, "the pool must be exactly full after the lenders"
    for fabric in lenders:
        fabric.add_identities(-(-BORROWED // PER_SESSION) - 1)
        fabric.fill(BORROWED)
    newcomer.add_identities(-(-SHARE // PER_SESSION) - 1)
    assert device.output().count("evicted:") == 0

    # The pool is full. The newcomer, within its share, evicts the oldest subscription of a fabric beyond its own.
    newcomer.subscribe(newcomer.identities[0])
    assert device.output().count("evicted:") == 1
    # The first lender is below its cap again but beyond its share: with the pool full it is refused, and
    # nothing is evicted for it.
    with pytest.raises(RemoteError) as err:
        lenders[0].subscribe(lenders[0].identities[-1])
    assert refusal_status(err.value) == RESOURCE_EXHAUSTED, err.value.info
    assert device.output().count("evicted:") == 1

    # The newcomer gets its whole share, oldest first from the first lender, which gives back what it borrowed
    # and not one more: at its share with the pool full, the newcomer is refused like the others.
    for i in range(1, SHARE):
        newcomer.subscribe(newcomer.identities[i // PER_SESSION])
    assert device.output().count("evicted:") == SHARE
    with pytest.raises(RemoteError) as err:
        newcomer.subscribe(newcomer.identities[-1])
    assert refusal_status(err.value) == RESOURCE_EXHAUSTED, err.value.info
    assert device.output().count("evicted:") == SHARE

    evicted = lenders[0].subscriptions[: BORROWED - SHARE]
    assert len(evicted) == SHARE  # the first lender borrowed twice its share: exactly what the newcomer needed
    kept = {(f.index, key) for f in all_fabrics for _, key in f.subscriptions} - {(1, key) for _, key in evicted}
    assert len(kept) == LIMITS.pool.subscriptions

    # Every subscription still established reports a change; the evicted ones just ended, without a report.
    by_index = {f.index: f for f in all_fabrics}

    def all_report(label: str) -> None:
        [status] = lenders[0].ctrl.call("WriteAttribute", lenders[0].node, [(0, BI.Attributes.NodeLabel(label))])
        assert int(status.Status) == 0
        deadline = time.monotonic() + 20
        waiting = set(kept)
        while waiting and time.monotonic() < deadline:
            waiting = {(i, key) for i, key in waiting if not by_index[i].reported(key, label)}
            time.sleep(0.2)
        assert not waiting, f"{len(waiting)} established subscriptions did not report: {sorted(waiting)[:5]}"

    all_report("after")
    assert not any(lenders[0].reported(key, "after") for _, key in evicted)

    # Their controller notices the silence after MaxInterval and subscribes again on its own (the SDK's
    # auto-resubscribe). The first lender is at its share and the pool is full: refused, and nothing more is
    # evicted for it, so evictions do not ping-pong; everyone else keeps reporting.
    refusal = "subscription refused: pool full and fabric 1 is beyond its guaranteed share"
    refused_before = device.output().count(refusal)  # the first lender's own attempt above
    assert refused_before == 1
    deadline = time.monotonic() + 30
    while device.output().count(refusal) == refused_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert device.output().count(refusal) > refused_before, "no evicted subscriber subscribed again"
    assert device.output().count("evicted:") == SHARE
    all_report("later")
    assert not any(lenders[0].reported(key, "later") for _, key in evicted)
