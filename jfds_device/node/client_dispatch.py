"""Routing the transport events that belong to our client side (the exchanges our node opened as a client).

``ExchangeDispatcher`` routes the events of exchanges our client side opened (CASE handshakes as initiator, IM
interactions) to whoever waits on them, and the peer-initiated report exchanges of our subscriptions (Core spec
8.5.4: a publisher sends reports on exchanges it opens) to their handlers. The stack's event handler
(``node/stack.py``) calls ``dispatch(event)`` first and stops when it returns True; what is left (everything the node
serves) goes to the handshakes or the IM server. SessionClosed is observed, never consumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from jfds_device.codec.message import InteractionModelOpcode, ProtocolId
from jfds_device.errors import DecodeError
from jfds_device.im.client import ExchangeEvent, ReportHandler
from jfds_device.im.messages import ReportData
from jfds_device.transport.exchange import Event, ExchangeClosed, ExchangeRef, SessionClosed
from jfds_device.transport.sessions import Session

__all__ = ["ExchangeDispatcher"]

log = logging.getLogger(__name__)


class ExchangeDispatcher:
    """Routes transport events to the client side. Synchronous and loop-bound: handlers must only schedule."""

    def __init__(self) -> None:
        self._watched: dict[ExchangeRef, Callable[[ExchangeEvent], None]] = {}
        self._closed: set[ExchangeRef] = set()  # watched exchanges whose ExchangeClosed was delivered
        self._released: set[ExchangeRef] = set()  # unwatched but still open: swallow their ExchangeClosed
        self._reports: dict[tuple[Session, int], ReportHandler] = {}
        self._session_listeners: list[Callable[[Session], None]] = []

    def watch(self, exchange: ExchangeRef, handler: Callable[[ExchangeEvent], None]) -> None:
        """Deliver ``exchange``'s MessageReceived and ExchangeClosed events to ``handler``."""
        self._watched[exchange] = handler
        self._released.discard(exchange)

    def unwatch(self, exchange: ExchangeRef) -> None:
        """Stop delivering; the exchange's ExchangeClosed (still to come unless already seen) is swallowed."""
        if self._watched.pop(exchange, None) is not None and exchange not in self._closed:
            self._released.add(exchange)
        self._closed.discard(exchange)

    def add_report_handler(self, session: Session, subscription_id: int, handler: ReportHandler) -> Callable[[], None]:
        """Hand new peer-initiated exchanges whose ReportData names ``subscription_id`` on ``session`` to
        ``handler`` (Core spec 8.5.4: reports of a subscription come on exchanges the publisher opens), and
        the session's SessionClosed. Returns the (idempotent) function that removes the route."""
        key = (session, subscription_id)
        self._reports[key] = handler

        def remove() -> None:
            if self._reports.get(key) is handler:
                del self._reports[key]

        return remove

    def has_report_routes(self, session: Session) -> bool:
        """Whether one of our subscriptions lives on ``session`` (the session table keeps such sessions longest)."""
        return any(key[0] is session for key in self._reports)

    def add_session_listener(self, listener: Callable[[Session], None]) -> Callable[[], None]:
        """Call ``listener(session)`` for every SessionClosed; returns the function that removes it."""
        self._session_listeners.append(listener)
        return lambda: self._session_listeners.remove(listener) if listener in self._session_listeners else None

    def dispatch(self, event: Event) -> bool:
        """Route one event; True if it belonged to the client side (the caller must then drop it)."""
        if isinstance(event, SessionClosed):
            for key in [k for k in self._reports if k[0] is event.session]:
                _call(self._reports.pop(key), event)
            for listener in list(self._session_listeners):
                _call(listener, event.session)
            return False
        handler = self._watched.get(event.exchange)
        if handler is not None:
            if isinstance(event, ExchangeClosed):
                self._closed.add(event.exchange)
            _call(handler, event)
            return True
        if isinstance(event, ExchangeClosed):
            if event.exchange in self._released:
                self._released.discard(event.exchange)
                return True
            return False
        if (event.new_exchange and self._reports and event.protocol_id == ProtocolId.INTERACTION_MODEL
                and event.opcode == InteractionModelOpcode.REPORT_DATA):
            report_handler = self._reports.get((event.session, _subscription_id(event.payload)))
            if report_handler is not None:
                _call(report_handler, event)
                return True
        return False


def _subscription_id(payload: bytes) -> int | None:
    try:
        subscription_id: int | None = ReportData.decode(payload).subscription_id
    except DecodeError:
        return None
    return subscription_id


def _call(handler: Callable[[object], object], arg: object) -> None:
    try:
        handler(arg)
    except Exception:  # one failing handler must not stop the node's event loop
        log.exception("exchange event handler %r failed", handler)
