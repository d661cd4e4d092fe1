"""The IM server's limits under random traffic (hypothesis, virtual time): many sessions on a few fabrics open
timed windows, chunked reads and subscriptions, acknowledge, abandon exchanges and close sessions in any order.

Seen from outside (what the server answers and which exchanges it keeps waiting), it never raises, never keeps
more interactions waiting per session or per fabric than im/admission.py allows, and never holds more
subscriptions per session, per fabric or in total than its tables say.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.admission import Footprint, InteractionLimits, Limits, SubscriptionLimits
from jfds_device.im.provider import AttributePath, RequestContext, Status
from jfds_device.im.server import InteractionServer, LocalExchange, Outgoing
from tests.im.fakes import BIG_LIST, SMALL, SUCCESS, TEST, FakeProvider, apath, big_list, make_ctx

# Small tables, so that random traffic reaches every cap; the server must hold to whatever tables it is given.
INTERACTIONS = InteractionLimits(per_session=3, timed_per_session=2, per_fabric=5, timed_per_fabric=3)
SUBSCRIPTIONS = SubscriptionLimits(
    per_session=Footprint(2, 6, 6), fabric_share=Footprint(3, 9, 9), per_fabric=Footprint(5, 12, 12),
    pool=Footprint(3, 9, 9).scaled(3),
)
SESSIONS = 6  # session s is on fabric s % 3 (0 standing for a PASE session)

session_ids = st.integers(0, SESSIONS - 1)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("timed"), session_ids),
        st.tuples(st.just("read"), session_ids, st.integers(1, 12)),
        st.tuples(st.just("subscribe"), session_ids, st.integers(1, 5), st.booleans()),
        st.tuples(st.just("subscribe"), session_ids, st.integers(1, 2), st.just(True)),
        st.tuples(st.just("ack"), st.integers(0, 1000)),
        st.tuples(st.just("invoke"), st.integers(0, 1000)),
        st.tuples(st.just("drop"), st.integers(0, 1000)),
        st.tuples(st.just("close_session"), session_ids),
        st.tuples(st.just("tick"), st.floats(0.0, 70.0)),
    ),
    min_size=40,
    max_size=120,
)


def ctx_of(session: int) -> RequestContext:
    return make_ctx(fabric=session % 3, session=100 + session)


@dataclass
class Observer:
    """What a client population sees: which exchanges the server keeps waiting, and for what."""

    server: InteractionServer
    now: float = 0.0
    waiting: dict[Any, tuple[int, str]] = field(default_factory=dict)  # exchange -> (session, kind)
    deadlines: dict[Any, float] = field(default_factory=dict)  # the timed windows' ends
    exchanges: Any = field(default_factory=itertools.count)

    def record(self, kind: str, session: int, outs: list[Outgoing]) -> None:
        for out in outs:
            assert out.opcode in (Op.STATUS_RESPONSE, Op.REPORT_DATA, Op.SUBSCRIBE_RESPONSE, Op.INVOKE_RESPONSE)
            if isinstance(out.exchange, LocalExchange):
                continue  # subscription reports: bounded by the subscriptions
            if out.expect_response and not out.close_exchange:
                self.waiting[out.exchange] = (session, kind)
            else:
                self.waiting.pop(out.exchange, None)

    def request(self, kind: str, session: int, opcode: Op, message: Any) -> list[Outgoing]:
        exchange = next(self.exchanges)
        outs = self.server.on_message(exchange, ctx_of(session), opcode, message.encode(), self.now)
        self.record(kind, session, outs)
        if outs and outs[0].opcode is Op.STATUS_RESPONSE and outs[0].close_exchange:
            status = m.StatusResponse.decode(outs[0].payload).status
            assert status in (Status.SUCCESS, Status.RESOURCE_EXHAUSTED, Status.PATHS_EXHAUSTED), status
        return outs

    def pick(self, index: int) -> Any:
        keys = sorted(self.waiting, key=repr)
        return keys[index % len(keys)] if keys else None

    def check(self) -> None:
        # A priming report waits on its SubscribeRequest's exchange: bounded by the subscriptions instead.
        live_windows = {
            k: v for k, v in self.waiting.items()
            if v[1] != "subscribe" and (v[1] != "timed" or self.now <= self.deadlines[k])
        }
        by_session = Counter(session for session, _ in live_windows.values())
        timed = Counter(session for session, kind in live_windows.values() if kind == "timed")
        by_fabric = Counter(session % 3 for session, _ in live_windows.values())
        assert max(by_session.values(), default=0) <= INTERACTIONS.per_session
        assert max(timed.values(), default=0) <= INTERACTIONS.timed_per_session
        # A fabric's guaranteed read may come on top of its budget.
        assert max(by_fabric.values(), default=0) <= INTERACTIONS.per_fabric + INTERACTIONS.guaranteed_reads_per_fabric
        subs = self.server.subscriptions
        assert len(subs) <= SUBSCRIPTIONS.pool.subscriptions
        assert max(Counter(s.session_id for s in subs).values(), default=0) <= SUBSCRIPTIONS.per_session.subscriptions
        per_fabric = Counter(s.ctx.subject.fabric_index for s in subs)
        assert max(per_fabric.values(), default=0) <= SUBSCRIPTIONS.per_fabric.subscriptions


@settings(max_examples=100, deadline=None)
@given(operations)
def test_random_traffic_stays_within_the_limits(ops: list[tuple[Any, ...]]) -> None:
    provider = FakeProvider()
    provider.values[AttributePath(1, TEST, BIG_LIST)] = big_list(80)
    ids = itertools.count(1)
    limits = Limits(INTERACTIONS, SUBSCRIPTIONS)
    world = Observer(InteractionServer(provider, subscription_ids=lambda: next(ids), limits=limits))
    for op in ops:
        kind = op[0]
        if kind == "timed":
            outs = world.request("timed", op[1], Op.TIMED_REQUEST, m.TimedRequest(timeout=60_000))
            if outs and outs[0].expect_response:
                world.deadlines[outs[0].exchange] = world.now + 60
        elif kind == "read":
            request = m.ReadRequest(attribute_requests=[apath(1, TEST, BIG_LIST)] * op[2], fabric_filtered=True)
            world.request("read", op[1], Op.READ_REQUEST, request)
        elif kind == "subscribe":
            request = m.SubscribeRequest(keep_subscriptions=op[3], min_interval_floor=0, max_interval_ceiling=30,
                                         attribute_requests=[apath(1, TEST, SMALL)] * op[2], fabric_filtered=True)
            world.request("subscribe", op[1], Op.SUBSCRIBE_REQUEST, request)
        elif kind in ("ack", "invoke", "drop"):
            exchange = world.pick(op[1])
            if exchange is None:
                continue
            session, what = world.waiting[exchange]
            if kind == "drop":
                world.server.on_exchange_closed(exchange, failed=True)
                world.waiting.pop(exchange)
                continue
            if kind == "ack":
                payload = SUCCESS
                opcode = Op.STATUS_RESPONSE
            else:
                opcode = Op.INVOKE_REQUEST
                payload = m.InvokeRequest(suppress_response=False, timed_request=True, invoke_requests=[
                    m.CommandDataIB(path=m.CommandPathIB(endpoint=1, cluster=TEST, command=0x03), fields={})
                ]).encode()
            outs = world.server.on_message(exchange, ctx_of(session), opcode, payload, world.now)
            if not outs:
                world.waiting.pop(exchange, None)
            world.record(what, session, outs)
        elif kind == "close_session":
            world.server.on_session_closed(100 + op[1])
            world.waiting = {k: v for k, v in world.waiting.items() if v[0] != op[1]}
        else:
            world.now += op[1]
            for out in world.server.on_timer(world.now):
                assert isinstance(out.exchange, LocalExchange)
                subscriber = ctx_of(out.session_id - 100)
                world.server.on_message(out.exchange, subscriber, Op.STATUS_RESPONSE, SUCCESS, world.now)
        world.check()
