"""``jfds-device run --http HOST:PORT``: the operator's view of the running node.

* ``GET /metrics``: Prometheus text format (prometheus-client): entries by state, nodes (and by reachability), the
  reconciler's counters (``ReconcilerStats``), sessions by direction and fabric, subscriptions by fabric, the IM
  interactions served by type and status (``InteractionServer.interactions``).
* ``GET /``: a small semantic-HTML dashboard (``web_page.py``: the ``status`` report from ``build_report`` plus the
  live figures), updated live from ``GET /events`` (server-sent events, one per datastore change, from
  ``JfdsStore.observe``, and per task transition).
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
import ipaddress
import json
import os
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from clusters.joint_fabric_datastore.schema import DatastoreState
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryKind, EntryRef
from jfds_device.errors import MatterError, TaskConflictError, TaskNotRevertibleError
from jfds_device.im.provider import Status
from jfds_device.status import REACHABILITY, STATES, StatusError, build_report
from jfds_device.web_page import PAGE, LiveFigures, node_entries, render_view

TOKEN_FILE = "http-token"
SSE_HEARTBEAT_S = 15.0
SSE_QUEUE = 16  # changes a slow event-stream reader may lag behind; they coalesce (the page re-reads everything)

_IM_TYPES = {Op.READ_REQUEST: "read", Op.SUBSCRIBE_REQUEST: "subscribe", Op.WRITE_REQUEST: "write",
             Op.INVOKE_REQUEST: "invoke", Op.TIMED_REQUEST: "timed"}  # fmt: skip

# Counters of ReconcilerStats that only grow; the rest are gauges (queue_depth) or timers (``*_s``: seconds).
_GAUGE_STATS = frozenset({"queue_depth"})


class TokenError(MatterError):
    """The token file cannot be read or written."""


def _status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"0x{code:02X}"


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
    sessions_by_fabric: Callable[[], Mapping[tuple[str, int], int]]  # (inbound|outbound, fabric index) -> sessions
    subscriptions_by_fabric: Callable[[], Mapping[int, int]]  # fabric index -> subscriptions we serve
    setup: dict[str, int]  # passcode, discriminator, vendor_id, product_id, as given to run (for build_report)
    tasks: Any = None  # the running node's TaskEngine (cancel, MoveNodeToGroup), None when there is none
    im_interactions: Callable[[], Mapping[tuple[int, int], int]] = field(default=dict)  # (opcode, status) -> count

    @classmethod
    def of_device(cls, device: Any) -> LiveNode:
        """From a started ``jfds_device.node.app.Device``."""
        stack, config = device.stack, device.config
        return cls(
            storage=Path(config.storage),
            store=device.anchor.store,
            reconciler_stats=lambda: device.reconciler.stats,
            sessions_by_fabric=lambda: Counter(
                [("inbound", s.fabric_index) for s in stack.sessions.inbound_sessions()]
                + [("outbound", s.fabric_index) for s in stack.sessions.outbound_sessions()]),
            subscriptions_by_fabric=lambda: Counter(
                () if stack.im is None else (s.ctx.subject.fabric_index for s in stack.im.subscriptions)),
            setup={"passcode": config.passcode, "discriminator": config.discriminator,
                   "vendor_id": config.vendor_id, "product_id": config.product_id},
            tasks=device.tasks,
            im_interactions=lambda: {} if stack.im is None else stack.im.interactions,
        )

    def live(self) -> LiveFigures:
        interactions = {(_IM_TYPES.get(op, f"0x{op:02X}"), _status_name(status)): n
                        for (op, status), n in self.im_interactions().items()}
        return LiveFigures(self.reconciler_stats(), self.sessions_by_fabric(), self.subscriptions_by_fabric(),
                           interactions)

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
        reach = GaugeMetricFamily("jfds_nodes_by_reachability", "Managed nodes by reachability as the running "
                                  "node's reconciler sees it", labels=["reachability"])
        by_reach = Counter(n["reachability"] for n in report["nodes"])
        for state in REACHABILITY:
            reach.add_metric([state], by_reach.get(state, 0))
        yield reach
        live = node.live()
        sessions = GaugeMetricFamily("jfds_sessions", "Secure sessions by direction and fabric index (0: PASE)",
                                     labels=["direction", "fabric_index"])
        for (direction, index), n in sorted(live.sessions.items()):
            sessions.add_metric([direction, str(index)], n)
        yield sessions
        subscriptions = GaugeMetricFamily("jfds_subscriptions", "IM subscriptions served, by fabric index",
                                          labels=["fabric_index"])
        for index, n in sorted(live.subscriptions.items()):
            subscriptions.add_metric([str(index)], n)
        yield subscriptions
        interactions = CounterMetricFamily("jfds_im_interactions", "IM interactions served, by type and the status "
                                           "they ended with", labels=["type", "status"])
        for (kind, status), n in sorted(live.interactions.items()):
            interactions.add_metric([kind, status], n)
        yield interactions


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
        return render_view(node.report(), node.live(), node_entries(node.store))

    async def page(_: web.Request) -> web.Response:
        try:
            return web.Response(text=PAGE.format(view=view()), content_type="text/html")
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
