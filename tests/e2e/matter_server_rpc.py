"""Home Assistant's Matter server driven through its own websocket client, in a child process.

Run by ``tests/e2e/matter_server.py`` with the matter-server venv's Python (python-matter-server 7.0.1 and its
pinned CHIP wheels, which cannot share a venv with the project's) and ``-P`` (else the harness module
``tests/e2e/matter_server.py`` beside this script would shadow the ``matter_server`` package), inside the test's
controller namespace where the server listens on localhost. It uses only the standard library and
``matter_server.client`` (the ``MatterClient`` over aiohttp that Home Assistant itself uses), so it must not
import anything from this repo.

Protocol: one JSON object per line on stdin, ``{"op": NAME, ...}``; one answer per line on stdout, ``READY``
once connected, then ``OK <json>`` or ``ERR <json>``. Every node event the client sees is recorded with the
``time.monotonic()`` at which it arrived (CLOCK_MONOTONIC is system-wide, so the test compares it with its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import traceback
from typing import Any

from aiohttp import ClientSession
from matter_server.client import MatterClient
from matter_server.common.models import EventType

LOG = logging.getLogger("matter_server_rpc")


class Driver:
    def __init__(self, client: MatterClient) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        client.subscribe_events(self._on_event)

    def _on_event(self, event: EventType, data: Any) -> None:
        record: dict[str, Any] = {"t": time.monotonic(), "event": event.value}
        node_id = getattr(data, "node_id", None)
        if node_id is not None:
            record["node_id"] = node_id
        if event in (EventType.NODE_ADDED, EventType.NODE_UPDATED):
            record["available"] = data.available
        elif event == EventType.NODE_EVENT:
            record.update(endpoint=data.endpoint_id, cluster=data.cluster_id, event_id=data.event_id)
        elif event == EventType.ATTRIBUTE_UPDATED:
            record["value"] = _jsonable(data)
        self.events.append(record)
        self._changed.set()

    def node(self, node_id: int) -> dict[str, Any] | None:
        """``attributes``: the node's data as of the server's last full node message (NODE_ADDED/NODE_UPDATED);
        single attribute updates since then are in ``attribute`` (the client keeps them in its typed view)."""
        node = self.client._nodes.get(node_id)  # get_node raises for unknown nodes; None is the answer here
        if node is None:
            return None
        return {"node_id": node.node_id, "available": node.available,
                "attributes": {k: _jsonable(v) for k, v in node.node_data.attributes.items()}}

    def attribute(self, node_id: int, path: str) -> Any:
        """The client's current value of ``path`` ("endpoint/cluster/attribute"), attribute updates included."""
        node = self.client._nodes.get(node_id)
        endpoint, cluster, attribute = (int(part) for part in path.split("/"))
        if node is None or endpoint not in node.endpoints:
            return None
        return _jsonable(node.get_attribute_value(endpoint, cluster, attribute))

    async def op_commission(self, code: str, network_only: bool = True) -> dict[str, Any]:
        data = await self.client.commission_with_code(code, network_only=network_only)
        return {"node_id": data.node_id, "available": data.available}

    async def op_read_attribute(self, node_id: int, path: str) -> dict[str, Any]:
        """A fresh read through the server (its CASE session to the node), not its cache."""
        return {k: _jsonable(v) for k, v in (await self.client.read_attribute(node_id, path)).items()}

    async def op_write_attribute(self, node_id: int, path: str, value: Any) -> Any:
        return _jsonable(await self.client.write_attribute(node_id, path, value))

    async def op_remove_node(self, node_id: int) -> None:
        """Home Assistant's "remove device": the server forgets the node and sends it RemoveFabric."""
        await self.client.remove_node(node_id)

    async def op_node(self, node_id: int) -> dict[str, Any] | None:
        return self.node(node_id)

    async def op_attribute(self, node_id: int, path: str) -> Any:
        return self.attribute(node_id, path)

    async def op_events(self, since: int = 0) -> list[dict[str, Any]]:
        return self.events[since:]

    async def op_wait_attribute(self, node_id: int, path: str, value: Any, within: float) -> dict[str, Any]:
        """Wait until the server shows the node available with ``path`` == ``value``; answer when that first
        held (monotonic seconds), decided on each event the moment it arrives."""
        deadline = time.monotonic() + within
        while True:
            node = self.client._nodes.get(node_id)
            current = self.attribute(node_id, path)
            if node is not None and node.available and current == value:
                return {"t": time.monotonic(), "value": current}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"t": None, "value": current}
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


async def main(url: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with ClientSession() as session:
        client = MatterClient(url, session)
        deadline = time.monotonic() + 60
        while True:  # the harness starts us once the server says it is up; allow for a slow machine anyway
            try:
                await client.connect()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        driver = Driver(client)
        ready = asyncio.Event()
        listening = asyncio.create_task(client.start_listening(ready))
        await asyncio.wait_for(ready.wait(), 60)
        print("READY", flush=True)
        while line := await reader.readline():
            request = json.loads(line)
            op = request.pop("op")
            if op == "shutdown":
                break
            try:
                result = await getattr(driver, f"op_{op}")(**request)
                print("OK " + json.dumps(result), flush=True)
            except Exception as exc:  # the test decides what an error means; the driver keeps serving
                print("ERR " + json.dumps({"type": type(exc).__name__, "message": str(exc),
                                           "traceback": traceback.format_exc()}), flush=True)
        await client.disconnect()
        listening.cancel()
    print("BYE", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1]))
