"""Carries the sans-IO Interaction Model server over the exchanges of one UDP endpoint.

Requests arrive on exchanges the peer opened; the server answers on them, keeps them open while it waits for the
peer (chunked reports, timed requests), and opens exchanges of its own for subscription reports, naming them by
keys of its choice. This module maps those keys to transport exchanges both ways, sends what the server returns
and closes what it is done with.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from jfds_device.codec.message import ProtocolId
from jfds_device.errors import MatterError
from jfds_device.im.provider import RequestContext
from jfds_device.im.server import InteractionServer, Outgoing
from jfds_device.transport.exchange import CloseReason, ExchangeClosed, ExchangeRef, MessageReceived
from jfds_device.transport.sessions import SessionTable
from jfds_device.transport.udp import UdpEndpoint

log = logging.getLogger(__name__)


class ImRouter:
    def __init__(self, endpoint: UdpEndpoint, sessions: SessionTable, im: InteractionServer) -> None:
        self.endpoint = endpoint
        self.sessions = sessions
        self.im = im
        self._ref_by_key: dict[Hashable, ExchangeRef] = {}
        self._key_by_ref: dict[ExchangeRef, Hashable] = {}

    def on_message(self, event: MessageReceived, ctx: RequestContext) -> None:
        """An IM message on a secure session: hand it to the server and send its answer."""
        key = self._key_by_ref.get(event.exchange, event.exchange)
        outgoing = self.im.on_message(key, ctx, event.opcode, event.payload, self.endpoint.now())
        self.send(outgoing)
        if not any(out.exchange == key for out in outgoing):
            self._close(key)  # nothing more to say on it: ack and close

    def on_exchange_closed(self, event: ExchangeClosed) -> None:
        key = self._key_by_ref.pop(event.exchange, event.exchange)
        self._ref_by_key.pop(key, None)
        self.im.on_exchange_closed(key, failed=event.reason is not CloseReason.CLOSED)

    def on_timer(self, now: float) -> None:
        self.send(self.im.on_timer(now))

    def send(self, outgoing: list[Outgoing]) -> None:
        for out in outgoing:
            ref = self._ref_for(out)
            if ref is None:  # its session is gone: the subscription behind it ends
                self.im.on_exchange_closed(out.exchange, failed=True)
                continue
            try:
                self.endpoint.send(
                    ref,
                    ProtocolId.INTERACTION_MODEL,
                    out.opcode,
                    out.payload,
                    expect_response=out.expect_response,
                    response_timeout=out.response_timeout,
                )
            except MatterError as exc:
                log.warning("cannot send IM opcode 0x%02x on %r: %s", out.opcode, ref, exc)
                self._close(out.exchange)
                continue
            if out.close_exchange:
                self._close(out.exchange)

    def _ref_for(self, out: Outgoing) -> ExchangeRef | None:
        if isinstance(out.exchange, ExchangeRef):
            return out.exchange
        ref = self._ref_by_key.get(out.exchange)
        if ref is None and out.new_exchange:
            session = self.sessions.get(out.session_id)
            if session is None:
                return None
            ref = self.endpoint.new_exchange(session)
            self._ref_by_key[out.exchange] = ref
            self._key_by_ref[ref] = out.exchange
        return ref

    def _close(self, key: Hashable) -> None:
        ref = key if isinstance(key, ExchangeRef) else self._ref_by_key.get(key)
        if ref is not None and self.endpoint.manager.is_open(ref):
            self.endpoint.close_exchange(ref)
