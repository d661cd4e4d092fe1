"""``jfds-device run --http 127.0.0.1:PORT`` inside the test's namespace (issue 14): after the CHIP controller's
JFDS AddACLToNode is pushed to a matter.js light, /metrics (fetched from inside the namespace) shows the reconciler's
passes and interactions grown, the new entry counted, the IM interactions our server served (the controller's invoke)
and the light reachable; the dashboard answers, an action needs the token that ``jfds-device status --token``
prints, and ``status --json`` says the node runs and sees the light reachable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO
from tests.e2e.reconciler_env import JF, SUCCESS, ReconcilerEnv, is_committed, reconciler_env, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop]

pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.clusters.Types import NullValue  # noqa: E402

LIGHT = 2
HTTP = "127.0.0.1:8080"  # the namespace's own loopback: nothing outside it can reach the port
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum

# A launcher that is the package itself plus --http (DeviceProcess puts its own arguments after "run").
_LAUNCHER = f"""import runpy, sys
sys.path.insert(0, {str(REPO)!r})
sys.argv += ["--http", {HTTP!r}]
runpy.run_module("jfds_device", run_name="__main__", alter_sys=True)
"""

# Reads the event stream until its first datastore change, then prints that event's data line.
_FIRST_EVENT = """import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    print("connected", flush=True)
    for line in r:
        if line.startswith(b"data: "):
            print(line.decode().strip(), flush=True)
            break
"""

_FETCH = """import json, sys, urllib.request, urllib.error
method, url, token, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
req = urllib.request.Request(url, method=method, data=body.encode() if method == "POST" else None)
if method == "POST":
    req.add_header("Content-Type", "application/json")
if token:
    req.add_header("Authorization", "Bearer " + token)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""


def _launcher(tmp: Path) -> tuple[str, ...]:
    path = tmp / "run_with_http.py"
    path.write_text(_LAUNCHER)
    return (str(path),)


def fetch(env: ReconcilerEnv, path: str, *, method: str = "GET", token: str = "",
          body: dict[str, Any] | None = None) -> dict[str, Any]:
    """An HTTP request from inside the device's namespace (the server listens on that namespace's loopback)."""
    done = subprocess.run(["ip", "netns", "exec", env.net.dev, sys.executable, "-c", _FETCH, method,
                           f"http://{HTTP}{path}", token, "" if body is None else json.dumps(body)],
                          capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def metrics(env: ReconcilerEnv) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    answer = fetch(env, "/metrics")
    assert answer["status"] == 200, answer
    return {s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer["body"]) for s in family.samples}


def test_metrics_move_after_a_chip_controller_add_acl_to_node() -> None:
    with reconciler_env("jfds-e2e-http-", {LIGHT: {}}, device_launcher=_launcher) as env:
        env.commit_node(LIGHT, "lamp")
        before = metrics(env)
        assert before["jfds_nodes"] == 1
        ace = JF.Structs.DatastoreAccessControlEntryStruct(
            privilege=PRIV.kView, authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase,
            subjects=[0xF300], targets=NullValue)  # fmt: skip
        events = subprocess.Popen(["ip", "netns", "exec", env.net.dev, sys.executable, "-c", _FIRST_EVENT,
                                   f"http://{HTTP}/events"], stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert events.stdout is not None and events.stdout.readline().strip() == "connected"
            assert env.jfds(JF.Commands.AddACLToNode(nodeID=LIGHT, ACLEntry=ace)) == SUCCESS
            first_change, _ = events.communicate(timeout=30)
        finally:
            if events.poll() is None:
                events.kill()
                events.wait()
        assert first_change.startswith("data: ") and "acl" in first_change.lower(), first_change
        wait_until(lambda: [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=LIGHT)
                            if list(e.ACLEntry.subjects) == [0xF300] and is_committed(e)],
                   20, message="the new ACL entry Committed")  # fmt: skip
        after = metrics(env)
        assert after["jfds_reconciler_passes_total"] > before["jfds_reconciler_passes_total"]
        assert after["jfds_reconciler_interactions_total"] > before["jfds_reconciler_interactions_total"]
        assert after["jfds_entries{state=Committed}"] == before["jfds_entries{state=Committed}"] + 1
        assert sum(v for k, v in after.items() if k.startswith("jfds_sessions{direction=outbound}{fabric_index=")) >= 1
        # The controller's AddACLToNode (and the reads around it) are interactions our IM server counted.
        invokes = "jfds_im_interactions_total{status=SUCCESS}{type=invoke}"
        assert after[invokes] >= before.get(invokes, 0) + 1
        assert after["jfds_im_interactions_total{status=SUCCESS}{type=read}"] >= 1
        # The light's subscription is up: the running node sees it reachable, and says so to status too.
        assert after["jfds_nodes_by_reachability{reachability=reachable}"] == 1

        page = fetch(env, "/")
        assert page["status"] == 200 and "lamp" in page["body"] and "<table>" in page["body"]
        assert env.device is not None
        token = subprocess.run([sys.executable, "-m", "jfds_device", "status", "--token", "--storage",
                                str(env.device.storage)], capture_output=True, text=True, timeout=30,
                               check=True).stdout.strip()  # fmt: skip
        assert fetch(env, f"/api/nodes/0x{LIGHT:X}/refresh", method="POST")["status"] == 401
        assert fetch(env, f"/api/nodes/0x{LIGHT:X}/refresh", method="POST", token=token)["status"] == 200
        assert token not in env.device.output()
        report = json.loads(subprocess.run([sys.executable, "-m", "jfds_device", "status", "--json", "--storage",
                                            str(env.device.storage)], capture_output=True, text=True,
                                           timeout=30).stdout)  # fmt: skip
        assert report["node"]["running"] and [n["reachability"] for n in report["nodes"]] == ["reachable"]
