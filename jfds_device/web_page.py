"""The dashboard of the ``--http`` view (``web.py`` serves it): semantic HTML, readable without colour (every state
is a word, never only a colour) and on a phone (one column, wide tables scroll on their own), and without scripts
(the script only re-reads ``/api/view`` on each server-sent ``change`` event and posts the action forms with the
token).

``render_view`` turns what the page shows into the ``<main>`` content: the ``status`` report (nodes with their
reachability, entries and CommitFailed statuses, tasks), the live figures of the running node (sessions and
subscriptions per fabric, IM interactions, reconciler counters) and a form per action.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import Entry, EntryKind, EntryRef
from jfds_device.im.provider import Status
from jfds_device.status import STATES, entry_key, reachability_text

__all__ = ["PAGE", "LiveFigures", "node_entries", "ref_json", "render_view"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>jfds-device</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:0 1rem}}
table{{border-collapse:collapse;display:block;overflow-x:auto}}
td,th{{border:1px solid;padding:.2rem .4rem;text-align:left}}
dl{{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.1rem 1rem}}dd{{margin:0}}
body{{overflow-wrap:break-word}}input{{max-width:100%}}</style>
</head><body>
<header><h1>jfds-device</h1><p><label>Token for actions <input id="token" type="password"
autocomplete="off"></label> <output id="result" role="status"></output></p></header>
<main id="view" aria-live="polite">{view}</main>
<script>
const q = new URLSearchParams(location.search).get("token");
const tokenQuery = q ? "?token=" + encodeURIComponent(q) : "";
if (q) document.getElementById("token").value = q;
async function reload() {{
  const r = await fetch("/api/view" + tokenQuery);
  if (r.ok) document.getElementById("view").innerHTML = await r.text();
}}
const events = new EventSource("/events" + tokenQuery);  // a global: tests read its readyState
events.addEventListener("change", reload);
document.addEventListener("submit", async (e) => {{
  e.preventDefault();
  const f = e.target;
  const fieldsBody = JSON.stringify(Object.fromEntries([...new FormData(f)].map(([k, v]) => [k, Number(v)])));
  const r = await fetch(f.action, {{method: "POST", headers: {{"Authorization": "Bearer " +
    document.getElementById("token").value, "Content-Type": "application/json"}}, body: f.dataset.body || fieldsBody}});
  document.getElementById("result").textContent = r.status + " " + (await r.text());
}});
</script></body></html>
"""

_STATE_NAMES = dict(zip((DatastoreState.PENDING, DatastoreState.COMMITTED, DatastoreState.DELETE_PENDING,
                         DatastoreState.COMMIT_FAILED), STATES, strict=True))  # fmt: skip
_ENTRY_KINDS = (EntryKind.ENDPOINT, EntryKind.ENDPOINT_GROUP, EntryKind.NODE_KEY_SET, EntryKind.BINDING,
                EntryKind.ACL)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """What only the running process knows, as the page shows it."""

    stats: Any  # a ReconcilerStats dataclass
    sessions: Mapping[tuple[str, int], int] = field(default_factory=dict)  # (direction, fabric index) -> sessions
    subscriptions: Mapping[int, int] = field(default_factory=dict)  # fabric index -> subscriptions
    interactions: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (type, status name) -> count


def _esc(value: object) -> str:
    return html.escape(str(value))


def ref_json(ref: EntryRef) -> dict[str, Any]:
    return {"kind": ref.kind.value, "node_id": ref.node_id, "endpoint_id": ref.endpoint_id, "key": ref.key}


def node_entries(store: JfdsStore) -> dict[int, list[Entry]]:
    """Every managed node's entries, by node id (the page lists them, with the CommitFailed ones' retry)."""
    found: dict[int, list[Entry]] = {}
    for kind in _ENTRY_KINDS:
        for entry in store.entries(kind):
            found.setdefault(entry.ref.node_id, []).append(entry)
    return found


def render_view(report: dict[str, Any], live: LiveFigures, entries: dict[int, list[Entry]]) -> str:
    """The dashboard's content: the ``status`` report, the live figures, and the actions' forms."""
    ds = report["datastore"]
    parts = [f"<section><h2>{'In step' if report['in_step'] else 'Out of step'}</h2><dl>"]
    if ds["bootstrapped"]:
        for label, key in (("Datastore", "friendly_name"), ("State", "state"), ("Anchor node", "anchor_node_id"),
                           ("Compressed fabric id", "compressed_fabric_id")):
            parts.append(f"<dt>{label}</dt><dd>{_esc(ds.get(key))}</dd>")
    else:
        parts.append("<dt>Datastore</dt><dd>not bootstrapped</dd>")
    parts.append(f"<dt>Fabrics of this node</dt><dd>{len(report['node']['fabrics'])}</dd></dl></section>")
    parts.append(_render_nodes(report))
    parts.append(_render_entries(report, entries))
    parts.append(_render_failed(report, entries))
    parts.append(_render_tasks(report["tasks"]))
    parts.append(_MOVE_FORM)
    parts.append(_render_fabrics(live))
    parts.append(_render_interactions(live))
    parts.append("<section><h2>Reconciler</h2><dl>")
    for f in fields(live.stats):
        value = getattr(live.stats, f.name)
        parts.append(f"<dt>{f.name}</dt><dd>{value:.3f}</dd>" if isinstance(value, float)
                     else f"<dt>{f.name}</dt><dd>{value}</dd>")
    parts.append("</dl></section>")
    return "".join(parts)


def _render_nodes(report: dict[str, Any]) -> str:
    parts = ["<section><h2>Nodes</h2><table id=nodes><thead><tr>" + "".join(f"<th scope=col>{h}</th>" for h in (
        "Node", "Name", "State", "Reachability", "Entries", "Action")) + "</tr></thead><tbody>"]
    for n in report["nodes"]:
        node_id = int(n["node_id"], 16)
        reach = reachability_text(report, n).removeprefix("reachability ")
        counts = ", ".join(f"{count} {state}" for state, count in n["entries"].items() if count) or "none"
        parts.append(f"<tr data-node=\"{_esc(n['node_id'])}\"><th scope=row>{_esc(n['node_id'])}</th>"
                     f"<td>{_esc(n['name'])}</td><td>{_esc(n['state'])}</td><td class=reachability>{_esc(reach)}</td>"
                     f"<td class=entries>{counts}</td><td><form method=post "
                     f"action=\"/api/nodes/0x{node_id:X}/refresh\"><button>Refresh</button></form></td></tr>")
    parts.append("</tbody></table></section>")
    return "".join(parts)


def _render_entries(report: dict[str, Any], entries: dict[int, list[Entry]]) -> str:
    """Each node's entries with their state; a node not in step is shown open."""
    parts = ["<section><h2>Entries</h2>"]
    for n in report["nodes"]:
        node_entries = entries.get(int(n["node_id"], 16), [])
        in_step = all(e.state is DatastoreState.COMMITTED for e in node_entries)
        parts.append(f"<details{'' if in_step else ' open'}><summary>{_esc(n['node_id'])} {_esc(n['name'])}: "
                     f"{len(node_entries)} entries</summary><table><thead><tr><th scope=col>Kind</th>"
                     "<th scope=col>Entry</th><th scope=col>State</th></tr></thead><tbody>")
        for e in node_entries:
            state = _STATE_NAMES[e.state]
            shown = f"{state}: {_status_name(e.status.failure_code)}" if state == "CommitFailed" else state
            parts.append(f"<tr data-entry=\"{_esc(n['node_id'])} {_esc(e.ref.kind.value)} {_esc(entry_key(e.ref))}\" "
                         f"data-state={state}>"
                         f"<td>{_esc(e.ref.kind.value)}</td><th scope=row>{_esc(entry_key(e.ref))}</th>"
                         f"<td>{_esc(shown)}</td></tr>")
        parts.append("</tbody></table></details>")
    parts.append("</section>")
    return "".join(parts)


def _status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"0x{code:02X}"


def _render_failed(report: dict[str, Any], entries: dict[int, list[Entry]]) -> str:
    parts = ["<section><h2>CommitFailed</h2><ul id=failed>"]
    for n in report["nodes"]:
        failed = {(e.ref.kind.value, entry_key(e.ref)): e.ref for e in entries.get(int(n["node_id"], 16), [])
                  if e.state is DatastoreState.COMMIT_FAILED}
        for f in n["failed"]:
            parts.append(f"<li>{_esc(n['node_id'])} {_esc(f['kind'])} {_esc(f['key'])}: {_esc(f['status'])} "
                         f"(0x{f['code']:02X}) since <time>{_esc(f['since'])}</time>")
            ref = failed.get((f["kind"], f["key"]))
            if ref is not None:
                body = json.dumps(ref_json(ref))
                parts.append(f" <form method=post action=\"/api/entries/retry\" data-body=\"{_esc(body)}\">"
                             "<button>Retry</button></form>")
            parts.append("</li>")
    parts.append("</ul></section>")
    return "".join(parts)


_MOVE_FORM = """<section><h2>Move a node to another group</h2><form method=post action="/api/tasks/move-node-to-group">
<p><label>Node id <input name=node_id inputmode=numeric required></label>
<label>Endpoint <input name=endpoint_id inputmode=numeric required></label>
<label>From group <input name=from_group inputmode=numeric required></label>
<label>To group <input name=to_group inputmode=numeric required></label> <button>Move</button></p></form></section>"""


def _render_tasks(tasks: list[dict[str, Any]]) -> str:
    """The task list: id, type, phase, state, members, last error; Cancel on running and parked tasks."""
    parts = ["<section><h2>Tasks</h2>"]
    if not tasks:
        return "<section><h2>Tasks</h2><p>none</p></section>"
    parts.append("<table><thead><tr>" + "".join(f"<th scope=col>{h}</th>" for h in (
        "Task", "Type", "Phase", "State", "Members", "Last error", "Action")) + "</tr></thead><tbody>")
    for t in tasks:
        action = ""
        if t["state"] in ("running", "parked") and t["type"] != "Rollback":
            action = (f"<form method=post action=\"/api/tasks/{_esc(t['id'])}/cancel\"><button>Cancel</button>"
                      "</form>")
        parts.append(f"<tr><th scope=row>{_esc(t['id'])}</th><td>{_esc(t['type'])}</td><td>{_esc(t['phase'])}</td>"
                     f"<td>{_esc(t['state'])}</td><td>{_esc(', '.join(t['members']))}</td>"
                     f"<td>{_esc(t['error'] or '')}</td><td>{action}</td></tr>")
    parts.append("</tbody></table></section>")
    return "".join(parts)


def _render_fabrics(live: LiveFigures) -> str:
    """Sessions (inbound: controllers and nodes reaching us; outbound: the reconciler's) and subscriptions we
    serve, per fabric index (0: PASE, before a fabric exists)."""
    indexes = sorted({i for _, i in live.sessions} | set(live.subscriptions))
    parts = ["<section><h2>Sessions and subscriptions per fabric</h2>"]
    if not indexes:
        return parts[0] + "<p>none</p></section>"
    parts.append("<table id=fabrics><thead><tr><th scope=col>Fabric index</th><th scope=col>Inbound sessions</th>"
                 "<th scope=col>Outbound sessions</th><th scope=col>Subscriptions served</th></tr></thead><tbody>")
    for index in indexes:
        name = "0 (PASE)" if index == 0 else str(index)
        parts.append(f"<tr data-fabric={index}><th scope=row>{name}</th>"
                     f"<td>{live.sessions.get(('inbound', index), 0)}</td>"
                     f"<td>{live.sessions.get(('outbound', index), 0)}</td>"
                     f"<td>{live.subscriptions.get(index, 0)}</td></tr>")
    parts.append("</tbody></table></section>")
    return "".join(parts)


def _render_interactions(live: LiveFigures) -> str:
    if not live.interactions:
        return "<section><h2>Interactions served</h2><p>none yet</p></section>"
    rows = "".join(f"<tr><th scope=row>{_esc(kind)}</th><td>{_esc(status)}</td><td>{count}</td></tr>"
                   for (kind, status), count in sorted(live.interactions.items()))
    return ("<section><h2>Interactions served</h2><table id=interactions><thead><tr><th scope=col>Type</th>"
            f"<th scope=col>Status</th><th scope=col>Count</th></tr></thead><tbody>{rows}</tbody></table></section>")
