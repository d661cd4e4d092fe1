"""Per interaction, jfds-device against the matter.js light in the same run, both commissioned by the CHIP SDK
controller over CASE: read and invoke latency (p50, p95, timed inside the controller process) and the device's CPU
per round trip.

* read: BasicInformation VendorName on endpoint 0 (both serve it; one attribute, one ReportData).
* invoke: OperationalCredentials CertificateChainRequest for the DAC on endpoint 0 (both serve it; no side effect,
  a response command of ~500 bytes).
* turnaround: wire to wire, seen on the device side of the veth by a packet capture (``AF_PACKET``, kernel
  timestamps): from a request datagram reaching the device's port to its first non-ack datagram back. It is the
  device's own latency, without the controller's (the CHIP Python controller spends ~1.5 ms per read and ~14 ms per
  invoke of its own, the same for both devices, which the end-to-end p50 includes).
* CPU: the device process's on-CPU time over the timed calls, all its threads (``/proc/<pid>/task/*/schedstat``,
  nanoseconds), divided by the number of round trips ("all": whatever else the process does meanwhile included;
  "net of idle": less the process's idle CPU rate, measured over ``--idle`` seconds before the rounds, times the
  window's length, which matters for the invokes, each of which lasts ~10 ms in the controller).

The two devices are measured in alternation, ``--rounds`` times ``--count`` calls each, after a warm-up; jfds-device
runs at ``--log-level info`` and the matter.js light at its default (info).

Run as root (two private network namespaces, deleted afterwards): ``python bench/interaction_bench.py
[--count 500] [--rounds 3] [--baseline DIR]``; ``--baseline`` runs a second jfds-device from another checkout (e.g.
``git worktree add --detach /tmp/base <commit>``) in the same run, for before/after figures on a shared machine.
Needs the test extras and matter.js (see README).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import socket
import statistics
import struct
import subprocess
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
    JFDS_DISCRIMINATOR,
    JFDS_NODE_ID,
    PASSCODE,
    Clusters,
    JfdsDevice,
    ReconcilerEnv,
)

LIGHT = 2
BASELINE, BASELINE_NODE_ID, BASELINE_DISCRIMINATOR = "jfds-device@baseline", 12, 0x7A5  # short 7: unlike the others
KINDS = ("read", "invoke", "invoke-small")
PORTS = {"jfds-device": 5540, "matter.js light": 5539 + LIGHT, BASELINE: 5560}
# A standalone ack over CASE is 34 bytes of UDP payload (header 8, protocol header with ack 10, MIC 16); a request
# or a response carries an IM payload and is longer.
ACK_MAX = 40
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33  # root may exceed rmem_max
BI = Clusters.BasicInformation
OC = Clusters.OperationalCredentials
GKM = Clusters.GroupKeyManagement
DAC = OC.Enums.CertificateChainTypeEnum.kDACCertificate


class BenchEnv(ReconcilerEnv):
    """ReconcilerEnv with jfds-device at ``--log-level info`` (the harness default is debug), one light, and
    optionally a second jfds-device run from another checkout (``baseline``: the same bench before a change)."""

    baseline_device: JfdsDevice | None = None

    def build_with(self, lights: dict[int, dict[str, Any]], baseline: Path | None) -> None:
        for node_id, settings in lights.items():
            self._spawn_light(node_id, settings)
        self.device = JfdsDevice(self.net.dev, self.tmp / "jfds", "--interface", self.net.dev_ifname,
                                 "--friendly-name", "jfds-bench", "--log-level", "info")
        self.ctrl = ChipController(self.net.ctl, self.tmp / "ctrl")
        assert self.ctrl.call("CommissionOnNetwork", JFDS_NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              JFDS_DISCRIMINATOR, timeout=90) == JFDS_NODE_ID
        for node_id in lights:
            self.lights[node_id].device.wait_ready()
            self._commission_light(node_id)
        # The baseline starts only now: with two commissionable devices on one address the controller has PASE'd
        # with the wrong one (it commissioned the light under the baseline's discriminator and vice versa).
        if baseline is not None:
            # ``python -c`` with the other checkout first on sys.path: its jfds_device and clusters, our harness.
            code = (f"import sys; sys.path.insert(0, {str(baseline.resolve())!r}); "
                    "from jfds_device.cli import main; sys.exit(main())")
            self.baseline_device = JfdsDevice(
                self.net.dev, self.tmp / "baseline", "--interface", self.net.dev_ifname, "--port",
                str(PORTS[BASELINE]), "--discriminator", str(BASELINE_DISCRIMINATOR), "--friendly-name",
                "jfds-baseline", "--log-level", "info", launcher=("-c", code))
            assert self.ctrl.call("CommissionOnNetwork", BASELINE_NODE_ID, PASSCODE,
                                  DiscoveryFilterType.LONG_DISCRIMINATOR, BASELINE_DISCRIMINATOR,
                                  timeout=90) == BASELINE_NODE_ID


def cpu_seconds(pid: int) -> float:
    """On-CPU time of every thread of ``pid`` so far (schedstat: nanoseconds, unlike the 10 ms ticks of stat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def sniff(ifname: str, out: Path) -> None:
    """Run inside the device namespace: one line per UDP datagram on ``ifname`` (kernel time, src and dst port,
    payload length). SIGTERM stops it after it has drained what the socket still holds, so a capture that lags
    behind on a busy machine loses nothing; the receive buffer is large for the same reason."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
    sock.bind((ifname, 0))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        sock.setblocking(False)

    signal.signal(signal.SIGTERM, stop)
    with out.open("w") as f:
        print("SNIFFING", flush=True)
        while True:
            try:
                frame, ancillary, _, _ = sock.recvmsg(2048, 64)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            stamp = next((struct.unpack("qq", data[:16]) for level, kind, data in ancillary
                          if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
            ethertype = int.from_bytes(frame[12:14], "big")
            if ethertype == 0x86DD and frame[20] == 17:
                udp = frame[54:]
            elif ethertype == 0x0800 and frame[23] == 17:
                udp = frame[14 + (frame[14] & 0x0F) * 4:]
            else:
                continue
            if stamp is not None and len(udp) >= 8:
                src, dst, length = struct.unpack("!HHH", udp[:6])
                f.write(f"{stamp[0] + stamp[1] / 1e9:.9f} {src} {dst} {length - 8}\n")
            if stopping:
                sock.setblocking(False)


def turnarounds(capture: Path, port: int, since: float, until: float) -> list[float]:
    """Request-to-response delays at ``port`` between two times: each non-ack datagram the device sends, timed
    from the latest non-ack datagram it received before it."""
    packets = sorted((float(stamp), int(src), int(dst), int(length))  # two CPUs may deliver them out of order
                     for stamp, src, dst, length in (line.split() for line in capture.read_text().splitlines()))
    delays, request_at = [], None
    for t, src, dst, length in packets:
        if not since <= t <= until or length <= ACK_MAX:
            continue
        if dst == port:
            request_at = t
        elif src == port and request_at is not None:
            delays.append(t - request_at)
            request_at = None
    return delays


def interactions(node_id: int) -> dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]]:
    return {
        "read": ("ReadAttribute", (node_id, [(0, BI.Attributes.VendorName)]), {}),
        "invoke": ("SendCommand", (node_id, 0, OC.Commands.CertificateChainRequest(certificateType=DAC)), {}),
        "invoke-small": ("SendCommand", (node_id, 0, GKM.Commands.KeySetReadAllIndices()), {}),
    }


def measure(ctrl: ChipController, pid: int, call: tuple[str, tuple[Any, ...], dict[str, Any]],
            count: int) -> tuple[list[float], float]:
    method, args, kwargs = call
    cpu = cpu_seconds(pid)
    durations = ctrl.call("time_calls", method, args, kwargs, count, timeout=60 + count)
    return durations, cpu_seconds(pid) - cpu


def realtime() -> float:
    return time.clock_gettime(time.CLOCK_REALTIME)


def percentile(values: list[float], p: float) -> float:
    """The p-quantile; NaN for no values (a capture that saw none of a window prints nan, not a traceback)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else math.nan


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="calls per interaction, device and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured before the rounds")
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. a git worktree of an earlier commit) "
                        "whose jfds-device runs alongside, as a third device")
    parser.add_argument("--sniff", nargs=2, metavar=("IFNAME", "OUT"), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.sniff:
        sniff(args.sniff[0], Path(args.sniff[1]))
        return
    ensure_matterjs()
    devices = {"jfds-device": JFDS_NODE_ID, "matter.js light": LIGHT}
    if args.baseline is not None:
        devices[BASELINE] = BASELINE_NODE_ID
    latencies: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], float] = {}
    wire: dict[tuple[str, str], list[float]] = {}
    busy: dict[tuple[str, str], float] = {}  # wall seconds of each device's timed windows
    with topology() as net, workdir("jfds-interaction-bench-") as tmp:
        env = BenchEnv(net, tmp)
        try:
            env.build_with({LIGHT: {}}, args.baseline)
            assert env.ctrl is not None and env.device is not None and env.device.proc is not None
            pids = {"jfds-device": env.device.proc.pid, "matter.js light": env.lights[LIGHT].device.proc.pid}
            if env.baseline_device is not None and env.baseline_device.proc is not None:
                pids[BASELINE] = env.baseline_device.proc.pid
            capture = tmp / "capture.txt"
            sniffer = subprocess.Popen(["ip", "netns", "exec", net.dev, sys.executable, __file__, "--sniff",
                                        net.dev_ifname, str(capture)], stdout=subprocess.PIPE)
            try:
                assert sniffer.stdout is not None and sniffer.stdout.readline().strip() == b"SNIFFING"
                for name, node_id in devices.items():
                    for call in interactions(node_id).values():
                        measure(env.ctrl, pids[name], call, args.warmup)
                time.sleep(1)  # the warm-up's stragglers (acks, closes) settle before the idle window
                idle_from = {name: cpu_seconds(pid) for name, pid in pids.items()}
                time.sleep(args.idle)
                idle = {name: (cpu_seconds(pid) - idle_from[name]) / args.idle for name, pid in pids.items()}
                windows = []
                for _ in range(args.rounds):
                    for name, node_id in devices.items():
                        for kind, call in interactions(node_id).items():
                            started = realtime()
                            durations, seconds = measure(env.ctrl, pids[name], call, args.count)
                            windows.append((name, kind, started, realtime()))
                            busy[(name, kind)] = busy.get((name, kind), 0.0) + realtime() - started
                            latencies.setdefault((name, kind), []).extend(durations)
                            cpu[(name, kind)] = cpu.get((name, kind), 0.0) + seconds
            finally:
                sniffer.terminate()
                sniffer.wait(60)
            for name, kind, started, ended in windows:
                wire.setdefault((name, kind), []).extend(turnarounds(capture, PORTS[name], started, ended))
        except BaseException:
            if env.device is not None and env.device.log_path.exists():
                print("jfds-device log (tail):\n" + env.device.output()[-6000:], file=sys.stderr)
            raise
        finally:
            if env.baseline_device is not None:
                env.baseline_device.stop()
            env.close()
    n = args.count * args.rounds
    print(f"\nper interaction, CHIP controller over CASE, {args.rounds} rounds x {args.count} calls per device "
          f"(alternating), {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'':<34}{'end to end (controller)':>24}{'device turnaround (wire)':>32}{'device CPU ms/op':>28}")
    print(f"{'device':<22}{'interaction':<12}{'p50 ms':>12}{'p95 ms':>12}{'p50 ms':>12}{'p95 ms':>12}{'n':>8}"
          f"{'all':>10}{'net of idle':>14}")
    net = {key: (cpu[key] - idle[key[0]] * busy[key]) / n * 1e3 for key in cpu}
    for kind in KINDS:
        for name in devices:
            values, turns = latencies[(name, kind)], wire[(name, kind)]
            print(f"{name:<22}{kind:<12}{percentile(values, 0.5) * 1e3:>12.3f}{percentile(values, 0.95) * 1e3:>12.3f}"
                  f"{percentile(turns, 0.5) * 1e3:>12.3f}{percentile(turns, 0.95) * 1e3:>12.3f}{len(turns):>8}"
                  f"{cpu[(name, kind)] / n * 1e3:>10.3f}{net[(name, kind)]:>14.3f}")
    rates = ", ".join(f"{name} {rate * 100:.1f}% of a core" for name, rate in idle.items())
    print(f"idle CPU before the rounds: {rates}")
    pairs = [(name, "matter.js light") for name in devices if name != "matter.js light"]
    if BASELINE in devices:
        pairs.append(("jfds-device", BASELINE))
    for ours, theirs in pairs:
        for kind in KINDS:
            end_to_end = ratio(median(latencies[(ours, kind)]), median(latencies[(theirs, kind)]))
            turnaround = ratio(median(wire[(ours, kind)]), median(wire[(theirs, kind)]))
            print(f"{ours} / {theirs}, {kind}: end-to-end p50 {end_to_end:.2f}x, turnaround p50 {turnaround:.2f}x, "
                  f"CPU {ratio(cpu[(ours, kind)], cpu[(theirs, kind)]):.2f}x "
                  f"(net of idle {ratio(net[(ours, kind)], net[(theirs, kind)]):.2f}x)")
    if any(not turns for turns in wire.values()):
        print("a device's port saw none of its calls (n = 0): the controller reached another device for its node id")


if __name__ == "__main__":
    main()
