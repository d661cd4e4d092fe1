"""Session budgets and eviction (transport/eviction.py through SessionTable), on virtual time.

Inbound (we responded) and outbound (we initiated) sessions have separate budgets; inbound eviction follows the
CHIP SDK's DefaultEvictionPolicy (fabric over its minimum, the newcomer's fabric, duplicated peers, the newcomer's
peer, use, LRU); outbound evicts its least recently used idle session.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from jfds_device.transport.eviction import SessionUse, inbound_victim, outbound_victim, session_use
from jfds_device.transport.sessions import (
    DEFAULT_INBOUND_SESSIONS,
    MIN_CASE_SESSIONS_PER_FABRIC,
    SecureSession,
    SessionAuthMode,
    SessionTable,
)

KEY = bytes(16)
PEER = ("fd00::1", 5540, 0, 0)
ADMIN = 0x1B669  # 112233, the CHIP controller's default node id


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def tick(self) -> float:
        self.now += 1.0
        return self.now


def add(table: SessionTable, clock: Clock, *, fabric: int = 1, peer: int = ADMIN, outbound: bool = False,
        pase: bool = False) -> SecureSession:
    return table.add_secure(
        peer_session_id=1, encrypt_key=KEY, decrypt_key=KEY, peer_addr=PEER, now=clock.tick(),
        auth_mode=SessionAuthMode.PASE if pase else SessionAuthMode.CASE,
        fabric_index=0 if pase else fabric, local_node_id=0 if pase else 1, peer_node_id=0 if pase else peer,
        is_initiator=outbound,
    )


def test_reconciling_never_evicts_a_controller_session() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(1))
    controllers = [add(table, clock, peer=ADMIN + n) for n in range(3)]
    peers = [add(table, clock, peer=100 + n, outbound=True) for n in range(200)]
    assert all(c in table for c in controllers)
    assert len(table.outbound_sessions()) == table.max_outbound_sessions == 16
    assert [s for s in peers if s in table] == peers[-16:]  # the least recently used idle ones went
    assert table.evictions == {"inbound": 0, "outbound": 184, "unsecured": 0}
    assert all(s.is_initiator for s in table.drain_removed())


def test_inbound_floods_never_evict_outbound_sessions() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(2))
    ours = [add(table, clock, peer=100 + n, outbound=True) for n in range(10)]
    for n in range(100):
        add(table, clock, fabric=1 + n % 5, peer=500 + n)
    assert all(s in table for s in ours)
    assert len(table.inbound_sessions()) == DEFAULT_INBOUND_SESSIONS


def test_outbound_evicts_its_least_recently_used_idle_session() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(3), max_outbound_sessions=3)
    busy = add(table, clock, peer=10, outbound=True)
    busy.exchange_count = 1  # a reconciler interaction in flight
    idle_old = add(table, clock, peer=11, outbound=True)
    idle_new = add(table, clock, peer=12, outbound=True)
    add(table, clock, peer=13, outbound=True)
    assert table.drain_removed() == [idle_old]
    assert busy in table and idle_new in table


def test_outbound_eviction_keeps_sessions_with_a_subscription_longest() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(4), max_outbound_sessions=2)
    ours = add(table, clock, peer=10, outbound=True)
    table.in_use = lambda s: s is ours
    busy = add(table, clock, peer=11, outbound=True)
    busy.exchange_count = 1
    add(table, clock, peer=12, outbound=True)
    assert table.drain_removed() == [busy] and ours in table


def test_a_node_opening_many_sessions_evicts_only_its_own() -> None:
    """The unprivileged-node flood: same fabric as the admin, one node id, far more sessions than the budget."""
    clock = Clock()
    table = SessionTable(rng=random.Random(5))
    admin = add(table, clock, peer=ADMIN)
    other = add(table, clock, peer=ADMIN + 1)
    flood = [add(table, clock, peer=0xBAD) for _ in range(5 * DEFAULT_INBOUND_SESSIONS)]
    assert admin in table and other in table  # even though both are idle and the least recently used
    removed = table.drain_removed()
    assert removed and {s.peer_node_id for s in removed} == {0xBAD}
    assert flood[-1] in table


def test_many_peers_of_one_fabric_evict_idle_sessions_before_a_subscriber() -> None:
    """One session each from many node ids: the admin's subscription keeps its session; idle ones go, LRU."""
    clock = Clock()
    table = SessionTable(rng=random.Random(6))
    admin = add(table, clock, peer=ADMIN)
    table.in_use = lambda s: s is admin
    attackers = [add(table, clock, peer=0x5000 + n) for n in range(100)]
    assert admin in table
    survivors = [s for s in attackers if s in table]
    assert survivors == attackers[-(DEFAULT_INBOUND_SESSIONS - 1):]


def test_a_second_fabric_cannot_take_the_minimum_of_the_first() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(7))
    fabric1 = [add(table, clock, fabric=1, peer=ADMIN + n) for n in range(MIN_CASE_SESSIONS_PER_FABRIC)]
    for n in range(200):  # many nodes of fabric 2, each a fresh node id, all more recent than fabric 1's
        add(table, clock, fabric=2, peer=0x7000 + n)
    assert all(s in table for s in fabric1)
    assert {s.fabric_index for s in table.drain_removed()} == {2}


def test_a_fabric_over_its_minimum_loses_sessions_before_the_newcomers_fabric_at_a_tie() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(8), max_inbound_sessions=8)
    big = [add(table, clock, fabric=1, peer=ADMIN + n) for n in range(5)]
    small = [add(table, clock, fabric=2, peer=0x7000 + n) for n in range(3)]
    add(table, clock, fabric=2, peer=0x7100)  # fabric 1 holds 5, fabric 2 now 4: fabric 1 gives one up
    assert table.drain_removed() == [big[0]]
    add(table, clock, fabric=2, peer=0x7101)  # 4 and 5: fabric 2 (the newcomer's) gives one up
    assert table.drain_removed() == [small[0]]
    add(table, clock, fabric=1, peer=ADMIN + 9)  # 5 and 4 again, fabric 1 is the newcomer's and the bigger one
    assert table.drain_removed() == [big[1]]


def test_the_pase_session_outlives_a_case_flood() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(9))
    pase = add(table, clock, pase=True)
    for n in range(100):
        add(table, clock, fabric=1, peer=0x7000 + n)
    assert pase in table


def test_closing_sessions_go_first_and_do_not_count_for_their_fabric() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(10), max_inbound_sessions=4)
    admin = add(table, clock, fabric=1, peer=ADMIN)
    closing = [add(table, clock, fabric=2, peer=0x7000 + n) for n in range(3)]
    for s in closing:
        s.exchange_count = 1
        table.mark_for_close(s)  # waits for its exchange
    add(table, clock, fabric=2, peer=0x7100)
    assert table.drain_removed() == [closing[0]] and admin in table


def test_policy_order_matches_the_sdk_keys() -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(11), max_inbound_sessions=100)
    a1 = add(table, clock, fabric=1, peer=1)
    a2 = add(table, clock, fabric=1, peer=1)
    b = add(table, clock, fabric=1, peer=2)
    newcomer = add(table, clock, fabric=2, peer=9)
    others = [a1, a2, b]
    assert inbound_victim(others, newcomer) is a1  # key 3: the duplicated peer, then LRU
    a1.exchange_count = 1
    assert inbound_victim(others, newcomer) is a2  # key 5: idle before open exchanges
    assert inbound_victim([b], newcomer) is b
    same_peer = add(table, clock, fabric=1, peer=2)
    assert inbound_victim([a1, b], same_peer) is b  # key 3 counts the newcomer: peer 2 then holds two
    assert inbound_victim([a1, a2, b], same_peer) is b  # two each: key 4, the newcomer's own peer
    assert inbound_victim([a1, a2, b, add(table, clock, fabric=1, peer=1)], same_peer) is a2  # key 3: three vs two
    assert inbound_victim([], newcomer) is None and outbound_victim([]) is None
    assert session_use(a1, None) is SessionUse.EXCHANGES and session_use(b, lambda s: True) is SessionUse.SUBSCRIPTION


def test_unsecured_handshakes_we_initiate_survive_a_sigma1_flood() -> None:
    table = SessionTable(rng=random.Random(12), max_unsecured_sessions=4)
    ours = table.new_unsecured_initiator(PEER, 0.0)
    theirs = [table.unsecured_for(("fd00::66", 5540 + n, 0, 0), n + 1, float(n)) for n in range(50)]
    assert ours in table and table.find_unsecured_initiator(ours.ephemeral_node_id) is ours
    assert sum(s in table for s in theirs) == 4
    mine = [table.new_unsecured_initiator(PEER, 100.0 + n) for n in range(6)]
    assert sum(s in table for s in [*mine, ours]) == 4 and all(s in table for s in theirs[-4:])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 6), st.booleans()), min_size=1, max_size=120))
def test_no_fabric_at_or_under_its_minimum_loses_a_session_to_another_fabric(
        arrivals: list[tuple[int, int, bool]]) -> None:
    """Any arrival order of CASE sessions from 5 fabrics (and their subscriptions) into the default budget."""
    clock = Clock()
    table = SessionTable(rng=random.Random(13))
    holders: set[int] = set()
    table.in_use = lambda s: s.local_session_id in holders
    for fabric, peer, subscribes in arrivals:
        before = Counter(s.fabric_index for s in table.inbound_sessions())
        session = add(table, clock, fabric=fabric, peer=peer)
        if subscribes:
            holders.add(session.local_session_id)
        for victim in table.drain_removed():
            if victim.fabric_index != fabric:
                assert before[victim.fabric_index] > MIN_CASE_SESSIONS_PER_FABRIC, (victim, before)
        assert len(table.inbound_sessions()) <= DEFAULT_INBOUND_SESSIONS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=120))
def test_within_a_fabric_the_victim_is_always_a_session_of_the_peer_holding_the_most(peers: list[int]) -> None:
    clock = Clock()
    table = SessionTable(rng=random.Random(14))
    for peer in peers:
        held = Counter(s.peer_node_id for s in table.inbound_sessions())
        held[peer] += 1  # the newcomer counts for its peer
        add(table, clock, fabric=1, peer=peer)
        for victim in table.drain_removed():
            assert held[victim.peer_node_id] == max(held.values()), (victim.peer_node_id, held)


def test_the_minimum_matches_what_basic_information_advertises() -> None:
    from clusters.basic_information import schema

    assert MIN_CASE_SESSIONS_PER_FABRIC == schema.MIN_CASE_SESSIONS_PER_FABRIC


OPS = st.lists(st.one_of(
    st.tuples(st.just("in"), st.integers(0, 5), st.integers(1, 8)),  # fabric 0: PASE-like, no peer id
    st.tuples(st.just("out"), st.integers(1, 5), st.integers(1, 40)),
    st.tuples(st.just("busy"), st.integers(0, 200), st.integers(0, 2)),
    st.tuples(st.just("close"), st.integers(0, 200), st.just(0)),
), max_size=150)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_budgets_hold_and_never_cross_under_any_sequence(ops: list[tuple[str, int, int]]) -> None:
    """Random arrivals, exchanges opening and closing, and closes: each budget is respected, a newcomer only ever
    displaces a session of its own direction, and an evicted session is gone for good (and says so)."""
    clock = Clock()
    table = SessionTable(rng=random.Random(15), max_inbound_sessions=6, max_outbound_sessions=4)
    seen: list[SecureSession] = []
    for kind, a, b in ops:
        if kind in ("in", "out"):
            session = add(table, clock, fabric=a, peer=b, outbound=kind == "out", pase=kind == "in" and a == 0)
            seen.append(session)
            for victim in table.drain_removed():
                assert victim.is_initiator == session.is_initiator and victim.evicted and victim not in table
        elif seen and kind == "busy":
            seen[a % len(seen)].exchange_count = b  # what the ExchangeManager maintains
        elif seen:
            target = seen[a % len(seen)]
            if target in table:
                assert not target.evicted  # a session still in the table was never evicted
                table.mark_for_close(target)
                assert not target.evicted  # and a close is no eviction
            table.drain_removed()
        assert len(table.inbound_sessions()) <= 6 and len(table.outbound_sessions()) <= 4
    assert all(s not in table for s in seen if s.evicted)
