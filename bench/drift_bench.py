"""Issue 11: drift-repair latency and idle cost per node of the reconciler, polling its peers (before) vs subscribed
to them (after), side by side in one run.

Each mode runs in a fresh environment of its own (``tests/e2e/reconciler_env.py``: jfds-device, N matter.js lights,
the CHIP controller that commissions them all), jfds-device started by ``bench/drift_device.py`` with the mode's
``ReconcilerConfig`` (polling: ``live=False, verify_interval=20.0``; subscriptions: the default). The controller
makes each light a Committed node holding ceil(R/N) Committed ACL entries that the reconciler pushed. Then:

* idle: the reconciler's counters (its ``reconciler stats:`` log line) before and after an idle window, as
  interactions per node per hour: reads, writes and invokes (``interactions``) plus subscription attempts
  (``live_subscribes``); verify passes, session connects (a live CASE session is reused) and data reports
  received are shown too. The reconciler does not count the subscriptions' keep-alive (empty) reports: the table
  shows the rate their MaxInterval implies.
* drift: R times, after a random pause (uniform 0..--jitter s, so polling is met at every phase of its verify
  cycle), the controller deletes a Committed entry from a light's ACL (round robin over the lights, a different
  entry each time: the drift budget allows 3 repairs per entry revision). Latency: from the controller's write
  being answered until the light reports (its ACL change events, polled every 20 ms) the entry back.

Run as root (everything runs in private network namespaces, deleted afterwards):
``python bench/drift_bench.py [--lights 3] [--idle 120] [--repeats 10]``. Needs the test extras and matter.js.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.drift_device import MODES  # noqa: E402
from bench.reconcile_bench import BenchEnv  # noqa: E402
from tests.e2e.harness import topology, workdir  # noqa: E402
from tests.e2e.matterjs import ensure_matterjs  # noqa: E402
from tests.e2e.reconciler_env import AC, ace_key, wait_until  # noqa: E402
from tests.e2e.test_reconciler_live import jf_ace, push, quiet, stats_lines, subscribed  # noqa: E402

SUBJECT = 0xB000  # + light * 0x100 + entry: the CASE subjects of the entries the reconciler pushes
REPAIR_TIMEOUT_S = 90.0  # polling: a verify pass every 20 s, due at a 10 s sweep, plus the pass itself


@dataclass
class ModeResult:
    setup_s: float = 0.0
    idle_s: float = 0.0
    idle: dict[str, float] = field(default_factory=dict)  # counter deltas over the idle window
    max_intervals: list[int] = field(default_factory=list)  # the subscriptions' MaxInterval, one per light
    latencies: list[float] = field(default_factory=list)


def prepare(env: BenchEnv, lights: list[int], per_light: int) -> dict[int, list[int]]:
    """Each light a Committed node with ``per_light`` Committed ACL entries; their subjects by light."""
    subjects = {}
    for node_id in lights:
        env.commit_node(node_id, f"drift-{node_id}")
        subjects[node_id] = [SUBJECT + node_id * 0x100 + i for i in range(per_light)]
        for subject in subjects[node_id]:
            push(env, node_id, subject)
    return subjects


def measure_idle(env: BenchEnv, idle_s: float) -> tuple[float, dict[str, float]]:
    """The counters' deltas over an idle window opened once the reconciler has been quiet for 3 s."""
    before = quiet(env, timeout=60)
    started = time.monotonic()
    time.sleep(idle_s)
    after = stats_lines(env)[-1]
    return time.monotonic() - started, {k: v - before.get(k, 0) for k, v in after.items()}


def drift_once(env: BenchEnv, node_id: int, subject: int) -> float:
    """Delete the entry for ``subject`` from the light's ACL; seconds until the light holds it again."""
    light = env.lights[node_id].device
    target = ace_key(jf_ace(subject))
    acl = env.peer_acl(node_id)
    assert Counter(map(ace_key, acl))[target] == 1, f"node {node_id} does not hold subject {subject:#x} once"
    events = len(light.events("acl"))
    env.write_peer(node_id, 0, AC.Attributes.Acl([e for e in acl if ace_key(e) != target]))
    deleted = time.monotonic()

    def restored() -> bool:
        seen = [a for _, a in light.events("acl")[events:]]
        gone = next((i for i, a in enumerate(seen) if all(e["subjects"] != [subject] for e in a)), None)
        return gone is not None and any(any(e["subjects"] == [subject] for e in a) for a in seen[gone + 1:])

    wait_until(restored, REPAIR_TIMEOUT_S, interval=0.02, message=f"subject {subject:#x} back on node {node_id}")
    took = time.monotonic() - deleted
    assert Counter(map(ace_key, env.peer_acl(node_id)))[target] == 1
    return took


def run_mode(mode: str, args: argparse.Namespace, rng: random.Random) -> ModeResult:
    per_light = math.ceil(args.repeats / args.lights)
    lights = {node_id: {"acl_entries": max(16, per_light + 4)} for node_id in range(2, args.lights + 2)}
    result = ModeResult()
    with topology() as net, workdir(f"jfds-drift-bench-{mode}-") as tmp:
        env = BenchEnv(net, tmp, device_launcher=("-m", "bench.drift_device", mode))
        try:
            started = time.monotonic()
            env.build(lights)
            subjects = prepare(env, list(lights), per_light)
            if MODES[mode].live:
                for node_id in lights:
                    result.max_intervals.append(wait_until(lambda n=node_id: subscribed(env, n), 15,
                                                           message=f"a subscription to node {node_id}")[-1])
            result.setup_s = time.monotonic() - started
            print(f"[{mode}] setup {result.setup_s:.1f} s; idle window {args.idle:.0f} s", flush=True)
            result.idle_s, result.idle = measure_idle(env, args.idle)
            for rep in range(args.repeats):
                node_id = list(lights)[rep % args.lights]
                time.sleep(rng.uniform(0, args.jitter))
                result.latencies.append(drift_once(env, node_id, subjects[node_id][rep // args.lights]))
                print(f"[{mode}] drift {rep + 1}/{args.repeats} on node {node_id}: "
                      f"{result.latencies[-1]:.2f} s", flush=True)
            # Polling mode must not have subscribed: the launcher's configuration took effect.
            assert MODES[mode].live or not any(subscribed(env, n) for n in lights), "polling mode subscribed"
        except BaseException:
            if env.device is not None and env.device.log_path.exists():
                print("jfds-device log (tail):\n" + env.device.output()[-6000:], file=sys.stderr)
            raise
        finally:
            env.close()
    return result


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def per_node_hour(result: ModeResult, lights: int, *keys: str) -> float:
    return sum(result.idle.get(k, 0) for k in keys) / lights / result.idle_s * 3600


def keep_alives(result: ModeResult) -> str:
    if not result.max_intervals:
        return "0"
    return f"{sum(3600 / m for m in result.max_intervals) / len(result.max_intervals):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lights", type=int, default=3, help="matter.js lights, N (1..10)")
    parser.add_argument("--idle", type=float, default=120.0, help="idle window per mode, seconds")
    parser.add_argument("--repeats", type=int, default=10, help="drift repairs measured per mode")
    parser.add_argument("--jitter", type=float, default=30.0,
                        help="random pause before each deletion, 0..JITTER s (polling's cycle: 20 s + a 10 s sweep)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the pauses")
    args = parser.parse_args()
    assert 1 <= args.lights <= 10, "light discriminators are defined for nodes 2..11"
    assert args.repeats >= 1 and args.idle > 0
    ensure_matterjs()
    results = {mode: run_mode(mode, args, random.Random(args.seed)) for mode in ("polling", "subscriptions")}
    poll, live = results["polling"], results["subscriptions"]
    n = args.lights

    def rate(label: str, *keys: str) -> tuple[str, ...]:
        return (label, *(f"{per_node_hour(r, n, *keys):.0f}" for r in (poll, live)))

    rows = [
        (f"drift repair p50, s (n={args.repeats})", *(f"{percentile(r.latencies, 50):.2f}" for r in (poll, live))),
        (f"drift repair p95, s (n={args.repeats})", *(f"{percentile(r.latencies, 95):.2f}" for r in (poll, live))),
        ("drift repair max, s", *(f"{max(r.latencies):.2f}" for r in (poll, live))),
        rate("idle interactions /node/h (rd+wr+inv+sub)", "interactions", "live_subscribes"),
        rate("  of which reads /node/h", "read_n"),
        rate("idle verify passes /node/h", "passes"),
        rate("idle session connects /node/h (live reused)", "case_n"),
        rate("idle data reports received /node/h", "live_reports"),
        ("keep-alive reports /node/h (3600/MaxInterval)", keep_alives(poll), keep_alives(live)),
    ]
    print(f"\n{n} lights; idle window measured {poll.idle_s:.1f} s (polling) / {live.idle_s:.1f} s (subscriptions); "
          f"{args.repeats} drift repairs per mode after pauses of 0..{args.jitter:.0f} s (seed {args.seed})")
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'metric':<{width}}{'polling':>10}{'subscriptions':>15}")
    for name, before, after in rows:
        print(f"{name:<{width}}{before:>10}{after:>15}")
    print(f"(polling: ReconcilerConfig(live=False, verify_interval=20.0); subscriptions: ReconcilerConfig(), "
          f"MaxInterval {sorted(set(live.max_intervals))} s; setup {poll.setup_s:.0f} s / {live.setup_s:.0f} s)")


if __name__ == "__main__":
    main()
