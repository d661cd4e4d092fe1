"""``InteractionServer.interactions``: every interaction a request starts is counted once, by its opcode and the
status it ended with (SUCCESS, or the StatusResponse that refused it); chunk acknowledgements, continuations and
unsolicited messages are not interactions (the ``jfds_im_interactions_total`` metric of the ``--http`` view)."""

from __future__ import annotations

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, Status
from jfds_device.im.server import InteractionServer
from tests.im.fakes import (
    BIG_LIST,
    SUCCESS,
    TEST,
    TIMED_CMD,
    TOGGLE,
    FakeProvider,
    apath,
    big_list,
    drive_chunks,
    make_ctx,
)


def _invoke(cmd: int, *, timed: bool = False) -> bytes:
    path = m.CommandPathIB(endpoint=1, cluster=TEST, command=cmd)
    return m.InvokeRequest(timed_request=timed, invoke_requests=[m.CommandDataIB(path=path, fields={})]).encode()


def test_counts_follow_interactions_and_their_ending_status() -> None:
    provider = FakeProvider()
    provider.values[AttributePath(1, TEST, BIG_LIST)] = big_list(60)
    server = InteractionServer(provider)
    ctx = make_ctx()
    assert not server.interactions

    # A chunked read: one interaction, however many chunks it takes and acknowledgements it gets.
    read = m.ReadRequest(attribute_requests=[apath(1, TEST, BIG_LIST)], fabric_filtered=True).encode()
    result = drive_chunks(server, server.on_message(1, ctx, Op.READ_REQUEST, read, 0.0), ctx)
    assert len(result.reports) > 1
    assert server.interactions == {(Op.READ_REQUEST, Status.SUCCESS): 1}

    server.on_message(2, ctx, Op.INVOKE_REQUEST, _invoke(TOGGLE), 0.0)
    # A timed invoke is two interactions: the TimedRequest and the invoke inside its window.
    server.on_message(3, ctx, Op.TIMED_REQUEST, m.TimedRequest(timeout=200).encode(), 1.0)
    server.on_message(3, ctx, Op.INVOKE_REQUEST, _invoke(TIMED_CMD, timed=True), 1.1)
    # One whose window expired ends UNSUPPORTED_ACCESS (Core spec 8.2.2.5).
    server.on_message(4, ctx, Op.TIMED_REQUEST, m.TimedRequest(timeout=200).encode(), 2.0)
    [late] = server.on_message(4, ctx, Op.INVOKE_REQUEST, _invoke(TIMED_CMD, timed=True), 5.0)
    assert late.opcode is Op.STATUS_RESPONSE
    # A malformed request is refused INVALID_ACTION; a status for nothing we sent is no interaction.
    server.on_message(5, ctx, Op.WRITE_REQUEST, b"\x15\x18", 6.0)
    server.on_message(6, ctx, Op.STATUS_RESPONSE, SUCCESS, 6.0)

    assert server.interactions == {
        (Op.READ_REQUEST, Status.SUCCESS): 1,
        (Op.INVOKE_REQUEST, Status.SUCCESS): 2,
        (Op.TIMED_REQUEST, Status.SUCCESS): 2,
        (Op.INVOKE_REQUEST, Status.UNSUPPORTED_ACCESS): 1,
        (Op.WRITE_REQUEST, Status.INVALID_ACTION): 1,
    }


def test_a_subscription_refused_for_too_many_paths_is_counted_with_its_status() -> None:
    server = InteractionServer(FakeProvider())
    paths = [apath(1, TEST, BIG_LIST)] * 200
    request = m.SubscribeRequest(keep_subscriptions=True, min_interval_floor=0, max_interval_ceiling=10,
                                 attribute_requests=paths, fabric_filtered=True).encode()  # fmt: skip
    [out] = server.on_message(1, make_ctx(), Op.SUBSCRIBE_REQUEST, request, 0.0)
    assert out.opcode is Op.STATUS_RESPONSE
    assert server.interactions == {(Op.SUBSCRIBE_REQUEST, Status.PATHS_EXHAUSTED): 1}
