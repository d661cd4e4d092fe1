"""ExchangeManager pair tests over the in-memory link: delivery, acks, MRP timing, duplicates, failures."""

from __future__ import annotations

import pytest

from jfds_device.codec.message import InteractionModelOpcode, ProtocolHeader, ProtocolId, SecureChannelOpcode
from jfds_device.errors import LocalProtocolError
from jfds_device.transport.counters import CounterExhaustedError
from jfds_device.transport.exchange import CloseReason, ExchangeClosed, MessageReceived, SessionClosed
from jfds_device.transport.mrp import (
    MRP_MAX_TRANSMISSIONS,
    MRP_STANDALONE_ACK_TIMEOUT,
    MrpParameters,
    backoff_interval,
)
from jfds_device.transport.sessions import SessionAuthMode
from tests.transport.pair import Link, Tx, make_link, secure_pair

IM = ProtocolId.INTERACTION_MODEL
READ = InteractionModelOpcode.READ_REQUEST
REPORT = InteractionModelOpcode.REPORT_DATA
STATUS = InteractionModelOpcode.STATUS_RESPONSE


def received(events: list[object]) -> list[MessageReceived]:
    return [e for e in events if isinstance(e, MessageReceived)]


def is_standalone_ack(link: Link, tx: Tx) -> bool:
    ph = link.peek(tx).protocol_header
    return ph.protocol_id == ProtocolId.SECURE_CHANNEL and ph.opcode == SecureChannelOpcode.STANDALONE_ACK


@pytest.fixture
def link() -> Link:
    return make_link()


def test_request_response_piggybacks_the_ack(link: Link) -> None:
    sa, sb = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"request", now=link.now, expect_response=True)
    link.pump()

    (msg,) = received(link.b.take())
    assert (msg.protocol_id, msg.opcode, msg.payload, msg.new_exchange) == (IM, READ, b"request", True)
    assert msg.session is sb and msg.exchange.initiator is False
    assert msg.exchange.exchange_id == ex.exchange_id

    # B answers within MRP_STANDALONE_ACK_TIMEOUT: its ack rides on the response, no standalone ack.
    link.advance(0.1)
    link.b.manager.send(msg.exchange, IM, REPORT, b"report", now=link.now)
    link.pump()
    (reply,) = received(link.a.take())
    assert reply.payload == b"report" and reply.exchange == ex and not reply.new_exchange
    request_tx, report_tx = link.sent
    assert link.peek(report_tx).protocol_header.ack_counter == link.peek(request_tx).header.message_counter
    assert not any(is_standalone_ack(link, tx) for tx in link.sent)

    # A closes: its pending ack for the report goes out at once as a standalone ack, and B's report is done.
    link.a.manager.close(ex, link.now)
    link.pump()
    assert is_standalone_ack(link, link.sent[-1]) and link.sent[-1].time == 0.1
    assert link.a.take() == [ExchangeClosed(ex, CloseReason.CLOSED)]
    link.b.manager.close(msg.exchange, link.now)
    assert link.b.take() == [ExchangeClosed(msg.exchange, CloseReason.CLOSED)]
    link.advance(10.0)
    assert len(link.sent) == 3  # nothing retransmitted
    assert link.a.manager.next_timer() is None and link.b.manager.next_timer() is None


def test_standalone_ack_after_the_ack_timeout(link: Link) -> None:
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", now=link.now)
    link.pump()
    assert link.b.manager.next_timer() == pytest.approx(MRP_STANDALONE_ACK_TIMEOUT)
    link.advance(1.0)
    request, ack = link.sent
    assert ack.src == "B" and ack.time == pytest.approx(MRP_STANDALONE_ACK_TIMEOUT)
    assert is_standalone_ack(link, ack)
    ph = link.peek(ack).protocol_header
    assert ph.ack_counter == link.peek(request).header.message_counter
    assert not ph.needs_ack and not ph.initiator  # B is the responder on this exchange
    assert len(link.sent) == 2  # the ack arrived before A's first retransmission (330 ms)


def test_reliable_delivery_under_loss(link: Link) -> None:
    sa, _ = secure_pair(link)
    a_to_b = iter(range(100))
    link.drop = lambda tx: tx.src == "A" and next(a_to_b) < 3  # the first three copies are lost
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"hello", now=link.now)
    link.advance(10.0)
    assert [m.payload for m in received(link.b.take())] == [b"hello"]
    assert len(link.sent_by("A")) == 4
    # After the 4th copy arrives, B acks (standalone, 200 ms later) and A stops.
    assert link.a.manager.is_open(ex) and link.a.take() == []


@pytest.mark.parametrize("jitter", [0.0, 1.0])
@pytest.mark.parametrize("active", [True, False])
def test_retransmission_schedule_matches_backoff(jitter: float, active: bool) -> None:
    link = make_link(jitter=jitter)
    sa, _ = secure_pair(link)
    if not active:
        link.advance(100.0)  # well past the peer's active threshold: the idle interval applies
    start = link.now
    link.drop = lambda tx: True
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", now=link.now)
    link.advance(start + 60.0)

    times = [tx.time - start for tx in link.sent_by("A")]
    assert len(times) == MRP_MAX_TRANSMISSIONS
    base = 0.3 if active else 0.5
    expected, t = [], 0.0
    for n in range(MRP_MAX_TRANSMISSIONS):
        expected.append(t)
        t += backoff_interval(base, n, jitter)
    assert times == pytest.approx(expected)
    # After the last backoff the exchange fails.
    (closed,) = link.a.take()
    assert closed == ExchangeClosed(ex, CloseReason.DELIVERY_FAILED)
    assert link.a.manager.next_timer() is None
    with pytest.raises(LocalProtocolError):
        link.a.manager.send(ex, IM, READ, b"again", now=link.now)


def test_failure_time_is_the_sum_of_backoffs() -> None:
    link = make_link(jitter=0.5)
    sa, _ = secure_pair(link, peer_mrp=MrpParameters(idle_interval=1.0, active_interval=1.0))
    link.drop = lambda tx: True
    ex = link.a.manager.new_exchange(sa, 0.0)
    link.a.manager.send(ex, IM, READ, b"x", now=0.0)
    total = sum(backoff_interval(1.0, n, 0.5) for n in range(MRP_MAX_TRANSMISSIONS))
    link.advance(total - 1e-6)
    assert link.a.take() == []
    link.advance(total)
    assert link.a.take() == [ExchangeClosed(ex, CloseReason.DELIVERY_FAILED)]


def test_duplicate_is_acked_but_not_delivered(link: Link) -> None:
    sa, _ = secure_pair(link)
    link.duplicate = lambda tx: tx.src == "A"
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"once", now=link.now)
    link.pump()
    assert [m.payload for m in received(link.b.take())] == [b"once"]
    # The duplicate provoked an immediate standalone ack (time 0, not after the ack timeout).
    acks = [tx for tx in link.sent_by("B") if is_standalone_ack(link, tx)]
    assert len(acks) == 1 and acks[0].time == 0.0
    link.advance(5.0)
    assert len(link.sent_by("A")) == 1  # acked: never retransmitted


def test_lost_ack_leads_to_retransmission_that_is_acked_not_redelivered(link: Link) -> None:
    sa, _ = secure_pair(link)
    b_copies = iter(range(100))
    link.drop = lambda tx: tx.src == "B" and next(b_copies) == 0  # B's first standalone ack is lost
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", now=link.now)
    link.advance(10.0)
    assert len(received(link.b.take())) == 1
    assert len(link.sent_by("A")) == 2  # one retransmission, then acked
    assert len(link.sent_by("B")) == 2  # the lost timed ack, then an immediate one for the duplicate


def test_reordering_within_the_window_delivers_everything_once(link: Link) -> None:
    sa, _ = secure_pair(link)
    link.reorder = True
    exchanges = [link.a.manager.new_exchange(sa, link.now) for _ in range(10)]
    for i, ex in enumerate(exchanges):
        link.a.manager.send(ex, IM, READ, bytes([i]), now=link.now)
    link.pump()
    payloads = [m.payload for m in received(link.b.take())]
    assert payloads == [bytes([i]) for i in reversed(range(10))]


def test_replayed_old_message_is_rejected(link: Link) -> None:
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"first", now=link.now)
    link.advance(1.0)
    first = link.sent[0]
    link.a.manager.close(ex, link.now)
    # Move B's window far ahead: 40 more messages on fresh exchanges.
    for _ in range(40):
        other = link.a.manager.new_exchange(sa, link.now)
        link.a.manager.send(other, IM, READ, b"n", reliable=False, now=link.now)
        link.a.manager.close(other, link.now)
    link.pump()
    link.a.take()
    link.b.take()
    sent_before = len(link.sent)

    link.b.manager.receive_datagram(first.data, link.a.addr, link.now)  # replay: behind the window
    link.pump()
    assert received(link.b.take()) == []
    # It asked for an ack; the duplicate still gets one, which A ignores.
    assert len(link.sent) == sent_before + 1 and is_standalone_ack(link, link.sent[-1])
    assert link.a.take() == []


def test_corrupt_mic_is_dropped_without_moving_the_window(link: Link) -> None:
    sa, _ = secure_pair(link)
    link.drop = lambda tx: True
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"payload", now=link.now)
    link.pump()
    good = link.sent[0].data
    for i in (8, len(good) // 2, len(good) - 1):  # first ciphertext byte, middle, last MIC byte
        bad = bytearray(good)
        bad[i] ^= 0x01
        link.b.manager.receive_datagram(bytes(bad), link.a.addr, link.now)
    assert link.b.take() == [] and link.b.manager.datagrams_to_send() == []
    link.b.manager.receive_datagram(good, link.a.addr, link.now)
    assert [m.payload for m in received(link.b.take())] == [b"payload"]


def test_truncated_datagrams_are_dropped(link: Link) -> None:
    sa, _ = secure_pair(link)
    link.drop = lambda tx: True
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"payload", now=link.now)
    link.pump()
    good = link.sent[0].data
    for n in range(len(good)):
        link.b.manager.receive_datagram(good[:n], link.a.addr, link.now)
    assert link.b.take() == [] and link.b.manager.datagrams_to_send() == []


def test_message_for_an_unknown_exchange_without_i_flag_is_acked_and_dropped(link: Link) -> None:
    _, sb = secure_pair(link)
    ph = ProtocolHeader(IM, REPORT, exchange_id=77, initiator=False, needs_ack=True)
    data = _forge(sb, ph, b"stray")
    link.a.manager.receive_datagram(data, link.b.addr, link.now)
    assert link.a.take() == []
    (ack,) = link.a.manager.datagrams_to_send()
    assert ack[1] == link.b.addr


def test_ack_for_an_unknown_counter_is_ignored(link: Link) -> None:
    sa, sb = secure_pair(link)
    link.drop = lambda tx: tx.src == "A"  # B never sees the request, so only our forged ack reaches A
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", now=link.now)
    link.pump()
    sent_counter = link.sent[0]
    wrong = ProtocolHeader(
        ProtocolId.SECURE_CHANNEL,
        SecureChannelOpcode.STANDALONE_ACK,
        exchange_id=ex.exchange_id,
        ack_counter=(link.peek(sent_counter).header.message_counter + 1) % 2**32,
    )
    link.a.manager.receive_datagram(_forge(sb, wrong, b""), link.b.addr, link.now)
    link.advance(0.5)
    assert len(link.sent_by("A")) == 2  # still retransmitting


def test_response_timeout(link: Link) -> None:
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", now=link.now, expect_response=True, response_timeout=1.5)
    link.advance(1.49)
    assert link.a.take() == []  # B acked (standalone) but never answered
    link.advance(1.5)
    assert link.a.take() == [ExchangeClosed(ex, CloseReason.TIMEOUT)]


def test_default_response_timeout_covers_both_directions(link: Link) -> None:
    sa, _ = secure_pair(link)
    timeout = link.a.manager.default_response_timeout(sa, link.now)
    assert 2.0 + 2 * sum(backoff_interval(0.3, n, 0.0) for n in range(5)) < timeout < 30.0


def test_one_outstanding_reliable_message_per_exchange(link: Link) -> None:
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"1", now=link.now)
    with pytest.raises(LocalProtocolError):
        link.a.manager.send(ex, IM, READ, b"2", now=link.now)
    link.a.manager.send(ex, IM, READ, b"unreliable is fine", reliable=False, now=link.now)


def test_oversized_message_is_refused(link: Link) -> None:
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    with pytest.raises(LocalProtocolError):
        link.a.manager.send(ex, IM, READ, bytes(1300), now=link.now)
    link.a.manager.send(ex, IM, READ, bytes(1200), now=link.now)


def test_closing_with_an_unacked_message_waits_for_the_ack(link: Link) -> None:
    sa, _ = secure_pair(link)
    a_copies = iter(range(100))
    link.drop = lambda tx: tx.src == "A" and next(a_copies) == 0
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, STATUS, b"final", now=link.now)
    link.a.manager.close(ex, link.now)
    assert not link.a.manager.is_open(ex) and link.a.take() == []
    link.advance(5.0)
    assert len(received(link.b.take())) == 1
    assert link.a.take() == [ExchangeClosed(ex, CloseReason.CLOSED)]  # once the retransmission was acked


def test_closing_flushes_the_pending_ack_immediately(link: Link) -> None:
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", now=link.now)
    link.pump()
    (msg,) = received(link.b.take())
    link.b.manager.close(msg.exchange, link.now)
    link.pump()
    (ack,) = link.sent_by("B")
    assert ack.time == 0.0 and is_standalone_ack(link, ack)
    assert link.b.take() == [ExchangeClosed(msg.exchange, CloseReason.CLOSED)]


def test_removing_a_session_closes_its_exchanges_first(link: Link) -> None:
    sa, _ = secure_pair(link)
    first = link.a.manager.new_exchange(sa, link.now)
    second = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(first, IM, READ, b"x", now=link.now)
    link.a.table.remove(sa.local_session_id)
    assert link.a.take() == [
        ExchangeClosed(first, CloseReason.SESSION_CLOSED),
        ExchangeClosed(second, CloseReason.SESSION_CLOSED),
        SessionClosed(sa),
    ]
    assert link.a.manager.next_timer() is None
    with pytest.raises(LocalProtocolError):
        link.a.manager.new_exchange(sa, link.now)


def test_mark_for_close_waits_for_the_last_exchange(link: Link) -> None:
    sa, sb = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"remove fabric", now=link.now, expect_response=True)
    link.pump()
    (msg,) = received(link.b.take())
    link.b.table.mark_for_close(sb)  # e.g. RemoveFabric of the accessing fabric
    link.b.manager.send(msg.exchange, IM, STATUS, b"response", now=link.now)
    link.b.manager.close(msg.exchange, link.now)
    assert sb in link.b.table and link.b.take() == []
    link.pump()  # A receives the response and acks it (piggyback-less: standalone after 200 ms)
    assert [m.payload for m in received(link.a.take())] == [b"response"]
    link.a.manager.close(ex, link.now)
    link.pump()
    assert link.b.take() == [ExchangeClosed(msg.exchange, CloseReason.CLOSED), SessionClosed(sb)]
    assert sb not in link.b.table


def test_closing_session_refuses_new_peer_exchanges(link: Link) -> None:
    sa, sb = secure_pair(link)
    held = link.b.manager.new_exchange(sb, link.now)  # keeps the session alive while marked
    link.b.table.mark_for_close(sb)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", now=link.now)
    link.pump()
    assert link.b.take() == []
    assert is_standalone_ack(link, link.sent_by("B")[0])  # still acked, so A stops retransmitting
    link.b.manager.close(held, link.now)
    assert link.b.take() == [ExchangeClosed(held, CloseReason.CLOSED), SessionClosed(sb)]


def test_counter_exhaustion_closes_the_session(link: Link) -> None:
    sa, _ = secure_pair(link, a_counter_start=2**32 - 1)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"last", reliable=False, now=link.now)
    with pytest.raises(CounterExhaustedError):
        link.a.manager.send(ex, IM, READ, b"one too many", reliable=False, now=link.now)
    assert link.a.take() == [ExchangeClosed(ex, CloseReason.SESSION_CLOSED), SessionClosed(sa)]
    link.pump()
    assert [m.payload for m in received(link.b.take())] == [b"last"]


def test_pase_session_uses_node_id_zero_in_the_nonce(link: Link) -> None:
    sa, _ = secure_pair(link, auth_mode=SessionAuthMode.PASE)
    assert sa.local_nonce_node_id == 0 and sa.peer_nonce_node_id == 0
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"pase", now=link.now)
    link.pump()
    assert [m.payload for m in received(link.b.take())] == [b"pase"]


def test_secure_session_follows_the_peer_address(link: Link) -> None:
    sa, sb = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"x", reliable=False, now=link.now)
    ((data, _),) = link.a.manager.datagrams_to_send()
    new_addr = ("fe80::c", 6000, 0, 1)
    link.b.manager.receive_datagram(data, new_addr, link.now)
    assert sb.peer_addr == new_addr


def test_unsecured_handshake_addressing(link: Link) -> None:
    a_session = link.a.table.new_unsecured_initiator(link.b.addr, link.now)
    ex = link.a.manager.new_exchange(a_session, link.now)
    link.a.manager.send(ex, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, b"req", now=link.now)
    link.pump()
    (msg,) = received(link.b.take())
    b_session = msg.session
    assert not b_session.is_secure and b_session.ephemeral_node_id == a_session.ephemeral_node_id
    assert msg.new_exchange and msg.opcode == SecureChannelOpcode.PBKDF_PARAM_REQUEST
    request = link.peek(link.sent[0]).header
    assert request.source_node_id == a_session.ephemeral_node_id and request.destination_node_id is None

    link.b.manager.send(
        msg.exchange, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_RESPONSE, b"rsp", now=link.now
    )
    link.pump()
    (reply,) = received(link.a.take())
    assert reply.payload == b"rsp" and reply.exchange == ex
    response = link.peek(link.sent[1]).header
    assert response.destination_node_id == a_session.ephemeral_node_id and response.source_node_id is None


def test_unsecured_reply_for_an_unknown_ephemeral_id_is_dropped(link: Link) -> None:
    a_session = link.a.table.new_unsecured_initiator(link.b.addr, link.now)
    ex = link.a.manager.new_exchange(a_session, link.now)
    link.a.manager.send(ex, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, b"r", now=link.now)
    link.pump()
    (msg,) = received(link.b.take())
    link.a.table.remove(a_session)
    link.a.take()
    link.b.manager.send(msg.exchange, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_RESPONSE, b"", now=0)
    link.pump()
    assert link.a.take() == [] and link.a.manager.datagrams_to_send() == []


def test_global_counter_reservation_precedes_use() -> None:
    reserved: list[int] = []
    link = make_link(global_counter_start=100, on_counter_reserve=reserved.append, counter_reserve_block=10)
    session = link.a.table.new_unsecured_initiator(link.b.addr, link.now)
    used: list[int] = []
    for _ in range(25):
        ex = link.a.manager.new_exchange(session, link.now)
        link.a.manager.send(ex, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, b"", now=0)
        ((data, _),) = link.a.manager.datagrams_to_send()
        counter = link.peek(Tx(0, "A", "B", data)).header.message_counter
        assert reserved and counter < reserved[-1]  # reserved before it was used
        used.append(counter)
        link.a.manager.close(ex, link.now)
    assert used == list(range(100, 125))
    assert reserved == [110, 120, 130]
    # After a restart the counter resumes at the persisted reservation, above everything used.
    restarted = make_link(global_counter_start=reserved[-1])
    assert restarted.a.table.global_counter.value == 130 > max(used)


def test_eviction_by_a_new_session_closes_the_old_ones_exchanges() -> None:
    link = make_link(max_outbound_sessions=1)
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.table.add_secure(
        peer_session_id=9,
        encrypt_key=bytes(16),
        decrypt_key=bytes(16),
        auth_mode=SessionAuthMode.CASE,
        peer_addr=link.b.addr,
        now=link.now,
        is_initiator=True,  # A initiated ``sa`` too: the new session competes with it for the outbound budget
    )
    assert link.a.take() == [ExchangeClosed(ex, CloseReason.SESSION_CLOSED), SessionClosed(sa)]


def test_second_reliable_message_flushes_the_older_pending_ack(link: Link) -> None:
    sa, _ = secure_pair(link)
    ex = link.a.manager.new_exchange(sa, link.now)
    link.a.manager.send(ex, IM, READ, b"m1", now=link.now)
    link.pump()
    first_counter = link.peek(link.sent[0]).header.message_counter
    link.advance(0.1)
    ph = ProtocolHeader(IM, READ, exchange_id=ex.exchange_id, initiator=True, needs_ack=True)
    link.b.manager.receive_datagram(_forge(sa, ph, b"m2"), link.a.addr, link.now)
    assert [m.payload for m in received(link.b.take())] == [b"m1", b"m2"]
    ((ack, _),) = link.b.manager.datagrams_to_send()  # the ack for m1 goes now, standalone
    ack_ph = link.peek(Tx(link.now, "B", "A", ack)).protocol_header
    assert ack_ph.opcode == SecureChannelOpcode.STANDALONE_ACK and ack_ph.ack_counter == first_counter
    assert link.b.manager.next_timer() == pytest.approx(0.1 + MRP_STANDALONE_ACK_TIMEOUT)  # m2's ack waits


def test_unsecured_duplicates_are_suppressed(link: Link) -> None:
    link.duplicate = lambda tx: True
    session = link.a.table.new_unsecured_initiator(link.b.addr, link.now)
    ex = link.a.manager.new_exchange(session, link.now)
    link.a.manager.send(ex, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, b"r", now=link.now)
    link.advance(5.0)
    assert len(received(link.b.take())) == 1
    assert len(link.sent_by("A")) == 1  # the duplicate's immediate ack stopped any retransmission


def _forge(session: object, ph: ProtocolHeader, payload: bytes) -> bytes:
    """Build a message as ``session``'s owner would send it (for crafted-header tests)."""
    from jfds_device.codec.message import MessageHeader
    from jfds_device.transport.sessions import SecureSession
    from jfds_device.transport.wire import encode_message

    assert isinstance(session, SecureSession)
    header = MessageHeader(session_id=session.peer_session_id, message_counter=session.counter.next())
    return encode_message(header, ph, payload, key=session.encrypt_key, nonce_node_id=session.local_nonce_node_id)
