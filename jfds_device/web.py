"""``jfds-device run --http HOST:PORT``: the operator's view of the running node.

* ``GET /metrics``: Prometheus text format (prometheus-client): entries by state, nodes, the reconciler's counters
  (``ReconcilerStats``), sessions by direction, subscriptions.
* ``GET /``: a small semantic-HTML dashboard (the ``status`` report from ``build_report`` plus reconciler stats),
  updated live from ``GET /events`` (server-sent events, one per datastore change, from ``JfdsStore.observe``).
* ``POST /api/nodes/<id>/refresh``: RefreshNode through the datastore API, as the JFDS command does
  (Core spec 11.24.7.11); ``POST /api/entries/retry``: a CommitFailed entry becomes Pending again;
  ``POST /api/tasks/<id>/cancel``: cancel a running task (its rollback starts); ``POST
  /api/tasks/move-node-to-group``: MoveNodeToGroup (``TaskEngine.move_node_to_group``).

Authorization: a random token, made at the node's first start and kept in the storage directory (mode 0600;
``jfds-device status --token`` prints it). Actions always need it in the ``Authorization: Bearer`` header (never a
cookie, so a cross-site form cannot carry it), and cross-site requests (``Sec-Fetch-Site`` cross-site/same-site,
or an ``Origin`` that is not this host) are refused. When the server listens on a non-loopback address every
request needs the token (header, or ``?token=`` for the page and the event stream, which a browser cannot give
headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import ipaddress
import json
import os
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryKind, EntryRef
from jfds_device.errors import MatterError, TaskConflictError, TaskNotRevertibleError
from jfds_device.im.provider import Status
from jfds_device.status import STATES, StatusError, build_report

TOKEN_FILE = "http-token"
SSE_HEARTBEAT_S = 15.0
SSE_QUEUE = 16  # changes a slow event-stream reader may lag behind; they coalesce (the page re-reads everything)

# Counters of ReconcilerStats that only grow; the rest are gauges (queue_depth) or timers (``*_s``: seconds).
_GAUGE_STATS = frozenset({"queue_depth"})


class TokenError(MatterError):
    """The token file cannot be read or written."""


def load_or_create_token(storage: Path) -> str:
    """The storage's token, made (32 random bytes, mode 0600, never rewritten) if there is none yet."""
    path = storage / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(storage)
    except OSError as exc:
        raise TokenError(f"cannot create {path}: {exc.strerror}") from exc
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(storage: Path) -> str:
    path = storage / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise TokenError(f"no HTTP token in {storage} (the node makes it at its first start): {exc.strerror}") from exc
    if not token:
        raise TokenError(f"{path} is empty")
    return token


@dataclass(frozen=True, slots=True)
class LiveNode:
    """What the web view reads from the running node (the seams, so tests need no whole node)."""

    storage: Path
    store: JfdsStore
    reconciler_stats: Callable[[], Any]  # a ReconcilerStats dataclass
    sessions_by_direction: Callable[[], dict[str, int]]
    subscriptions: Callable[[], int]
    setup: dict[str, int]  # passcode, discriminator, vendor_id, product_id, as given to run (for build_report)
    tasks: Any = None  # the running node's TaskEngine (cancel, MoveNodeToGroup), None when there is none

    @classmethod
    def of_device(cls, device: Any) -> LiveNode:
        """From a started ``jfds_device.node.app.Device``."""
        stack, config = device.stack, device.config
        return cls(
            storage=Path(config.storage),
            store=device.anchor.store,
            reconciler_stats=lambda: device.reconciler.stats,
            sessions_by_direction=lambda: {"inbound": len(stack.sessions.inbound_sessions()),
                                           "outbound": len(stack.sessions.outbound_sessions())},
            subscriptions=lambda: 0 if stack.im is None else len(stack.im.subscriptions),
            setup={"passcode": config.passcode, "discriminator": config.discriminator,
                   "vendor_id": config.vendor_id, "product_id": config.product_id},
            tasks=device.tasks,
        )

    def report(self) -> dict[str, Any]:
        return build_report(self.storage, **self.setup)


# ---------------------------------------------------------------------------------------------------- metrics


class _NodeCollector:
    def __init__(self, node: LiveNode) -> None:
        self._node = node

    def collect(self) -> Iterable[Metric]:
        node = self._node
        entries = GaugeMetricFamily("jfds_entries", "Datastore entries of the managed nodes by state", labels=["state"])
        counts: Counter[str] = Counter()
        report = node.report()
        for managed in report["nodes"]:
            counts.update(managed["entries"])
        for state in STATES:
            entries.add_metric([state], counts.get(state, 0))
        yield entries
        yield GaugeMetricFamily("jfds_nodes", "Nodes in the datastore's NodeList", value=len(report["nodes"]))
        stats = node.reconciler_stats()
        for f in fields(stats):
            value = getattr(stats, f.name)
            if f.name in _GAUGE_STATS:
                yield GaugeMetricFamily(f"jfds_reconciler_{f.name}", f"Reconciler {f.name}", value=value)
            elif f.name.endswith("_s"):
                yield CounterMetricFamily(f"jfds_reconciler_{f.name[:-2]}_seconds",
                                          f"Reconciler time spent in {f.name[:-2]}", value=value)
            else:
                yield CounterMetricFamily(f"jfds_reconciler_{f.name}", f"Reconciler {f.name}", value=value)
        sessions = GaugeMetricFamily("jfds_sessions", "Secure sessions by direction", labels=["direction"])
        for direction, n in sorted(node.sessions_by_direction().items()):
            sessions.add_metric([direction], n)
        yield sessions
        yield GaugeMetricFamily("jfds_subscriptions", "Live IM subscriptions", value=node.subscriptions())


# ---------------------------------------------------------------------------------------------------- the page

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>jfds-device</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:0 1rem}}
table{{border-collapse:collapse;display:block;overflow-x:auto}}
td,th{{border:1px solid;padding:.2rem .4rem;text-align:left}}</style>
</head><body>
<header><h1>jfds-device</h1><p><label>Token for actions <input id="token" type="password"
autocomplete="off"></label> <output id="result" role="status"></output></p></header>
<main id="view">{view}</main>
<script>
const q = new URLSearchParams(location.search).get("token");
const tokenQuery = q ? "?token=" + encodeURIComponent(q) : "";
if (q) document.getElementById("token").value = q;
async function reload() {{
  const r = await fetch("/api/view" + tokenQuery);
  if (r.ok) document.getElementById("view").innerHTML = await r.text();
}}
new EventSource("/events" + tokenQuery).addEventListener("change", reload);
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


def _esc(value: object) -> str:
    return html.escape(str(value))


def render_view(report: dict[str, Any], stats: Any, failed: dict[int, list[EntryRef]]) -> str:
    """The dashboard's content: the ``status`` report, reconciler counters, and the actions' forms."""
    ds = report["datastore"]
    parts = [f"<section><h2>{'In step' if report['in_step'] else 'Out of step'}</h2><dl>"]
    if ds["bootstrapped"]:
        for label, key in (("Datastore", "friendly_name"), ("State", "state"), ("Anchor node", "anchor_node_id"),
                           ("Compressed fabric id", "compressed_fabric_id")):
            parts.append(f"<dt>{label}</dt><dd>{_esc(ds.get(key))}</dd>")
    else:
        parts.append("<dt>Datastore</dt><dd>not bootstrapped</dd>")
    parts.append(f"<dt>Fabrics of this node</dt><dd>{len(report['node']['fabrics'])}</dd></dl></section>")
    parts.append("<section><h2>Nodes</h2><table><thead><tr><th scope=col>Node</th><th scope=col>Name</th>"
                 "<th scope=col>State</th>" + "".join(f"<th scope=col>{s}</th>" for s in STATES)
                 + "<th scope=col>Action</th></tr></thead><tbody>")
    for n in report["nodes"]:
        node_id = int(n["node_id"], 16)
        parts.append(f"<tr><th scope=row>{_esc(n['node_id'])}</th><td>{_esc(n['name'])}</td><td>{_esc(n['state'])}"
                     "</td>" + "".join(f"<td>{n['entries'][s]}</td>" for s in STATES)
                     + f"<td><form method=post action=\"/api/nodes/0x{node_id:X}/refresh\"><button>Refresh</button>"
                     "</form></td></tr>")
    parts.append("</tbody></table></section><section><h2>CommitFailed</h2><ul>")
    for n in report["nodes"]:
        node_id = int(n["node_id"], 16)
        refs = {(r.kind.value, r.endpoint_id, r.key): r for r in failed.get(node_id, [])}
        for f in n["failed"]:
            parts.append(f"<li>{_esc(n['node_id'])} {_esc(f['kind'])} {_esc(f['key'])}: {_esc(f['status'])} "
                         f"(0x{f['code']:02X}) since <time>{_esc(f['since'])}</time>")
            match = [r for (kind, _, _), r in refs.items() if kind == f["kind"] and _ref_key(r) == f["key"]]
            if match:
                body = json.dumps(_ref_json(match[0]))
                parts.append(f" <form method=post action=\"/api/entries/retry\" data-body=\"{_esc(body)}\">"
                             "<button>Retry</button></form>")
            parts.append("</li>")
    parts.append("</ul></section>")
    parts.append(_render_tasks(report["tasks"]))
    parts.append(_MOVE_FORM)
    parts.append("<section><h2>Reconciler</h2><dl>")
    for f in fields(stats):
        value = getattr(stats, f.name)
        parts.append(f"<dt>{f.name}</dt><dd>{value:.3f}</dd>" if isinstance(value, float)
                     else f"<dt>{f.name}</dt><dd>{value}</dd>")
    parts.append("</dl></section>")
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


def _ref_key(ref: EntryRef) -> str:
    where = "" if ref.endpoint_id is None else f"endpoint {ref.endpoint_id} "
    return f"{where}{'ListID ' if ref.kind in (EntryKind.ACL, EntryKind.BINDING) else ''}{ref.key}".strip()


def _ref_json(ref: EntryRef) -> dict[str, Any]:
    return {"kind": ref.kind.value, "node_id": ref.node_id, "endpoint_id": ref.endpoint_id, "key": ref.key}


def _failed_refs(store: JfdsStore) -> dict[int, list[EntryRef]]:
    found: dict[int, list[EntryRef]] = {}
    for kind in EntryKind:
        for entry in store.entries(kind):
            if entry.state is DatastoreState.COMMIT_FAILED:
                found.setdefault(entry.ref.node_id, []).append(entry.ref)
    return found


# ---------------------------------------------------------------------------------------------------- the app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_app(node: LiveNode, token: str, *, loopback: bool) -> web.Application:
    """The web application. ``loopback``: it listens only on loopback, so reads need no token."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_NodeCollector(node))  # type: ignore[arg-type]

    def presented(request: web.Request, *, query_ok: bool) -> bool:
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if not given and query_ok:
            given = request.query.get("token", "")
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        fetch_site = request.headers.get("Sec-Fetch-Site", "")
        origin = request.headers.get("Origin")
        if fetch_site in ("cross-site", "same-site") or (
            origin is not None and origin not in (f"http://{request.host}", f"https://{request.host}")
        ):
            return web.Response(status=403, text="cross-site request refused")
        if request.method != "GET":
            if not presented(request, query_ok=False):
                return web.Response(status=401, text="token required (Authorization: Bearer)",
                                    headers={"WWW-Authenticate": "Bearer"})
        elif not loopback and not presented(request, query_ok=True):
            return web.Response(status=401, text="token required", headers={"WWW-Authenticate": "Bearer"})
        response: web.StreamResponse = await handler(request)
        return response

    async def metrics(_: web.Request) -> web.Response:
        try:
            body = generate_latest(registry)
        except StatusError as exc:
            return web.Response(status=503, text=str(exc))
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    def view() -> str:
        return render_view(node.report(), node.reconciler_stats(), _failed_refs(node.store))

    async def page(_: web.Request) -> web.Response:
        try:
            return web.Response(text=_PAGE.format(view=view()), content_type="text/html")
        except StatusError as exc:
            return web.Response(status=503, text=str(exc))

    async def view_fragment(_: web.Request) -> web.Response:
        try:
            return web.Response(text=view(), content_type="text/html")
        except StatusError as exc:
            return web.Response(status=503, text=str(exc))

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        async with _changes(node.store, node.tasks) as changes:  # observing before the client sees the stream open
            await response.prepare(request)
            await response.write(b": connected\n\n")
            while True:
                try:
                    tables = await asyncio.wait_for(changes.get(), SSE_HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                await response.write(f"event: change\ndata: {json.dumps({'tables': tables})}\n\n".encode())

    async def refresh(request: web.Request) -> web.Response:
        try:
            node_id = _u64(int(request.match_info["node_id"], 0))
        except ValueError:
            return web.Response(status=400, text="node id: a number below 2**64 (0x.. for hex)")
        store = node.store
        if not store.is_bootstrapped:
            return web.Response(status=409, text="the datastore is not bootstrapped")
        if store.node(node_id) is None:
            return web.Response(status=404, text=f"node 0x{node_id:X} is not in NodeList")
        store.request_refresh(node_id)
        return web.Response(text=f"refresh of node 0x{node_id:X} requested")

    async def retry(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            ref = EntryRef(EntryKind(body["kind"]), _u64(body["node_id"]),
                           None if body.get("endpoint_id") is None else _u64(body["endpoint_id"], 0xFFFF),
                           None if body.get("key") is None else _u64(body["key"], 0xFFFF))
        except (ValueError, KeyError, TypeError) as exc:
            return web.Response(status=400, text=f"expected {{kind, node_id, endpoint_id, key}}: {exc}")
        try:
            entry = node.store.entry(ref)
        except MatterError as exc:  # an id the datastore's tables cannot hold
            return web.Response(status=400, text=str(exc))
        if entry is None:
            return web.Response(status=404, text="no such entry")
        if entry.state is not DatastoreState.COMMIT_FAILED:
            return web.Response(status=409, text="the entry is not CommitFailed")
        # renew(): Pending with a new revision, an intent change the reconciler acts on at once (not after the
        # entry's backoff); a failed removal stays a removal and goes back to DeletePending.
        if entry.removal:
            node.store.set_status(ref, DatastoreState.PENDING)
        else:
            node.store.renew(ref)
        return web.Response(text="entry is pending again")

    async def cancel(request: web.Request) -> web.Response:
        if node.tasks is None:
            return web.Response(status=409, text="no task engine runs")
        task_id = request.match_info["task_id"]
        try:
            rollback = node.tasks.cancel(task_id)
        except TaskNotRevertibleError as exc:
            status = 404 if node.tasks.task(task_id) is None else 409
            return web.Response(status=status, text=str(exc))
        return web.json_response(rollback.to_json(), status=202)

    async def move(request: web.Request) -> web.Response:
        if node.tasks is None:
            return web.Response(status=409, text="no task engine runs")
        try:
            body = await request.json()
            args = (_u64(body["node_id"]), _u64(body["endpoint_id"], 0xFFFF), _u64(body["from_group"], 0xFFFF),
                    _u64(body["to_group"], 0xFFFF))
        except (ValueError, KeyError, TypeError) as exc:
            return web.Response(status=400, text=f"expected {{node_id, endpoint_id, from_group, to_group}}: {exc}")
        try:
            view = node.tasks.move_node_to_group(*args)
        except TaskConflictError as exc:
            return web.Response(status=409, text=str(exc))
        except MatterError as exc:  # the datastore's answer: unknown node or endpoint, not in that group, ...
            status = 404 if getattr(exc, "status", None) == Status.NOT_FOUND else 400
            return web.Response(status=status, text=str(exc))
        return web.json_response(view.to_json(), status=202)

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", page)
    app.router.add_get("/api/view", view_fragment)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/events", events)
    app.router.add_post("/api/nodes/{node_id}/refresh", refresh)
    app.router.add_post("/api/entries/retry", retry)
    app.router.add_post("/api/tasks/move-node-to-group", move)
    app.router.add_post("/api/tasks/{task_id}/cancel", cancel)
    return app


def _u64(value: object, maximum: int = 0xFFFF_FFFF_FFFF_FFFF) -> int:
    """A JSON or path id: an integer (not a bool or float) in 0..maximum; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{value!r} is not an id in 0..{maximum:#x}")
    return value


@contextlib.asynccontextmanager
async def _changes(store: JfdsStore, tasks: Any) -> AsyncIterator[asyncio.Queue[list[str]]]:
    """Datastore changes and task transitions as a queue (bounded: a change that finds it full is dropped, the
    next one still says "something changed", and the page re-reads everything anyway)."""
    queue: asyncio.Queue[list[str]] = asyncio.Queue(SSE_QUEUE)

    def put(tables: list[str]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(tables)

    undo = [store.observe(lambda change: put(sorted(t.value for t in change.tables)))]
    if tasks is not None:
        undo.append(tasks.add_listener(lambda _view: put(["tasks"])))
    try:
        yield queue
    finally:
        for unsubscribe in undo:
            unsubscribe()


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 0xFFFF:
        raise ValueError(f"--http wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a busy port is a start-up error (one line, exit 2)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(app: web.Application, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)  # access lines would carry ?token=
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
