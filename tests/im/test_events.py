"""Events (Core spec 7.14, 8.4.3.2, 8.5.4, 8.9.3): the event store and the IM server's event reads and reports.

Virtual time throughout: ``now`` (seconds) goes into every server call, ``now_ms`` into every emitted event.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.model import EventDef, EventPriority, Privilege
from jfds_device.im import messages as m
from jfds_device.im.events import EVENT_NUMBER_EPOCH, EventStore
from jfds_device.im.provider import RequestContext, Status
from jfds_device.im.server import InteractionServer, Outgoing
from tests.im.fakes import (
    ADMIN,
    BASIC,
    BASIC_DEF,
    BIG_LIST,
    STRANGER,
    SUCCESS,
    TEST,
    TEST_DEF,
    VIEWER,
    FakeProvider,
    apath,
    big_list,
    drive_chunks,
    make_ctx,
)

START_UP, SHUT_DOWN = 0x00, 0x01  # on BASIC, View
SECRET_EVENT, FABRIC_EVENT, DEBUG_EVENT = 0x00, 0x01, 0x02  # on TEST: Administer, fabric-sensitive (Administer), View

BASIC_EVENTS = dataclasses.replace(
    BASIC_DEF,
    events=(EventDef(START_UP, "StartUp", EventPriority.CRITICAL), EventDef(SHUT_DOWN, "ShutDown",
                                                                             EventPriority.CRITICAL)),
)
TEST_EVENTS = dataclasses.replace(
    TEST_DEF,
    events=(
        EventDef(SECRET_EVENT, "Secret", EventPriority.INFO, read_privilege=Privilege.ADMINISTER),
        EventDef(FABRIC_EVENT, "Fabric", EventPriority.INFO, read_privilege=Privilege.ADMINISTER,
                 fabric_sensitive=True),
        EventDef(DEBUG_EVENT, "Debug", EventPriority.DEBUG),
    ),
)


# ------------------------------------------------------------------------------------------------ the store


def test_numbers_increase_and_records_come_in_number_order_across_priorities() -> None:
    store = EventStore()
    a = store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {0: 1}, 10)
    b = store.emit(1, TEST, DEBUG_EVENT, EventPriority.DEBUG, {}, 20)
    c = store.emit(1, TEST, SECRET_EVENT, EventPriority.INFO, {}, 30)
    assert (a.number, b.number, c.number) == (0, 1, 2)
    assert [r.number for r in store.records()] == [0, 1, 2]
    assert [r.number for r in store.records(1)] == [1, 2]
    assert store.next_number == 3


def test_a_full_priority_buffer_evicts_its_own_oldest_only() -> None:
    store = EventStore(capacity={EventPriority.DEBUG: 2, EventPriority.INFO: 2, EventPriority.CRITICAL: 2})
    critical = store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0)
    for i in range(5):
        store.emit(1, TEST, DEBUG_EVENT, EventPriority.DEBUG, {0: i}, i)
    kept = list(store.records())
    assert kept[0] == critical  # DEBUG traffic never pushes a CRITICAL event out
    assert [r.data for r in kept[1:]] == [{0: 3}, {0: 4}]


def test_event_numbers_resume_after_the_reserved_epoch_across_a_restart() -> None:
    stored: list[int] = []
    first = EventStore(0, reserve=stored.append)
    assert stored == [EVENT_NUMBER_EPOCH]  # reserved before any number is handed out
    numbers = [first.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0).number for _ in range(3)]
    # The process dies; the next one starts from what was stored.
    second = EventStore(stored[-1], reserve=stored.append)
    after = second.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0).number
    assert after > max(numbers) and after == EVENT_NUMBER_EPOCH
    assert stored[-1] == 2 * EVENT_NUMBER_EPOCH


def test_the_next_epoch_is_reserved_half_an_epoch_ahead() -> None:
    stored: list[int] = []
    store = EventStore(0, reserve=stored.append, capacity={p: 1 for p in EventPriority})
    half = EVENT_NUMBER_EPOCH // 2
    store._next = half - 1  # skip the emits before it
    store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0)
    assert stored == [EVENT_NUMBER_EPOCH]
    record = store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0)
    assert record.number == half and stored == [EVENT_NUMBER_EPOCH, half + EVENT_NUMBER_EPOCH]


def test_a_postponed_reservation_is_retried_before_the_stored_limit_is_reached() -> None:
    """The database refuses a reservation inside a transaction (an ACL write emits inside one): the next emit
    reserves, and every number handed out stays below a stored limit."""
    stored: list[int] = []
    refuse = [True]

    def reserve(upto: int) -> None:
        if refuse[0]:
            raise RuntimeError("inside a transaction")
        stored.append(upto)

    refuse[0] = False
    store = EventStore(0, reserve=reserve, capacity={p: 1 for p in EventPriority})
    store._next = EVENT_NUMBER_EPOCH // 2  # due for the next reservation
    refuse[0] = True
    first = store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0)
    refuse[0] = False
    second = store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0)
    assert stored[-1] > second.number > first.number and stored[-1] == second.number + EVENT_NUMBER_EPOCH


def test_a_failing_reservation_is_logged_and_numbering_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_upto: int) -> None:
        raise OSError("disk full")

    store = EventStore(7, reserve=broken)
    assert store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0).number == 7
    assert "reservation" in caplog.text


def test_forget_fabric_drops_only_that_fabrics_events() -> None:
    store = EventStore()
    store.emit(1, TEST, FABRIC_EVENT, EventPriority.INFO, {}, 0, fabric_index=1)
    kept = store.emit(1, TEST, FABRIC_EVENT, EventPriority.INFO, {}, 0, fabric_index=2)
    plain = store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0)
    store.forget_fabric(1)
    assert list(store.records()) == [kept, plain]


def test_a_failing_listener_does_not_lose_the_event() -> None:
    store = EventStore()
    heard: list[int] = []

    def broken(_record: Any) -> None:
        raise RuntimeError("bug")

    store.add_listener(broken)
    store.add_listener(lambda r: heard.append(r.number))
    store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {}, 0)
    assert heard == [0] and len(list(store.records())) == 1


# ------------------------------------------------------------------------------------------------ reads


@pytest.fixture
def store() -> EventStore:
    return EventStore()


@pytest.fixture
def provider() -> FakeProvider:
    provider = FakeProvider()
    provider.defs = {0: [BASIC_EVENTS], 1: [TEST_EVENTS]}
    return provider


@pytest.fixture
def wakeups() -> list[int]:
    return []


@pytest.fixture
def server(provider: FakeProvider, store: EventStore, wakeups: list[int]) -> InteractionServer:
    ids = itertools.count(0x2000)
    return InteractionServer(provider, events=store, wakeup=lambda: wakeups.append(1),
                             subscription_ids=lambda: next(ids))


def epath(endpoint: int | None = None, cluster: int | None = None, event: int | None = None, **kw: Any) -> Any:
    return m.EventPathIB(endpoint=endpoint, cluster=cluster, event=event, **kw)


def emit_all(store: EventStore) -> None:
    store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {0: 42}, 100)  # 0
    store.emit(1, TEST, SECRET_EVENT, EventPriority.INFO, {0: 1}, 200)  # 1
    store.emit(1, TEST, FABRIC_EVENT, EventPriority.INFO, {0: 2, 0xFE: 1}, 300, fabric_index=1)  # 2
    store.emit(1, TEST, FABRIC_EVENT, EventPriority.INFO, {0: 3, 0xFE: 2}, 400, fabric_index=2)  # 3
    store.emit(1, TEST, DEBUG_EVENT, EventPriority.DEBUG, {}, 500)  # 4


def read_events(
    server: InteractionServer,
    *paths: m.EventPathIB,
    ctx: RequestContext | None = None,
    attributes: list[m.AttributePathIB] | None = None,
    **kw: Any,
) -> tuple[list[m.EventDataIB], list[m.EventStatusIB], list[m.ReportData]]:
    ctx = ctx or make_ctx()
    request = m.ReadRequest(attribute_requests=attributes, event_requests=list(paths),
                            fabric_filtered=kw.pop("fabric_filtered", True), **kw)
    result = drive_chunks(server, server.on_message(1, ctx, Op.READ_REQUEST, request.encode(), 0.0), ctx)
    return (*split(result.reports), result.reports)


def split(reports: list[m.ReportData]) -> tuple[list[m.EventDataIB], list[m.EventStatusIB]]:
    data, statuses = [], []
    for report in reports:
        for ib in report.event_reports or ():
            if ib.event_data is not None:
                data.append(ib.event_data)
            else:
                statuses.append(ib.event_status)
    return data, statuses


def test_wildcard_read_reports_every_readable_event_in_order(server: InteractionServer, store: EventStore) -> None:
    emit_all(store)
    data, statuses, _ = read_events(server, epath())
    assert statuses == []
    assert [d.event_number for d in data] == [0, 1, 2, 4]  # fabric 2's sensitive event is not ours
    first = data[0]
    assert first.path == m.EventPathIB(endpoint=0, cluster=BASIC, event=START_UP)
    assert first.priority == EventPriority.CRITICAL and first.system_timestamp == 100 and first.data == {0: 42}
    assert first.epoch_timestamp is None  # no Time Synchronization: system time only, as the SDK does


def test_wildcards_on_cluster_and_event(server: InteractionServer, store: EventStore) -> None:
    emit_all(store)
    assert [d.event_number for d in read_events(server, epath(0))[0]] == [0]
    assert [d.event_number for d in read_events(server, epath(cluster=TEST))[0]] == [1, 2, 4]
    assert [d.event_number for d in read_events(server, epath(event=SECRET_EVENT))[0]] == [0, 1]  # id 0 both
    assert [d.event_number for d in read_events(server, epath(1, TEST, DEBUG_EVENT))[0]] == [4]


def test_event_min_filter(server: InteractionServer, store: EventStore) -> None:
    emit_all(store)
    data, _, _ = read_events(server, epath(), event_filters=[m.EventFilterIB(event_min=2)])
    assert [d.event_number for d in data] == [2, 4]


def test_fabric_sensitive_events_reach_only_their_fabric_filtered_or_not(
    server: InteractionServer, store: EventStore
) -> None:
    emit_all(store)
    for filtered in (True, False):
        ours = read_events(server, epath(1, TEST, FABRIC_EVENT), ctx=make_ctx(fabric=2), fabric_filtered=filtered)
        assert [d.event_number for d in ours[0]] == [3]


def test_concrete_paths_that_name_nothing_get_their_status(server: InteractionServer) -> None:
    data, statuses, _ = read_events(
        server, epath(5, BASIC, START_UP), epath(0, TEST, 0), epath(0, BASIC, 0x77), epath(0, BASIC, START_UP)
    )
    assert data == []
    assert [(s.path.endpoint, s.path.cluster, s.path.event, s.status.status) for s in statuses] == [
        (5, BASIC, START_UP, Status.UNSUPPORTED_ENDPOINT),
        (0, TEST, 0, Status.UNSUPPORTED_CLUSTER),
        (0, BASIC, 0x77, Status.UNSUPPORTED_EVENT),
    ]


def test_access_control_per_event(server: InteractionServer, store: EventStore) -> None:
    emit_all(store)
    # A viewer: the Administer event is UNSUPPORTED_ACCESS on a concrete path and skipped in a wildcard.
    data, statuses, _ = read_events(server, epath(1, TEST, SECRET_EVENT), epath(), ctx=make_ctx(VIEWER))
    assert [(s.path.event, s.status.status) for s in statuses] == [(SECRET_EVENT, Status.UNSUPPORTED_ACCESS)]
    assert [d.event_number for d in data] == [0, 4]
    # No privilege at all: a concrete path learns nothing of what exists (UNSUPPORTED_ACCESS first).
    _, statuses, _ = read_events(server, epath(0, BASIC, 0x77), ctx=make_ctx(STRANGER))
    assert [s.status.status for s in statuses] == [Status.UNSUPPORTED_ACCESS]


def test_events_come_after_attributes_and_chunk_with_them(
    server: InteractionServer, store: EventStore, provider: FakeProvider
) -> None:
    from jfds_device.im.provider import AttributePath

    provider.values[AttributePath(1, TEST, BIG_LIST)] = big_list(30)
    for i in range(60):
        store.emit(0, BASIC, START_UP, EventPriority.CRITICAL, {0: i, 1: b"x" * 40}, i)
    data, _, reports = read_events(server, epath(), attributes=[apath(1, TEST, BIG_LIST)])
    assert len(reports) > 2
    assert [d.data[0] for d in data] == list(range(60))  # every event, once, in order
    # Once an event was reported, no attribute follows in a later chunk (attributes first).
    seen_event = False
    for report in reports:
        if seen_event:
            assert not report.attribute_reports
        seen_event |= bool(report.event_reports)


# ------------------------------------------------------------------------------------------------ subscriptions


def subscribe(
    server: InteractionServer, *paths: m.EventPathIB, ctx: RequestContext | None = None, floor: int = 0,
    ceiling: int = 60, now: float = 0.0, **kw: Any,
) -> tuple[m.SubscribeResponse, list[m.ReportData]]:
    ctx = ctx or make_ctx()
    request = m.SubscribeRequest(keep_subscriptions=True, min_interval_floor=floor, max_interval_ceiling=ceiling,
                                 event_requests=list(paths), fabric_filtered=True, **kw)
    first = server.on_message(("sub", ctx.session_id), ctx, Op.SUBSCRIBE_REQUEST, request.encode(), now)
    result = drive_chunks(server, first, ctx, now, ack_last=True)
    response = m.SubscribeResponse.decode(result.outgoing[-1].payload)
    return response, result.reports


def take_report(server: InteractionServer, now: float, ctx: RequestContext | None = None) -> list[m.EventDataIB]:
    """The reports due at ``now``, acknowledged; their event data."""
    outs = server.on_timer(now)
    data: list[m.EventDataIB] = []
    for out in outs:
        data += acknowledge(server, out, now, ctx)
    return data


def acknowledge(server: InteractionServer, out: Outgoing, now: float, ctx: RequestContext | None = None) -> list[Any]:
    report = m.ReportData.decode(out.payload)
    server.on_message(out.exchange, ctx or make_ctx(), Op.STATUS_RESPONSE, SUCCESS, now)
    return split([report])[0]


def test_priming_carries_stored_events_and_later_reports_only_new_ones(
    server: InteractionServer, store: EventStore
) -> None:
    emit_all(store)
    _, reports = subscribe(server, epath(), floor=1, ceiling=30)
    assert [d.event_number for d in split(reports)[0]] == [0, 1, 2, 4]
    store.emit(1, TEST, DEBUG_EVENT, EventPriority.DEBUG, {}, 600)  # 5, not urgent
    assert server.next_deadline() == 30  # waits for the next report: the keep-alive
    assert [d.event_number for d in take_report(server, 30)] == [5]
    assert take_report(server, 60) == []  # not reported twice


def test_an_urgent_path_reports_after_min_interval(
    server: InteractionServer, store: EventStore, wakeups: list[int]
) -> None:
    subscribe(server, epath(0, BASIC, is_urgent=True), floor=2, ceiling=60)
    store.emit(0, BASIC, SHUT_DOWN, EventPriority.CRITICAL, {}, 0)
    assert wakeups and server.next_deadline() == 2  # not before MinInterval (Core spec 8.5.4)
    assert server.on_timer(1.5) == []
    assert [d.path.event for d in take_report(server, 2)] == [SHUT_DOWN]
    assert server.next_deadline() == 62


def test_an_urgent_event_the_subscriber_may_not_read_does_not_wake_it(
    server: InteractionServer, store: EventStore
) -> None:
    subscribe(server, epath(1, TEST, is_urgent=True), ctx=make_ctx(VIEWER), ceiling=60)
    store.emit(1, TEST, SECRET_EVENT, EventPriority.INFO, {}, 0)
    store.emit(1, TEST, FABRIC_EVENT, EventPriority.INFO, {}, 0, fabric_index=1)
    assert server.next_deadline() == 60
    assert take_report(server, 60, make_ctx(VIEWER)) == []


def test_fabric_sensitive_events_go_only_to_the_fabrics_subscription(
    server: InteractionServer, store: EventStore
) -> None:
    one, two = make_ctx(ADMIN, fabric=1, session=7), make_ctx(ADMIN, fabric=2, session=8)
    subscribe(server, epath(is_urgent=True), ctx=one)
    subscribe(server, epath(is_urgent=True), ctx=two)
    store.emit(1, TEST, FABRIC_EVENT, EventPriority.INFO, {0xFE: 2}, 0, fabric_index=2)
    outs = server.on_timer(0)
    assert [out.session_id for out in outs] == [8]
    assert [d.path.event for d in acknowledge(server, outs[0], 0, two)] == [FABRIC_EVENT]


def test_flush_events_reports_at_once_and_reports_in_flight_until_acknowledged(
    server: InteractionServer, store: EventStore
) -> None:
    subscribe(server, epath(0, BASIC), floor=10, ceiling=60)  # not urgent, MinInterval 10 s
    assert server.flush_events(1.0) == []  # nothing new: nothing sent
    store.emit(0, BASIC, SHUT_DOWN, EventPriority.CRITICAL, {}, 0)
    [out] = server.flush_events(1.0)
    assert server.reports_in_flight()
    assert [d.path.event for d in acknowledge(server, out, 1.0)] == [SHUT_DOWN]
    assert not server.reports_in_flight()


def test_event_paths_only_subscription_with_nothing_viewable_is_refused(server: InteractionServer) -> None:
    ctx = make_ctx(STRANGER)
    request = m.SubscribeRequest(keep_subscriptions=True, min_interval_floor=0, max_interval_ceiling=10,
                                 event_requests=[epath()], fabric_filtered=True)
    [out] = server.on_message(1, ctx, Op.SUBSCRIBE_REQUEST, request.encode(), 0.0)
    assert out.opcode is Op.STATUS_RESPONSE
    assert m.StatusResponse.decode(out.payload).status == Status.INVALID_ACTION
