"""Issue 9 end to end: the reconciler pushes to 20 matter.js peers while 3 CHIP controllers hold subscriptions.

The reconciler needs 20 outbound CASE sessions (one per peer: its live subscription rides on it) while the
controllers hold 3 inbound ones. Before issue 9 one 16-entry LRU table served both, so reconciling evicted the
controllers' sessions and with them their subscriptions. Now the two sides have budgets of their own, the outbound
one sized to NodeList's maximum (issue 13): no session is evicted on either side, every peer keeps its session and
subscription, and no controller session, subscription or report is lost. (The outbound side's own eviction, when
it is full, is covered by tests/transport/test_session_budgets.py.)

Environment: ``many_peers_env`` (20 lights started in parallel, commissioned by IP by the CHIP controller, each
granting our node Administer). Controllers: the admin (node 112233) and two viewers (View on jfds-device), all in one
CHIP controller process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.many_peers_env import ManyPeersEnv, many_peers_env
from tests.e2e.reconciler_env import AC, JF, JFDS_NODE_ID, SUCCESS, ace_key, is_committed, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.clusters.Types import NullValue  # noqa: E402

BI = Clusters.BasicInformation
PEERS = 20
VIEWERS = (0x3001, 0x3002)
PUSH_S = 150  # RefreshNode and one ACL entry on 20 peers, 4 at a time, on a loaded 2-core machine
REPORT_S = 5  # a NodeLabel change reaches every subscriber (MinInterval 0)
INBOUND_EVICTION = re.compile(r"inbound session budget \(\d+\) full: evicting")
OUTBOUND_EVICTION = re.compile(r"outbound session budget \((\d+)\) full: evicting session \d+ \(fabric \d+, "
                               r"peer ([0-9A-F]{16})")
INBOUND_CASE = re.compile(r"jfds_device\.node\.handshakes: CASE session \d+ established")
LIVE_SUBSCRIBED = re.compile(r"live: node 0x([0-9A-F]{16}) subscribed")


@pytest.fixture(scope="module")
def env() -> Iterator[ManyPeersEnv]:
    with many_peers_env("jfds-e2e-many-peers-", PEERS) as built:
        print("TIMING environment", {k: round(v, 2) for k, v in built.timings.items()})
        yield built


def pushed_ace(node_id: int) -> Any:
    """The entry each peer gets: Operate for the first viewer, on the peer's endpoint 1 (distinct per peer)."""
    return JF.Structs.DatastoreAccessControlEntryStruct(
        privilege=JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kOperate,
        authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase, subjects=[VIEWERS[0]],
        targets=[JF.Structs.DatastoreAccessControlTargetStruct(cluster=NullValue, endpoint=1, deviceType=NullValue)],
    )


def grant_viewers(env: ManyPeersEnv) -> list[int]:
    """View on jfds-device for VIEWERS; returns their controller indexes in the CHIP process."""
    acl = list(env.read_peer(JFDS_NODE_ID, (0, AC.Attributes.Acl)))
    view = AC.Structs.AccessControlEntryStruct(
        privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kView,
        authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase, subjects=list(VIEWERS), targets=NullValue)
    env.write_peer(JFDS_NODE_ID, 0, AC.Attributes.Acl([*acl, view]))
    assert env.ctrl is not None
    return [env.ctrl.call("new_controller", node_id) for node_id in VIEWERS]


def label_everywhere(env: ManyPeersEnv, keys: list[int], label: str) -> float:
    """Write NodeLabel through the admin; seconds until every subscription reported it (fails after REPORT_S)."""
    assert env.ctrl is not None
    started = time.monotonic()
    [status] = env.ctrl.call("WriteAttribute", JFDS_NODE_ID, [(0, BI.Attributes.NodeLabel(label))])
    assert int(status.Status) == SUCCESS, status

    def everyone_saw_it() -> bool:
        return all(any(value == label for _, value in env.ctrl.call("reports", key)) for key in keys)

    wait_until(everyone_saw_it, REPORT_S, interval=0.1, message=f"NodeLabel {label!r} reported to all subscribers")
    return time.monotonic() - started


def all_committed(env: ManyPeersEnv) -> bool:
    nodes = {e.nodeID: e for e in env.read_jfds(JF.Attributes.NodeList)}
    acls = {e.nodeID: e for e in env.read_jfds(JF.Attributes.NodeACLList)}
    peers = range(2, 2 + PEERS)
    return all(n in nodes and is_committed(nodes[n]) and n in acls and is_committed(acls[n]) for n in peers)


def test_reconciling_20_peers_keeps_every_controller_session_and_subscription(env: ManyPeersEnv) -> None:
    assert env.ctrl is not None and env.device is not None
    viewers = grant_viewers(env)
    keys = [env.ctrl.call("subscribe", JFDS_NODE_ID, [(0, BI.Attributes.NodeLabel)], 0, 60, controller=via)
            for via in (0, *viewers)]
    label_everywhere(env, keys, "before the push")
    inbound_case_before = len(INBOUND_CASE.findall(env.device.output()))

    started = time.monotonic()
    commands: list[Any] = []
    for node_id in range(2, 2 + PEERS):
        commands += [JF.Commands.AddPendingNode(nodeID=node_id, friendlyName=f"light{node_id}"),
                     JF.Commands.RefreshNode(nodeID=node_id),
                     JF.Commands.AddACLToNode(nodeID=node_id, ACLEntry=pushed_ace(node_id))]
    assert env.jfds_many(commands) == [None] * len(commands)
    # While the reconciler works through the peers, every subscriber keeps getting reports.
    rounds, report_seconds = 0, []
    while not all_committed(env):
        assert time.monotonic() - started < PUSH_S, "not every node and ACL entry Committed in time"
        report_seconds.append(label_everywhere(env, keys, f"during the push {rounds}"))
        rounds += 1
        time.sleep(0.3)
    push_seconds = time.monotonic() - started
    # Every peer's live subscription is up (one session each, none evicted); the subscribers keep their reports.
    wait_until(lambda: len(set(LIVE_SUBSCRIBED.findall(env.device.output()))) >= PEERS, 30, interval=0.5,
               message="a live subscription to every peer")
    time.sleep(5)
    report_seconds.append(label_everywhere(env, keys, "with every peer subscribed"))

    # Every peer holds its entry.
    for node_id in range(2, 2 + PEERS):
        assert ace_key(pushed_ace(node_id)) in {ace_key(e) for e in env.peer_acl(node_id)}, node_id
    log = env.device.output()
    # No session was evicted on either side: not the reconciler's (its budget follows NodeList) and never a
    # controller's; no controller had to set up CASE again, no subscription had to be re-established.
    assert OUTBOUND_EVICTION.findall(log) == []
    assert INBOUND_EVICTION.findall(log) == []
    assert len(INBOUND_CASE.findall(log)) == inbound_case_before
    assert [env.ctrl.call("resubscriptions", key) for key in keys] == [[], [], []]
    print(f"TIMING push to {PEERS} peers {push_seconds:.1f} s; {rounds} report rounds, slowest "
          f"{max(report_seconds):.2f} s")
