"""The admission functions alone (im/admission.py): their invariants over random histories, with hypothesis.

Whatever the sequence of subscribe and unsubscribe requests, no session, fabric or the node goes over its cap;
evictions only take from fabrics beyond their guaranteed share, never the requester's; and a request that keeps its
fabric within its share (and its session within its cap) is always admitted (Core spec 8.5.1).
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from jfds_device.im.admission import (
    Footprint,
    HeldInteraction,
    HeldSubscription,
    InteractionKind,
    InteractionLimits,
    SubscriptionLimits,
    admit_interaction,
    admit_subscription,
)
from jfds_device.im.provider import Status

# Small tables so that random histories reach every rule quickly: 3 fabrics (with PASE's bucket 0) share a pool.
SMALL = SubscriptionLimits(
    per_session=Footprint(3, 6, 6),
    fabric_share=Footprint(4, 9, 9),
    per_fabric=Footprint(5, 12, 12),
    pool=Footprint(4, 9, 9).scaled(3),
    guaranteed_paths=3,
)

requests = st.tuples(
    st.integers(0, 2),  # fabric (0: PASE)
    st.integers(0, 2),  # session within the fabric
    st.integers(0, 5),  # attribute paths
    st.integers(0, 2),  # event paths
)
# Mostly requests, so that the pool fills up; an int drops one live subscription (its subscriber went away).
operations = st.lists(st.one_of(requests, requests, requests, st.integers(0, 40)), min_size=20, max_size=150)


def usage(held: list[HeldSubscription], key: object) -> Footprint:
    total = Footprint()
    for h in held:
        if key in (("session", h.session_id), ("fabric", h.fabric_index)):
            total = total + h.footprint
    return total


def total(held: list[HeldSubscription]) -> Footprint:
    result = Footprint()
    for h in held:
        result = result + h.footprint
    return result


@settings(max_examples=400, deadline=None)
@given(operations)
def test_subscription_admission_invariants(ops: list[object]) -> None:
    held: list[HeldSubscription] = []
    keys = itertools.count()
    for op in ops:
        if isinstance(op, int):
            if held:
                held.pop(op % len(held))
            continue
        fabric, session_in_fabric, attributes, events = op  # type: ignore[misc]
        request = HeldSubscription(next(keys), fabric * 10 + session_in_fabric, fabric,
                                   Footprint(1, max(attributes, 1 if not events else 0), events))
        session_after = usage(held, ("session", request.session_id)) + request.footprint
        fabric_after = usage(held, ("fabric", fabric)) + request.footprint
        guaranteed = session_after.within(SMALL.per_session) and fabric_after.within(SMALL.fabric_share)
        decision = admit_subscription(SMALL, held, request)
        if guaranteed:
            assert decision.admitted, decision
        if not decision.admitted:
            assert decision.status in (Status.RESOURCE_EXHAUSTED, Status.PATHS_EXHAUSTED)
            assert decision.evict == ()
            continue
        by_key = {h.key: h for h in held}
        for victim_key in decision.evict:
            victim = by_key[victim_key]
            assert victim.fabric_index != fabric
            assert not usage(held, ("fabric", victim.fabric_index)).within(SMALL.fabric_share)
            held.remove(victim)
        if decision.evict:
            assert fabric_after.within(SMALL.fabric_share)  # only a fabric within its share evicts
        held.append(request)
        assert total(held).within(SMALL.pool)
        for h in held:
            assert usage(held, ("session", h.session_id)).within(SMALL.per_session)
            assert usage(held, ("fabric", h.fabric_index)).within(SMALL.per_fabric)


def test_evictions_take_the_oldest_beyond_minimum_first() -> None:
    limits = SubscriptionLimits(per_session=Footprint(9, 99, 99), fabric_share=Footprint(2, 99, 99),
                                per_fabric=Footprint(9, 99, 99), pool=Footprint(4, 99, 99))
    held = [
        HeldSubscription("a", 1, 1, Footprint(1, 1, 0)),
        HeldSubscription("b", 1, 1, Footprint(1, 4, 0)),  # beyond the 3 guaranteed paths
        HeldSubscription("c", 1, 1, Footprint(1, 1, 0)),
        HeldSubscription("d", 2, 2, Footprint(1, 1, 0)),
    ]
    decision = admit_subscription(limits, held, HeldSubscription("new", 3, 3, Footprint(1, 1, 0)))
    assert decision.admitted and decision.evict == ("b",)
    decision = admit_subscription(limits, [h for h in held if h.key != "b"] + [HeldSubscription("e", 1, 1,
                                  Footprint(1, 1, 0))], HeldSubscription("new", 3, 3, Footprint(1, 1, 0)))
    assert decision.evict == ("a",)


def test_several_evictions_when_one_is_not_enough() -> None:
    limits = SubscriptionLimits(per_session=Footprint(9, 99, 99), fabric_share=Footprint(9, 6, 6),
                                per_fabric=Footprint(9, 99, 99), pool=Footprint(9, 12, 12))
    held = [HeldSubscription(k, 1, 1, Footprint(1, 3, 0)) for k in "abcd"]  # fabric 1 holds 12 paths, share 6
    decision = admit_subscription(limits, held, HeldSubscription("new", 2, 2, Footprint(1, 6, 0)))
    assert decision.admitted and decision.evict == ("a", "b")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.sampled_from(list(InteractionKind))),
                max_size=60))
def test_interaction_admission_invariants(ops: list[tuple[int, int, InteractionKind]]) -> None:
    limits = InteractionLimits(per_session=3, timed_per_session=2, per_fabric=5, timed_per_fabric=3)
    held: list[HeldInteraction] = []
    for fabric, session_in_fabric, kind in ops:
        request = HeldInteraction(fabric * 10 + session_in_fabric, fabric, kind)
        fabric_held = [h for h in held if h.fabric_index == fabric]
        guaranteed_read = kind is InteractionKind.READ and not any(h.kind is InteractionKind.READ for h in fabric_held)
        session_held = [h for h in held if h.session_id == request.session_id]
        decision = admit_interaction(limits, held, request, (9, 0))
        if decision.admitted:
            held.append(request)
        elif guaranteed_read:
            assert len(session_held) >= limits.per_session  # only its own session's cap stops a guaranteed read
        sessions = {h.session_id for h in held}
        for s in sessions:
            mine = [h for h in held if h.session_id == s]
            assert len(mine) <= limits.per_session
            assert sum(h.kind is InteractionKind.TIMED for h in mine) <= limits.timed_per_session
        for f in {h.fabric_index for h in held}:
            theirs = [h for h in held if h.fabric_index == f]
            assert len(theirs) <= limits.per_fabric + limits.guaranteed_reads_per_fabric
            assert sum(h.kind is InteractionKind.TIMED for h in theirs) <= limits.timed_per_fabric
