"""Reading an 8192-entry NodeACLList: the real CHIP controller against a running jfds-device, and, side by side,
the same read produced by our IM engine alone (no network), so the split between the node and the controller
is visible.

Run as root (it builds two private network namespaces and deletes them): ``python bench/jfds_read_bench.py
[--entries 8192] [--repeat 3]``. Needs the test extras (home-assistant-chip-core) and /data (see README).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clusters.joint_fabric_datastore import schema as jfds  # noqa: E402
from jfds_device.codec import tlv  # noqa: E402
from jfds_device.codec.model import AuthMode  # noqa: E402
from jfds_device.datastore.jfds import JfdsStore  # noqa: E402
from jfds_device.datastore.sqlite import Database  # noqa: E402
from jfds_device.im import messages  # noqa: E402
from jfds_device.im.provider import RequestContext, SubjectDescriptor  # noqa: E402
from jfds_device.im.server import InteractionServer  # noqa: E402
from jfds_device.node.anchor import AnchorRole  # noqa: E402
from jfds_device.node.root import build_root_node  # noqa: E402


def engine_read(state_dir: Path, repeat: int) -> tuple[float, int, int]:
    """Best time for our IM engine to produce every ReportData chunk of the list; (seconds, chunks, bytes)."""
    db = Database(state_dir / "jfds.sqlite3")
    try:
        root = build_root_node(db, monotonic=time.monotonic)
        anchor = AnchorRole(JfdsStore(db), root, friendly_name=None, now=time.monotonic)
        fabric = anchor.anchor_fabric_index or 1
        server = InteractionServer(root.node)
        admin = SubjectDescriptor(AuthMode.CASE, 112233, fabric)
        path = messages.AttributePathIB(endpoint=1, cluster=jfds.CLUSTER_ID, attribute=0x000C)
        request = messages.ReadRequest(attribute_requests=[path], fabric_filtered=True).encode()
        best, chunks, size = float("inf"), 0, 0
        for _ in range(repeat):
            started = time.perf_counter()
            out = server.on_message("x", RequestContext(subject=admin), 0x02, request, 0.0)
            chunks, size = 1, len(out[0].payload)
            while out and out[-1].expect_response:
                out = server.on_message("x", RequestContext(subject=admin), 0x01, _status_ok(), 0.0)
                chunks, size = chunks + 1, size + sum(len(o.payload) for o in out)
            best = min(best, time.perf_counter() - started)
        return best, chunks, size
    finally:
        db.close()


def _status_ok() -> bytes:
    return tlv.encode({0: 0, 0xFF: 12})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from chip.ChipDeviceCtrl import DiscoveryFilterType
    from chip.clusters import Objects

    from tests.e2e.harness import ChipController, DeviceProcess, topology
    from tests.e2e.jfds_seed import seed_acl_entries

    attribute = Objects.JointFabricDatastore.Attributes.NodeACLList
    with tempfile.TemporaryDirectory(prefix="jfds-bench-") as tmp, topology() as net:
        work = Path(tmp)
        device = DeviceProcess(net.dev, work / "state", "--interface", net.dev_ifname, "--log-level", "info")
        ctrl = ChipController(net.ctl, work / "ctrl")
        try:
            ctrl.call("CommissionOnNetwork", 1, 20202021, DiscoveryFilterType.LONG_DISCRIMINATOR, 3840, timeout=90)
            device.stop()
            seed_acl_entries(work / "state", node_id=7, count=args.entries)
            engine_s, chunks, size = engine_read(work / "state", args.repeat)
            device.start()
            ctrl.call("MarkSessionDefunct", 1)
            ctrl.call("ReadAttribute", 1, [(1, Objects.JointFabricDatastore.Attributes.Status)])  # new CASE session
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                result = ctrl.call("ReadAttribute", 1, [(1, attribute)], timeout=300)
                best = min(best, time.perf_counter() - started)
                assert len(result[1][Objects.JointFabricDatastore][attribute]) == args.entries
        finally:
            ctrl.close()
            device.stop()
    print(f"NodeACLList with {args.entries} entries: {chunks} ReportData messages, {size} bytes of IM payload")
    print(f"{'reader':44} {'time s':>8} {'entries/s':>10} {'bytes/s':>12}")
    for name, seconds in (("CHIP controller <- jfds-device (veth, CASE)", best),
                          ("our IM engine alone (no network)", engine_s)):
        print(f"{name:44} {seconds:8.2f} {args.entries / seconds:10.0f} {size / seconds:12.0f}")


if __name__ == "__main__":
    main()
