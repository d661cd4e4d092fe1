"""Issue 4 end to end: the CHIP controller commissions jfds-device, reaches it over CASE, shares it with a
second admin, and is held to the ACL. The device and the controllers live in namespaces joined by a veth pair.

Tests in this module run in order and share one device: commissioning first, then what builds on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, Topology, topology, workdir

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters import Attribute  # noqa: E402
from chip.clusters.Types import NullValue  # noqa: E402

PASSCODE = 20202021
DISCRIMINATOR = 3840
NODE_ID = 0x1234
ADMIN_NODE_ID = 112233
VIEWER_NODE_ID = 0x2222
STRANGER_NODE_ID = 0x3333
BI = Clusters.BasicInformation
AC = Clusters.AccessControl
OC = Clusters.OperationalCredentials
GC = Clusters.GeneralCommissioning
UNSUPPORTED_ACCESS = 0x7E


@dataclass
class Env:
    net: Topology
    tmp: Path
    device: DeviceProcess
    ctrl: ChipController


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with topology() as net, workdir("jfds-e2e-commission-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname)
        holder = Env(net, tmp, device, ChipController(net.ctl, tmp / "ctrl"))
        try:
            yield holder
        finally:
            holder.ctrl.close()
            device.stop()


def attribute_values(result: Any) -> list[Any]:
    return [
        data
        for clusters in result.values()
        for attributes in clusters.values()
        for attribute, data in attributes.items()
        if attribute is not Attribute.DataVersion
    ]


def read_one(ctrl: ChipController, path: Any, node_id: int = NODE_ID, **kwargs: Any) -> Any:
    [data] = attribute_values(ctrl.call("ReadAttribute", node_id, [path], **kwargs))
    return data


def test_commission_on_network_by_long_discriminator(env: Env) -> None:
    started = time.monotonic()
    node = env.ctrl.call(
        "CommissionOnNetwork", NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR, DISCRIMINATOR, timeout=90
    )
    assert node == NODE_ID
    assert time.monotonic() - started < 30


def test_whole_node_read_over_case(env: Env) -> None:
    result = env.ctrl.call("ReadAttribute", NODE_ID, ["*"])
    assert set(result) == {0, 1}
    assert not [v for v in attribute_values(result) if isinstance(v, Attribute.ValueDecodeFailure)]
    fabrics = result[0][OC][OC.Attributes.Fabrics]
    assert [f.nodeID for f in fabrics] == [NODE_ID]
    assert result[0][OC][OC.Attributes.CommissionedFabrics] == 1


def test_admin_acl_entry_from_add_noc(env: Env) -> None:
    [entry] = read_one(env.ctrl, (0, AC.Attributes.Acl))
    assert entry.privilege == AC.Enums.AccessControlEntryPrivilegeEnum.kAdminister
    assert entry.authMode == AC.Enums.AccessControlEntryAuthModeEnum.kCase
    assert entry.subjects == [ADMIN_NODE_ID]


def test_view_only_identity_reads_but_cannot_write_or_invoke(env: Env) -> None:
    admin_entry = read_one(env.ctrl, (0, AC.Attributes.Acl))[0]
    view = AC.Structs.AccessControlEntryStruct(
        privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kView,
        authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase,
        subjects=[VIEWER_NODE_ID],
        targets=NullValue,
    )
    [status] = env.ctrl.call("WriteAttribute", NODE_ID, [(0, AC.Attributes.Acl([admin_entry, view]))])
    assert int(status.Status) == 0
    viewer = env.ctrl.call("new_controller", VIEWER_NODE_ID)
    stranger = env.ctrl.call("new_controller", STRANGER_NODE_ID)

    assert isinstance(read_one(env.ctrl, (0, BI.Attributes.VendorName), _controller=viewer), str)
    [write] = env.ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel("nope"))], _controller=viewer)
    assert int(write.Status) == UNSUPPORTED_ACCESS
    with pytest.raises(RemoteError) as err:
        env.ctrl.call("SendCommand", NODE_ID, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=10, breadcrumb=0),
                      _controller=viewer)
    assert err.value.status == UNSUPPORTED_ACCESS

    denied = read_one(env.ctrl, (0, BI.Attributes.VendorName), _controller=stranger)
    assert isinstance(denied, Attribute.ValueDecodeFailure)
    assert int(denied.Reason.status) == UNSUPPORTED_ACCESS


def test_restart_then_a_fresh_controller_process_reconnects_over_case(env: Env) -> None:
    storage = env.ctrl.storage
    env.ctrl.close()
    assert env.device.stop() == 0
    env.device.start()
    env.ctrl = ChipController(env.net.ctl, env.tmp / "ctrl", storage=storage)
    assert read_one(env.ctrl, (0, BI.Attributes.VendorID)) == 0xFFF1


def test_second_admin_via_enhanced_window_and_fabric_isolation(env: Env) -> None:
    params = env.ctrl.call("OpenCommissioningWindow", NODE_ID, 180, 1000, 3333, 1, timeout=30)
    second = ChipController(env.net.ctl, env.tmp / "ctrl2", node_id=0x4444, fabric_id=2)
    try:
        node = second.call("CommissionWithCode", params.setupManualCode, 0x5678, timeout=90)
        assert node == 0x5678
        fabrics = read_one(env.ctrl, (0, OC.Attributes.Fabrics), fabricFiltered=False)
        assert sorted(f.fabricID for f in fabrics) == [1, 2]
        own = read_one(env.ctrl, (0, OC.Attributes.Fabrics))
        assert [f.fabricID for f in own] == [1]
        their_acl = read_one(second, (0, AC.Attributes.Acl), node_id=0x5678)
        assert [e.subjects for e in their_acl] == [[0x4444]]
        second_index = read_one(second, (0, OC.Attributes.CurrentFabricIndex), node_id=0x5678)
    finally:
        second.close()
    response = env.ctrl.call("SendCommand", NODE_ID, 0, OC.Commands.RemoveFabric(fabricIndex=second_index))
    assert response.statusCode == OC.Enums.NodeOperationalCertStatusEnum.kOk
    fabrics = read_one(env.ctrl, (0, OC.Attributes.Fabrics), fabricFiltered=False)
    assert [f.fabricID for f in fabrics] == [1]
    every_acl = read_one(env.ctrl, (0, AC.Attributes.Acl), fabricFiltered=False)
    assert {e.fabricIndex for e in every_acl} == {1}


def test_a_new_admin_after_a_removed_one_gets_a_new_fabric_index(env: Env) -> None:
    """Fabric indexes are not reused at once (the CHIP SDK's FabricTable; TC_CADMIN_1_15 step 16): the admin
    removed by the test above had its index; the next one gets the index after it."""
    before = {f.fabricIndex for f in read_one(env.ctrl, (0, OC.Attributes.Fabrics), fabricFiltered=False)}
    params = env.ctrl.call("OpenCommissioningWindow", NODE_ID, 180, 1000, 3334, 1, timeout=30)
    third = ChipController(env.net.ctl, env.tmp / "ctrl3", node_id=0x5555, fabric_id=3)
    try:
        assert third.call("CommissionWithCode", params.setupManualCode, 0x6789, timeout=90) == 0x6789
        index = read_one(third, (0, OC.Attributes.CurrentFabricIndex), node_id=0x6789)
    finally:
        third.close()
    assert before == {1} and index == 3, (before, index)  # 2 was the removed admin's
    response = env.ctrl.call("SendCommand", NODE_ID, 0, OC.Commands.RemoveFabric(fabricIndex=index))
    assert response.statusCode == OC.Enums.NodeOperationalCertStatusEnum.kOk


def test_arm_fail_safe_0_after_update_noc_is_answered_then_the_old_noc_is_back(env: Env) -> None:
    """TC_OPCREDS_3_5 steps 4-10 with the CHIP controller: the ArmFailSafe(0) that rolls an UpdateNOC back gets its
    response on the session set up with the new NOC (the node closes the fabric's sessions only after it)."""
    original = read_one(env.ctrl, (0, OC.Attributes.NOCs))[0].noc
    armed = env.ctrl.call("SendCommand", NODE_ID, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=60, breadcrumb=1))
    assert armed.errorCode == GC.Enums.CommissioningErrorEnum.kOk
    csr = env.ctrl.call("SendCommand", NODE_ID, 0, OC.Commands.CSRRequest(CSRNonce=bytes(32), isForUpdateNOC=True))
    chain = env.ctrl.call("issue_noc_chain", csr.NOCSRElements, NODE_ID)
    updated = env.ctrl.call("SendCommand", NODE_ID, 0, OC.Commands.UpdateNOC(NOCValue=chain["noc"],
                                                                            ICACValue=chain["icac"]))
    assert updated.statusCode == OC.Enums.NodeOperationalCertStatusEnum.kOk
    env.ctrl.call("ExpireSessions", NODE_ID)
    assert read_one(env.ctrl, (0, OC.Attributes.NOCs))[0].noc == chain["noc"]  # a CASE session on the new NOC
    disarmed = env.ctrl.call("SendCommand", NODE_ID, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=0, breadcrumb=0))
    assert disarmed.errorCode == GC.Enums.CommissioningErrorEnum.kOk
    env.ctrl.call("ExpireSessions", NODE_ID)
    assert read_one(env.ctrl, (0, OC.Attributes.NOCs))[0].noc == original  # rolled back; reached over CASE again


def test_commission_with_the_printed_manual_code(tmp_path: Path) -> None:
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        ctrl = ChipController(net.ctl, tmp_path / "ctrl")
        try:
            assert "Manual pairing code: 34970112332" in device.output()
            assert ctrl.call("CommissionWithCode", "34970112332", 0x99, timeout=90) == 0x99
            assert read_one(ctrl, (0, BI.Attributes.ProductID), node_id=0x99) == 0x8000
        finally:
            ctrl.close()
            device.stop()


def test_fail_safe_expiry_rolls_back_root_and_noc(tmp_path: Path) -> None:
    with topology() as net:
        device = DeviceProcess(net.dev, tmp_path / "state", "--interface", net.dev_ifname)
        ctrl = ChipController(net.ctl, tmp_path / "ctrl")
        try:
            ctrl.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, 0x77, 5540, timeout=30)
            armed = ctrl.call("SendCommand", 0x77, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=3, breadcrumb=1))
            assert armed.errorCode == GC.Enums.CommissioningErrorEnum.kOk
            csr = ctrl.call("SendCommand", 0x77, 0, OC.Commands.CSRRequest(CSRNonce=bytes(range(32))))
            chain = ctrl.call("issue_noc_chain", csr.NOCSRElements, 0x77)
            ctrl.call("SendCommand", 0x77, 0, OC.Commands.AddTrustedRootCertificate(rootCACertificate=chain["rcac"]))
            noc = ctrl.call("SendCommand", 0x77, 0, OC.Commands.AddNOC(
                NOCValue=chain["noc"], ICACValue=chain["icac"], IPKValue=chain["ipk"],
                caseAdminSubject=ADMIN_NODE_ID, adminVendorId=0xFFF1))
            assert noc.statusCode == OC.Enums.NodeOperationalCertStatusEnum.kOk
            assert len(read_one(ctrl, (0, OC.Attributes.TrustedRootCertificates), node_id=0x77)) == 1
            time.sleep(4)  # let the fail-safe expire; the node drops the PASE session that armed it
            ctrl.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, 0x78, 5540, timeout=30)
            assert read_one(ctrl, (0, OC.Attributes.CommissionedFabrics), node_id=0x78) == 0
            assert read_one(ctrl, (0, OC.Attributes.TrustedRootCertificates), node_id=0x78) == []
            found = ctrl.call("DiscoverCommissionableNodes", filterType=DiscoveryFilterType.LONG_DISCRIMINATOR,
                              filter=DISCRIMINATOR, stopOnFirst=True, timeoutSecond=5)
            assert found, "the device should advertise itself as commissionable again"
        finally:
            ctrl.close()
            device.stop()
