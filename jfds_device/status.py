"""``jfds-device status``: which managed node is out of step with the datastore, and why, from the state files.

It opens the storage read-only (SQLite ``mode=ro``; WAL readers never block the running node's writer), so it works
while the node runs and when it is stopped, and changes nothing. It reports the fabric the datastore belongs to,
this node's own commissioning state, whether the node runs, and per managed node its reachability as the running
node's reconciler sees it (``node/live_state.py``: the node's lock and its ``live-reachability`` namespace), its
entries by state, with every CommitFailed entry's IM status by name and since when, and the multi-step tasks.
``build_report`` gathers the facts as one JSON-able dict (its shape is ``STATUS_SCHEMA``, a JSON Schema);
``render_text`` prints them for a person; ``exit_code`` makes it scriptable: 0 when everything is Committed and
no task runs, 1 when something is pending, failed or running. Unusable storage raises ``StatusError`` (the CLI
prints one line and exits 2).
"""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path
from typing import Any, Final

from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.datastore.jfds_tables import MATTER_EPOCH_UNIX
from jfds_device.datastore.sqlite import Database
from jfds_device.datastore.tasks import TaskState, TaskType
from jfds_device.errors import MatterError
from jfds_device.fabrics import FabricTable
from jfds_device.im.provider import Status
from jfds_device.node.app import STATE_FILE
from jfds_device.node.live_state import node_running, read_reachability
from jfds_device.onboarding import SetupPayload
from jfds_device.reconciler.tasks import TaskView

__all__ = ["REACHABILITY", "STATUS_SCHEMA", "StatusError", "build_report", "entry_key", "exit_code",
           "reachability_text", "render_text"]

TASKS_SHOWN: Final = 20  # live tasks and the newest ended ones
STATES: Final = ("Pending", "Committed", "DeletePending", "CommitFailed")
REACHABILITY: Final = ("reachable", "unreachable", "unknown")
_STATE_NAMES = {
    DatastoreState.PENDING: "Pending",
    DatastoreState.COMMITTED: "Committed",
    DatastoreState.DELETE_PENDING: "DeletePending",
    DatastoreState.COMMIT_FAILED: "CommitFailed",
}
_ENTRY_KINDS = (EntryKind.ENDPOINT, EntryKind.ENDPOINT_GROUP, EntryKind.NODE_KEY_SET, EntryKind.BINDING,
                EntryKind.ACL)  # fmt: skip

_STATE_COUNTS = {"type": "object", "properties": {s: {"type": "integer", "minimum": 0} for s in STATES},
                 "required": list(STATES), "additionalProperties": False}  # fmt: skip
STATUS_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "jfds-device status",
    "type": "object",
    "required": ["storage", "node", "datastore", "nodes", "tasks", "in_step"],
    "additionalProperties": False,
    "properties": {
        "storage": {"type": "string"},
        "node": {
            "description": "this node's own commissioning state",
            "type": "object",
            "required": ["fabrics", "commissionable", "running"],
            "additionalProperties": False,
            "properties": {
                "running": {"type": "boolean", "description": "a node runs on this storage now (node.lock is held)"},
                "fabrics": {"type": "array", "items": {
                    "type": "object", "required": ["fabric_index", "fabric_id", "node_id", "vendor_id",
                                                   "compressed_fabric_id", "label"],
                    "additionalProperties": False,
                    "properties": {"fabric_index": {"type": "integer"}, "fabric_id": {"type": "string"},
                                   "node_id": {"type": "string"}, "vendor_id": {"type": "integer"},
                                   "compressed_fabric_id": {"type": "string"}, "label": {"type": "string"}},
                }},
                "commissionable": {"type": "boolean", "description": "no fabric yet: the window opens at start"},
                "manual_code": {"type": "string"},
                "qr_payload": {"type": "string"},
            },
        },
        "datastore": {
            "type": "object",
            "required": ["bootstrapped"],
            "additionalProperties": False,
            "properties": {
                "bootstrapped": {"type": "boolean"},
                "anchor_fabric_index": {"type": ["integer", "null"]},
                "compressed_fabric_id": {"type": ["string", "null"]},
                "anchor_node_id": {"type": "string"},
                "anchor_vendor_id": {"type": "integer"},
                "friendly_name": {"type": "string"},
                "state": {"enum": list(STATES)},
            },
        },
        "nodes": {"type": "array", "items": {
            "type": "object",
            "required": ["node_id", "name", "state", "reachability", "entries", "failed"],
            "additionalProperties": False,
            "properties": {
                "node_id": {"type": "string", "pattern": "^0x[0-9A-F]{16}$"},
                "name": {"type": "string"},
                "reachability": {"enum": list(REACHABILITY), "description": "as the running node's reconciler sees "
                                 "it; unknown when it does not know yet or no node runs (node.running)"},
                "state": {"enum": list(STATES)},
                "entries": _STATE_COUNTS,
                "failed": {"type": "array", "items": {
                    "type": "object",
                    "required": ["kind", "key", "status", "code", "since"],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {"type": "string"}, "key": {"type": "string"},
                        "status": {"type": "string", "description": "the IM status by name"},
                        "code": {"type": "integer", "minimum": 0, "maximum": 255},
                        "since": {"type": "string", "description": "ISO 8601 UTC (the entry's UpdateTimestamp)"},
                    },
                }},
            },
        }},
        "tasks": {"type": "array", "description": "multi-step tasks, newest first: the live ones and the last ended",
                  "items": {
                      "type": "object", "additionalProperties": False,
                      "required": ["id", "run", "type", "phase", "state", "members", "error", "rollback_of",
                                   "rollback_run", "created", "updated"],
                      "properties": {
                          "id": {"type": "string"}, "run": {"type": "integer"},
                          "type": {"enum": [t.value for t in TaskType]},
                          "phase": {"type": "string"},
                          "state": {"enum": [s.value for s in TaskState]},
                          "members": {"type": "array", "items": {"type": "string"}},
                          "error": {"type": ["string", "null"]},
                          "rollback_of": {"type": ["integer", "null"]},
                          "rollback_run": {"type": ["integer", "null"]},
                          "created": {"type": "number"}, "updated": {"type": "number"},
                      }}},
        "in_step": {"type": "boolean", "description": "every entry Committed (exit status 0)"},
    },
}  # fmt: skip


class StatusError(MatterError):
    """The storage cannot be read as a jfds-device state (missing, unreadable, not ours)."""


def _hex64(value: int) -> str:
    return f"0x{value:016X}"


def _cfid(compressed_fabric_id: bytes) -> str:
    return "0x" + compressed_fabric_id.hex().upper()


def _iso(matter_epoch_s: int) -> str:
    moment = datetime.datetime.fromtimestamp(matter_epoch_s + MATTER_EPOCH_UNIX, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"0x{code:02X}"


def entry_key(ref: EntryRef) -> str:
    """How an entry is named to a person: ``ListID 7``, ``endpoint 1 ListID 3``, ``endpoint 1 257``, ``endpoint 0``."""
    where = "" if ref.endpoint_id is None else f"endpoint {ref.endpoint_id} "
    if ref.key is None:
        return where.strip()
    return f"{where}{'ListID ' if ref.kind in (EntryKind.ACL, EntryKind.BINDING) else ''}{ref.key}"


def _key(entry: Entry) -> str:
    return entry_key(entry.ref)


def _open(storage: Path) -> Database:
    path = storage / STATE_FILE
    if not storage.is_dir():
        raise StatusError(f"no storage directory at {storage}")
    if not path.is_file():
        raise StatusError(f"{storage} holds no jfds-device state ({STATE_FILE} is missing)")
    try:
        return Database(path, read_only=True)
    except MatterError as exc:
        raise StatusError(f"cannot read {path}: {exc}") from exc


def build_report(
    storage: Path, *, passcode: int, discriminator: int, vendor_id: int, product_id: int
) -> dict[str, Any]:
    """Everything ``status`` shows, as a dict matching ``STATUS_SCHEMA``. The setup values only make the pairing
    code, shown while the node is commissionable (they are not stored: the CLI gives them to ``run`` too)."""
    db = _open(storage)
    try:
        return _report(db, storage, passcode, discriminator, vendor_id, product_id)
    except MatterError as exc:
        raise StatusError(f"cannot read {storage / STATE_FILE}: {exc}") from exc
    finally:
        db.close()


def _report(db: Database, storage: Path, passcode: int, discriminator: int, vendor_id: int,
            product_id: int) -> dict[str, Any]:  # fmt: skip
    fabrics = FabricTable(db).fabrics()
    store = JfdsStore(db)
    running = node_running(storage)
    reachable = read_reachability(db) if running else {}
    node: dict[str, Any] = {
        "running": running,
        "fabrics": [
            {"fabric_index": f.fabric_index, "fabric_id": _hex64(f.fabric_id), "node_id": _hex64(f.node_id),
             "vendor_id": f.vendor_id, "compressed_fabric_id": _cfid(f.compressed_fabric_id), "label": f.label}
            for f in fabrics
        ],
        "commissionable": not fabrics,
    }  # fmt: skip
    if not fabrics:
        payload = SetupPayload(discriminator=discriminator, passcode=passcode, vendor_id=vendor_id,
                               product_id=product_id)  # fmt: skip
        node |= {"manual_code": payload.to_manual_code(), "qr_payload": payload.to_qr()}
    anchor = store.anchor() if store.is_bootstrapped else None
    datastore: dict[str, Any] = {"bootstrapped": anchor is not None}
    if anchor is not None:
        home = next((f for f in fabrics if f.rcac == anchor.root_ca and f.node_id == anchor.node_id), None)
        datastore |= {
            "anchor_fabric_index": None if home is None else home.fabric_index,
            "compressed_fabric_id": None if home is None else _cfid(home.compressed_fabric_id),
            "anchor_node_id": _hex64(anchor.node_id),
            "anchor_vendor_id": anchor.vendor_id,
            "friendly_name": anchor.friendly_name,
            "state": _STATE_NAMES[store.datastore_status().state],
        }
    nodes = []
    for info in store.nodes():
        entries = [e for kind in _ENTRY_KINDS for e in store.entries(kind, node_id=info.node_id)]
        counts = Counter(_STATE_NAMES[e.state] for e in entries)
        failed = [
            {"kind": e.ref.kind.value, "key": _key(e), "status": _status_name(e.status.failure_code),
             "code": e.status.failure_code, "since": _iso(e.status.update_timestamp)}
            for e in entries if e.state is DatastoreState.COMMIT_FAILED
        ]  # fmt: skip
        nodes.append({
            "node_id": _hex64(info.node_id),
            "name": info.friendly_name,
            "state": _STATE_NAMES[info.commissioning_status_entry.state],
            "reachability": {True: "reachable", False: "unreachable"}.get(reachable.get(info.node_id), "unknown"),
            "entries": {state: counts.get(state, 0) for state in STATES},
            "failed": failed,
        })  # fmt: skip
    tasks = [TaskView.of(r).to_json() for r in store.tasks.recent(TASKS_SHOWN)]
    in_step = all(n["state"] == "Committed" and n["entries"]["Committed"] == sum(n["entries"].values()) for n in nodes)
    in_step = in_step and not any(TaskState(t["state"]).live for t in tasks)
    return {"storage": str(storage), "node": node, "datastore": datastore, "nodes": nodes, "tasks": tasks,
            "in_step": in_step}  # fmt: skip


def exit_code(report: dict[str, Any]) -> int:
    """0 when every managed node and entry is Committed, 1 when anything is pending or failed."""
    return 0 if report["in_step"] else 1


def reachability_text(report: dict[str, Any], node: dict[str, Any]) -> str:
    """``reachable``, ``unreachable``, ``reachability unknown`` or ``reachability unknown (node not running)``."""
    if not report["node"]["running"]:
        return "reachability unknown (node not running)"
    return "reachability unknown" if node["reachability"] == "unknown" else node["reachability"]


def render_text(report: dict[str, Any]) -> str:
    lines = [f"jfds-device state in {report['storage']}"]
    fabrics = report["node"]["fabrics"]
    lines.append("The node is running" if report["node"]["running"] else "The node is not running")
    if report["node"]["commissionable"]:
        lines.append("This node: not commissioned; its commissioning window opens at start "
                     f"(manual pairing code {report['node']['manual_code']}, QR {report['node']['qr_payload']})")
    else:
        lines.append(f"This node: commissioned on {len(fabrics)} fabric(s)")
        for f in fabrics:
            lines.append(f"  fabric {f['fabric_index']}: fabric id {f['fabric_id']}, compressed fabric id "
                         f"{f['compressed_fabric_id']}, our node id {f['node_id']}, vendor 0x{f['vendor_id']:04X}")
    ds = report["datastore"]
    if not ds["bootstrapped"]:
        lines.append("Datastore: not bootstrapped (the first committed fabric becomes its anchor)")
    else:
        where = "its fabric is gone" if ds["anchor_fabric_index"] is None else (
            f"fabric {ds['anchor_fabric_index']}, compressed fabric id {ds['compressed_fabric_id']}")
        lines.append(f"Datastore {ds['friendly_name']!r}: {ds['state']}; anchor node {ds['anchor_node_id']}, "
                     f"vendor 0x{ds['anchor_vendor_id']:04X} ({where})")  # fmt: skip
    lines.append(f"Managed nodes: {len(report['nodes'])}")
    for n in report["nodes"]:
        counts = ", ".join(f"{count} {state}" for state, count in n["entries"].items() if count) or "no entries"
        lines.append(f"  {n['node_id']} {n['name']!r}: node {n['state']}, {reachability_text(report, n)}; "
                     f"entries: {counts}")
        for f in n["failed"]:
            lines.append(
                f"    CommitFailed {f['kind']} {f['key']}: {f['status']} (0x{f['code']:02X}) since {f['since']}"
            )
    lines.append(f"Tasks: {len(report['tasks']) or 'none'}")
    for t in report["tasks"]:
        members = ", ".join(t["members"]) or "-"
        lines.append(f"  {t['id']} ({t['type']}, run {t['run']}): {t['state']}, phase {t['phase']}, "
                     f"members {members}" + (f": {t['error']}" if t["error"] else ""))
    lines.append("In step: every entry Committed" if report["in_step"] else "Out of step: entries pending or failed")
    return "\n".join(lines)
