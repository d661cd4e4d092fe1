"""``jfds-device status`` on the state of a real reconciler run (issue 14): matter.js lights, one with a full ACL,
commissioned with jfds-device by the CHIP controller. While the node runs and after it stopped, the report names
the refused entry's status (RESOURCE_EXHAUSTED), counts Pending and Committed entries, validates against its JSON
schema and exits 1 (something is not Committed); while the node runs it shows the lights reachable as the node's
reconciler sees them, after it stopped "unknown (node not running)".
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from jfds_device.status import STATUS_SCHEMA
from tests.e2e.reconciler_env import (
    COMMIT_FAILED,
    COMMITTED,
    JF,
    RESOURCE_EXHAUSTED,
    SUCCESS,
    ReconcilerEnv,
    reconciler_env,
    status_of,
    wait_until,
)

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.clusters.Types import NullValue  # noqa: E402

ROOMY, FULL, NEVER = 2, 3, 0x0BAD  # NEVER: a node the datastore knows of but nobody ever refreshed
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum


def jf_ace(subject: int) -> Any:
    return JF.Structs.DatastoreAccessControlEntryStruct(
        privilege=PRIV.kView, authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase,
        subjects=[subject], targets=NullValue)  # fmt: skip


def status(env: ReconcilerEnv, *args: str) -> subprocess.CompletedProcess[str]:
    assert env.device is not None
    return subprocess.run([sys.executable, "-m", "jfds_device", "status", "--storage", str(env.device.storage),
                           *args], capture_output=True, text=True, timeout=60)  # fmt: skip


def test_status_names_why_a_node_is_out_of_step() -> None:
    with reconciler_env("jfds-e2e-status-", {ROOMY: {"acl_entries": 16}, FULL: {}}) as env:
        env.commit_node(ROOMY, "roomy lamp")
        env.commit_node(FULL, "full lamp")
        env.fill_acl(FULL)  # matter.js default: 4 entries per fabric; it refuses one more
        assert env.jfds(JF.Commands.AddACLToNode(nodeID=FULL, ACLEntry=jf_ace(0xF100))) == SUCCESS
        assert env.jfds(JF.Commands.AddACLToNode(nodeID=ROOMY, ACLEntry=jf_ace(0xF200))) == SUCCESS
        assert env.jfds(JF.Commands.AddPendingNode(nodeID=NEVER, friendlyName="never refreshed")) == SUCCESS

        def refused() -> Any:
            found = [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=FULL)
                     if status_of(e).state == COMMIT_FAILED]  # fmt: skip
            return found
        wait_until(refused, 20, message="the refused ACL entry CommitFailed")
        wait_until(lambda: all(status_of(e).state == COMMITTED for e in env.entries(JF.Attributes.NodeACLList,
                                                                                     nodeID=ROOMY)),
                   20, message="the roomy light's ACL entries Committed")  # fmt: skip

        running = status(env)
        assert running.returncode == 1, running.stderr
        assert "RESOURCE_EXHAUSTED (0x89)" in running.stdout and "full lamp" in running.stdout
        assert "never refreshed" in running.stdout
        # Reachability as the running node's reconciler sees it: both lights' subscriptions are up; the node
        # nobody refreshed was never reached.
        def reachability() -> dict[int, str]:
            report = json.loads(status(env, "--json").stdout)
            assert report["node"]["running"]
            return {int(n["node_id"], 16): n["reachability"] for n in report["nodes"]}
        wait_until(lambda: reachability() == {ROOMY: "reachable", FULL: "reachable", NEVER: "unknown"}, 20,
                   message="both lights reachable, the never refreshed node unknown")  # fmt: skip
        assert "'roomy lamp': node Committed, reachable;" in status(env).stdout

        assert env.device is not None and env.device.stop() == 0
        stopped = status(env, "--json")
        assert stopped.returncode == 1, stopped.stderr
        report = json.loads(stopped.stdout)
        jsonschema.validate(report, STATUS_SCHEMA)
        nodes = {int(n["node_id"], 16): n for n in report["nodes"]}
        [failure] = nodes[FULL]["failed"]
        assert (failure["kind"], failure["status"], failure["code"]) == ("acl", "RESOURCE_EXHAUSTED",
                                                                         RESOURCE_EXHAUSTED)  # fmt: skip
        assert nodes[ROOMY]["entries"]["Committed"] >= 1 and nodes[ROOMY]["entries"]["CommitFailed"] == 0
        assert nodes[NEVER]["state"] == "Pending"
        assert not report["node"]["running"] and {n["reachability"] for n in report["nodes"]} == {"unknown"}
        assert "reachability unknown (node not running)" in status(env).stdout
        assert report["datastore"]["bootstrapped"] and report["datastore"]["anchor_node_id"] == "0x0000000000000001"
        assert len(report["node"]["fabrics"]) == 1 and not report["node"]["commissionable"]
