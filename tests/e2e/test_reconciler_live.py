"""The reconciler's live view, end to end (``reconciler/live.py``): jfds-device subscribes to every matter.js light
it manages; the CHIP SDK controller is the admin that edits the datastore and, behind its back, the lights.

* drift: an ACL entry the controller deletes on a light is restored within 2 s (the light's report triggers the
  verify pass; no polling);
* idle: with 3 committed peers, 60 s pass without one read request from the reconciler (its stats line, logged
  before the pass a report triggers, shows the read count unchanged);
* reachability: a stopped light is unreachable within its subscription's MaxInterval + margin; restarted, it is
  resubscribed and an entry added meanwhile is Committed within 5 s, with no command;
* capacity: a light at its ACL capacity (matter.js default, 4 per fabric) gets no write for an entry that cannot
  fit: CommitFailed(RESOURCE_EXHAUSTED), its ACL unchanged, the reconciler's write and read counts unchanged (the
  subscription's ACL shows it full).

The environment is ``reconciler_env.py``'s, as in ``test_reconciler.py``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.reconciler_env import (
    AC,
    COMMIT_FAILED,
    JF,
    RESOURCE_EXHAUSTED,
    SUCCESS,
    NullValue,
    ReconcilerEnv,
    ace_key,
    reconciler_env,
    status_of,
    wait_until,
)

pytestmark = [pytest.mark.netns, pytest.mark.interop]

DRIFTED, QUIET, STOPPED, FULL = 2, 3, 4, 5
LIGHTS = {DRIFTED: {"acl_entries": 16}, QUIET: {"acl_entries": 16}, STOPPED: {"acl_entries": 16}, FULL: {}}
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum
CASE = JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase
IDLE_S = 60.0
DRIFT_S = 2.0
RETURN_S = 5.0
LOSS_MARGIN_S = 15.0  # over MaxInterval: the liveness margin (the MRP response timeout) plus scheduling
STATS = re.compile(r"reconciler stats: (.*)$")


@pytest.fixture(scope="module")
def env() -> Iterator[ReconcilerEnv]:
    with reconciler_env("jfds-e2e-live-", LIGHTS) as built:
        yield built


def jf_ace(subject: int) -> Any:
    return JF.Structs.DatastoreAccessControlEntryStruct(privilege=PRIV.kView, authMode=CASE, subjects=[subject],
                                                        targets=NullValue)


def stats_lines(env: ReconcilerEnv) -> list[dict[str, float]]:
    assert env.device is not None
    found = []
    for line in env.device.output().splitlines():
        match = STATS.search(line)
        if match:
            found.append({k: float(v) for k, v in (kv.split("=", 1) for kv in match.group(1).split())})
    return found


def subscribed(env: ReconcilerEnv, node_id: int) -> list[int]:
    """The MaxInterval of every subscription to ``node_id`` so far (from the live view's log lines)."""
    assert env.device is not None
    pattern = re.compile(rf"live: node 0x{node_id:016X} subscribed \(max interval (\d+) s\)")
    return [int(m.group(1)) for m in pattern.finditer(env.device.output())]


def unreachable(env: ReconcilerEnv, node_id: int) -> int:
    assert env.device is not None
    return env.device.output().count(f"node 0x{node_id:016X} unreachable (its subscription is lost)")


def push(env: ReconcilerEnv, node_id: int, subject: int) -> int:
    ace = jf_ace(subject)
    assert env.jfds(JF.Commands.AddACLToNode(nodeID=node_id, ACLEntry=ace)) == SUCCESS
    [entry] = [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=node_id) if ace_key(e.ACLEntry) == ace_key(ace)]
    env.wait_committed(JF.Attributes.NodeACLList, 10, nodeID=node_id, listID=entry.listID)
    return int(entry.listID)


def quiet(env: ReconcilerEnv, for_s: float = 3.0, timeout: float = 30.0) -> dict[str, float]:
    """Wait until no stats line has been logged for ``for_s``; the last one."""
    deadline = time.monotonic() + timeout
    count, since = len(stats_lines(env)), time.monotonic()
    while time.monotonic() - since < for_s:
        assert time.monotonic() < deadline, "the reconciler never went quiet"
        time.sleep(0.2)
        now = len(stats_lines(env))
        if now != count:
            count, since = now, time.monotonic()
    return stats_lines(env)[-1]


def test_drift_is_restored_at_once_and_idle_peers_are_not_polled(env: ReconcilerEnv) -> None:
    for node_id in (DRIFTED, QUIET, STOPPED):
        env.commit_node(node_id, f"live-{node_id}")
        push(env, node_id, 0xD0 + node_id)
    for node_id in (DRIFTED, QUIET, STOPPED):
        wait_until(lambda n=node_id: subscribed(env, n), 15, message=f"a subscription to node {node_id}")
    before = quiet(env)
    lines = len(stats_lines(env))
    time.sleep(IDLE_S)
    idle = stats_lines(env)[lines:]
    assert all(s["read_n"] == before["read_n"] and s["write_n"] == before["write_n"] for s in idle), idle
    print(f"TIMING idle {IDLE_S:.0f} s: {len(idle)} stats lines, reads {before['read_n']:.0f} -> "
          f"{idle[-1]['read_n'] if idle else before['read_n']:.0f}")

    drifting = jf_ace(0xD0 + DRIFTED)
    light = env.lights[DRIFTED].device
    acl = env.peer_acl(DRIFTED)
    assert Counter(map(ace_key, acl))[ace_key(drifting)] == 1
    events = len(light.events("acl"))
    lines = len(stats_lines(env))
    env.write_peer(DRIFTED, 0, AC.Attributes.Acl([e for e in acl if ace_key(e) != ace_key(drifting)]))
    deleted = time.monotonic()

    def restored() -> bool:
        seen = [a for _, a in light.events("acl")[events:]]
        gone = next((i for i, a in enumerate(seen) if all(e["subjects"] != [0xD0 + DRIFTED] for e in a)), None)
        return gone is not None and any(any(e["subjects"] == [0xD0 + DRIFTED] for e in a) for a in seen[gone + 1:])

    wait_until(restored, DRIFT_S + 1, interval=0.02, message="the deleted ACL entry restored on the light")
    took = time.monotonic() - deleted
    print(f"TIMING drift restored after {took:.2f} s")
    assert took <= DRIFT_S
    # The first line after the idle minute is the one logged when the report arrived, before its verify pass:
    # the idle minute cost no read.
    after = stats_lines(env)[lines:]
    assert after and after[0]["read_n"] == before["read_n"] and after[0]["live_reports"] > before["live_reports"]
    assert Counter(map(ace_key, env.peer_acl(DRIFTED)))[ace_key(drifting)] == 1


def test_stopped_peer_is_unreachable_and_converges_when_it_returns(env: ReconcilerEnv) -> None:
    env.commit_node(STOPPED, f"live-{STOPPED}")
    if not any(ace_key(e.ACLEntry) == ace_key(jf_ace(0xD0 + STOPPED))
               for e in env.entries(JF.Attributes.NodeACLList, nodeID=STOPPED)):
        push(env, STOPPED, 0xD0 + STOPPED)
    max_interval = wait_until(lambda: subscribed(env, STOPPED), 15, message="a subscription")[-1]
    lost = unreachable(env, STOPPED)
    subscriptions = len(subscribed(env, STOPPED))
    env.stop_light(STOPPED)
    stopped = time.monotonic()
    wait_until(lambda: unreachable(env, STOPPED) > lost, max_interval + LOSS_MARGIN_S, interval=0.1,
               message="the stopped light marked unreachable")
    print(f"TIMING unreachable after {time.monotonic() - stopped:.2f} s (max interval {max_interval} s)")
    waiting = jf_ace(0xE4)
    assert env.jfds(JF.Commands.AddACLToNode(nodeID=STOPPED, ACLEntry=waiting)) == SUCCESS
    time.sleep(2)
    [entry] = [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=STOPPED)
               if ace_key(e.ACLEntry) == ace_key(waiting)]
    assert status_of(entry).state != JF.Enums.DatastoreStateEnum.kCommitted
    env.restart_light(STOPPED)
    back = time.monotonic()
    env.wait_committed(JF.Attributes.NodeACLList, RETURN_S, nodeID=STOPPED, listID=entry.listID)
    print(f"TIMING converged {time.monotonic() - back:.2f} s after the light's restart")
    assert len(subscribed(env, STOPPED)) > subscriptions
    assert Counter(map(ace_key, env.peer_acl(STOPPED)))[ace_key(waiting)] == 1


def test_an_entry_that_cannot_fit_is_refused_without_a_write(env: ReconcilerEnv) -> None:
    env.commit_node(FULL, "full")
    while len(env.peer_acl(FULL)) < 4:  # fill it: the admin entries, then ours
        push(env, FULL, 0xF0 + len(env.peer_acl(FULL)))
    wait_until(lambda: subscribed(env, FULL), 15, message="a subscription")
    before_acl = sorted(map(ace_key, env.peer_acl(FULL)))
    before = quiet(env)
    extra = jf_ace(0xFE)
    assert env.jfds(JF.Commands.AddACLToNode(nodeID=FULL, ACLEntry=extra)) == SUCCESS

    def failed() -> Any:
        found = [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=FULL)
                 if ace_key(e.ACLEntry) == ace_key(extra)]
        return found and status_of(found[0]).state == COMMIT_FAILED and found[0]

    entry = wait_until(failed, 10, message="CommitFailed")
    assert status_of(entry).failureCode == RESOURCE_EXHAUSTED
    after = quiet(env)
    assert after["write_n"] == before["write_n"]  # no write attempted
    assert after["read_n"] == before["read_n"]  # refused from the subscription's ACL: not read either
    assert sorted(map(ace_key, env.peer_acl(FULL))) == before_acl





def verify_passes(env: ReconcilerEnv, node_id: int) -> int:
    """The reconciler's verify passes of ``node_id`` so far (one log line per pass; the device logs at debug)."""
    assert env.device is not None
    return env.device.output().count(f"reconcile node=0x{node_id:016X} mode=verify ")


def test_a_light_restarted_with_another_software_version_gets_one_full_verify(env: ReconcilerEnv) -> None:
    """The light comes back on new firmware: its new subscription's priming report shows the new SoftwareVersion,
    and the node gets one verify pass (with the limits of the new report), not one per trigger."""
    assert env.device is not None
    node_id = QUIET
    env.commit_node(node_id, f"live-{node_id}")
    if not any(ace_key(e.ACLEntry) == ace_key(jf_ace(0xD0 + node_id))
               for e in env.entries(JF.Attributes.NodeACLList, nodeID=node_id)):
        push(env, node_id, 0xD0 + node_id)
    wait_until(lambda: subscribed(env, node_id), 15, message="a subscription")
    quiet(env)
    passes, subscriptions = verify_passes(env, node_id), len(subscribed(env, node_id))
    marker = f"live: node 0x{node_id:016X} software version changed"
    changed = env.device.output().count(marker)
    env.lights[node_id].settings["software_version"] = 7
    env.restart_light(node_id)
    wait_until(lambda: env.device.output().count(marker) > changed, 60, interval=0.2,
               message="the new software version seen")
    quiet(env)
    assert f"{marker} (" in env.device.output() and "-> 7): full verify" in env.device.output()
    assert len(subscribed(env, node_id)) == subscriptions + 1
    assert verify_passes(env, node_id) - passes == 1
