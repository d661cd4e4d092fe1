"""Issue 6: how long the datastore takes to converge N peers x M ACL entries, with a per-phase breakdown (CASE,
reads, writes), and side by side in the same run the CHIP SDK controller doing the same work itself.

* ours: AddPendingNode per light, then M AddACLToNode per light sent back to back (``invoke_many``, round robin
  over the lights); wall time from the first AddACLToNode until every NodeACLList entry is Committed (polled).
  The phase breakdown is the difference of the device's ``reconciler stats:`` log lines around the run.
* baseline: the controller writes M other ACL entries to each light, one read-merge-write of the Acl attribute
  per entry (what a controller without a reconciler does), light after light.

Run as root (everything runs in two private network namespaces, deleted afterwards):
``python bench/reconcile_bench.py [--peers 5] [--entries 20]``. Needs the test extras and matter.js (see README).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402

from tests.e2e.harness import ChipController, topology, workdir  # noqa: E402
from tests.e2e.matterjs import ensure_matterjs  # noqa: E402
from tests.e2e.reconciler_env import (  # noqa: E402
    AC,
    JF,
    JFDS_DISCRIMINATOR,
    JFDS_NODE_ID,
    PASSCODE,
    SUCCESS,
    JfdsDevice,
    NullValue,
    ReconcilerEnv,
    is_committed,
    wait_until,
)

STATS = re.compile(r"reconciler stats: (.*)")
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum
CASE = JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase
OURS_SUBJECT, BASELINE_SUBJECT = 0x1_0000, 0x2_0000  # + light * 0x100 + entry


class BenchEnv(ReconcilerEnv):
    """ReconcilerEnv with jfds-device at ``--log-level info`` (the bench parses its stats line; debug slows it)."""

    def build(self, lights: dict[int, dict[str, Any]]) -> None:
        started = time.monotonic()
        for node_id, settings in lights.items():
            self._spawn_light(node_id, settings)
        self.device = JfdsDevice(self.net.dev, self.tmp / "jfds", "--interface", self.net.dev_ifname,
                                 "--friendly-name", "jfds-bench", "--log-level", "info",
                                 launcher=self.device_launcher)
        self.ctrl = ChipController(self.net.ctl, self.tmp / "ctrl")
        assert self.ctrl.call("CommissionOnNetwork", JFDS_NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              JFDS_DISCRIMINATOR, timeout=90) == JFDS_NODE_ID
        wait_until(lambda: self.read_jfds(JF.Attributes.AnchorNodeID) == JFDS_NODE_ID, 10,
                   message="jfds-device's datastore anchored to node 1")
        for node_id in lights:
            self.lights[node_id].device.wait_ready()
            self._commission_light(node_id)
        self.timings["setup"] = time.monotonic() - started


def stats_lines(env: BenchEnv) -> list[dict[str, float]]:
    assert env.device is not None
    found = []
    for match in STATS.finditer(env.device.output()):
        found.append({k: float(v) for k, v in (kv.split("=", 1) for kv in match.group(1).split())})
    return found


def run_ours(env: BenchEnv, lights: list[int], entries: int) -> dict[str, Any]:
    for node_id in lights:
        assert env.jfds(JF.Commands.AddPendingNode(nodeID=node_id, friendlyName=f"bench-{node_id}")) == SUCCESS
    before = (stats_lines(env) or [{}])[-1]
    commands = [JF.Commands.AddACLToNode(nodeID=node_id, ACLEntry=JF.Structs.DatastoreAccessControlEntryStruct(
                    privilege=PRIV.kView, authMode=CASE, subjects=[OURS_SUBJECT + node_id * 0x100 + i],
                    targets=NullValue))
                for i in range(entries) for node_id in lights]
    total = len(commands)
    started = time.monotonic()
    answers = env.jfds_many(commands, timeout_ms=5000)
    sent = time.monotonic() - started
    assert answers == [None] * total, [a for a in answers if a is not None][:1]

    def converged() -> bool:
        mine = [e for e in env.read_jfds(JF.Attributes.NodeACLList) if e.nodeID in lights]
        return len(mine) == total and all(is_committed(e) for e in mine)

    wait_until(converged, 60 + total, interval=0.1, message=f"{total} NodeACLList entries Committed")
    elapsed = time.monotonic() - started

    def settled() -> dict[str, float] | None:  # the idle line logged after the last pass of the run
        lines = stats_lines(env)
        return lines[-1] if lines and lines[-1].get("applied", 0) - before.get("applied", 0) >= total else None

    after = wait_until(settled, 10, message="reconciler stats line after the run")
    delta = {k: v - before.get(k, 0) for k, v in after.items()}
    for node_id in lights:  # each light holds each of its entries
        subjects = {s for e in env.peer_acl(node_id) for s in (e.subjects or [])}
        assert all(OURS_SUBJECT + node_id * 0x100 + i in subjects for i in range(entries)), node_id
    return {"total": elapsed, "sent": sent, **delta}


def run_baseline(env: BenchEnv, lights: list[int], entries: int) -> dict[str, Any]:
    reads = writes = 0
    read_s = write_s = 0.0
    started = time.monotonic()
    for node_id in lights:
        for i in range(entries):
            t = time.monotonic()
            acl = env.peer_acl(node_id)
            read_s, reads = read_s + time.monotonic() - t, reads + 1
            ace = AC.Structs.AccessControlEntryStruct(
                privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kView,
                authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase,
                subjects=[BASELINE_SUBJECT + node_id * 0x100 + i], targets=NullValue)
            t = time.monotonic()
            env.write_peer(node_id, 0, AC.Attributes.Acl([*acl, ace]))
            write_s, writes = write_s + time.monotonic() - t, writes + 1
    return {"total": time.monotonic() - started, "read_s": read_s, "read_n": reads, "write_s": write_s,
            "write_n": writes}


def phase(result: dict[str, Any], name: str) -> str:
    if f"{name}_s" not in result:
        return "-"
    return f"{result[f'{name}_s']:.2f} ({int(result[f'{name}_n'])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=5, help="matter.js lights (1..10)")
    parser.add_argument("--entries", type=int, default=20, help="ACL entries per light")
    args = parser.parse_args()
    assert 1 <= args.peers <= 10, "light discriminators are defined for nodes 2..11"
    n, m = args.peers, args.entries
    lights = {node_id: {"acl_entries": 2 * m + 4} for node_id in range(2, n + 2)}  # ours + baseline + 2 admins
    ensure_matterjs()
    with topology() as net, workdir("jfds-reconcile-bench-") as tmp:
        env = BenchEnv(net, tmp)
        try:
            env.build(lights)
            print(f"setup (processes, commissioning {n + 1} nodes): {env.timings['setup']:.1f} s", flush=True)
            ours = run_ours(env, list(lights), m)
            base = run_baseline(env, list(lights), m)
        except BaseException:
            if env.device is not None and env.device.log_path.exists():
                print("jfds-device log (tail):\n" + env.device.output()[-6000:], file=sys.stderr)
            raise
        finally:
            env.close()
    count = n * m
    print(f"\nreconcile {n} peers x {m} ACL entries = {count} entries "
          f"(ours: the {count} AddACLToNode took {ours['sent']:.2f} s to send, included in total)")
    print(f"{'reader/writer':<28}{'peers':>6}{'entries':>8}{'total s':>9}{'entries/s':>10}"
          f"{'CASE s (n)':>13}{'reads s (n)':>14}{'writes s (n)':>15}{'passes':>7}")
    for name, r in (("jfds-device reconciler", ours), ("CHIP controller (baseline)", base)):
        passes = str(int(r["passes"])) if "passes" in r else "-"
        print(f"{name:<28}{n:>6}{m:>8}{r['total']:>9.2f}{count / r['total']:>10.1f}{phase(r, 'case'):>13}"
              f"{phase(r, 'read'):>14}{phase(r, 'write'):>15}{passes:>7}")
    print("(ours: phase seconds are summed over lights reconciled in parallel; baseline: sequential, through the "
          "controller's RPC pipe, sessions already up)")


if __name__ == "__main__":
    main()
