"""The datastore belongs to its anchor fabric (issue 9), end to end with two real CHIP controllers.

The CHIP controller on fabric 1 commissions jfds-device (which becomes fabric 1's anchor) and opens an enhanced
commissioning window; a second CHIP controller with its own CA joins through it as fabric 2. Neither over the
PASE session of that second commissioning nor over CASE on fabric 2 does the Joint Fabric Datastore show or
change anything (UNSUPPORTED_ACCESS on concrete paths, nothing on wildcards), while fabric 1 keeps full use.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, topology, workdir

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters import Attribute  # noqa: E402
from chip.clusters.Types import NullValue  # noqa: E402

JF = Clusters.JointFabricDatastore
JFA = Clusters.JointFabricAdministrator
OC = Clusters.OperationalCredentials
PASSCODE = 20202021
NODE_ID = 1  # jfds-device on fabric 1
SECOND_NODE_ID = 0x5678  # jfds-device on fabric 2
EP = 1
UNSUPPORTED_ACCESS = 0x7E
INVALID_ACTION = 0x80
JFDS_ATTRIBUTES = [
    JF.Attributes.AnchorRootCA, JF.Attributes.AnchorNodeID, JF.Attributes.AnchorVendorID,
    JF.Attributes.FriendlyName, JF.Attributes.GroupKeySetList, JF.Attributes.GroupList, JF.Attributes.NodeList,
    JF.Attributes.AdminList, JF.Attributes.Status, JF.Attributes.EndpointGroupIDList,
    JF.Attributes.EndpointBindingList, JF.Attributes.NodeKeySetList, JF.Attributes.NodeACLList,
    JF.Attributes.NodeEndpointList,
]  # fmt: skip


def key_set(set_id: int) -> Any:
    return JF.Structs.DatastoreGroupKeySetStruct(
        groupKeySetID=set_id, groupKeySecurityPolicy=0, epochKey0=b"k" * 16, epochStartTime0=1,
        epochKey1=NullValue, epochStartTime1=NullValue, epochKey2=NullValue, epochStartTime2=NullValue,
        groupKeyMulticastPolicy=JF.Enums.DatastoreGroupKeyMulticastPolicyEnum.kPerGroupID,
    )  # fmt: skip


def read_value(ctrl: ChipController, node_id: int, attribute: Any) -> Any:
    result = ctrl.call("ReadAttribute", node_id, [(EP, attribute)])
    return result[EP][JF][attribute]


def assert_datastore_closed(ctrl: ChipController, node_id: int) -> None:
    """Every JFDS attribute → UNSUPPORTED_ACCESS, a wildcard read has no JFDS data, commands are refused."""
    for attribute in JFDS_ATTRIBUTES:
        data = read_value(ctrl, node_id, attribute)
        assert isinstance(data, Attribute.ValueDecodeFailure), f"{attribute.__name__} was served: {data!r}"
        assert int(data.Reason.status) == UNSUPPORTED_ACCESS, attribute.__name__
    everything = ctrl.call("ReadAttribute", node_id, ["*"])
    assert JF not in everything.get(EP, {}), "a wildcard read returned JFDS data"
    assert Clusters.Descriptor in everything[EP], "the rest of the node stays readable"
    on_cluster = ctrl.call("ReadAttribute", node_id, [(EP, JF)])
    assert JF not in on_cluster.get(EP, {})
    for command in (JF.Commands.AddPendingNode(nodeID=0x9999, friendlyName="intruder"),
                    JF.Commands.AddKeySet(groupKeySet=key_set(0x0BAD))):  # fmt: skip
        with pytest.raises(RemoteError) as err:
            ctrl.call("SendCommand", node_id, EP, command)
        assert err.value.status == UNSUPPORTED_ACCESS, command


def subscription_status(err: RemoteError) -> int | None:
    """The IM status that refused a subscription: the SDK's ReadClient reports it as CHIP error 0x5xx (its IM
    global status range, connectedhomeip src/lib/core/CHIPError.h)."""
    if err.status is not None:
        return err.status
    code = err.info.get("code")
    return code & 0xFF if isinstance(code, int) and code >> 8 == 0x05 else None


def node_ids(ctrl: ChipController) -> list[int]:
    return sorted(n.nodeID for n in read_value(ctrl, NODE_ID, JF.Attributes.NodeList))


def test_only_the_anchor_fabric_reaches_the_datastore() -> None:
    with topology() as net, workdir("jfds-e2e-boundaries-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname)
        first = ChipController(net.ctl, tmp / "ctrl1")
        second = ChipController(net.ctl, tmp / "ctrl2", node_id=0x4444, fabric_id=2)
        try:
            assert first.call("CommissionOnNetwork", NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              3840, timeout=90) == NODE_ID  # fmt: skip
            first.call("SendCommand", NODE_ID, EP, JF.Commands.AddPendingNode(nodeID=0x2001, friendlyName="lamp"))
            before = node_ids(first)
            assert 0x2001 in before
            params = first.call("OpenCommissioningWindow", NODE_ID, 180, 1000, 3333, 1, timeout=30)

            # The PASE session of the second commissioning holds implicit Administer, but not over the datastore.
            second.call("EstablishPASESessionIP", net.dev_ip6, params.setupPinCode, SECOND_NODE_ID, 5540, timeout=30)
            assert_datastore_closed(second, SECOND_NODE_ID)
            assert second.call("Commission", SECOND_NODE_ID, timeout=90) == SECOND_NODE_ID

            # Fabric 2's administrator over CASE: its own fabric's Administer, still no datastore.
            fabrics = second.call("ReadAttribute", SECOND_NODE_ID, [(0, OC.Attributes.CommissionedFabrics)])
            assert fabrics[0][OC][OC.Attributes.CommissionedFabrics] == 2
            assert_datastore_closed(second, SECOND_NODE_ID)
            # A subscription to nothing but the datastore reaches nothing it may read: refused with INVALID_ACTION
            # (Core spec 8.5.3.2), no priming report; with one readable path besides, it is established.
            with pytest.raises(RemoteError) as err:
                second.call("subscribe", SECOND_NODE_ID, [(EP, JF)], 0, 10)
            assert subscription_status(err.value) == INVALID_ACTION, err.value
            key = second.call("subscribe", SECOND_NODE_ID, [(EP, JF), (0, OC.Attributes.CommissionedFabrics)], 0, 10)
            second.call("cancel", key)
            # Nor may it open a joint commissioning window into fabric 1's joint fabric.
            with pytest.raises(RemoteError) as err:
                second.call("SendCommand", SECOND_NODE_ID, EP, JFA.Commands.OpenJointCommissioningWindow(
                    commissioningTimeout=180, PAKEPasscodeVerifier=bytes(97), discriminator=1, iterations=1000,
                    salt=bytes(16)))  # fmt: skip
            assert err.value.info.get("cluster_status") == JFA.Enums.StatusCodeEnum.kInvalidAdministratorFabricIndex

            # Fabric 1 is untouched and keeps reading and commanding.
            assert node_ids(first) == before
            first.call("SendCommand", NODE_ID, EP, JF.Commands.AddPendingNode(nodeID=0x2002, friendlyName="switch"))
            assert node_ids(first) == sorted([*before, 0x2002])
            assert any(k.groupKeySetID == 0 for k in read_value(first, NODE_ID, JF.Attributes.GroupKeySetList))
        finally:
            second.close()
            first.close()
            device.stop()

