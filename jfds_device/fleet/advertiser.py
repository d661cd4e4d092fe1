"""DNS-SD for the whole fleet: every simulated node's ``_matter._tcp`` record from one mDNS responder.

A node's ``Advertiser`` (``node/dnssd.py``) owns a zeroconf instance (sockets, a cache, a thread of timers); a
thousand of them in one process would cost more than the nodes. Here one ``SiblingZeroconf`` (the node's own
adapter: SRV and TXT answers carry SRV, TXT, A and AAAA together) publishes every node's operational instance
``<CFID>-<NodeID>._matter._tcp.local.`` (Core spec 4.3.2) with that node's port and the MRP keys, on one host name
whose addresses are the interface's, so a resolver finds each node exactly as it finds any node. The ``_I<CFID>``
subtype PTR is not published: it serves browsing a fabric, and resolution (CHIP's, ours) asks for the instance.
No probing (as ``Advertiser``): instance names are fabric-assigned, so unique by construction.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from zeroconf import ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from jfds_device.node.dnssd import MrpIntervals, local_interfaces, open_zeroconf, operational_service_infos

__all__ = ["FleetAdvertiser"]

log = logging.getLogger(__name__)


class FleetAdvertiser:
    """``add(cfid, node_id, port)`` publishes a record; ``stop()`` says goodbye for all of them."""

    def __init__(self, interface: str | None, *, mrp: MrpIntervals | None = None) -> None:
        self.interface = interface
        self.mrp = mrp or MrpIntervals()
        self.hostname = f"{os.urandom(8).hex().upper()}.local."
        self._zc: AsyncZeroconf | None = None
        self._addresses: list[bytes] = []
        self._live: dict[tuple[bytes, int], ServiceInfo] = {}
        self._announcing: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        interfaces = local_interfaces(self.interface)
        self._addresses = [a for i in interfaces for a in i.packed()]
        self._zc = open_zeroconf(interfaces)

    @property
    def published(self) -> int:
        return len(self._live)

    async def add(self, compressed_fabric_id: bytes, node_id: int, port: int) -> None:
        if self._zc is None or (compressed_fabric_id, node_id) in self._live:
            return
        base, _subtypes = operational_service_infos(compressed_fabric_id, node_id, port=port, host=self.hostname,
                                                    addresses=self._addresses, mrp=self.mrp)
        announcing = await self._zc.async_register_service(base, cooperating_responders=True)
        self._live[(compressed_fabric_id, node_id)] = base
        future = asyncio.ensure_future(announcing)  # zeroconf's 3 announcements run on; stop() waits for them
        self._announcing.add(future)
        future.add_done_callback(self._announcing.discard)

    async def remove(self, compressed_fabric_id: bytes, node_id: int) -> None:
        base = self._live.pop((compressed_fabric_id, node_id), None)
        if self._zc is not None and base is not None:
            await (await self._zc.async_unregister_service(base))

    async def stop(self) -> None:
        if self._zc is None:
            return
        await asyncio.gather(*self._announcing, return_exceptions=True)
        zc, self._zc = self._zc, None
        live, self._live = list(self._live.values()), {}
        if live:
            await zc.async_unregister_all_services()  # goodbyes (TTL 0) for every record
        await zc.async_close()
        log.debug("withdrew %d operational records", len(live))
