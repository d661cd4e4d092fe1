"""Subscriptions (Core spec 8.5): priming, interval negotiation, change reports, keep-alives, teardown.

Time is injected: ``now`` goes into every call, and ``next_deadline()`` says when to call ``on_timer``.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.admission import SubscriptionLimits
from jfds_device.im.provider import AttributePath, RequestContext, Status
from jfds_device.im.server import InteractionServer, LocalExchange, Outgoing
from jfds_device.im.subscriptions import SubscriptionState, negotiate_max_interval
from tests.im.fakes import (
    ADMIN,
    BASIC,
    BIG_LIST,
    LABEL,
    OPERATOR,
    SECRET,
    SMALL,
    STRANGER,
    SUCCESS,
    TEST,
    VIEWER,
    FakeProvider,
    apath,
    big_list,
    drive_chunks,
    make_ctx,
    reassemble,
    status_of,
)

SMALL_PATH = AttributePath(1, TEST, SMALL)
LABEL_PATH = AttributePath(0, BASIC, LABEL)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def wakeups() -> list[int]:
    return []


@pytest.fixture
def server(provider: FakeProvider, wakeups: list[int]) -> InteractionServer:
    ids = itertools.count(0x1000)
    return InteractionServer(provider, wakeup=lambda: wakeups.append(1), subscription_ids=lambda: next(ids))


def subscribe(
    server: InteractionServer,
    *paths: m.AttributePathIB,
    floor: int = 0,
    ceiling: int = 60,
    keep: bool = True,
    ctx: RequestContext | None = None,
    exchange: Any = 1,
    now: float = 0.0,
    **kw: Any,
) -> tuple[m.SubscribeResponse, list[m.ReportData]]:
    ctx = ctx or make_ctx()
    request = m.SubscribeRequest(
        keep_subscriptions=keep,
        min_interval_floor=floor,
        max_interval_ceiling=ceiling,
        attribute_requests=list(paths) or None,
        fabric_filtered=True,
        **kw,
    )
    first = server.on_message(exchange, ctx, Op.SUBSCRIBE_REQUEST, request.encode(), now)
    result = drive_chunks(server, first, ctx, now, ack_last=True)
    assert all(not r.suppress_response for r in result.reports)  # subscription reports are always answered
    final = result.outgoing[-1]
    assert final.opcode is Op.SUBSCRIBE_RESPONSE and final.close_exchange and not final.expect_response
    response = m.SubscribeResponse.decode(final.payload)
    assert all(r.subscription_id == response.subscription_id for r in result.reports)
    return response, result.reports


def ack(server: InteractionServer, out: Outgoing, now: float, status: int = Status.SUCCESS) -> list[Outgoing]:
    payload = SUCCESS if status == Status.SUCCESS else m.StatusResponse(status=status).encode()
    return server.on_message(out.exchange, make_ctx(), Op.STATUS_RESPONSE, payload, now)


def test_priming_then_subscribe_response(server: InteractionServer) -> None:
    response, reports = subscribe(server, apath(1, TEST, SMALL), apath(0, BASIC, 0x4242), ceiling=30)
    assert response.subscription_id == 0x1000 and response.max_interval == 30
    values, statuses = reassemble(reports)
    assert values == {SMALL_PATH: 5}
    assert statuses == {AttributePath(0, BASIC, 0x4242): Status.UNSUPPORTED_ATTRIBUTE}
    [sub] = server.subscriptions
    assert sub.state is SubscriptionState.IDLE and sub.max_interval == 30


def test_chunked_priming(server: InteractionServer, provider: FakeProvider) -> None:
    provider.values[AttributePath(1, TEST, BIG_LIST)] = big_list(80)
    _, reports = subscribe(server, apath(1))
    assert len(reports) > 2
    assert reassemble(reports)[0][AttributePath(1, TEST, BIG_LIST)] == big_list(80)


def test_priming_honours_data_version_filters(server: InteractionServer) -> None:
    dvf = m.DataVersionFilterIB(path=m.ClusterPathIB(endpoint=1, cluster=TEST), data_version=0xFFFF_FFF0)
    _, reports = subscribe(server, apath(), data_version_filters=[dvf])
    assert {p.cluster for p in reassemble(reports)[0]} == {BASIC}


@pytest.mark.parametrize(
    ("floor", "ceiling", "preferred", "expected"),
    [
        (0, 60, 0, 60),
        (0, 10, 60, 60),  # we may choose above the ceiling ...
        (0, 10, 5000, 3600),  # ... but not above the publisher limit
        (0, 7200, 0, 7200),  # a ceiling above the limit is honoured
        (0, 0, 0, 1),  # never back-to-back keep-alives
        (30, 30, 0, 30),
    ],
)
def test_max_interval_negotiation(floor: int, ceiling: int, preferred: int, expected: int) -> None:
    assert negotiate_max_interval(floor, ceiling, preferred) == expected
    assert floor <= expected <= max(3600, ceiling)


def test_preferred_max_interval(provider: FakeProvider) -> None:
    server = InteractionServer(provider, preferred_max_interval=300)
    response, _ = subscribe(server, apath(1, TEST, SMALL), ceiling=20)
    assert response.max_interval == 300


def test_floor_above_ceiling_is_invalid_action(server: InteractionServer) -> None:
    request = m.SubscribeRequest(
        keep_subscriptions=True,
        min_interval_floor=10,
        max_interval_ceiling=5,
        attribute_requests=[apath()],
        fabric_filtered=True,
    )
    [out] = server.on_message(1, make_ctx(), Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    assert status_of(out) == Status.INVALID_ACTION
    assert server.subscriptions == ()


def test_change_report_after_min_interval(
    server: InteractionServer, provider: FakeProvider, wakeups: list[int]
) -> None:
    response, _ = subscribe(server, apath(1, TEST, SMALL), apath(0, BASIC, LABEL), floor=5, ceiling=60, now=100.0)
    assert server.next_deadline() == 160.0  # keep-alive
    provider.set_value(SMALL_PATH, 9)  # an application-side change, outside any server call
    assert wakeups == [1]
    assert server.next_deadline() == 105.0
    assert server.on_timer(104.9) == []
    [out] = server.on_timer(105.0)
    assert out.new_exchange and isinstance(out.exchange, LocalExchange)
    assert out.expect_response and not out.close_exchange and out.session_id == 7
    report = m.ReportData.decode(out.payload)
    assert report.subscription_id == response.subscription_id
    assert report.suppress_response is None and report.more_chunked_messages is None
    assert reassemble([report]) == ({SMALL_PATH: 9}, {})  # only what changed
    assert server.next_deadline() is None  # nothing new while the report is in flight
    assert ack(server, out, 105.2) == []  # the exchange ends; the subscription lives on
    assert server.next_deadline() == 165.0


def test_changes_during_a_report_wait_for_the_next(server: InteractionServer, provider: FakeProvider) -> None:
    subscribe(server, apath(1, TEST, SMALL), apath(0, BASIC, LABEL), floor=2)
    provider.set_value(SMALL_PATH, 1)
    [out] = server.on_timer(2.0)
    provider.set_value(LABEL_PATH, "attic")
    ack(server, out, 2.5)
    assert server.next_deadline() == 4.0
    [out] = server.on_timer(4.0)
    assert reassemble([m.ReportData.decode(out.payload)])[0] == {LABEL_PATH: "attic"}


def test_keep_alive_is_an_empty_report(server: InteractionServer) -> None:
    response, _ = subscribe(server, apath(1, TEST, SMALL), floor=1, ceiling=30, now=10.0)
    assert server.next_deadline() == 40.0
    [out] = server.on_timer(40.0)
    report = m.ReportData.decode(out.payload)
    assert report.subscription_id == response.subscription_id and report.attribute_reports is None
    ack(server, out, 40.1)
    assert server.next_deadline() == 70.0


def test_unmatched_changes_do_not_wake(server: InteractionServer, provider: FakeProvider, wakeups: list[int]) -> None:
    subscribe(server, apath(1, TEST, SMALL), floor=1, ceiling=30)
    provider.set_value(LABEL_PATH, "den")
    assert wakeups == [] and server.next_deadline() == 30.0


def test_wildcard_subscription_reports_changed_attributes(server: InteractionServer, provider: FakeProvider) -> None:
    subscribe(server, apath(1), floor=0, ceiling=30)
    provider.set_value(SMALL_PATH, 42)
    [out] = server.on_timer(0.0)
    assert reassemble([m.ReportData.decode(out.payload)])[0] == {SMALL_PATH: 42}


def test_writes_through_the_server_trigger_reports(server: InteractionServer) -> None:
    subscribe(server, apath(1, TEST, SMALL), floor=0, ceiling=30)
    write = m.WriteRequest(timed_request=False, write_requests=[m.AttributeDataIB(path=apath(1, TEST, SMALL), data=3)])
    server.on_message(5, make_ctx(), Op.WRITE_REQUEST, write.encode(), 1.0)
    assert server.next_deadline() == 0.0
    [out] = server.on_timer(1.0)
    assert reassemble([m.ReportData.decode(out.payload)])[0] == {SMALL_PATH: 3}


def test_chunked_change_report(server: InteractionServer, provider: FakeProvider) -> None:
    subscribe(server, apath(1, TEST, BIG_LIST), floor=0, ceiling=30)
    provider.set_value(AttributePath(1, TEST, BIG_LIST), big_list(70))
    first = server.on_timer(1.0)
    assert first[0].new_exchange
    result = drive_chunks(server, first, make_ctx(), 1.0, ack_last=True)
    assert len(result.reports) > 2
    assert not any(o.new_exchange for o in result.outgoing[1:])  # later chunks reuse the exchange
    assert result.outgoing[-1].opcode is Op.REPORT_DATA  # the last ack gets nothing back
    assert reassemble(result.reports)[0] == {AttributePath(1, TEST, BIG_LIST): big_list(70)}
    assert server.subscriptions[0].state is SubscriptionState.IDLE


def test_a_burst_of_changes_to_a_big_list_is_one_report_per_min_interval(
    server: InteractionServer, provider: FakeProvider
) -> None:
    """Issue 13: a thousand status changes of a big list (one datastore transaction each) inside the MinInterval
    make one report of the list as it is at the end, not one per change."""
    path = AttributePath(1, TEST, BIG_LIST)
    subscribe(server, apath(1, TEST, BIG_LIST), floor=2, ceiling=60, now=0.0)
    for i in range(1000):
        provider.set_value(path, big_list(40, size=1 + i % 40))
    assert server.on_timer(1.9) == []
    first = server.on_timer(2.0)
    assert len(first) == 1
    result = drive_chunks(server, first, make_ctx(), 2.0, ack_last=True)
    assert reassemble(result.reports)[0] == {path: big_list(40, size=1 + 999 % 40)}
    assert server.next_deadline() == 62.0  # nothing else pending: the next is the keep-alive


def test_failed_report_exchange_drops_the_subscription(server: InteractionServer, provider: FakeProvider) -> None:
    subscribe(server, apath(1, TEST, SMALL))
    [out] = server.on_timer(60.0)
    server.on_exchange_closed(out.exchange, failed=True)
    assert server.subscriptions == () and server.next_deadline() is None
    # A late answer on the dead report exchange is dropped without a reply.
    assert ack(server, out, 61.0) == []


def test_subscriber_rejecting_a_report_drops_it(server: InteractionServer) -> None:
    subscribe(server, apath(1, TEST, SMALL))
    [out] = server.on_timer(60.0)
    assert ack(server, out, 60.1, Status.INVALID_SUBSCRIPTION) == []
    assert server.subscriptions == ()


def test_failed_priming_drops_the_subscription(server: InteractionServer) -> None:
    request = m.SubscribeRequest(
        keep_subscriptions=True,
        min_interval_floor=0,
        max_interval_ceiling=5,
        attribute_requests=[apath()],
        fabric_filtered=True,
    )
    [out] = server.on_message(1, make_ctx(), Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    assert out.expect_response and not out.close_exchange
    assert server.subscriptions[0].state is SubscriptionState.PRIMING
    assert server.next_deadline() is None
    server.on_exchange_closed(1, failed=True)
    assert server.subscriptions == ()


def test_keep_subscriptions_false_replaces_the_peers_subscriptions(server: InteractionServer) -> None:
    mine, _ = subscribe(server, apath(1, TEST, SMALL))
    other_node, _ = subscribe(server, apath(1, TEST, SMALL), ctx=make_ctx(OPERATOR), exchange=2)
    other_fabric, _ = subscribe(server, apath(1, TEST, SMALL), ctx=make_ctx(ADMIN, fabric=2), exchange=3)
    replacement, _ = subscribe(server, apath(0, BASIC, LABEL), keep=False, exchange=4)
    ids = {s.subscription_id for s in server.subscriptions}
    assert ids == {other_node.subscription_id, other_fabric.subscription_id, replacement.subscription_id}
    assert mine.subscription_id not in ids


def test_subscription_limit_per_session(server: InteractionServer) -> None:
    """Every subscription limit and eviction rule is in tests/im/test_limits.py; this is the basic one."""
    for i in range(SubscriptionLimits().per_session.subscriptions):
        subscribe(server, apath(1, TEST, SMALL), exchange=i)
    request = m.SubscribeRequest(
        keep_subscriptions=True,
        min_interval_floor=0,
        max_interval_ceiling=5,
        attribute_requests=[apath()],
        fabric_filtered=True,
    )
    [out] = server.on_message("x", make_ctx(), Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    assert status_of(out) == Status.RESOURCE_EXHAUSTED
    subscribe(server, apath(1, TEST, SMALL), ctx=make_ctx(session=8), exchange="y")  # other sessions unaffected
    subscribe(server, apath(1, TEST, SMALL), ctx=make_ctx(fabric=2, session=9), exchange="z")  # other fabrics too


def test_subscription_ids_stay_unique_with_a_poor_source(provider: FakeProvider) -> None:
    server = InteractionServer(provider, subscription_ids=lambda: 7)
    for exchange in range(3):
        subscribe(server, apath(1, TEST, SMALL), exchange=exchange)
    assert len({s.subscription_id for s in server.subscriptions}) == 3


def test_session_closed_drops_its_subscriptions(server: InteractionServer) -> None:
    subscribe(server, apath(1, TEST, SMALL))
    subscribe(server, apath(1, TEST, SMALL), ctx=make_ctx(session=8), exchange=2)
    server.on_session_closed(7)
    assert [s.session_id for s in server.subscriptions] == [8]


def test_fabric_removed_drops_its_subscriptions(server: InteractionServer) -> None:
    subscribe(server, apath(1, TEST, SMALL))
    subscribe(server, apath(1, TEST, SMALL), ctx=make_ctx(fabric=2, session=9), exchange=2)
    server.on_fabric_removed(1)
    assert [s.ctx.subject.fabric_index for s in server.subscriptions] == [2]


def test_event_only_subscription_keeps_alive(server: InteractionServer) -> None:
    ctx = make_ctx()
    request = m.SubscribeRequest(
        keep_subscriptions=True,
        min_interval_floor=0,
        max_interval_ceiling=10,
        event_requests=[m.EventPathIB()],
        fabric_filtered=False,
    )
    first = server.on_message(1, ctx, Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    result = drive_chunks(server, first, ctx, 0.0, ack_last=True)
    assert result.outgoing[-1].opcode is Op.SUBSCRIBE_RESPONSE
    assert server.next_deadline() == 10.0


def test_no_paths_is_invalid_action(server: InteractionServer) -> None:
    request = m.SubscribeRequest(
        keep_subscriptions=True, min_interval_floor=0, max_interval_ceiling=10, fabric_filtered=True
    )
    [out] = server.on_message(1, make_ctx(), Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    assert status_of(out) == Status.INVALID_ACTION


# -- Core spec 8.5.3.2: a subscription that reaches nothing its subject may read is refused (INVALID_ACTION), as
#    the CHIP SDK's InteractionModelEngine::OnReadInitialRequest refuses one "with no access at all".


def refused(server: InteractionServer, ctx: RequestContext, attributes: list[m.AttributePathIB] | None = None,
            events: list[m.EventPathIB] | None = None, keep: bool = True) -> Status | None:
    """The StatusResponse status if the SubscribeRequest is refused outright, None if priming starts."""
    request = m.SubscribeRequest(keep_subscriptions=keep, min_interval_floor=0, max_interval_ceiling=10,
                                 attribute_requests=attributes, event_requests=events, fabric_filtered=True)
    [out] = server.on_message(5, ctx, Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    return status_of(out) if out.opcode is Op.STATUS_RESPONSE else None


@pytest.mark.parametrize("paths", [
    [apath(1, TEST, SMALL)],  # concrete, denied
    [apath()],  # wildcard expanding only to denied clusters
    [apath(1, TEST), apath(0, BASIC, LABEL)],  # several paths, all denied
    [apath(9, TEST, SMALL), apath(1, 0x1234, 0), apath(1, TEST, 0x77)],  # nothing that exists
], ids=["concrete", "wildcard", "several", "nonexistent"])
def test_subscription_with_every_path_denied_is_invalid_action(server: InteractionServer,
                                                               paths: list[m.AttributePathIB]) -> None:
    assert refused(server, make_ctx(subject=STRANGER), paths) == Status.INVALID_ACTION
    assert server.subscriptions == () and server.next_deadline() is None


def test_subscription_to_an_attribute_above_the_subjects_privilege_is_invalid_action(
        server: InteractionServer) -> None:
    assert refused(server, make_ctx(subject=VIEWER), [apath(1, TEST, SECRET)]) == Status.INVALID_ACTION
    assert refused(server, make_ctx(subject=ADMIN), [apath(1, TEST, SECRET)]) is None  # Administer reads it


def test_one_readable_path_is_enough(server: InteractionServer) -> None:
    # The denied path is then just left out of the reports (wildcard) or reported UNSUPPORTED_ACCESS (concrete).
    response, reports = subscribe(server, apath(1, TEST, SECRET), apath(1, TEST, SMALL), ctx=make_ctx(subject=VIEWER))
    assert response.subscription_id == 0x1000
    ibs = [ib for r in reports for ib in r.attribute_reports or []]
    assert [ib.attribute_status.status.status for ib in ibs if ib.attribute_status] == [Status.UNSUPPORTED_ACCESS]
    assert [ib.attribute_data.path.attribute for ib in ibs if ib.attribute_data] == [SMALL]


def test_event_paths_count_when_the_subject_may_read_them(server: InteractionServer) -> None:
    # The SDK cannot know whether events exist without expanding them: an accessible cluster is enough.
    assert refused(server, make_ctx(subject=VIEWER), [apath(1, TEST, SECRET)], [m.EventPathIB()]) is None
    assert refused(server, make_ctx(subject=STRANGER), None, [m.EventPathIB()]) == Status.INVALID_ACTION
    assert refused(server, make_ctx(subject=STRANGER), None, [m.EventPathIB(endpoint=0, cluster=0x1F, event=0)]
                   ) == Status.INVALID_ACTION


def test_denied_subscription_still_ends_the_peers_old_ones_when_not_kept(server: InteractionServer) -> None:
    """KeepSubscriptions=false ends the peer's subscriptions before the access check (the SDK's order)."""
    subscribe(server, apath(1, TEST, SMALL), ctx=make_ctx(subject=VIEWER))
    assert len(server.subscriptions) == 1
    denied = refused(server, make_ctx(subject=VIEWER), [apath(1, TEST, SECRET)], keep=False)
    assert denied == Status.INVALID_ACTION and server.subscriptions == ()
