"""The asyncio edge on real loopback sockets (::1 only): delivery, acks, timers and bind errors."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from jfds_device.codec.message import InteractionModelOpcode, ProtocolId, SecureChannelOpcode
from jfds_device.transport.exchange import CloseReason, Event, ExchangeClosed, ExchangeManager, MessageReceived
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import SessionAuthMode, SessionTable
from jfds_device.transport.udp import UdpBindError, UdpEndpoint, _sendable
from tests.transport.pair import KEYS

FAST = MrpParameters(idle_interval=0.01, active_interval=0.01, active_threshold=1.0)


async def _endpoint(seed: int, **kwargs: object) -> UdpEndpoint:
    table = SessionTable(rng=random.Random(seed))
    return await UdpEndpoint.open(
        ExchangeManager(table, rng=random.Random(seed)),
        port=0,
        host="::1",
        **kwargs,  # type: ignore[arg-type]
    )


async def _next(endpoint: UdpEndpoint, kind: type) -> Event:
    while True:
        event = await asyncio.wait_for(endpoint.events.get(), timeout=5.0)
        if isinstance(event, kind):
            return event


async def test_unsecured_round_trip_over_loopback() -> None:
    a, b = await _endpoint(1), await _endpoint(2)
    try:
        session = a.manager.sessions.new_unsecured_initiator(b.local_address, a.now())
        ex = a.new_exchange(session)
        a.send(ex, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, b"req", expect_response=True)

        request = await _next(b, MessageReceived)
        assert isinstance(request, MessageReceived) and request.new_exchange and request.payload == b"req"
        b.send(request.exchange, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_RESPONSE, b"rsp")
        b.close_exchange(request.exchange)

        reply = await _next(a, MessageReceived)
        assert isinstance(reply, MessageReceived) and reply.payload == b"rsp" and reply.exchange == ex
        a.close_exchange(ex)
        assert await _next(a, ExchangeClosed) == ExchangeClosed(ex, CloseReason.CLOSED)
        # B's response was reliable: its exchange ends when A's standalone ack arrives.
        assert await _next(b, ExchangeClosed) == ExchangeClosed(request.exchange, CloseReason.CLOSED)
    finally:
        a.close()
        b.close()


async def test_secure_session_with_event_callback() -> None:
    got: asyncio.Queue[Event] = asyncio.Queue()

    async def on_event(event: Event) -> None:
        await got.put(event)

    a, b = await _endpoint(1), await _endpoint(2, on_event=on_event)
    try:
        a_id, b_id = a.manager.sessions.allocate_session_id(), b.manager.sessions.allocate_session_id()
        common = {"auth_mode": SessionAuthMode.PASE, "attestation_challenge": KEYS.attestation_challenge}
        enc, dec = KEYS.for_role(True)
        sa = a.manager.sessions.add_secure(
            local_session_id=a_id,
            peer_session_id=b_id,
            encrypt_key=enc,
            decrypt_key=dec,
            peer_addr=b.local_address,
            now=a.now(),
            is_initiator=True,
            **common,  # type: ignore[arg-type]
        )
        enc, dec = KEYS.for_role(False)
        b.manager.sessions.add_secure(
            local_session_id=b_id,
            peer_session_id=a_id,
            encrypt_key=enc,
            decrypt_key=dec,
            peer_addr=a.local_address,
            now=b.now(),
            **common,  # type: ignore[arg-type]
        )
        ex = a.new_exchange(sa)
        a.send(ex, ProtocolId.INTERACTION_MODEL, InteractionModelOpcode.READ_REQUEST, b"read")
        event = await asyncio.wait_for(got.get(), timeout=5.0)
        assert isinstance(event, MessageReceived) and event.payload == b"read"
    finally:
        a.close()
        b.close()


async def test_timer_drives_retransmission_to_failure() -> None:
    # Nobody listens on the peer port: every copy is lost, and the timer alone must run MRP to its end.
    sink = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sink.bind(("::1", 0))
    a = await _endpoint(1)
    try:
        session = a.manager.sessions.new_unsecured_initiator(sink.getsockname(), a.now())
        session.peer_mrp = FAST
        ex = a.new_exchange(session)
        a.send(ex, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, b"x")
        assert await _next(a, ExchangeClosed) == ExchangeClosed(ex, CloseReason.DELIVERY_FAILED)
        copies = 0
        sink.setblocking(False)
        while True:
            try:
                sink.recv(2048)
            except BlockingIOError:
                break
            copies += 1
        assert copies == 5
    finally:
        a.close()
        sink.close()


async def test_busy_port_raises_a_clear_error() -> None:
    a = await _endpoint(1)
    try:
        port = a.local_address[1]
        with pytest.raises(UdpBindError) as info:
            await UdpEndpoint.open(ExchangeManager(SessionTable()), port=port, host="::1")
        assert info.value.busy and info.value.port == port and str(port) in str(info.value)
    finally:
        a.close()


async def test_unknown_interface_raises() -> None:
    with pytest.raises(UdpBindError):
        await UdpEndpoint.open(ExchangeManager(SessionTable()), port=0, host="::1", interface="no-such-if0")


def test_ipv4_peers_are_mapped() -> None:
    assert _sendable(("192.0.2.1", 5540)) == ("::ffff:192.0.2.1", 5540)
    assert _sendable(("::1", 5540, 0, 0)) == ("::1", 5540, 0, 0)


async def test_a_failed_event_callback_logs_the_event_type_not_its_payload(caplog: pytest.LogCaptureFixture) -> None:
    secret = b"decrypted-secret-payload"

    def failing(event: Event) -> None:
        raise RuntimeError("callback bug")

    caplog.set_level("DEBUG")
    a, b = await _endpoint(1), await _endpoint(2, on_event=failing)
    try:
        session = a.manager.sessions.new_unsecured_initiator(b.local_address, a.now())
        ex = a.new_exchange(session)
        a.send(ex, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, secret, expect_response=True)
        for _ in range(100):
            if "event callback failed" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "event callback failed for a MessageReceived event" in caplog.text
        assert secret.decode() not in caplog.text and secret.hex() not in caplog.text
        assert secret.decode() not in repr(MessageReceived(ex, session, 0, 0, secret, True))
    finally:
        a.close()
        b.close()
