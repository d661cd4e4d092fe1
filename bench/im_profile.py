"""Where the node's CPU goes per interaction: our real root node (every endpoint-0 and JFDS server, SQLite in a temp
directory) served by a ``Stack`` on ``::1`` in its own thread and event loop, driven by our own IM client in the
main thread over PASE (the commissioner's implicit Administer; same AES-CCM and IM paths as CASE).

Four workloads: reads (BasicInformation VendorName), invokes (OperationalCredentials CertificateChainRequest for the
DAC), subscription reports alone (a subscription to GeneralDiagnostics NetworkInterfaces, changed in memory on the
node's side, one report per change) and write+report (a subscription to NodeLabel, one write per report; the write
is durable, so SQLite's fsync is in its wall time). For each it prints the serving
thread's CPU per round trip (``time.thread_time``, without the profiler) and, with ``--profile``, the serving
thread's cProfile top-N by cumulative and by own time.

Loopback only, no DNS-SD, no namespace needed: ``python bench/im_profile.py [--count 2000] [--profile] [--top 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clusters.basic_information import schema as bi  # noqa: E402
from clusters.general_diagnostics import schema as gd  # noqa: E402
from clusters.operational_credentials import schema as oc  # noqa: E402
from jfds_device.datastore.sqlite import Database  # noqa: E402
from jfds_device.node.links import udp_link  # noqa: E402
from jfds_device.node.root import build_root_node  # noqa: E402
from jfds_device.node.stack import Stack  # noqa: E402
from jfds_device.transport.sessions import SecureSession  # noqa: E402
from tests.node.test_stack import pase  # noqa: E402

DAC = 1  # CertificateChainTypeEnum.DAC


class ServingThread:
    """The node under test in its own thread and loop, so its CPU and profile are its own."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="node", daemon=True)
        self.port = 0
        self.profiler: cProfile.Profile | None = None

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._open())
        self.ready.set()
        self.loop.run_forever()

    async def _open(self) -> None:
        self.db = Database(self.state_dir / "jfds.sqlite3")
        self.root = root = build_root_node(self.db, monotonic=time.monotonic)
        root.window.open_initial(time.monotonic())
        self.stack = await Stack(data_model=root.node, window=root.window).open(udp_link(0, host="::1"))
        self.port = self.stack.endpoint.local_address[1]

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the serving thread (so thread_time and the profiler apply to it) and return its value."""
        done: list[Any] = []
        ev = threading.Event()

        def run() -> None:
            done.append(fn())
            ev.set()

        self.loop.call_soon_threadsafe(run)
        ev.wait(10)
        return done[0]

    def stop(self) -> None:
        async def close() -> None:
            await self.stack.close()
            self.db.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def workloads(node: ServingThread, client: Stack,
                    session: SecureSession) -> dict[str, Callable[[], Awaitable[None]]]:
    reports: asyncio.Queue[Any] = asyncio.Queue()
    await client.client.subscribe(session, [(0, bi.CLUSTER_ID, bi.NODE_LABEL)], 0, 60,
                                  on_report=lambda report: reports.put_nowait(report))
    interface_reports: asyncio.Queue[Any] = asyncio.Queue()
    await client.client.subscribe(session, [(0, gd.CLUSTER_ID, gd.NETWORK_INTERFACES)], 0, 60,
                                  on_report=lambda report: interface_reports.put_nowait(report))
    labels = iter(range(1 << 30))

    def change_interfaces() -> None:
        name = f"eth{next(labels) % 10}"
        node.root.general_diagnostics.update_network_interfaces([gd.NetworkInterface(
            name=name, is_operational=True, off_premise_services_reachable_ipv4=None,
            off_premise_services_reachable_ipv6=None, hardware_address=bytes(6), ipv4_addresses=[],
            ipv6_addresses=[bytes(16)], type=gd.InterfaceTypeEnum.ETHERNET)])

    async def read() -> None:
        await client.client.read_attribute(session, 0, bi.CLUSTER_ID, bi.VENDOR_NAME)

    async def invoke() -> None:
        await client.client.send_command(session, 0, oc.CertificateChainRequest(certificate_type=DAC))

    async def report() -> None:
        await client.client.write_attribute(session, 0, bi.CLUSTER_ID, bi.NODE_LABEL, f"label-{next(labels)}")
        await asyncio.wait_for(reports.get(), 5)

    async def interface_report() -> None:
        node.call(change_interfaces)
        await asyncio.wait_for(interface_reports.get(), 5)

    return {"read": read, "invoke": invoke, "report": interface_report, "write+report": report}


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="jfds-im-profile-") as tmp:
        node = ServingThread(Path(tmp))
        node.start()
        client = await Stack().open(udp_link(0, host="::1"))
        try:
            session = await pase(client, ("::1", node.port))
            runs = await workloads(node, client, session)
            for name, once in runs.items():
                for _ in range(50):  # warm up caches and the session
                    await once()
                cpu0 = node.call(time.thread_time)
                started = time.perf_counter()
                latencies = []
                for _ in range(args.count):
                    t = time.perf_counter()
                    await once()
                    latencies.append(time.perf_counter() - t)
                wall = time.perf_counter() - started
                cpu = node.call(time.thread_time) - cpu0
                latencies.sort()
                print(f"{name:<13} node CPU per round trip {cpu / args.count * 1e3:6.3f} ms   "
                      f"p50 {latencies[len(latencies) // 2] * 1e3:6.3f} ms   wall/op {wall / args.count * 1e3:6.3f} ms")
                if args.profile:
                    profiler = cProfile.Profile()
                    node.call(profiler.enable)
                    for _ in range(args.count):
                        await once()
                    node.call(profiler.disable)
                    for order in ("cumulative", "tottime"):
                        out = io.StringIO()
                        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
                        body = out.getvalue()
                        print(f"--- {name}: top {args.top} by {order} ({args.count} round trips)")
                        print(body[body.index("ncalls"):].rstrip() + "\n")
        finally:
            await client.close()
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=10)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
