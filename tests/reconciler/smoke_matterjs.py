"""A quick end-to-end smoke of the reconciler against a real matter.js light (not collected by pytest; the full
TC-JFDS-2.5 run lives in tests/e2e). Run as root: ``.venv/bin/python -m tests.reconciler.smoke_matterjs``.

Network rule: everything runs inside the namespaces ``harness.topology()`` creates (veth pair, no eth0). The CHIP
controller (controller namespace) commissions our device (node 1, the anchor) and a matter.js light (node 2) on
one fabric and grants our node Administer on the light; then, only through JFDS commands on our device:
AddPendingNode, AddACLToNode → the entry appears on the light and NodeACLList shows it Committed; RefreshNode →
the node is Committed and NodeACLList mirrors the light's ACL; AddKeySet/AddGroup/AddGroupIDToEndpointForNode →
key set, map and membership on the light; AddBindingToEndpointForNode; then every removal.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, topology, workdir
from tests.e2e.matterjs import MatterJsDevice

PASSCODE, OUR_NODE, LIGHT = 20202021, 1, 2
LIGHT_DISCRIMINATOR = 0x7A5


def main() -> int:
    import chip.clusters as Clusters
    from chip.ChipDeviceCtrl import DiscoveryFilterType
    from chip.clusters.Types import NullValue

    jf, ac, gkm, binding = (Clusters.JointFabricDatastore, Clusters.AccessControl, Clusters.GroupKeyManagement,
                            Clusters.Binding)
    state_enum = jf.Enums.DatastoreStateEnum
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    with topology() as net, workdir("jfds-smoke-") as tmp:
        device = DeviceProcess(net.dev, tmp / "state", "--interface", net.dev_ifname, "--port", "5550",
                               "--friendly-name", "jfds-smoke")
        light = MatterJsDevice(net.dev, tmp / "light", id="light", port=5541, discriminator=LIGHT_DISCRIMINATOR)
        ctrl = ChipController(net.ctl, tmp / "ctrl")
        try:
            def read(node: int, endpoint: int, attribute: Any) -> Any:
                cluster = next(c for c in (jf, ac, gkm, binding) if c.id == attribute.cluster_id)
                return ctrl.call("ReadAttribute", node, [(endpoint, attribute)])[endpoint][cluster][attribute]

            def jfds(command: Any) -> int:
                try:
                    ctrl.call("SendCommand", OUR_NODE, 1, command)
                    return 0
                except RemoteError as err:
                    return err.status or -1

            def poll(what: str, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
                started = time.monotonic()
                while not predicate():
                    if time.monotonic() - started > timeout:
                        raise AssertionError(f"{what}: not within {timeout} s")
                    time.sleep(0.1)
                timings[what] = round(time.monotonic() - started, 2)

            assert ctrl.call("CommissionOnNetwork", OUR_NODE, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840,
                             timeout=90) == OUR_NODE
            assert ctrl.call("CommissionOnNetwork", LIGHT, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                             LIGHT_DISCRIMINATOR, timeout=60) == LIGHT
            [admin] = read(LIGHT, 0, ac.Attributes.Acl)
            ours = ac.Structs.AccessControlEntryStruct(
                privilege=ac.Enums.AccessControlEntryPrivilegeEnum.kAdminister,
                authMode=ac.Enums.AccessControlEntryAuthModeEnum.kCase, subjects=[OUR_NODE], targets=NullValue)
            [status] = ctrl.call("WriteAttribute", LIGHT, [(0, ac.Attributes.Acl([admin, ours]))])
            assert int(status.Status) == 0

            # AddPendingNode + AddACLToNode: pushed to the light, Committed in NodeACLList.
            assert jfds(jf.Commands.AddPendingNode(nodeID=LIGHT, friendlyName="mjs light")) == 0
            operate = jf.Structs.DatastoreAccessControlEntryStruct(
                privilege=jf.Enums.DatastoreAccessControlEntryPrivilegeEnum.kOperate,
                authMode=jf.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase, subjects=[0x1122],
                targets=[jf.Structs.DatastoreAccessControlTargetStruct(cluster=6, endpoint=1, deviceType=NullValue)])
            assert jfds(jf.Commands.AddACLToNode(nodeID=LIGHT, ACLEntry=operate)) == 0

            def acl_entry() -> Any:
                return next((e for e in read(OUR_NODE, 1, jf.Attributes.NodeACLList)
                             if e.nodeID == LIGHT and e.ACLEntry == operate), None)

            poll("AddACLToNode committed", lambda: (e := acl_entry()) is not None
                 and e.statusEntry.state == state_enum.kCommitted)
            light_acl = read(LIGHT, 0, ac.Attributes.Acl)
            results["light ACL after AddACLToNode"] = [(int(e.privilege), list(e.subjects)) for e in light_acl]
            assert [list(e.subjects) for e in light_acl] == [[112233], [OUR_NODE], [0x1122]]
            list_id = acl_entry().listID

            # RefreshNode: Committed, NodeACLList mirrors the light's ACL 1:1, endpoints copied.
            assert jfds(jf.Commands.RefreshNode(nodeID=LIGHT)) == 0
            poll("RefreshNode committed", lambda: next(n for n in read(OUR_NODE, 1, jf.Attributes.NodeList)
                                                       if n.nodeID == LIGHT).commissioningStatusEntry.state
                 == state_enum.kCommitted, timeout=30)
            mirrored = [e for e in read(OUR_NODE, 1, jf.Attributes.NodeACLList) if e.nodeID == LIGHT]
            results["NodeACLList after RefreshNode"] = sorted(
                (int(e.ACLEntry.privilege), list(e.ACLEntry.subjects), int(e.statusEntry.state)) for e in mirrored)
            assert len(mirrored) == 3 and all(e.statusEntry.state == state_enum.kCommitted for e in mirrored)
            endpoints = sorted(e.endpointID for e in read(OUR_NODE, 1, jf.Attributes.NodeEndpointList)
                               if e.nodeID == LIGHT)
            results["NodeEndpointList"] = endpoints
            assert 0 in endpoints and 1 in endpoints

            # Group: key set, map, membership on endpoint 1.
            keys = jf.Structs.DatastoreGroupKeySetStruct(
                groupKeySetID=0x42, groupKeySecurityPolicy=0, epochKey0=b"\xa0" * 16, epochStartTime0=1,
                epochKey1=b"\xa1" * 16, epochStartTime1=100000, epochKey2=b"\xa2" * 16, epochStartTime2=200000,
                groupKeyMulticastPolicy=jf.Enums.DatastoreGroupKeyMulticastPolicyEnum.kPerGroupID)
            assert jfds(jf.Commands.AddKeySet(groupKeySet=keys)) == 0
            assert jfds(jf.Commands.AddGroup(groupID=0x101, friendlyName="TestGroup", groupKeySetID=0x42,
                                             groupCAT=1, groupCATVersion=1,
                                             groupPermission=jf.Enums.DatastoreAccessControlEntryPrivilegeEnum.kView
                                             )) == 0
            assert jfds(jf.Commands.AddGroupIDToEndpointForNode(nodeID=LIGHT, endpointID=1, groupID=0x101)) == 0
            poll("group committed", lambda: any(
                e.nodeID == LIGHT and e.groupID == 0x101 and e.statusEntry.state == state_enum.kCommitted
                for e in read(OUR_NODE, 1, jf.Attributes.EndpointGroupIDList)))
            node_keys = [(e.groupKeySetID, int(e.statusEntry.state)) for e in
                         read(OUR_NODE, 1, jf.Attributes.NodeKeySetList) if e.nodeID == LIGHT]
            results["NodeKeySetList"] = node_keys
            table = read(LIGHT, 0, gkm.Attributes.GroupTable)
            results["light GroupTable"] = [(e.groupId, list(e.endpoints), e.groupName) for e in table]
            results["light GroupKeyMap"] = [(e.groupId, e.groupKeySetID) for e in read(LIGHT, 0,
                                                                                       gkm.Attributes.GroupKeyMap)]
            assert (0x42, int(state_enum.kCommitted)) in node_keys and table[0].groupId == 0x101

            # Binding on endpoint 1.
            target = jf.Structs.DatastoreBindingTargetStruct(node=LIGHT, endpoint=1)
            assert jfds(jf.Commands.AddBindingToEndpointForNode(nodeID=LIGHT, endpointID=1, binding=target)) == 0
            poll("binding committed", lambda: any(
                e.nodeID == LIGHT and e.statusEntry.state == state_enum.kCommitted
                for e in read(OUR_NODE, 1, jf.Attributes.EndpointBindingList)))
            results["light Binding"] = [(e.node, e.endpoint) for e in read(LIGHT, 1, binding.Attributes.Binding)]
            binding_id = next(e.listID for e in read(OUR_NODE, 1, jf.Attributes.EndpointBindingList)
                              if e.nodeID == LIGHT)

            # Every removal: gone from the light and erased from the datastore.
            assert jfds(jf.Commands.RemoveACLFromNode(listID=list_id, nodeID=LIGHT)) == 0
            assert jfds(jf.Commands.RemoveGroupIDFromEndpointForNode(nodeID=LIGHT, endpointID=1, groupID=0x101)) == 0
            assert jfds(jf.Commands.RemoveBindingFromEndpointForNode(listID=binding_id, endpointID=1,
                                                                     nodeID=LIGHT)) == 0
            poll("removals erased", lambda: acl_entry() is None and not any(
                e.nodeID == LIGHT for e in read(OUR_NODE, 1, jf.Attributes.EndpointGroupIDList)) and not any(
                e.nodeID == LIGHT for e in read(OUR_NODE, 1, jf.Attributes.EndpointBindingList)) and not any(
                e.nodeID == LIGHT and e.groupKeySetID == 0x42 for e in read(OUR_NODE, 1, jf.Attributes.NodeKeySetList)))
            results["light ACL after removals"] = [list(e.subjects) for e in read(LIGHT, 0, ac.Attributes.Acl)]
            results["light GroupTable after removals"] = read(LIGHT, 0, gkm.Attributes.GroupTable)
            results["light Binding after removals"] = read(LIGHT, 1, binding.Attributes.Binding)
            indices = ctrl.call("SendCommand", LIGHT, 0, gkm.Commands.KeySetReadAllIndices())
            results["light key sets after removals"] = list(indices.groupKeySetIDs)
            assert results["light ACL after removals"] == [[112233], [OUR_NODE]]
            assert results["light key sets after removals"] == [0]
        finally:
            ctrl.close()
            light.stop()
            device.stop()
            log = device.output()
            results["reconcile log lines"] = [line.split(" ", 2)[-1] for line in log.splitlines()
                                              if "reconcile node=" in line][-12:]
    print(json.dumps({"results": results, "seconds": timings}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
