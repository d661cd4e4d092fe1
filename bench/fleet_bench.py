"""Issue 13: jfds-device managing a fleet of simulated nodes (``jfds_device.fleet``) against the CHIP controller
doing the same ACL writes itself, side by side in one run.

Environment: ``tests/e2e/fleet_env.py`` (jfds-device, the CHIP controller, one fleet process; the first 2 nodes
joined by real commissioning, the rest by fast provisioning from the controller's CA; every node starts with 2 ACL
entries, the controller's admin entry and our node's Administer entry, and has room for E+4). jfds-device runs at
INFO. Phases:

1. **Reference**: the CHIP controller reads each node's ACL and writes it back with E more entries (distinct CASE
   subjects), node after node, as an admin tool would; timed, checked on the nodes (the fleet's control protocol),
   then the original lists are written back (not timed) so our run starts from the same empty state.
2. **Ours**: from nodes that are not in NodeList, per node AddPendingNode, AddACLToNode x E, RefreshNode (the
   refresh pass pushes the Pending entries in one write), sent back to back by the controller in batches of 32
   nodes (``jfds_many``). Done when every node holds its E entries (polled through the fleet) and the datastore
   reads every NodeList entry and the N x E NodeACLList entries Committed.
3. **Idle** (``--idle`` s, once the reconciler has logged no stats line for 5 s): jfds-device's CPU (``/proc/<pid>/
   stat`` utime+stime) as % of one core, its RSS (``/proc/<pid>/status`` VmRSS), and datagrams/s. The fleet shares
   jfds-device's namespace, and no datagram in it at idle is fleet-to-fleet, so every UDP datagram sent in the
   namespace (``/proc/net/snmp`` + ``snmp6`` OutDatagrams, read inside it) is one jfds-device sent or received:
   that sum is the device's datagrams/s, mDNS included. The fleet's CPU is shown too.
4. **Drift** (``--drift`` R times): the controller deletes one pushed entry on a random node (read + write of its
   ACL); latency from the write's answer until the fleet reports the node holds it again (polled every 10 ms).

NodeACLList holds at most 8192 entries (Core spec 11.24.5, the list maxima); RefreshNode adopts the 2 entries each
node already holds, so N x (E + 2) must fit: 1024 nodes take at most E = 6.

Run as root: ``python bench/fleet_bench.py [--nodes 1024] [--entries 8] [--idle 300] [--drift 20]`` or
``--scaling`` (16, 128 and 1024 nodes, a fresh environment each, ours only, ``--idle`` 60 s by default).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chip.clusters.Types import NullValue  # noqa: E402

from clusters.joint_fabric_datastore.schema import MAX_PER_NODE_ENTRIES  # noqa: E402
from tests.e2e.fleet_env import FIRST_NODE_ID, FleetEnv, fleet_env  # noqa: E402
from tests.e2e.reconciler_env import AC, JF, ace_key, is_committed, wait_until  # noqa: E402
from tests.e2e.test_fleet import process_cpu_seconds  # noqa: E402
from tests.e2e.test_reconciler_live import quiet, stats_lines  # noqa: E402

COMMISSIONED = 2
HELD_PER_NODE = 2  # the controller's admin entry and ours, adopted by RefreshNode
OURS, REFERENCE = 0x20_0000, 0x40_0000  # + index * 16 + entry: the CASE subjects of the entries
BATCH_NODES = 32
CONVERGE_TIMEOUT_S = 1800.0
REPAIR_TIMEOUT_S = 60.0


def subject(base: int, index: int, entry: int) -> int:
    return base + index * 16 + entry


def jf_ace(subject_id: int) -> Any:
    """Operate for one CASE subject on endpoint 1, as the datastore holds it."""
    return JF.Structs.DatastoreAccessControlEntryStruct(
        privilege=JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kOperate,
        authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase, subjects=[subject_id],
        targets=[JF.Structs.DatastoreAccessControlTargetStruct(cluster=NullValue, endpoint=1, deviceType=NullValue)])


def ac_ace(subject_id: int) -> Any:
    """The same entry as AccessControl holds it."""
    return AC.Structs.AccessControlEntryStruct(
        privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kOperate,
        authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase, subjects=[subject_id],
        targets=[AC.Structs.AccessControlTargetStruct(cluster=NullValue, endpoint=1, deviceType=NullValue)])


def held_subjects(env: FleetEnv, index: int) -> set[int]:
    """The single CASE subjects of node ``index``'s ACL entries, read from the node (the fleet's control protocol)."""
    return {e["subjects"][0] for e in env.fleet_acl(index) if len(e["subjects"]) == 1}


def wait_held(env: FleetEnv, wanted: Callable[[int], set[int]], nodes: int, timeout: float) -> None:
    """Poll the nodes (only those still missing something) until each holds ``wanted(index)``."""
    missing, deadline = set(range(nodes)), time.monotonic() + timeout
    while missing:
        missing = {i for i in missing if not wanted(i) <= held_subjects(env, i)}
        if missing and time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} nodes still lack entries, e.g. {sorted(missing)[:5]}")
        if missing:
            time.sleep(1.0)


def committed(env: FleetEnv, nodes: int, entries: int) -> tuple[int, int]:
    """(Committed fleet nodes in NodeList, Committed NodeACLList entries with one of our subjects)."""
    ours = {ace_key(jf_ace(subject(OURS, i, j))) for i in range(nodes) for j in range(entries)}
    node_list = [e for e in env.read_jfds(JF.Attributes.NodeList) if e.nodeID >= FIRST_NODE_ID]
    acls = [e for e in env.read_jfds(JF.Attributes.NodeACLList) if ace_key(e.ACLEntry) in ours]
    return sum(is_committed(e) for e in node_list), sum(is_committed(e) for e in acls)


@dataclass
class Figures:
    nodes: int
    entries: int
    setup_s: float = 0.0
    reference_s: float | None = None
    commands_s: float = 0.0  # until the last JFDS command was answered
    held_s: float = 0.0  # until every node held its entries
    ours_s: float = 0.0  # until the datastore read everything Committed
    idle: dict[str, float] = field(default_factory=dict)
    drift: list[float] = field(default_factory=list)
    fleet_memory: dict[str, float] = field(default_factory=dict)


def reference_run(env: FleetEnv, nodes: int, entries: int) -> float:
    """The CHIP controller writes each node's E entries itself (read + write of the ACL); the original lists are
    written back afterwards, untimed."""
    originals: dict[int, list[Any]] = {}
    started = time.monotonic()
    for index in range(nodes):
        node_id = env.node_id(index)
        originals[index] = env.peer_acl(node_id)
        env.write_peer(node_id, 0, AC.Attributes.Acl(
            [*originals[index], *(ac_ace(subject(REFERENCE, index, j)) for j in range(entries))]))
    elapsed = time.monotonic() - started
    wait_held(env, lambda i: {subject(REFERENCE, i, j) for j in range(entries)}, nodes, 10)
    for index, acl in originals.items():
        env.write_peer(env.node_id(index), 0, AC.Attributes.Acl(acl))
    return elapsed


def ours_run(env: FleetEnv, figures: Figures) -> None:
    nodes, entries = figures.nodes, figures.entries
    started = time.monotonic()
    for first in range(0, nodes, BATCH_NODES):
        commands: list[Any] = []
        for index in range(first, min(nodes, first + BATCH_NODES)):
            node_id = env.node_id(index)
            commands.append(JF.Commands.AddPendingNode(nodeID=node_id, friendlyName=f"sim{index}"))
            commands += [JF.Commands.AddACLToNode(nodeID=node_id, ACLEntry=jf_ace(subject(OURS, index, j)))
                         for j in range(entries)]
            commands.append(JF.Commands.RefreshNode(nodeID=node_id))
        answers = env.jfds_many(commands)
        if answers != [None] * len(commands):
            raise AssertionError(f"JFDS command {len(answers) - 1} of batch at node {first} failed: {answers[-1]}")
    figures.commands_s = time.monotonic() - started
    wait_held(env, lambda i: {subject(OURS, i, j) for j in range(entries)}, nodes, CONVERGE_TIMEOUT_S)
    figures.held_s = time.monotonic() - started
    want = (nodes, nodes * entries)
    wait_until(lambda: Counts(committed(env, nodes, entries)) if committed(env, nodes, entries) != want else True,
               CONVERGE_TIMEOUT_S, interval=2.0, message=f"NodeList and NodeACLList Committed {want}")
    figures.ours_s = time.monotonic() - started


class Counts(tuple):  # type: ignore[type-arg]
    """Falsy counts, shown in wait_until's timeout message."""

    def __bool__(self) -> bool:
        return False


def udp_out_datagrams(ns: str) -> int:
    """UDP (v4 + v6) datagrams sent in namespace ``ns`` so far."""
    text = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", "cat /proc/net/snmp /proc/net/snmp6"],
                          check=True, capture_output=True, text=True).stdout
    total, header = 0, None
    for line in text.splitlines():
        if line.startswith("Udp6OutDatagrams"):
            total += int(line.split()[1])
        elif line.startswith("Udp:"):
            if header is None:
                header = line.split()
            else:
                total += int(line.split()[header.index("OutDatagrams")])
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_idle(env: FleetEnv, idle_s: float) -> dict[str, float]:
    assert env.device is not None and env.device.proc is not None and env.fleet is not None
    device, fleet = env.device.proc.pid, env.fleet.proc.pid
    before = quiet(env, for_s=5.0, timeout=600)
    cpu, fleet_cpu, sent, t = (process_cpu_seconds(device), process_cpu_seconds(fleet),
                               udp_out_datagrams(env.net.dev), time.monotonic())
    time.sleep(idle_s)
    elapsed = time.monotonic() - t
    after = stats_lines(env)[-1]
    return {"cpu": (process_cpu_seconds(device) - cpu) / elapsed,
            "fleet_cpu": (process_cpu_seconds(fleet) - fleet_cpu) / elapsed, "rss": rss_mib(device),
            "datagrams": (udp_out_datagrams(env.net.dev) - sent) / elapsed, "seconds": elapsed,
            **{f"stat_{k}": (after.get(k, 0) - before.get(k, 0)) for k in
               ("interactions", "live_subscribes", "live_reports", "live_lost")}}


def drift_once(env: FleetEnv, nodes: int, entries: int, rng: random.Random) -> float:
    index, entry = rng.randrange(nodes), rng.randrange(entries)
    node_id, target = env.node_id(index), subject(OURS, index, entry)
    kept = [e for e in env.peer_acl(node_id) if ace_key(e) != ace_key(ac_ace(target))]
    env.write_peer(node_id, 0, AC.Attributes.Acl(kept))
    started = time.monotonic()
    wait_until(lambda: target in held_subjects(env, index), REPAIR_TIMEOUT_S, interval=0.01,
               message=f"subject 0x{target:X} back on node {index}")
    return time.monotonic() - started


def run_one(nodes: int, entries: int, *, idle_s: float, drift: int, reference: bool, logs: Path) -> Figures:
    figures = Figures(nodes, entries)
    started = time.monotonic()
    with fleet_env("jfds-fleet-bench-", nodes, min(COMMISSIONED, nodes), "--acl-entries", str(entries + 4),
                   device_args=("--log-level", "info")) as env:
        try:
            assert env.fleet is not None
            figures.setup_s = time.monotonic() - started
            figures.fleet_memory = env.fleet.call("memory")
            timings = {k: round(v, 1) for k, v in env.timings.items()}
            print(f"[{nodes} nodes] environment in {figures.setup_s:.0f} s: {timings}", flush=True)
            if reference:
                figures.reference_s = reference_run(env, nodes, entries)
                print(f"[{nodes} nodes] reference converged in {figures.reference_s:.1f} s", flush=True)
            ours_run(env, figures)
            print(f"[{nodes} nodes] ours converged in {figures.ours_s:.1f} s", flush=True)
            if idle_s > 0:
                figures.idle = measure_idle(env, idle_s)
                print(f"[{nodes} nodes] idle: {figures.idle}", flush=True)
            rng = random.Random(13)
            for _ in range(drift):
                figures.drift.append(drift_once(env, nodes, entries, rng))
                time.sleep(rng.uniform(0.5, 2.0))
        finally:
            keep_logs(env, logs, nodes)
    return figures


def keep_logs(env: FleetEnv, logs: Path, nodes: int) -> None:
    """Copy the device's and the fleet's logs out of the workdir before it is deleted."""
    logs.mkdir(parents=True, exist_ok=True)
    for source, name in ((env.device.log_path if env.device else None, "jfds-device"),
                         (env.fleet.log_path if env.fleet else None, "fleet")):
        if source is not None and source.exists():
            shutil.copy(source, logs / f"{name}-{nodes}.log")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def report(f: Figures) -> None:
    print(f"\nfleet_bench: {f.nodes} nodes x {f.entries} ACL entries (environment {f.setup_s:.0f} s; fleet RSS "
          f"{f.fleet_memory.get('rss', 0) / 2**20:.0f} MiB, {f.fleet_memory.get('per_node', 0) / 1024:.0f} KiB/node)")
    print(f"{'':44}{'jfds-device':>14}{'CHIP controller':>18}")
    ref = f"{f.reference_s:.1f} s" if f.reference_s is not None else "-"
    print(f"{'convergence, all entries Committed':44}{f.ours_s:>12.1f} s{ref:>18}"
          + (f"   ({f.reference_s / f.ours_s:.2f}x)" if f.reference_s else ""))
    print(f"{'  of which: JFDS commands answered':44}{f.commands_s:>12.1f} s")
    print(f"{'  every node holds its entries':44}{f.held_s:>12.1f} s")
    if f.idle:
        i = f.idle
        print(f"idle {i['seconds']:.0f} s: jfds-device CPU {i['cpu']:.2%} of one core, RSS {i['rss']:.0f} MiB, "
              f"{i['datagrams']:.1f} datagrams/s (all UDP sent in its namespace); fleet CPU {i['fleet_cpu']:.2%}; "
              f"reconciler: {i['stat_interactions']:.0f} interactions, {i['stat_live_subscribes']:.0f} "
              f"subscription attempts, {i['stat_live_reports']:.0f} data reports, {i['stat_live_lost']:.0f} lost")
    if f.drift:
        print(f"drift repair ({len(f.drift)} x): p50 {statistics.median(f.drift):.2f} s, p95 "
              f"{percentile(f.drift, 0.95):.2f} s, max {max(f.drift):.2f} s")


def fits(nodes: int, entries: int) -> bool:
    return nodes * (entries + HELD_PER_NODE) <= MAX_PER_NODE_ENTRIES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1024)
    parser.add_argument("--entries", type=int, default=8)
    parser.add_argument("--idle", type=float, default=None, help="idle window, s (default 300; 60 with --scaling)")
    parser.add_argument("--drift", type=int, default=20, help="drift repairs to time")
    parser.add_argument("--scaling", action="store_true", help="16, 128 and 1024 nodes, ours only")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/fleet-bench-logs"), help="logs are copied here")
    args = parser.parse_args()
    if not args.scaling:
        if not fits(args.nodes, args.entries):
            parser.error(f"{args.nodes} x ({args.entries} + {HELD_PER_NODE} adopted) entries exceed NodeACLList's "
                         f"{MAX_PER_NODE_ENTRIES}: at most {MAX_PER_NODE_ENTRIES // args.nodes - HELD_PER_NODE}")
        report(run_one(args.nodes, args.entries, idle_s=300 if args.idle is None else args.idle, drift=args.drift,
                       reference=not args.no_reference, logs=args.logs))
        return 0
    rows = []
    for nodes in (16, 128, 1024):
        entries = min(args.entries, MAX_PER_NODE_ENTRIES // nodes - HELD_PER_NODE)
        rows.append(run_one(nodes, entries, idle_s=60 if args.idle is None else args.idle, drift=0,
                            reference=False, logs=args.logs))
    print(f"\n{'nodes':>6}{'E':>4}{'converge s':>12}{'ms/entry':>10}{'ms/node':>9}{'idle CPU':>10}"
          f"{'RSS MiB':>9}{'dgram/s':>9}{'dgram/s/node':>14}")
    for f in rows:
        i = f.idle
        print(f"{f.nodes:>6}{f.entries:>4}{f.ours_s:>12.1f}{1000 * f.ours_s / (f.nodes * f.entries):>10.1f}"
              f"{1000 * f.ours_s / f.nodes:>9.1f}"
              f"{i.get('cpu', float('nan')):>10.2%}{i.get('rss', float('nan')):>9.0f}"
              f"{i.get('datagrams', float('nan')):>9.1f}{i.get('datagrams', float('nan')) / f.nodes:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
