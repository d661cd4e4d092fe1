"""The asyncio edge of the transport: one dual-stack UDP socket driving an ExchangeManager.

This is the only transport module that does I/O. It feeds datagrams and ``loop.time()`` into the sans-IO
manager, sends what the manager queued after every call, keeps one ``loop.call_at`` timer armed at
``next_timer()``, and hands events to the app through ``events`` (an asyncio.Queue) or an ``on_event``
callback, in order.

App code that calls the manager itself (``manager.send(...)``) must call ``transmit()`` afterwards; the
``send``/``new_exchange``/``close_exchange`` wrappers here do both and pass ``now`` for you.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import cast

from jfds_device.errors import MatterError
from jfds_device.transport.exchange import Event, ExchangeManager, ExchangeRef
from jfds_device.transport.sessions import Address, Session

__all__ = ["MATTER_PORT", "UdpBindError", "UdpEndpoint"]

log = logging.getLogger(__name__)

MATTER_PORT = 5540  # the IANA-registered Matter port, used unless configured otherwise

EventCallback = Callable[[Event], Awaitable[None] | None]


class UdpBindError(MatterError):
    """The UDP socket could not be opened or bound (``busy`` when the port is taken; the CLI exits 2)."""

    def __init__(self, message: str, *, port: int, busy: bool = False) -> None:
        super().__init__(message)
        self.port = port
        self.busy = busy


def _sendable(addr: Address) -> Address:
    # An AF_INET6 socket reaches IPv4 peers through IPv4-mapped addresses; DNS-SD may hand us plain IPv4.
    host = addr[0]
    if isinstance(host, str) and ":" not in host:
        return (f"::ffff:{host}", *addr[1:])
    return addr


def _open_socket(host: str, port: int, interface: str | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        # Dual stack: IPv4 peers arrive as ::ffff:a.b.c.d on the same socket.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        scope_id = 0
        if interface is not None:
            try:
                scope_id = socket.if_nametoindex(interface)
            except OSError as exc:
                raise UdpBindError(f"no network interface {interface!r}", port=port) from exc
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            except (PermissionError, AttributeError) as exc:
                # SO_BINDTODEVICE needs CAP_NET_RAW; the scope id still pins link-local traffic.
                log.warning("cannot bind to device %s (%s); relying on the scope id only", interface, exc)
        try:
            sock.bind((host, port, 0, scope_id))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UdpBindError(f"UDP port {port} is already in use", port=port, busy=True) from exc
            raise UdpBindError(f"cannot bind UDP [{host}]:{port}: {exc}", port=port) from exc
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpEndpoint(asyncio.DatagramProtocol):
    """One bound socket plus the manager it drives. Create it with ``await UdpEndpoint.open(...)``."""

    def __init__(self, manager: ExchangeManager, *, on_event: EventCallback | None = None) -> None:
        self.manager = manager
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        """Events in order; consumed by ``on_event`` when one was given, else read it yourself."""
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        if on_event is not None:
            self._dispatcher = self._loop.create_task(self._dispatch_events(on_event))

    @classmethod
    async def open(
        cls,
        manager: ExchangeManager,
        *,
        port: int = MATTER_PORT,
        host: str = "::",
        interface: str | None = None,
        on_event: EventCallback | None = None,
    ) -> UdpEndpoint:
        """Bind ``[host]:port`` (0 picks a free port), optionally to ``interface``; raises UdpBindError."""
        sock = _open_socket(host, port, interface)
        endpoint = cls(manager, on_event=on_event)
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: endpoint, sock=sock)
        except BaseException:
            endpoint.close()
            sock.close()
            raise
        return endpoint

    # --- asyncio.DatagramProtocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_datagram_endpoint hands a datagram transport (not always a DatagramTransport subclass).
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.manager.receive_datagram(data, addr, self._loop.time())
        self.transmit()

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable, ...) surface here; MRP retransmission already covers them.
        log.debug("UDP error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._transport = None

    # --- app API ---------------------------------------------------------------------------------------------

    @property
    def local_address(self) -> Address:
        if self._transport is None:
            raise MatterError("the endpoint is closed")
        addr: Address = self._transport.get_extra_info("sockname")
        return addr

    def now(self) -> float:
        return self._loop.time()

    def transmit(self) -> None:
        """Send queued datagrams, queue new events and re-arm the timer. Call after any manager call."""
        transport = self._transport
        for data, addr in self.manager.datagrams_to_send():
            if transport is not None:
                transport.sendto(data, _sendable(addr))
        while (event := self.manager.next_event()) is not None:
            self.events.put_nowait(event)
        self._arm_timer()

    def new_exchange(self, session: Session) -> ExchangeRef:
        ref = self.manager.new_exchange(session, self.now())
        self.transmit()
        return ref

    def send(
        self,
        exchange: ExchangeRef,
        protocol_id: int,
        opcode: int,
        payload: bytes,
        *,
        reliable: bool = True,
        expect_response: bool = False,
        response_timeout: float | None = None,
    ) -> None:
        try:
            self.manager.send(
                exchange,
                protocol_id,
                opcode,
                payload,
                now=self.now(),
                reliable=reliable,
                expect_response=expect_response,
                response_timeout=response_timeout,
            )
        finally:
            self.transmit()

    def close_exchange(self, exchange: ExchangeRef) -> None:
        self.manager.close(exchange, self.now())
        self.transmit()

    def close(self) -> None:
        """Close the socket and stop the timer and the event dispatcher. Pending retransmissions are dropped."""
        self._cancel_timer()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            self._dispatcher = None
        if self._transport is not None:
            self._transport.close()

    # --- internals -------------------------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        when = self.manager.next_timer()
        if when == self._timer_at and self._timer is not None:
            return
        self._cancel_timer()
        if when is not None and self._transport is not None:
            self._timer_at = when
            self._timer = self._loop.call_at(when, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _on_timer(self) -> None:
        # asyncio may run a call_at callback up to one clock resolution early; never report a time before the
        # deadline it fired for, or the manager would find nothing due and we would spin.
        now = max(self._loop.time(), self._timer_at or 0.0)
        self._timer = self._timer_at = None
        self.manager.handle_timer(now)
        self.transmit()

    async def _dispatch_events(self, callback: EventCallback) -> None:
        while True:
            event = await self.events.get()
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # The event's type only: a MessageReceived carries decrypted payload, which never goes to a log.
                log.exception("event callback failed for a %s event", type(event).__name__)
