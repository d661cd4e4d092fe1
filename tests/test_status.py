"""``jfds-device status`` on a real datastore file: states, CommitFailed names, exit codes, the JSON schema, and
read-only access (nothing in the storage changes, also while another connection writes)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryKind, EntryRef
from jfds_device.datastore.sqlite import Database
from jfds_device.fabrics import FabricTable
from jfds_device.im.provider import Status
from jfds_device.node.app import STATE_FILE
from jfds_device.node.live_state import REACHABILITY, LiveState, node_running, read_reachability
from jfds_device.status import STATUS_SCHEMA, build_report, exit_code, render_text
from tests.clusters.jfds_harness import CASE, IPK, VIEW, ace, key_set

SETUP = {"passcode": 20202021, "discriminator": 3840, "vendor_id": 0xFFF1, "product_id": 0x8000}
NODE = 0x2A


def make_storage(directory: Path) -> JfdsStore:
    directory.mkdir()
    db = Database(directory / STATE_FILE)
    FabricTable(db)  # a node's storage has every component; this one has no fabric (commissionable)
    store = JfdsStore(db)
    store.bootstrap_anchor(b"rcac", 1, 0xFFF1, "home", key_set(0, keys=(IPK,), starts=(0,)), 1_000_000)
    store.add_node(NODE, "lamp")
    store.sync_endpoints(NODE, [0, 1])
    return store


def test_states_commit_failed_by_name_and_exit_codes(tmp_path: Path) -> None:
    storage = tmp_path / "state"
    store = make_storage(storage)
    committed = store.add_acl(NODE, ace(VIEW, CASE, [0x100]))
    failed = store.add_acl(NODE, ace(VIEW, CASE, [0x101]))
    store.add_acl(NODE, ace(VIEW, CASE, [0x102]))  # stays Pending
    store.set_status(committed, DatastoreState.COMMITTED)
    store.set_status(failed, DatastoreState.COMMIT_FAILED, Status.RESOURCE_EXHAUSTED)
    report = build_report(storage, **SETUP)
    jsonschema.validate(report, STATUS_SCHEMA)
    [node] = report["nodes"]
    assert node["node_id"] == "0x000000000000002A" and node["name"] == "lamp"
    assert node["entries"]["CommitFailed"] == 1 and node["entries"]["Pending"] >= 1
    [failure] = node["failed"]
    assert (failure["kind"], failure["key"], failure["status"], failure["code"]) == (
        "acl", f"ListID {failed.key}", "RESOURCE_EXHAUSTED", 0x89)
    assert exit_code(report) == 1
    text = render_text(report)
    assert "RESOURCE_EXHAUSTED (0x89)" in text and "lamp" in text and "Out of step" in text
    assert report["node"]["commissionable"] and report["node"]["manual_code"] == "34970112332"


def test_everything_committed_exits_0(tmp_path: Path) -> None:
    storage = tmp_path / "state"
    store = make_storage(storage)
    store.add_acl(NODE, ace(VIEW, CASE, [0x100]), committed=True)
    for entry in store.entries(EntryKind.ENDPOINT):
        store.set_status(entry.ref, DatastoreState.COMMITTED)
    store.set_status(EntryRef.node(NODE), DatastoreState.COMMITTED)
    report = build_report(storage, **SETUP)
    assert report["in_step"] and exit_code(report) == 0, report["nodes"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jfds_device", "status", *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_cli_json_reads_without_changing_anything_while_a_writer_is_open(tmp_path: Path) -> None:
    storage = tmp_path / "state"
    store = make_storage(storage)  # its connection stays open, as the running node's does
    store.add_acl(NODE, ace(VIEW, CASE, [0x100]))
    before = hashlib.sha256((storage / STATE_FILE).read_bytes()).hexdigest()
    done = _cli("--storage", str(storage), "--json")
    assert done.returncode == 1, done.stderr
    jsonschema.validate(json.loads(done.stdout), STATUS_SCHEMA)
    assert hashlib.sha256((storage / STATE_FILE).read_bytes()).hexdigest() == before


@pytest.mark.parametrize("problem", ["missing", "empty dir", "not a database", "a file"])
def test_unusable_storage_gives_one_line_and_exit_2(tmp_path: Path, problem: str) -> None:
    storage = tmp_path / "state"
    if problem == "empty dir":
        storage.mkdir()
    elif problem == "not a database":
        storage.mkdir()
        (storage / STATE_FILE).write_bytes(b"this is not SQLite" * 100)
    elif problem == "a file":
        storage.write_bytes(b"")
    done = _cli("--storage", str(storage))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfds-device: error: ") and "Traceback" not in done.stderr


class _Reconciler:
    """The reachability seam of ``Reconciler`` (add_reachability_listener), driven by the test."""

    def __init__(self) -> None:
        self.listeners: list[Any] = []

    def add_reachability_listener(self, listener: Any) -> Any:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def tell(self, node_id: int, reachable: bool) -> None:
        for listener in list(self.listeners):
            listener(node_id, reachable)


def _reachability(storage: Path) -> tuple[bool, str]:
    report = build_report(storage, **SETUP)
    jsonschema.validate(report, STATUS_SCHEMA)
    [node] = report["nodes"]
    return report["node"]["running"], node["reachability"]


def test_reachability_from_the_running_node(tmp_path: Path) -> None:
    storage = tmp_path / "state"
    make_storage(storage)
    assert _reachability(storage) == (False, "unknown")
    assert "reachability unknown (node not running)" in render_text(build_report(storage, **SETUP))

    node_db = Database(storage / STATE_FILE)  # the running node's own connection
    live, reconciler = LiveState(storage, node_db), _Reconciler()
    live.start(reconciler)
    try:
        assert _reachability(storage) == (True, "unknown")  # running, nothing known yet
        text = render_text(build_report(storage, **SETUP))
        assert "The node is running" in text and "reachability unknown;" in text
        reconciler.tell(NODE, True)
        assert _reachability(storage) == (True, "reachable")
        # Another process (the status CLI) sees the lock and the value too.
        done = _cli("--storage", str(storage), "--json")
        report = json.loads(done.stdout)
        assert report["node"]["running"] and report["nodes"][0]["reachability"] == "reachable"
        assert ", reachable;" in _cli("--storage", str(storage)).stdout
        reconciler.tell(NODE, False)
        assert _reachability(storage) == (True, "unreachable")
    finally:
        live.stop()
    assert not reconciler.listeners
    assert _reachability(storage) == (False, "unknown")
    # A new run starts from nothing known: no value of the last run is taken for news.
    node_db.put(REACHABILITY, f"{NODE:016X}", b"1")
    live.start(reconciler)
    try:
        assert _reachability(storage) == (True, "unknown")
    finally:
        live.stop()
        node_db.close()


async def test_a_change_told_inside_a_transaction_is_written_after_it(tmp_path: Path) -> None:
    storage = tmp_path / "state"
    make_storage(storage)
    node_db = Database(storage / STATE_FILE)
    live, reconciler = LiveState(storage, node_db), _Reconciler()
    live.start(reconciler)
    try:
        with contextlib.suppress(RuntimeError), node_db.transaction():
            reconciler.tell(NODE, True)
            raise RuntimeError("the unit of work fails and rolls back")
        await asyncio.sleep(0)
        assert read_reachability(node_db) == {NODE: True}
    finally:
        live.stop()
        node_db.close()


def test_the_lock_goes_with_the_process_even_on_kill_9(tmp_path: Path) -> None:
    storage = tmp_path / "state"
    make_storage(storage)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from jfds_device.datastore.sqlite import Database; "
        "from jfds_device.node.live_state import LiveState; "
        f"p = Path({str(storage)!r}); "
        "LiveState(p, Database(p / 'jfds.sqlite3')).start(type('R', (), {'add_reachability_listener': "
        "lambda self, f: None})()); print('locked', flush=True); sys.stdin.read()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert node_running(storage)
    finally:
        holder.kill()
        holder.wait()
    assert not node_running(storage)
