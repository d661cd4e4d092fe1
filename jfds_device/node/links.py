"""Links a stack runs over: the UDP socket (``udp_link``), or an in-process ``VirtualLink`` between stacks.

A link opens the stack's ``UdpEndpoint``: the endpoint drives the sans-IO exchange manager and is the only object
the stack sends through. ``udp_link`` binds a real dual-stack socket (``UdpEndpoint.open``). ``VirtualLink`` hands
each attached endpoint a datagram transport of its own that delivers to the other attached endpoints in the same
process (``loop.call_soon``, as a socket's readiness callback would), so two stacks talk Matter to each other with no
socket at all; a datagram to an address nobody is attached to is lost, as UDP loses it. Tests use it to run two
stacks (CASE, MRP, IM) without touching the network.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from jfds_device.transport.exchange import ExchangeManager
from jfds_device.transport.sessions import Address
from jfds_device.transport.udp import EventCallback, UdpBindError, UdpEndpoint

__all__ = ["Link", "VirtualLink", "udp_link"]

log = logging.getLogger(__name__)

Link = Callable[[ExchangeManager, EventCallback], Awaitable[UdpEndpoint]]
"""Opens the endpoint of a stack: ``await link(manager, on_event)``; raises ``UdpBindError`` when it cannot."""


def udp_link(port: int, *, host: str = "::", interface: str | None = None) -> Link:
    """A real UDP socket on ``[host]:port`` (0: a free port), optionally bound to ``interface``."""

    async def open_udp(manager: ExchangeManager, on_event: EventCallback) -> UdpEndpoint:
        return await UdpEndpoint.open(manager, port=port, host=host, interface=interface, on_event=on_event)

    return open_udp


def _key(addr: Address) -> tuple[str, int]:
    return str(addr[0]), int(addr[1])


class _VirtualTransport(asyncio.DatagramTransport):
    """The datagram transport ``VirtualLink`` gives one endpoint (what ``UdpEndpoint`` uses of a transport)."""

    def __init__(self, link: VirtualLink, address: Address, endpoint: UdpEndpoint) -> None:
        super().__init__()
        self._link, self._address, self._endpoint = link, address, endpoint
        self._closing = False

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if not self._closing:
            self._link._deliver(bytes(data), self._address, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._address if name == "sockname" else default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._link._detach(self._address)
            self._endpoint.connection_lost(None)

    def abort(self) -> None:
        self.close()


class VirtualLink:
    """An in-process network: ``attach(host)`` is a ``Link`` whose endpoint gets ``(host, port, 0, 0)``, the port
    chosen like a free UDP port unless given. ``delivered`` / ``lost`` count datagrams; ``blocked`` holds hosts
    whose datagrams (both ways) are lost, to cut a peer off without closing it."""

    def __init__(self) -> None:
        self._endpoints: dict[tuple[str, int], UdpEndpoint] = {}
        self._ports = itertools.count(40000)
        self.blocked: set[str] = set()
        self.delivered = 0
        self.lost = 0

    def attach(self, host: str, port: int = 0) -> Link:
        async def open_virtual(manager: ExchangeManager, on_event: EventCallback) -> UdpEndpoint:
            chosen = port or next(p for p in self._ports if (host, p) not in self._endpoints)
            if (host, chosen) in self._endpoints:
                raise UdpBindError(f"[{host}]:{chosen} is already attached", port=chosen, busy=True)
            endpoint = UdpEndpoint(manager, on_event=on_event)
            address: Address = (host, chosen, 0, 0)
            self._endpoints[(host, chosen)] = endpoint
            endpoint.connection_made(_VirtualTransport(self, address, endpoint))
            return endpoint

        return open_virtual

    def _detach(self, address: Address) -> None:
        self._endpoints.pop(_key(address), None)

    def _deliver(self, data: bytes, source: Address, destination: Address) -> None:
        target = self._endpoints.get(_key(destination))
        if target is None or source[0] in self.blocked or destination[0] in self.blocked:
            self.lost += 1
            return
        self.delivered += 1
        asyncio.get_running_loop().call_soon(self._receive, target, data, source)

    def _receive(self, target: UdpEndpoint, data: bytes, source: Address) -> None:
        if target in self._endpoints.values():  # closed while the datagram was on its way: lost
            target.datagram_received(data, source)
        else:
            self.lost += 1
