"""Fair resource limits of the IM server (im/admission.py), each limit and eviction rule on virtual time.

Pending interactions (timed windows, chunked reads/invokes/writes) are bounded per session and per fabric, with a
fabric's guaranteed read (Core spec 8.4 minimums). Subscriptions are bounded per session and per fabric and share
one pool; a fabric within its guaranteed share evicts subscriptions of fabrics beyond theirs, beyond-minimum ones
first, then the oldest (Core spec 8.5.1; the CHIP SDK's InteractionModelEngine::EnsureResourceForSubscription).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.admission import (
    MIN_PATHS_PER_READ,
    MIN_PATHS_PER_SUBSCRIPTION,
    MIN_SUBSCRIPTIONS_PER_FABRIC,
    Footprint,
    InteractionLimits,
    Limits,
    SubscriptionLimits,
)
from jfds_device.im.provider import AttributePath, AuthMode, RequestContext, Status
from jfds_device.im.server import InteractionServer, LocalExchange, Outgoing
from jfds_device.im.subscriptions import SubscriptionState
from tests.im.fakes import (
    BASIC,
    BIG_LIST,
    LABEL,
    SMALL,
    STRANGER,
    SUCCESS,
    TEST,
    TIMED_CMD,
    TOGGLE,
    FakeProvider,
    apath,
    big_list,
    drive_chunks,
    make_ctx,
    status_of,
)

INTERACTIONS = InteractionLimits()
SUBSCRIPTIONS = SubscriptionLimits()
SMALL_PATH = AttributePath(1, TEST, SMALL)
_exchanges = itertools.count()


@pytest.fixture
def provider() -> FakeProvider:
    provider = FakeProvider()
    provider.values[AttributePath(1, TEST, BIG_LIST)] = big_list(80)  # a read of it takes several chunks
    return provider


@pytest.fixture
def server(provider: FakeProvider) -> InteractionServer:
    ids = itertools.count(0x1000)
    return InteractionServer(provider, subscription_ids=lambda: next(ids))


def ctx_of(session: int, fabric: int = 1) -> RequestContext:
    return make_ctx(fabric=fabric, session=session)


def send(server: InteractionServer, ctx: RequestContext, opcode: Op, message: Any, now: float = 0.0,
         exchange: Any = None) -> list[Outgoing]:
    return server.on_message(exchange if exchange is not None else next(_exchanges), ctx, opcode, message.encode(), now)


def timed(server: InteractionServer, ctx: RequestContext, now: float = 0.0, timeout_ms: int = 65_000) -> Outgoing:
    [out] = send(server, ctx, Op.TIMED_REQUEST, m.TimedRequest(timeout=timeout_ms), now)
    return out


def chunked_read(server: InteractionServer, ctx: RequestContext, paths: int = 1, now: float = 0.0) -> Outgoing:
    """A read whose answer takes several chunks: the server keeps it until the peer acknowledges each."""
    request = m.ReadRequest(attribute_requests=[apath(1, TEST, BIG_LIST)] * paths, fabric_filtered=True)
    [out] = send(server, ctx, Op.READ_REQUEST, request, now)
    return out


def invoke(server: InteractionServer, ctx: RequestContext, now: float = 0.0, exchange: Any = None,
           command: int = TOGGLE, timed_flag: bool = False) -> Outgoing:
    request = m.InvokeRequest(
        suppress_response=False,
        timed_request=timed_flag,
        invoke_requests=[m.CommandDataIB(path=m.CommandPathIB(endpoint=1, cluster=TEST, command=command), fields={})],
    )
    [out] = send(server, ctx, Op.INVOKE_REQUEST, request, now, exchange)
    return out


def waiting(out: Outgoing) -> bool:
    """The server keeps this exchange (and its resources) until the peer's next message."""
    return out.expect_response and not out.close_exchange


def refused(out: Outgoing) -> int:
    assert out.opcode is Op.STATUS_RESPONSE and out.close_exchange
    return status_of(out)


# ---------------------------------------------------------------------------------------------- the tables


def test_the_tables_keep_the_spec_minimums() -> None:
    """The fabric share leaves the spec's minimum for a fabric's other controllers when one holds all it may,
    the pool covers every fabric's share plus PASE, and requests may carry at least the guaranteed paths."""
    limits = Limits.for_fabrics(5)
    share, session = limits.subscriptions.fabric_share, limits.subscriptions.per_session
    assert share.subscriptions - session.subscriptions >= MIN_SUBSCRIPTIONS_PER_FABRIC
    left = MIN_SUBSCRIPTIONS_PER_FABRIC * MIN_PATHS_PER_SUBSCRIPTION
    assert share.attribute_paths - session.attribute_paths >= left
    assert share.event_paths - session.event_paths >= left
    assert limits.subscriptions.pool == share.scaled(6)
    assert Limits.for_fabrics(16).subscriptions.pool == share.scaled(17)
    assert share.within(limits.subscriptions.per_fabric)
    assert limits.interactions.guaranteed_read_paths >= MIN_PATHS_PER_READ
    assert limits.interactions.timed_per_session < limits.interactions.per_session


def test_advertised_subscriptions_per_fabric_are_guaranteed_even_against_a_greedy_controller() -> None:
    from clusters.basic_information.server import BasicInformationConfig

    advertised = BasicInformationConfig(vendor_id=0xFFF1, product_id=0x8000).subscriptions_per_fabric
    assert SUBSCRIPTIONS.fabric_share.subscriptions - SUBSCRIPTIONS.per_session.subscriptions >= advertised


# ---------------------------------------------------------------------------------------------- pending interactions


def test_timed_windows_per_session(server: InteractionServer) -> None:
    attacker = ctx_of(session=20)
    for _ in range(INTERACTIONS.timed_per_session):
        out = timed(server, attacker)
        assert status_of(out) == Status.SUCCESS and waiting(out)
    for _ in range(130):  # holding them open does not get it more
        assert refused(timed(server, attacker)) == Status.RESOURCE_EXHAUSTED
    # The session keeps room for other work, and everybody else is unaffected.
    assert waiting(chunked_read(server, attacker))
    admin = ctx_of(session=21)
    assert waiting(chunked_read(server, admin))
    assert status_of(timed(server, admin)) == Status.SUCCESS


def test_pending_interactions_per_session_count_every_kind(server: InteractionServer) -> None:
    ctx = ctx_of(session=30)
    for _ in range(INTERACTIONS.timed_per_session):
        timed(server, ctx)
    for _ in range(INTERACTIONS.per_session - INTERACTIONS.timed_per_session):
        assert waiting(chunked_read(server, ctx))
    assert refused(chunked_read(server, ctx)) == Status.RESOURCE_EXHAUSTED
    assert refused(invoke(server, ctx)) == Status.RESOURCE_EXHAUSTED
    write = m.WriteRequest(timed_request=False, write_requests=[m.AttributeDataIB(path=apath(1, TEST, SMALL), data=1)])
    [out] = send(server, ctx, Op.WRITE_REQUEST, write)
    assert refused(out) == Status.RESOURCE_EXHAUSTED
    subscribe_request = m.SubscribeRequest(keep_subscriptions=True, min_interval_floor=0, max_interval_ceiling=60,
                                           attribute_requests=[apath(1, TEST, SMALL)], fabric_filtered=True)
    [out] = send(server, ctx, Op.SUBSCRIBE_REQUEST, subscribe_request)
    assert out.opcode is Op.REPORT_DATA  # subscriptions have their own limits


def test_a_refused_request_changes_nothing(server: InteractionServer, provider: FakeProvider) -> None:
    ctx = ctx_of(session=31)
    for _ in range(INTERACTIONS.per_session):
        chunked_read(server, ctx)
    assert refused(invoke(server, ctx)) == Status.RESOURCE_EXHAUSTED
    assert provider.invokes == [] and not provider.toggled


def test_the_window_carries_its_write_or_invoke_even_at_the_cap(server: InteractionServer,
                                                                provider: FakeProvider) -> None:
    """A timed action was admitted with its TimedRequest: the Write/Invoke that follows is not counted again."""
    ctx = ctx_of(session=32)
    windows = [timed(server, ctx).exchange for _ in range(INTERACTIONS.timed_per_session)]
    for _ in range(INTERACTIONS.per_session - INTERACTIONS.timed_per_session):
        chunked_read(server, ctx)
    out = invoke(server, ctx, exchange=windows[0], command=TIMED_CMD, timed_flag=True)
    assert out.opcode is Op.INVOKE_RESPONSE
    assert [path.command for path, _, _ in provider.invokes] == [TIMED_CMD]
    assert status_of(timed(server, ctx)) == Status.SUCCESS  # its place is free again


def test_expired_windows_and_closed_exchanges_free_their_place(server: InteractionServer) -> None:
    ctx = ctx_of(session=33)
    windows = [timed(server, ctx, now=0.0, timeout_ms=1000) for _ in range(INTERACTIONS.timed_per_session)]
    assert refused(timed(server, ctx, now=0.5)) == Status.RESOURCE_EXHAUSTED
    assert status_of(timed(server, ctx, now=1.5, timeout_ms=1000)) == Status.SUCCESS  # the first ones have expired
    # A late invoke on an expired window still gets the spec's answer (Core spec 8.2.2.5).
    assert refused(invoke(server, ctx, now=1.6, exchange=windows[0].exchange, command=TIMED_CMD, timed_flag=True)) \
        == Status.UNSUPPORTED_ACCESS
    reads = [chunked_read(server, ctx, now=1.7) for _ in range(INTERACTIONS.per_session - 1)]
    assert refused(chunked_read(server, ctx, now=1.7)) == Status.RESOURCE_EXHAUSTED
    server.on_exchange_closed(reads[0].exchange, failed=True)
    assert waiting(chunked_read(server, ctx, now=1.8))


def test_finished_reads_hold_nothing(server: InteractionServer) -> None:
    ctx = ctx_of(session=34)
    for _ in range(3 * INTERACTIONS.per_session):
        result = drive_chunks(server, [chunked_read(server, ctx)], ctx)
        assert len(result.reports) > 1
    assert waiting(chunked_read(server, ctx))


def test_pending_interactions_per_fabric(server: InteractionServer) -> None:
    sessions_at_cap = INTERACTIONS.per_fabric // INTERACTIONS.per_session
    for session in range(40, 40 + sessions_at_cap):
        for _ in range(INTERACTIONS.per_session):
            assert waiting(chunked_read(server, ctx_of(session)))
    newcomer = ctx_of(session=50)
    assert refused(invoke(server, newcomer)) == Status.RESOURCE_EXHAUSTED
    assert refused(timed(server, newcomer)) == Status.RESOURCE_EXHAUSTED
    # Another fabric has its own budget.
    assert waiting(chunked_read(server, ctx_of(session=51, fabric=2)))
    assert status_of(timed(server, ctx_of(session=51, fabric=2))) == Status.SUCCESS


def test_a_fabric_always_gets_its_guaranteed_read(server: InteractionServer) -> None:
    """Core spec 8.4 minimums: one read of 9 paths per fabric, even when the fabric's other sessions hold its
    whole budget with other kinds of interaction."""
    sessions_at_cap = INTERACTIONS.per_fabric // INTERACTIONS.per_session
    for session in range(60, 60 + sessions_at_cap):
        for _ in range(INTERACTIONS.timed_per_session):
            timed(server, ctx_of(session))
        for _ in range(INTERACTIONS.per_session - INTERACTIONS.timed_per_session):
            chunk = m.WriteRequest(timed_request=False, more_chunked_messages=True,
                                   write_requests=[m.AttributeDataIB(path=apath(1, TEST, SMALL), data=1)])
            [out] = send(server, ctx_of(session), Op.WRITE_REQUEST, chunk)
            assert waiting(out)  # a chunked write, waiting for its next chunk
    newcomer = ctx_of(session=70)
    assert refused(chunked_read(server, newcomer, paths=MIN_PATHS_PER_READ + 1)) == Status.RESOURCE_EXHAUSTED
    first = chunked_read(server, newcomer, paths=MIN_PATHS_PER_READ)
    assert waiting(first)
    assert refused(chunked_read(server, ctx_of(session=71))) == Status.RESOURCE_EXHAUSTED  # the guarantee is one
    drive_chunks(server, [first], newcomer)
    assert waiting(chunked_read(server, ctx_of(session=71)))


def test_timed_windows_per_fabric(server: InteractionServer) -> None:
    sessions = INTERACTIONS.timed_per_fabric // INTERACTIONS.timed_per_session
    for session in range(80, 80 + sessions):
        for _ in range(INTERACTIONS.timed_per_session):
            assert status_of(timed(server, ctx_of(session))) == Status.SUCCESS
    newcomer = ctx_of(session=90)
    assert refused(timed(server, newcomer)) == Status.RESOURCE_EXHAUSTED
    assert invoke(server, newcomer).opcode is Op.INVOKE_RESPONSE
    assert status_of(timed(server, ctx_of(session=91, fabric=3))) == Status.SUCCESS


def test_subscription_reports_in_flight_do_not_count(server: InteractionServer) -> None:
    ctx = ctx_of(session=95)
    for exchange in range(SUBSCRIPTIONS.per_session.subscriptions):
        subscribe(server, ctx, exchange=("sub", exchange), ceiling=10)
    reports = server.on_timer(10.0)
    assert len(reports) == SUBSCRIPTIONS.per_session.subscriptions and all(waiting(r) for r in reports)
    for _ in range(INTERACTIONS.timed_per_session):
        assert status_of(timed(server, ctx, now=10.0)) == Status.SUCCESS


# ---------------------------------------------------------------------------------------------- subscriptions


def subscribe(server: InteractionServer, ctx: RequestContext, *paths: m.AttributePathIB, exchange: Any = None,
              keep: bool = True, ceiling: int = 60, now: float = 0.0, events: int = 0) -> int:
    """Subscribe and complete the priming; the SubscriptionId, or the refusal's status as a negative number."""
    request = m.SubscribeRequest(
        keep_subscriptions=keep,
        min_interval_floor=0,
        max_interval_ceiling=ceiling,
        attribute_requests=list(paths or [apath(1, TEST, SMALL)]),
        event_requests=[m.EventPathIB()] * events or None,
        fabric_filtered=True,
    )
    first = send(server, ctx, Op.SUBSCRIBE_REQUEST, request, now, exchange)
    if first[0].opcode is Op.STATUS_RESPONSE:
        return -status_of(first[0])
    result = drive_chunks(server, first, ctx, now, ack_last=True)
    final = result.outgoing[-1]
    assert final.opcode is Op.SUBSCRIBE_RESPONSE
    return m.SubscribeResponse.decode(final.payload).subscription_id


def live(server: InteractionServer) -> list[int]:
    return [s.subscription_id for s in server.subscriptions]


def fill_fabric(server: InteractionServer, fabric: int, count: int, first_session: int, **kw: Any) -> list[int]:
    """``count`` subscriptions on ``fabric``, each session holding as many as it may."""
    per_session = SUBSCRIPTIONS.per_session.subscriptions
    ids = []
    for i in range(count):
        sub = subscribe(server, ctx_of(first_session + i // per_session, fabric), **kw)
        assert sub >= 0, (fabric, i, -sub)
        ids.append(sub)
    return ids


def test_subscriptions_per_session(server: InteractionServer) -> None:
    greedy = ctx_of(session=100)
    held = [subscribe(server, greedy) for _ in range(SUBSCRIPTIONS.per_session.subscriptions)]
    for _ in range(30):
        assert subscribe(server, greedy) == -Status.RESOURCE_EXHAUSTED
    # The fabric's other controllers still get the spec's minimum, and more while the fabric has room.
    others = [subscribe(server, ctx_of(session)) for session in (101, 102, 103)]
    assert all(sub >= 0 for sub in others)
    assert live(server) == held + others


def test_subscription_paths_per_session(server: InteractionServer) -> None:
    ctx = ctx_of(session=110)
    assert subscribe(server, ctx, *[apath(1, TEST, SMALL)] * SUBSCRIPTIONS.per_session.attribute_paths) >= 0
    assert subscribe(server, ctx) == -Status.PATHS_EXHAUSTED
    assert subscribe(server, ctx_of(session=111), *[apath(1, TEST, SMALL)] * MIN_PATHS_PER_SUBSCRIPTION) >= 0


def test_subscription_event_paths_per_session(server: InteractionServer) -> None:
    ctx = ctx_of(session=112)
    assert subscribe(server, ctx, events=SUBSCRIPTIONS.per_session.event_paths) >= 0
    assert subscribe(server, ctx, events=1) == -Status.PATHS_EXHAUSTED
    assert subscribe(server, ctx) >= 0  # attribute paths are counted apart


def test_keep_subscriptions_false_frees_the_sessions_place_first(server: InteractionServer) -> None:
    ctx = ctx_of(session=120)
    for _ in range(SUBSCRIPTIONS.per_session.subscriptions):
        subscribe(server, ctx)
    replacement = subscribe(server, ctx, keep=False)
    assert replacement >= 0 and live(server) == [replacement]


def test_subscriptions_per_fabric(server: InteractionServer) -> None:
    fill_fabric(server, fabric=1, count=SUBSCRIPTIONS.per_fabric.subscriptions, first_session=200)
    assert subscribe(server, ctx_of(session=299)) == -Status.RESOURCE_EXHAUSTED
    assert subscribe(server, ctx_of(session=298, fabric=2)) >= 0


def test_subscription_paths_per_fabric(server: InteractionServer) -> None:
    many = [apath(1, TEST, SMALL)] * SUBSCRIPTIONS.per_session.attribute_paths
    sessions = SUBSCRIPTIONS.per_fabric.attribute_paths // len(many)
    for session in range(300, 300 + sessions):
        assert subscribe(server, ctx_of(session), *many) >= 0
    room = SUBSCRIPTIONS.per_fabric.attribute_paths - sessions * len(many)
    assert subscribe(server, ctx_of(399), *[apath(1, TEST, SMALL)] * (room + 1)) == -Status.PATHS_EXHAUSTED
    assert subscribe(server, ctx_of(399), *[apath(1, TEST, SMALL)] * room) >= 0
    assert subscribe(server, ctx_of(398, fabric=2), *many) >= 0  # another fabric's paths are its own


def test_pase_sessions_have_their_own_share(server: InteractionServer) -> None:
    """A commissioner's PASE session (no fabric yet) counts as fabric index 0, with a share of its own."""
    held = full_pool(server)
    pase = make_ctx(fabric=0, session=5, auth=AuthMode.PASE)
    assert subscribe(server, pase) >= 0
    assert held[1][0] not in live(server)


def full_pool(server: InteractionServer) -> dict[int, list[int]]:
    """Fabrics 1, 2 and 3 each borrow up to their cap until the pool (6 shares) is full."""
    per_fabric = SUBSCRIPTIONS.per_fabric.subscriptions
    assert SUBSCRIPTIONS.pool.subscriptions == 3 * per_fabric
    held = {fabric: fill_fabric(server, fabric, per_fabric, first_session=1000 * fabric) for fabric in (1, 2, 3)}
    assert len(server.subscriptions) == SUBSCRIPTIONS.pool.subscriptions
    return held


def test_a_fabric_within_its_share_evicts_the_oldest_of_a_fabric_beyond_its_share(server: InteractionServer) -> None:
    held = full_pool(server)
    newcomer = subscribe(server, ctx_of(session=4000, fabric=4))
    assert newcomer >= 0
    assert held[1][0] not in live(server)  # the oldest subscription of a fabric beyond its share
    assert set(live(server)) == set(held[1][1:] + held[2] + held[3] + [newcomer])
    # Fabric 4 keeps getting its guaranteed share, oldest first each time.
    for i in range(1, SUBSCRIPTIONS.fabric_share.subscriptions):
        assert subscribe(server, ctx_of(session=4000 + i // 5, fabric=4)) >= 0
    assert sum(1 for s in server.subscriptions if s.ctx.subject.fabric_index == 4) == 8
    assert len(server.subscriptions) == SUBSCRIPTIONS.pool.subscriptions


def test_a_subscription_with_no_readable_path_evicts_nobody(server: InteractionServer) -> None:
    """It is refused (INVALID_ACTION, Core spec 8.5.3.2) before the pool makes room for it."""
    full_pool(server)
    before = sorted(live(server))
    stranger = make_ctx(subject=STRANGER, fabric=4, session=4000)
    assert subscribe(server, stranger, apath(1, TEST, SMALL)) == -Status.INVALID_ACTION
    assert sorted(live(server)) == before
    assert subscribe(server, ctx_of(session=4001, fabric=4)) >= 0  # a readable one from that fabric does evict


def test_a_fabric_beyond_its_share_is_refused_when_the_pool_is_full(server: InteractionServer) -> None:
    held = full_pool(server)
    server.on_session_closed(1003)  # fabric 1's last session held one: the fabric is below its cap again
    fourth = subscribe(server, ctx_of(session=4000, fabric=4))  # the free place goes to fabric 4
    before = sorted(live(server))
    assert fourth >= 0 and len(before) == SUBSCRIPTIONS.pool.subscriptions
    assert subscribe(server, ctx_of(session=1999, fabric=1)) == -Status.RESOURCE_EXHAUSTED  # below cap, over share
    assert sorted(live(server)) == before  # nothing was evicted for it
    assert held[1][-1] not in before


def test_beyond_minimum_subscriptions_are_evicted_first(server: InteractionServer) -> None:
    per_fabric = SUBSCRIPTIONS.per_fabric.subscriptions
    small = fill_fabric(server, 1, per_fabric - 1, first_session=100)
    beyond_minimum = [apath(1, TEST, SMALL)] * (MIN_PATHS_PER_SUBSCRIPTION + 1)
    large = subscribe(server, ctx_of(session=199, fabric=1), *beyond_minimum)
    for fabric in (2, 3):
        fill_fabric(server, fabric, per_fabric, first_session=1000 * fabric)
    assert subscribe(server, ctx_of(session=4000, fabric=4)) >= 0
    assert large not in live(server) and small[0] in live(server)
    assert subscribe(server, ctx_of(session=4000, fabric=4)) >= 0
    assert small[0] not in live(server)  # then the oldest


def test_a_fabric_beyond_its_path_share_is_trimmed(provider: FakeProvider) -> None:
    limits = SubscriptionLimits(
        per_session=Footprint(4, 12, 12), fabric_share=Footprint(4, 12, 12), per_fabric=Footprint(8, 24, 24),
        pool=Footprint(8, 24, 24),
    )
    server = InteractionServer(provider, limits=Limits(subscriptions=limits))
    many_paths = [apath(1, TEST, SMALL)] * 12
    first = subscribe(server, ctx_of(1), *many_paths)
    second = subscribe(server, ctx_of(2), *many_paths)
    assert first >= 0 and second >= 0  # fabric 1 borrows the whole path pool with two subscriptions
    assert subscribe(server, ctx_of(3, fabric=2), *[apath(1, TEST, SMALL)] * 3) >= 0
    assert live(server)[0] == second  # the oldest went, though fabric 1 was within its subscription count


def test_no_candidate_is_a_refusal_not_a_crash(provider: FakeProvider) -> None:
    """A pool smaller than the shares it promises (a misconfiguration) refuses instead of failing."""
    limits = SubscriptionLimits(pool=Footprint(2, 100, 100))
    server = InteractionServer(provider, limits=Limits(subscriptions=limits))
    assert subscribe(server, ctx_of(1)) >= 0 and subscribe(server, ctx_of(2, fabric=2)) >= 0
    assert subscribe(server, ctx_of(3, fabric=3)) == -Status.RESOURCE_EXHAUSTED
    assert len(server.subscriptions) == 2


def test_an_evicted_subscription_just_ends(server: InteractionServer, provider: FakeProvider) -> None:
    """As the SDK's ReadHandler::Close: no message; a report in flight is forgotten and its late answer dropped."""
    held = full_pool(server)
    victim = next(s for s in server.subscriptions if s.subscription_id == held[1][0])
    reports = server.on_timer(60.0)  # every subscription's keep-alive is in flight
    in_flight = next(r for r in reports if r.session_id == victim.session_id
                     and m.ReportData.decode(r.payload).subscription_id == victim.subscription_id)
    assert victim.state is SubscriptionState.REPORTING
    ctx = ctx_of(session=4000, fabric=4)
    request = m.SubscribeRequest(keep_subscriptions=True, min_interval_floor=0, max_interval_ceiling=60,
                                 attribute_requests=[apath(0, BASIC, LABEL)], fabric_filtered=True)
    outs = send(server, ctx, Op.SUBSCRIBE_REQUEST, request, 60.1)
    assert [o.session_id for o in outs] == [4000]  # only the priming report, nothing for the evicted
    assert victim.subscription_id not in live(server)
    late = server.on_message(in_flight.exchange, ctx_of(victim.session_id), Op.STATUS_RESPONSE, SUCCESS, 60.2)
    assert late == []
    assert isinstance(in_flight.exchange, LocalExchange)


def fabric_counts(server: InteractionServer) -> dict[int, int]:
    counts: dict[int, int] = {}
    for s in server.subscriptions:
        counts[s.ctx.subject.fabric_index] = counts.get(s.ctx.subject.fabric_index, 0) + 1
    return counts


def test_borrowed_subscriptions_are_given_back_down_to_the_share_never_below(server: InteractionServer) -> None:
    """Fabric 1 lends until it is back at its share; then fabric 2 lends. A fabric at its share that asks for more
    while the pool is full is refused (its evicted subscribers resubscribing do not evict anybody)."""
    held = full_pool(server)
    share = SUBSCRIPTIONS.fabric_share.subscriptions
    for i in range(share):
        assert subscribe(server, ctx_of(session=4000 + i // 5, fabric=4)) >= 0
    assert fabric_counts(server) == {1: share, 2: 2 * share, 3: 2 * share, 4: share}
    assert [s for s in held[1] if s in live(server)] == held[1][share:]  # the oldest went
    assert subscribe(server, ctx_of(session=1500, fabric=1)) == -Status.RESOURCE_EXHAUSTED
    assert subscribe(server, ctx_of(session=5000, fabric=5)) >= 0
    assert held[2][0] not in live(server) and fabric_counts(server)[1] == share

