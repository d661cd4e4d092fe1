"""``python -m jfds_device.fleet``: run a fleet of simulated nodes until SIGINT/SIGTERM (or ``stop`` on --control).

Prints one line when the fleet listens (nodes, ports, how many joined which way, RSS per node), one line per node
with ``--list``, and with ``--control`` serves a line protocol on stdin/stdout for test harnesses: each request is
one JSON object ``{"op": ..., ...}``, each answer one line ``OK <json>`` or ``ERR <json>``:

* ``csr`` ``{"nodes": [index, ...]}``: each node's fresh operational key, as NOCSRElements (hex) to issue a NOC for;
* ``install`` ``{"index": i, "chain": {"rcac", "noc", "icac", "ipk": hex, "admin_subject", "vendor_id"},
  "administrators": [node id, ...]}``: fast provisioning of node i with that chain;
* ``describe``: every node's index, port, node id, fabric, ``joined_by`` and ACL size;
* ``acl`` ``{"index": i}``: node i's ACL entries of its fabric (privilege, auth mode, subjects, targets);
* ``memory``: RSS now and per node; ``stop``: stop the fleet and exit.

Fast provisioning from a test CA in this process (``--provision test-ca``) needs no commissioner: for benches and
the memory figure. Real commissioning: ``--commissionable K`` opens the first K nodes' commissioning windows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import signal
import sys
from collections.abc import Sequence
from typing import Any

from jfds_device.fleet.fleet import Fleet, FleetConfig
from jfds_device.fleet.provision import FabricCA, provision
from jfds_device.fleet.sim_node import NodeCapacities


def _int(text: str) -> int:
    return int(text, 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jfds_device.fleet",
                                     description="many lightweight simulated Matter peer nodes in one process")
    defaults, capacities = FleetConfig(nodes=0), NodeCapacities()
    parser.add_argument("--nodes", type=_int, required=True, help="how many simulated nodes")
    parser.add_argument("--interface", default=None, help="bind and advertise on this interface (default: all)")
    parser.add_argument("--host", default="::", help="the address the sockets bind (default: %(default)s)")
    parser.add_argument("--base-port", type=_int, default=6000, help="node i listens on BASE+i (0: free ports)")
    parser.add_argument("--commissionable", type=_int, default=0,
                        help="the first K nodes open a commissioning window (real commissioning by address/port)")
    parser.add_argument("--passcode", type=_int, default=defaults.passcode)
    parser.add_argument("--acl-entries", type=_int, default=capacities.acl_entries_per_fabric,
                        help="AccessControlEntriesPerFabric (default %(default)s)")
    parser.add_argument("--max-groups", type=_int, default=capacities.max_groups_per_fabric,
                        help="MaxGroupsPerFabric (default %(default)s)")
    parser.add_argument("--max-group-keys", type=_int, default=capacities.max_group_keys_per_fabric,
                        help="MaxGroupKeysPerFabric, the IPK included (default %(default)s)")
    parser.add_argument("--binding-entries", type=_int, default=capacities.binding_entries,
                        help="Binding table entries (default %(default)s)")
    parser.add_argument("--provision", choices=["none", "test-ca"], default="none",
                        help="test-ca: fast-provision every non-commissionable node from a CA made here")
    parser.add_argument("--first-node-id", type=_int, default=0x100, help="node i gets FIRST+i (test-ca)")
    parser.add_argument("--admin-subject", type=_int, default=112233, help="CaseAdminSubject (test-ca)")
    parser.add_argument("--grant", type=_int, action="append", default=[],
                        help="another node id to grant Administer, e.g. jfds-device's (test-ca; repeatable)")
    parser.add_argument("--no-advertise", action="store_true", help="no DNS-SD")
    parser.add_argument("--list", action="store_true", help="one line per node once started")
    parser.add_argument("--control", action="store_true", help="serve the line protocol on stdin/stdout")
    parser.add_argument("--log-level", default="warning", type=str.lower,
                        choices=["debug", "info", "warning", "error"])
    return parser


def rss_bytes() -> int:
    """Resident set size now (``/proc/self/status`` VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _raise_fd_limit(needed: int) -> None:
    """One socket per node: lift the soft limit on open files up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(hard, max(soft, needed))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class Controller:
    """The ``--control`` line protocol over a started fleet."""

    def __init__(self, fleet: Fleet, baseline_rss: int, stop: asyncio.Event) -> None:
        self.fleet, self.baseline_rss, self.stop = fleet, baseline_rss, stop

    def memory(self) -> dict[str, Any]:
        rss = rss_bytes()
        return {"rss": rss, "baseline_rss": self.baseline_rss,
                "per_node": (rss - self.baseline_rss) / max(1, len(self.fleet))}

    async def handle(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        nodes = self.fleet.nodes
        if op == "csr":
            return {str(i): nodes[i].operational_csr().hex() for i in request["nodes"]}
        if op == "install":
            chain = request["chain"]
            info = nodes[request["index"]].install_fabric(
                rcac=bytes.fromhex(chain["rcac"]), noc=bytes.fromhex(chain["noc"]),
                icac=bytes.fromhex(chain["icac"]) if chain.get("icac") else None, ipk=bytes.fromhex(chain["ipk"]),
                admin_subject=chain["admin_subject"], vendor_id=chain.get("vendor_id", 0xFFF1),
                administrators=request.get("administrators", []))
            await self.fleet.settled()
            return {"node_id": info.node_id, "fabric_index": info.fabric_index}
        if op == "describe":
            return [node.describe() for node in nodes]
        if op == "acl":
            node = nodes[request["index"]]
            fabric = node.fabric
            entries = [] if fabric is None else node.root.access_control.entries(fabric.fabric_index)
            return [acl_json(e) for e in entries]
        if op == "memory":
            return self.memory()
        if op == "stop":
            self.stop.set()
            return None
        raise ValueError(f"unknown op {op!r}")


def acl_json(entry: Any) -> dict[str, Any]:
    targets = entry.targets if isinstance(entry.targets, list) else []
    return {"privilege": int(entry.privilege), "auth_mode": int(entry.auth_mode),
            "subjects": list(entry.subjects) if isinstance(entry.subjects, list) else [],
            "targets": [[t.cluster if isinstance(t.cluster, int) else None,
                         t.endpoint if isinstance(t.endpoint, int) else None,
                         t.device_type if isinstance(t.device_type, int) else None] for t in targets]}


async def serve_control(controller: Controller) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            answer = await controller.handle(json.loads(line))
        except Exception as exc:  # every failure goes back to the harness, which asserts on it
            print("ERR", json.dumps({"type": type(exc).__name__, "message": str(exc)}), flush=True)
        else:
            print("OK", json.dumps(answer), flush=True)
        if controller.stop.is_set():
            return
    controller.stop.set()  # stdin closed: the harness is gone


async def run(args: argparse.Namespace) -> int:
    _raise_fd_limit(args.nodes + 256)
    baseline = rss_bytes()
    config = FleetConfig(
        nodes=args.nodes, interface=args.interface, host=args.host, base_port=args.base_port,
        commissionable=args.commissionable, passcode=args.passcode, advertise=not args.no_advertise,
        capacities=NodeCapacities(acl_entries_per_fabric=args.acl_entries, max_groups_per_fabric=args.max_groups,
                                  max_group_keys_per_fabric=args.max_group_keys,
                                  binding_entries=args.binding_entries))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fleet = Fleet(config)
    started = loop.time()
    await fleet.start()
    try:
        if args.provision == "test-ca":
            ca = FabricCA(admin_subject=args.admin_subject)
            await provision(((n, args.first_node_id + n.index) for n in fleet if n.index >= args.commissionable),
                            ca.issue, administrators=args.grant)
            await fleet.settled()
        controller = Controller(fleet, baseline, stop)
        memory = controller.memory()
        ports = [n.port for n in fleet]
        joined = ", ".join(f"{k} {v}" for k, v in sorted(fleet.joined().items()))
        print(f"fleet listening: {len(fleet)} nodes on UDP ports {min(ports, default=0)}..{max(ports, default=0)}"
              f"{' on ' + args.interface if args.interface else ''}; joined: {joined}; started in "
              f"{loop.time() - started:.1f} s; RSS {memory['rss'] / 2**20:.1f} MiB, "
              f"{memory['per_node'] / 1024:.0f} KiB per node", flush=True)
        if args.list:
            for node in fleet:
                d = node.describe()
                print(f"node {d['index']}: port {d['port']} node id {d['node_id']} fabric "
                      f"{d['compressed_fabric_id']} joined by {d['joined_by']}", flush=True)
        if args.control:
            control = asyncio.ensure_future(serve_control(controller))
            await stop.wait()
            control.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await control
        else:
            await stop.wait()
    finally:
        await fleet.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
