"""The ``--http`` view on a real datastore file: /metrics (parsed with prometheus-client's own parser), the token
(401 without, 200 with, cross-site refused), the actions, and SSE delivering an update after a datastore change."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from pathlib import Path

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from clusters.joint_fabric_datastore import logic_tasks
from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryRef
from jfds_device.datastore.sqlite import Database
from jfds_device.im.provider import Status
from jfds_device.node.app import STATE_FILE
from jfds_device.node.live_state import LiveState
from jfds_device.reconciler.runner import Reconciler, ReconcilerStats
from jfds_device.reconciler.tasks import TaskEngine
from jfds_device.status import STATUS_SCHEMA, build_report
from jfds_device.web import LiveNode, build_app, load_or_create_token, parse_listen, read_token
from tests.clusters.jfds_harness import CASE, VIEW, ace
from tests.reconciler.fakes import group, key_set
from tests.test_status import NODE, SETUP, make_storage

# What the IM server counted (InteractionServer.interactions: request opcode, status -> interactions).
INTERACTIONS = {(Op.READ_REQUEST, Status.SUCCESS): 7, (Op.INVOKE_REQUEST, Status.UNSUPPORTED_ACCESS): 2,
                (Op.TIMED_REQUEST, Status.SUCCESS): 1}  # fmt: skip


def _live(storage: Path, store: JfdsStore, stats: ReconcilerStats) -> LiveNode:
    return LiveNode(storage=storage, store=store, reconciler_stats=lambda: stats,
                    sessions_by_fabric=lambda: {("inbound", 1): 2, ("inbound", 2): 1, ("outbound", 1): 1},
                    subscriptions_by_fabric=lambda: {1: 3, 2: 1}, im_interactions=lambda: INTERACTIONS,
                    setup=SETUP)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, JfdsStore, ReconcilerStats, str]:
    storage = tmp_path / "state"
    store = make_storage(storage)
    return storage, store, ReconcilerStats(), load_or_create_token(storage)


async def _client(world: tuple[Path, JfdsStore, ReconcilerStats, str], *, loopback: bool = True) -> TestClient:
    storage, store, stats, token = world
    client = TestClient(TestServer(build_app(_live(storage, store, stats), token, loopback=loopback)))
    await client.start_server()
    return client


def _families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_token_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    assert len(token) >= 40 and load_or_create_token(tmp_path) == token == read_token(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "http-token").st_mode) == 0o600


def test_listen_address_parsing() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", "host:http", "h:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


async def test_metrics_follow_the_datastore_and_the_reconciler(world) -> None:  # type: ignore[no-untyped-def]
    _, store, stats, _ = world
    client = await _client(world)
    try:
        before = _families(await (await client.get("/metrics")).text())
        failed = store.add_acl(NODE, ace(VIEW, CASE, [0x101]))
        store.set_status(failed, DatastoreState.COMMIT_FAILED, Status.RESOURCE_EXHAUSTED)
        stats.passes, stats.failures, stats.drift_repairs, stats.interactions = 4, 1, 2, 9
        response = await client.get("/metrics")
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        after = _families(await response.text())
    finally:
        await client.close()
    assert after["jfds_nodes"][()] == 1
    failed_key = (("state", "CommitFailed"),)
    assert after["jfds_entries"][failed_key] == before["jfds_entries"][failed_key] + 1
    assert after["jfds_reconciler_passes_total"][()] == 4
    assert after["jfds_reconciler_failures_total"][()] == 1
    assert after["jfds_reconciler_drift_repairs_total"][()] == 2
    assert after["jfds_reconciler_interactions_total"][()] == 9
    assert after["jfds_sessions"][(("direction", "inbound"), ("fabric_index", "1"))] == 2
    assert after["jfds_sessions"][(("direction", "inbound"), ("fabric_index", "2"))] == 1
    assert after["jfds_sessions"][(("direction", "outbound"), ("fabric_index", "1"))] == 1
    assert after["jfds_subscriptions"] == {(("fabric_index", "1"),): 3, (("fabric_index", "2"),): 1}
    assert after["jfds_im_interactions_total"] == {
        (("status", "SUCCESS"), ("type", "read")): 7, (("status", "UNSUPPORTED_ACCESS"), ("type", "invoke")): 2,
        (("status", "SUCCESS"), ("type", "timed")): 1}
    # No node runs on this storage (nobody holds its lock): the reconciler's view is not known.
    assert after["jfds_nodes_by_reachability"] == {(("reachability", "reachable"),): 0,
                                                   (("reachability", "unreachable"),): 0,
                                                   (("reachability", "unknown"),): 1}


async def test_the_page_shows_entries_reachability_and_the_live_figures(world) -> None:  # type: ignore[no-untyped-def]
    storage, store, _, _ = world
    failed = store.add_acl(NODE, ace(VIEW, CASE, [0x101]))
    store.set_status(failed, DatastoreState.COMMIT_FAILED, Status.RESOURCE_EXHAUSTED)
    pending = store.add_acl(NODE, ace(VIEW, CASE, [0x102]))
    client = await _client(world)
    try:
        page = await (await client.get("/")).text()
        assert f'data-entry="0x{NODE:016X} acl ListID {failed.key}" data-state=CommitFailed>' in page
        assert "<td>CommitFailed: RESOURCE_EXHAUSTED</td>" in page
        assert f'data-entry="0x{NODE:016X} acl ListID {pending.key}" data-state=Pending>' in page
        assert "<td class=reachability>unknown (node not running)</td>" in page
        assert "<td class=entries>" in page and ", 1 CommitFailed</td>" in page
        assert "<th scope=row>endpoint 1</th><td>Committed</td>" in page  # an endpoint entry has no key of its own
        assert "<tr data-fabric=1><th scope=row>1</th><td>2</td><td>1</td><td>3</td></tr>" in page
        assert "<tr data-fabric=2><th scope=row>2</th><td>1</td><td>0</td><td>1</td></tr>" in page
        assert "<tr><th scope=row>invoke</th><td>UNSUPPORTED_ACCESS</td><td>2</td></tr>" in page
        # The running node records a reachability change: the next view shows it (no restart, no reload).
        node_db = Database(storage / STATE_FILE)
        live, listeners = LiveState(storage, node_db), []
        live.start(type("R", (), {"add_reachability_listener": lambda _self, f: listeners.append(f) or (
            lambda: None)})())  # fmt: skip
        try:
            listeners[0](NODE, True)
            view = await (await client.get("/api/view")).text()
            assert "<td class=reachability>reachable</td>" in view
            metrics = _families(await (await client.get("/metrics")).text())
            assert metrics["jfds_nodes_by_reachability"][(("reachability", "reachable"),)] == 1
        finally:
            live.stop()
            node_db.close()
    finally:
        await client.close()


async def test_actions_need_the_token_in_a_header(world) -> None:  # type: ignore[no-untyped-def]
    _, store, _, token = world
    client = await _client(world)
    try:
        url = f"/api/nodes/0x{NODE:X}/refresh"
        assert (await client.post(url)).status == 401
        assert (await client.post(url, headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.post(f"{url}?token={token}")).status == 401  # never from the URL for an action
        assert (await client.get("/metrics")).status == 200  # loopback: reads are open
        store.set_status(EntryRef.node(NODE), DatastoreState.COMMITTED)
        response = await client.post(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200
        assert store.node(NODE).commissioning_status_entry.state is DatastoreState.PENDING
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.post("/api/nodes/0x99/refresh", headers=auth)).status == 404
        assert (await client.post("/api/nodes/lamp/refresh", headers=auth)).status == 400
        assert (await client.post("/api/nodes/-1/refresh", headers=auth)).status == 400
        assert (await client.post(f"/api/nodes/{2**64:#x}/refresh", headers=auth)).status == 400
    finally:
        await client.close()


async def test_cross_site_requests_are_refused_even_with_the_token(world) -> None:  # type: ignore[no-untyped-def]
    _, _, _, token = world
    client = await _client(world)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        url = f"/api/nodes/0x{NODE:X}/refresh"
        assert (await client.post(url, headers={**auth, "Origin": "https://evil.example"})).status == 403
        assert (await client.post(url, headers={**auth, "Sec-Fetch-Site": "cross-site"})).status == 403
        assert (await client.get("/", headers={"Sec-Fetch-Site": "cross-site"})).status == 403
        same = {**auth, "Origin": f"http://{client.host}:{client.port}", "Sec-Fetch-Site": "same-origin"}
        assert (await client.post(url, headers=same)).status == 200
    finally:
        await client.close()


async def test_non_loopback_needs_the_token_for_every_request(world) -> None:  # type: ignore[no-untyped-def]
    _, _, _, token = world
    client = await _client(world, loopback=False)
    try:
        for path in ("/", "/metrics", "/api/view"):
            assert (await client.get(path)).status == 401
            assert (await client.get(path, headers={"Authorization": f"Bearer {token}"})).status == 200
        assert (await client.get(f"/?token={token}")).status == 200  # a browser's first page load
    finally:
        await client.close()


async def test_retry_sets_a_commit_failed_entry_pending(world) -> None:  # type: ignore[no-untyped-def]
    _, store, _, token = world
    failed = store.add_acl(NODE, ace(VIEW, CASE, [0x101]))
    store.set_status(failed, DatastoreState.COMMIT_FAILED, Status.RESOURCE_EXHAUSTED)
    revision = store.entry(failed).revision
    client = await _client(world)
    auth = {"Authorization": f"Bearer {token}"}
    body = {"kind": "acl", "node_id": NODE, "endpoint_id": None, "key": failed.key}
    try:
        page = await (await client.get("/")).text()
        assert "RESOURCE_EXHAUSTED" in page and "/api/entries/retry" in page and "<table>" in page
        assert (await client.post("/api/entries/retry", json=body)).status == 401
        assert (await client.post("/api/entries/retry", json=body, headers=auth)).status == 200
        retried = store.entry(failed)
        assert retried is not None and retried.state is DatastoreState.PENDING
        assert retried.revision > revision  # an intent change: the reconciler pushes it now, not after backoff
        assert (await client.post("/api/entries/retry", json=body, headers=auth)).status == 409
        assert (await client.post("/api/entries/retry", json={**body, "key": 999}, headers=auth)).status == 404
        for bad in ({"kind": "x"}, {**body, "node_id": -1}, {**body, "node_id": 2**64}, {**body, "key": "1"},
                    {**body, "key": 1.5}, {**body, "node_id": True}, [1, 2], "acl"):
            assert (await client.post("/api/entries/retry", json=bad, headers=auth)).status == 400, bad
        garbage = await client.post("/api/entries/retry", data=b"\xff{", headers=auth)
        assert garbage.status == 400
    finally:
        await client.close()


async def test_events_deliver_a_datastore_change(world) -> None:  # type: ignore[no-untyped-def]
    _, store, _, _ = world
    client = await _client(world)
    try:
        response = await client.get("/events")
        assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
        assert await asyncio.wait_for(response.content.readline(), 5) == b": connected\n"
        await response.content.readline()
        store.add_acl(NODE, ace(VIEW, CASE, [0x102]))
        assert await asyncio.wait_for(response.content.readline(), 5) == b"event: change\n"
        data = await asyncio.wait_for(response.content.readline(), 5)
        assert data.startswith(b"data: ") and b"acl" in data.lower()
        response.close()
    finally:
        await client.close()


def test_cli_http_argument_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jfds_device.cli import main

    assert main(["run", "--storage", str(tmp_path / "s"), "--http", "nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HOST:PORT" in err[0]


def test_status_token_prints_the_token_or_one_error_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    def status_token() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jfds_device", "status", "--token", "--storage", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    missing = status_token()
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1 and not missing.stdout
    token = load_or_create_token(tmp_path)
    found = status_token()
    assert found.returncode == 0 and found.stdout.strip() == token


@pytest.mark.netns
def test_busy_http_port_exits_2_with_one_line(tmp_path: Path) -> None:
    """In a namespace of its own (the node advertises on mDNS); the port is taken there first."""
    import subprocess
    import sys

    from tests.e2e.harness import topology

    taker = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 8081)); s.listen(); "
             "print('ok', flush=True); time.sleep(60)")
    with topology() as net:
        holder = subprocess.Popen(["ip", "netns", "exec", net.dev, sys.executable, "-c", taker],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
            done = subprocess.run(["ip", "netns", "exec", net.dev, sys.executable, "-m", "jfds_device", "run",
                                   "--storage", str(tmp_path / "s"), "--http", "127.0.0.1:8081"],
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
        finally:
            holder.kill()
            holder.wait()
    errors = [line for line in done.stderr.splitlines() if line.startswith("jfds-device: error")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "--http 127.0.0.1:8081: address already in use" in errors[0], errors


async def test_a_closed_event_stream_stops_observing(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each stream observes the datastore while it is open and unsubscribes when the client goes away."""
    _, store, _, _ = world
    live: list[object] = []
    observe = store.observe

    def counting(callback):  # type: ignore[no-untyped-def]
        live.append(callback)
        unsubscribe = observe(callback)

        def both() -> None:
            live.remove(callback)
            unsubscribe()
        return both

    monkeypatch.setattr(store, "observe", counting)
    client = await _client(world)
    try:
        response = await client.get("/events")
        assert await asyncio.wait_for(response.content.readline(), 5) == b": connected\n"
        assert len(live) == 1
        response.close()
        for i in range(50):
            store.add_acl(NODE, ace(VIEW, CASE, [0x200 + i]))  # the write that finds the peer gone
            if not live:
                break
            await asyncio.sleep(0.1)
        assert live == []
    finally:
        await client.close()


async def test_the_page_escapes_what_the_datastore_holds(world) -> None:  # type: ignore[no-untyped-def]
    """Friendly names come from any administrator of the fabric: they are text on the page, never markup."""
    _, store, _, _ = world
    store.rename_node(NODE, "<script>alert(1)</script>")
    client = await _client(world)
    try:
        for path in ("/", "/api/view"):
            body = await (await client.get(path)).text()
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert" not in body
    finally:
        await client.close()


async def test_move_node_to_group_and_cancel_from_the_api(world) -> None:  # type: ignore[no-untyped-def]
    """MoveNodeToGroup and cancel (its rollback) through the token-guarded actions; the page lists both tasks and
    the status report validates; bad requests get 400/404/409, never a traceback."""
    storage, store, stats, token = world
    store.add_key_set(key_set(0x42))
    store.add_group(group(0x101, 0x42))
    store.add_group(group(0x102, 0x42, "hall"))
    with store.transaction():
        logic_tasks.add_node_to_group(store, NODE, 1, 0x101)
    engine = TaskEngine(store, Reconciler(store, object(), object(), fabric_index=lambda: 1))  # type: ignore[arg-type]
    live = dataclasses.replace(_live(storage, store, stats), tasks=engine)
    client = TestClient(TestServer(build_app(live, token, loopback=True)))
    await client.start_server()
    auth = {"Authorization": f"Bearer {token}"}
    body = {"node_id": NODE, "endpoint_id": 1, "from_group": 0x101, "to_group": 0x102}
    try:
        assert (await client.post("/api/tasks/move-node-to-group", json=body)).status == 401
        response = await client.post("/api/tasks/move-node-to-group", json=body, headers=auth)
        assert response.status == 202, await response.text()
        moved = await response.json()
        assert (moved["type"], moved["state"], moved["members"]) == ("MoveNodeToGroup", "running",
                                                                     [f"0x{NODE:016X}"])
        assert (await client.post("/api/tasks/move-node-to-group", json={**body, "from_group": 0x999},
                                  headers=auth)).status == 404  # not in that group
        assert (await client.post("/api/tasks/move-node-to-group", json={"node_id": "x"}, headers=auth)).status == 400
        assert (await client.post("/api/tasks/nope/cancel", headers=auth)).status == 404
        response = await client.post(f"/api/tasks/{moved['id']}/cancel", headers=auth)
        assert response.status == 202
        assert (await response.json())["id"] == f"rollback:{moved['id']}"
        assert (await client.post(f"/api/tasks/{moved['id']}/cancel", headers=auth)).status == 409
        again = await client.post("/api/tasks/move-node-to-group", json=body, headers=auth)
        assert again.status == 409 and "rollback" in await again.text()  # the rollback holds the membership
        page = await (await client.get("/")).text()
        assert f"rollback:{moved['id']}" in page and "cancelled by the operator" in page
    finally:
        await client.close()
    report = build_report(storage, **SETUP)
    jsonschema.validate(report, STATUS_SCHEMA)
    assert [t["state"] for t in report["tasks"][:2]] == ["running", "cancelled"] and not report["in_step"]
