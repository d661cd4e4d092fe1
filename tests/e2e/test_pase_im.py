"""Issue 3 end to end: the real CHIP controller talks to a running jfds-device over PASE.

One device and one controller per module, each in its own network namespace, joined by a veth pair.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import PYTHON, ChipController, DeviceProcess, RemoteError, Topology, topology, workdir
from tests.e2e.raw_objects import NodeLabelAsUnsignedInt

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.clusters import Attribute  # noqa: E402

PASSCODE = 20202021
NODE_ID = 0x1234
BI = Clusters.BasicInformation
GC = Clusters.GeneralCommissioning
UL = Clusters.UserLabel


@pytest.fixture(scope="module")
def net() -> Iterator[Topology]:
    with topology() as topo:
        yield topo


@pytest.fixture(scope="module")
def tmp(net: Topology) -> Iterator[Path]:
    with workdir("jfds-e2e-pase-") as path:
        yield path


@pytest.fixture(scope="module")
def device(net: Topology, tmp: Path) -> Iterator[DeviceProcess]:
    proc = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def ctrl(net: Topology, tmp: Path, device: DeviceProcess) -> Iterator[ChipController]:
    controller = ChipController(net.ctl, tmp / "ctrl")
    try:
        controller.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, NODE_ID, 5540, timeout=30)
        # PASE establishment arms a 60 s fail-safe whose expiry ends the session (as in the CHIP SDK); like a
        # commissioner, extend it to MaxCumulativeFailsafeSeconds so the module's tests share one session.
        armed = controller.call("SendCommand", NODE_ID, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=900,
                                                                                   breadcrumb=0))
        assert armed.errorCode == GC.Enums.CommissioningErrorEnum.kOk
        yield controller
    finally:
        controller.close()


def read(ctrl: ChipController, *paths: Any, **kwargs: Any) -> Any:
    return ctrl.call("ReadAttribute", NODE_ID, list(paths), **kwargs)


def value(result: Any, endpoint: int, cluster: Any, attribute: Any) -> Any:
    return result[endpoint][cluster][attribute]


def status_of(failure: Any) -> int:
    """The IM status carried by a ValueDecodeFailure (or its repr when it crossed the pipe as text)."""
    reason = failure.Reason if hasattr(failure, "Reason") else failure
    return int(reason.status)


def test_whole_node_wildcard_read_has_every_endpoint_cluster_and_attribute(ctrl: ChipController) -> None:
    result = read(ctrl, "*")
    assert set(result) == {0, 1}
    failures = [
        (ep, cluster, attribute, data)
        for ep, clusters in result.items()
        for cluster, attributes in clusters.items()
        for attribute, data in attributes.items()
        if isinstance(data, Attribute.ValueDecodeFailure)
    ]
    assert failures == []
    descriptor = Clusters.Descriptor
    # The Joint Fabric Datastore serves only its anchor fabric: over PASE a wildcard read skips it (as a path the
    # ACL denies), though the Descriptor lists it.
    jfds = Clusters.JointFabricDatastore.id
    for ep, clusters in result.items():
        servers = value(result, ep, descriptor, descriptor.Attributes.ServerList)
        assert {c.id for c in clusters if hasattr(c, "id")} == set(servers) - {jfds}
        for cluster in clusters:
            if cluster is Attribute.DataVersion:
                continue
            listed = clusters[cluster][cluster.Attributes.AttributeList]
            present = {a.attribute_id for a in clusters[cluster] if hasattr(a, "attribute_id")}
            assert present == set(listed), cluster
    assert value(result, 0, BI, BI.Attributes.VendorID) == 0xFFF1
    assert value(result, 0, BI, BI.Attributes.ProductID) == 0x8000
    assert 0x0130 in [d.deviceType for d in value(result, 1, descriptor, descriptor.Attributes.DeviceTypeList)]
    assert jfds in value(result, 1, descriptor, descriptor.Attributes.ServerList)


def test_write_node_label_reads_back(ctrl: ChipController) -> None:
    label = f"kitchen-{random.randrange(1000)}"
    [status] = ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel(label))])
    assert int(status.Status) == 0
    assert value(read(ctrl, (0, BI.Attributes.NodeLabel)), 0, BI, BI.Attributes.NodeLabel) == label


def test_subscription_reports_a_node_label_change(ctrl: ChipController) -> None:
    key = ctrl.call("subscribe", NODE_ID, [(0, BI.Attributes.NodeLabel)], 0, 10)
    try:
        ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel("subscribed"))])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reports = ctrl.call("reports", key)
            if any(report[1] == "subscribed" for report in reports):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no report of the change; got {reports}")
    finally:
        ctrl.call("cancel", key)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ((9, BI.Attributes.NodeLabel), 0x7F),  # UNSUPPORTED_ENDPOINT
        ((1, BI.Attributes.NodeLabel), 0xC3),  # UNSUPPORTED_CLUSTER
        ((0, Clusters.JointFabricDatastore.Attributes.FriendlyName), 0xC3),
    ],
)
def test_read_errors_carry_the_im_status(ctrl: ChipController, path: Any, status: int) -> None:
    [failure] = attribute_values(read(ctrl, path))
    assert isinstance(failure, Attribute.ValueDecodeFailure)
    assert status_of(failure) == status


def attribute_values(result: Any) -> list[Any]:
    return [
        data
        for clusters in result.values()
        for attributes in clusters.values()
        for attribute, data in attributes.items()
        if attribute is not Attribute.DataVersion
    ]


def test_unsupported_attribute_and_command(ctrl: ChipController) -> None:
    [failure] = attribute_values(read(ctrl, (0, BI.Attributes.ProductURL)))  # optional, not implemented
    assert status_of(failure) == 0x86  # UNSUPPORTED_ATTRIBUTE
    with pytest.raises(RemoteError) as err:  # BasicInformation has no commands besides events-related ones
        ctrl.call("SendCommand", NODE_ID, 0, Clusters.GeneralCommissioning.Commands.SetTCAcknowledgements(
            TCVersion=1, TCUserResponse=1))
    assert err.value.status == 0x81  # UNSUPPORTED_COMMAND


def test_write_errors_carry_the_im_status(ctrl: ChipController) -> None:
    [readonly] = ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.VendorName("x"))])
    assert int(readonly.Status) == 0x88  # UNSUPPORTED_WRITE
    [too_long] = ctrl.call("WriteAttribute", NODE_ID, [(0, BI.Attributes.NodeLabel("x" * 33))])
    assert int(too_long.Status) == 0x87  # CONSTRAINT_ERROR
    [wrong_type] = ctrl.call("WriteAttribute", NODE_ID, [(0, NodeLabelAsUnsignedInt(12))])
    assert int(wrong_type.Status) == 0x87  # CONSTRAINT_ERROR for a wrong TLV type (see errors.schema_error_status)
    label = value(read(ctrl, (0, BI.Attributes.NodeLabel)), 0, BI, BI.Attributes.NodeLabel)
    assert isinstance(label, str)


def test_large_list_is_written_and_read_in_chunks(ctrl: ChipController) -> None:
    from clusters.user_label.schema import LabelStruct
    from jfds_device.codec import schema, tlv
    from jfds_device.im.server import DEFAULT_MAX_PAYLOAD

    labels = [UL.Structs.LabelStruct(label=f"label-{i:03}", value=f"value-{i:03}") for i in range(100)]
    ours = [LabelStruct(label=x.label, value=x.value) for x in labels]
    # The list alone is several times what one message carries, so both directions must be chunked.
    assert len(tlv.encode(schema.List(schema.StructType(LabelStruct)).to_tlv(ours))) > 2 * DEFAULT_MAX_PAYLOAD
    [status] = ctrl.call("WriteAttribute", NODE_ID, [(0, UL.Attributes.LabelList(labels))])
    assert int(status.Status) == 0
    assert value(read(ctrl, (0, UL.Attributes.LabelList)), 0, UL, UL.Attributes.LabelList) == labels
    whole = read(ctrl, "*")
    assert value(whole, 0, UL, UL.Attributes.LabelList) == labels


def test_garbage_datagrams_do_not_disturb_the_device(net: Topology, ctrl: ChipController) -> None:
    script = (
        "import os, random, socket\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "rng = random.Random(7)\n"
        "for i in range(400):\n"
        "    n = rng.choice([0, 1, 8, 26, 60, 200, 1200])\n"
        "    data = bytes([0, 0, 0, 0]) + os.urandom(n) if i % 3 else os.urandom(n)\n"
        f"    s.sendto(data, ('{net.dev_ip6}', 5540))\n"
    )
    subprocess.run(["ip", "netns", "exec", net.ctl, PYTHON, "-c", script], check=True, timeout=30)
    result = read(ctrl, (0, BI.Attributes.VendorID))
    assert value(result, 0, BI, BI.Attributes.VendorID) == 0xFFF1



def test_arm_fail_safe_returns_its_response_and_disarming_ends_the_pase_session(
    net: Topology, ctrl: ChipController
) -> None:
    """Next to last: disarming (ArmFailSafe 0) expires the fail-safe, which ends the PASE session that armed it
    (Core spec 11.10.7.2.1; the CHIP SDK evicts it too). A new PASE session under a new node id follows."""
    response = ctrl.call("SendCommand", NODE_ID, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=60, breadcrumb=7))
    assert isinstance(response, GC.Commands.ArmFailSafeResponse)
    assert response.errorCode == GC.Enums.CommissioningErrorEnum.kOk
    assert value(read(ctrl, (0, GC.Attributes.Breadcrumb)), 0, GC, GC.Attributes.Breadcrumb) == 7
    disarm = ctrl.call("SendCommand", NODE_ID, 0, GC.Commands.ArmFailSafe(expiryLengthSeconds=0, breadcrumb=0))
    assert disarm.errorCode == GC.Enums.CommissioningErrorEnum.kOk
    with pytest.raises(RemoteError):
        read(ctrl, (0, GC.Attributes.Breadcrumb), timeout=30)
    ctrl.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, NODE_ID + 1, 5540, timeout=30)
    result = ctrl.call("ReadAttribute", NODE_ID + 1, [(0, GC.Attributes.Breadcrumb)])
    assert value(result, 0, GC, GC.Attributes.Breadcrumb) == 0  # the expiry reset it


def test_restart_keeps_node_label_and_unique_id(net: Topology, device: DeviceProcess, ctrl: ChipController) -> None:
    """Runs last in this module: it restarts the shared device (the session of NODE_ID + 1 is current)."""
    ctrl.call("WriteAttribute", NODE_ID + 1, [(0, BI.Attributes.NodeLabel("survivor"))])
    before = ctrl.call("ReadAttribute", NODE_ID + 1, [(0, BI.Attributes.UniqueID)])
    assert device.stop() == 0
    device.start()
    # The controller would reuse its (now dead) PASE session; a new node id forces a new handshake.
    ctrl.call("EstablishPASESessionIP", net.dev_ip6, PASSCODE, NODE_ID + 2, 5540, timeout=30)
    after = ctrl.call("ReadAttribute", NODE_ID + 2, [(0, BI.Attributes.UniqueID), (0, BI.Attributes.NodeLabel)])
    assert value(after, 0, BI, BI.Attributes.NodeLabel) == "survivor"
    assert value(after, 0, BI, BI.Attributes.UniqueID) == value(before, 0, BI, BI.Attributes.UniqueID)
