"""Write interactions (Core spec 8.7): per-path statuses, lists, chunked writes, timed writes."""

from __future__ import annotations

from typing import Any

import pytest

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, ListOperation, Status
from jfds_device.im.server import InteractionServer, Outgoing
from tests.im.fakes import (
    ADMIN,
    BASIC,
    BIG_LIST,
    CLUSTER_REVISION,
    FABRIC_LIST,
    LABEL,
    NULLABLE,
    OPERATOR,
    REVISION,
    SMALL,
    TEST,
    TIMED_ATTR,
    VIEWER,
    FakeProvider,
    apath,
    make_ctx,
    status_of,
)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def server(provider: FakeProvider) -> InteractionServer:
    return InteractionServer(provider)


def data_ib(path: m.AttributePathIB, value: Any, version: int | None = None) -> m.AttributeDataIB:
    return m.AttributeDataIB(path=path, data=value, data_version=version)


def write(
    server: InteractionServer,
    *ibs: m.AttributeDataIB,
    subject: int = ADMIN,
    exchange: int = 1,
    now: float = 0.0,
    **kw: Any,
) -> list[Outgoing]:
    request = m.WriteRequest(timed_request=kw.pop("timed_request", False), write_requests=list(ibs), **kw)
    return server.on_message(exchange, make_ctx(subject), Op.WRITE_REQUEST, request.encode(), now)


def statuses(outs: list[Outgoing]) -> list[int]:
    [out] = outs
    assert out.opcode is Op.WRITE_RESPONSE
    return [s.status.status for s in m.WriteResponse.decode(out.payload).write_responses]


def test_simple_write(server: InteractionServer, provider: FakeProvider) -> None:
    outs = write(server, data_ib(apath(0, BASIC, LABEL), "hall"))
    assert statuses(outs) == [Status.SUCCESS]
    assert outs[0].close_exchange and not outs[0].expect_response
    assert provider.values[AttributePath(0, BASIC, LABEL)] == "hall"
    assert provider.transactions == ["begin", "end"]
    response = m.WriteResponse.decode(outs[0].payload).write_responses[0]
    assert response.path == m.AttributePathIB(endpoint=0, cluster=BASIC, attribute=LABEL)


@pytest.mark.parametrize(
    ("path", "value", "subject", "status"),
    [
        (apath(9, BASIC, LABEL), "x", ADMIN, Status.UNSUPPORTED_ENDPOINT),
        (apath(0, TEST, SMALL), 1, ADMIN, Status.UNSUPPORTED_CLUSTER),
        (apath(0, BASIC, 0x4242), 1, ADMIN, Status.UNSUPPORTED_ATTRIBUTE),
        (apath(0, BASIC, REVISION), 1, ADMIN, Status.UNSUPPORTED_WRITE),
        (apath(0, BASIC, CLUSTER_REVISION), 1, ADMIN, Status.UNSUPPORTED_WRITE),  # globals are read-only
        (apath(0, BASIC, REVISION), 1, VIEWER, Status.UNSUPPORTED_WRITE),  # writability before access (SDK)
        (apath(0, BASIC, LABEL), "x", OPERATOR, Status.UNSUPPORTED_ACCESS),  # needs Manage
        (apath(1, TEST, SMALL), 1, VIEWER, Status.UNSUPPORTED_ACCESS),
        (apath(1, TEST, SMALL), 101, ADMIN, Status.CONSTRAINT_ERROR),  # out of range
        (apath(1, TEST, SMALL), "five", ADMIN, Status.CONSTRAINT_ERROR),  # wrong TLV type (see actions.py)
        (apath(1, TEST, SMALL), None, ADMIN, Status.CONSTRAINT_ERROR),  # null on a non-nullable attribute
        (apath(1, TEST, BIG_LIST), 7, ADMIN, Status.CONSTRAINT_ERROR),  # a list attribute needs an array
        (apath(1, TEST, TIMED_ATTR), 1, ADMIN, Status.NEEDS_TIMED_INTERACTION),
        (apath(1, TEST, SMALL, list_index=m.NULL), 1, ADMIN, Status.BUSY),  # an append that begins nothing
        (apath(1, TEST, BIG_LIST, list_index=2), b"x", ADMIN, Status.INVALID_ACTION),  # numeric ListIndex
    ],
)
def test_write_statuses(
    server: InteractionServer, provider: FakeProvider, path: m.AttributePathIB, value: Any, subject: int, status: int
) -> None:
    before = dict(provider.values)
    assert statuses(write(server, data_ib(path, value), subject=subject)) == [status]
    assert provider.values == before


def test_append_to_a_non_list(server: InteractionServer) -> None:
    outs = write(server, data_ib(apath(1, TEST, SMALL), 1), data_ib(apath(1, TEST, SMALL, list_index=m.NULL), 2))
    assert statuses(outs) == [Status.SUCCESS, Status.INVALID_ACTION]


def test_nullable_write(server: InteractionServer, provider: FakeProvider) -> None:
    assert statuses(write(server, data_ib(apath(1, TEST, NULLABLE), 300))) == [Status.SUCCESS]
    assert provider.values[AttributePath(1, TEST, NULLABLE)] == 300
    assert statuses(write(server, data_ib(apath(1, TEST, NULLABLE), None))) == [Status.SUCCESS]
    assert provider.values[AttributePath(1, TEST, NULLABLE)] is None


def test_data_version_check(server: InteractionServer, provider: FakeProvider) -> None:
    assert statuses(write(server, data_ib(apath(1, TEST, SMALL), 9, version=3))) == [Status.DATA_VERSION_MISMATCH]
    current = provider.versions[(1, TEST)]
    assert statuses(write(server, data_ib(apath(1, TEST, SMALL), 9, version=current))) == [Status.SUCCESS]
    assert provider.versions[(1, TEST)] == 0xFFFF_FFF1


def test_several_paths_in_one_request(server: InteractionServer, provider: FakeProvider) -> None:
    outs = write(
        server,
        data_ib(apath(1, TEST, SMALL), 1),
        data_ib(apath(1, TEST, SMALL), 200),
        data_ib(apath(0, BASIC, LABEL), "porch"),
    )
    assert statuses(outs) == [Status.SUCCESS, Status.CONSTRAINT_ERROR, Status.SUCCESS]
    assert provider.transactions == ["begin", "end"]


def test_list_replace_and_append(server: InteractionServer, provider: FakeProvider) -> None:
    big = AttributePath(1, TEST, BIG_LIST)
    outs = write(
        server,
        data_ib(apath(1, TEST, BIG_LIST), []),
        data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"a"),
        data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"b"),
        data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), 5),  # a wrong item type fails alone
    )
    assert statuses(outs) == [Status.SUCCESS, Status.SUCCESS, Status.SUCCESS, Status.CONSTRAINT_ERROR]
    assert provider.values[big] == [b"a", b"b"]
    assert [op for _, op, _ in provider.writes] == [ListOperation.REPLACE, ListOperation.APPEND, ListOperation.APPEND]
    echoed = m.WriteResponse.decode(outs[0].payload).write_responses[1].path
    assert echoed.list_index is m.NULL


def test_chunked_write_across_messages(server: InteractionServer, provider: FakeProvider) -> None:
    big = AttributePath(1, TEST, BIG_LIST)
    version = provider.versions[(1, TEST)]
    # The SDK client's chunked list write: replace with an empty list, then appends in later messages,
    # each carrying the DataVersion it read before the write began.
    first = write(server, data_ib(apath(1, TEST, BIG_LIST), [], version), more_chunked_messages=True)
    assert statuses(first) == [Status.SUCCESS]
    assert first[0].expect_response and not first[0].close_exchange
    second = write(
        server,
        data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"one", version),
        data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"two", version),
        more_chunked_messages=True,
    )
    assert statuses(second) == [Status.SUCCESS, Status.SUCCESS]
    last = write(server, data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"three", version))
    assert statuses(last) == [Status.SUCCESS]
    assert last[0].close_exchange
    assert provider.values[big] == [b"one", b"two", b"three"]
    # One storage transaction per message, so an abandoned chunked write never leaves one open.
    assert provider.transactions == ["begin", "end"] * 3


def test_suppress_response_applies_to_the_last_chunk_only(server: InteractionServer) -> None:
    first = write(server, data_ib(apath(1, TEST, BIG_LIST), []), more_chunked_messages=True, suppress_response=True)
    assert statuses(first) == [Status.SUCCESS] and first[0].expect_response
    last = write(server, data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"z"), suppress_response=True)
    assert last == []


def test_append_without_its_list_is_busy(server: InteractionServer, provider: FakeProvider) -> None:
    # The SDK's chunking rule: appends continue the list begun (replaced) earlier in the same interaction.
    outs = write(server, data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"a"))
    assert statuses(outs) == [Status.BUSY]
    outs = write(
        server,
        data_ib(apath(1, TEST, BIG_LIST), []),
        data_ib(apath(1, TEST, SMALL), 1),
        data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"a"),
    )
    assert statuses(outs) == [Status.SUCCESS, Status.SUCCESS, Status.BUSY]
    assert provider.values[AttributePath(1, TEST, BIG_LIST)] == []


def test_concurrent_chunked_writes_of_one_list(server: InteractionServer, provider: FakeProvider) -> None:
    write(server, data_ib(apath(1, TEST, BIG_LIST), [b"1"]), more_chunked_messages=True, exchange=1)
    other = write(server, data_ib(apath(1, TEST, BIG_LIST), [b"2"]), exchange=2)
    assert statuses(other) == [Status.BUSY]
    assert statuses(write(server, data_ib(apath(1, TEST, SMALL), 4), exchange=3)) == [Status.SUCCESS]
    write(server, data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"1b"), exchange=1)
    assert provider.values[AttributePath(1, TEST, BIG_LIST)] == [b"1", b"1b"]
    assert statuses(write(server, data_ib(apath(1, TEST, BIG_LIST), [b"2"]), exchange=2)) == [Status.SUCCESS]


def test_suppress_response(server: InteractionServer, provider: FakeProvider) -> None:
    assert write(server, data_ib(apath(1, TEST, SMALL), 3), suppress_response=True) == []
    assert provider.values[AttributePath(1, TEST, SMALL)] == 3


def test_wildcard_write_path_is_invalid_action(server: InteractionServer, provider: FakeProvider) -> None:
    [out] = write(server, data_ib(apath(1, TEST, SMALL), 1), data_ib(apath(None, TEST, SMALL), 1))
    assert status_of(out) == Status.INVALID_ACTION
    assert provider.writes == []  # nothing applied from a refused message


def test_fabric_scoped_list_write(server: InteractionServer, provider: FakeProvider) -> None:
    outs = write(server, data_ib(apath(1, TEST, FABRIC_LIST), [{1: "mine"}]))
    assert statuses(outs) == [Status.SUCCESS]
    assert provider.values[AttributePath(1, TEST, FABRIC_LIST)] == [{1: "two", 0xFE: 2}, {1: "mine", 0xFE: 1}]
    # No accessing fabric (PASE before AddNOC): UNSUPPORTED_ACCESS (Core spec 8.7.3.2).
    request = m.WriteRequest(timed_request=False, write_requests=[data_ib(apath(1, TEST, FABRIC_LIST), [])])
    [out] = server.on_message(2, make_ctx(ADMIN, fabric=0), Op.WRITE_REQUEST, request.encode(), 0.0)
    assert statuses([out]) == [Status.UNSUPPORTED_ACCESS]


def test_end_write_failure_turns_successes_into_failures(server: InteractionServer, provider: FakeProvider) -> None:
    def broken_commit() -> None:
        raise OSError("disk full")

    provider.end_write = broken_commit  # type: ignore[method-assign]
    outs = write(server, data_ib(apath(1, TEST, SMALL), 1), data_ib(apath(1, TEST, SMALL), 900))
    assert statuses(outs) == [Status.FAILURE, Status.CONSTRAINT_ERROR]


# ---------------------------------------------------------------------------------------------------- timed


def timed(server: InteractionServer, timeout_ms: int, exchange: int = 1, now: float = 0.0) -> Outgoing:
    request = m.TimedRequest(timeout=timeout_ms).encode()
    [out] = server.on_message(exchange, make_ctx(), Op.TIMED_REQUEST, request, now)
    assert status_of(out) == Status.SUCCESS
    assert out.expect_response and not out.close_exchange
    assert out.response_timeout == timeout_ms / 1000
    return out


def test_timed_write(server: InteractionServer, provider: FakeProvider) -> None:
    timed(server, 500, now=10.0)
    outs = write(server, data_ib(apath(1, TEST, TIMED_ATTR), 4), timed_request=True, now=10.4)
    assert statuses(outs) == [Status.SUCCESS]
    assert provider.values[AttributePath(1, TEST, TIMED_ATTR)] == 4


def test_timed_write_too_late(server: InteractionServer, provider: FakeProvider) -> None:
    timed(server, 500, now=10.0)
    [out] = write(server, data_ib(apath(1, TEST, TIMED_ATTR), 4), timed_request=True, now=10.6)
    assert status_of(out) == Status.UNSUPPORTED_ACCESS  # the SDK's TimedHandler answer
    assert provider.writes == []


def test_timed_flag_without_timed_request(server: InteractionServer) -> None:
    [out] = write(server, data_ib(apath(1, TEST, TIMED_ATTR), 4), timed_request=True)
    assert status_of(out) == Status.TIMED_REQUEST_MISMATCH


def test_timed_request_then_untimed_write(server: InteractionServer) -> None:
    timed(server, 500)
    [out] = write(server, data_ib(apath(1, TEST, TIMED_ATTR), 4), timed_request=False)
    assert status_of(out) == Status.TIMED_REQUEST_MISMATCH


def test_timed_request_then_read_is_invalid_action(server: InteractionServer) -> None:
    timed(server, 500)
    request = m.ReadRequest(attribute_requests=[apath()], fabric_filtered=True).encode()
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request, 0.0)
    assert status_of(out) == Status.INVALID_ACTION


def test_timed_write_cannot_be_chunked(server: InteractionServer, provider: FakeProvider) -> None:
    timed(server, 1000)
    [out] = write(server, data_ib(apath(1, TEST, BIG_LIST), []), timed_request=True, more_chunked_messages=True)
    assert status_of(out) == Status.INVALID_ACTION
    assert provider.writes == []


def test_chunked_write_cannot_turn_timed(server: InteractionServer) -> None:
    write(server, data_ib(apath(1, TEST, BIG_LIST), []), more_chunked_messages=True)
    [out] = write(server, data_ib(apath(1, TEST, BIG_LIST, list_index=m.NULL), b"q"), timed_request=True)
    assert status_of(out) == Status.TIMED_REQUEST_MISMATCH


def test_timed_window_closed_by_the_exchange(server: InteractionServer) -> None:
    timed(server, 500)
    server.on_exchange_closed(1, failed=True)
    [out] = write(server, data_ib(apath(1, TEST, TIMED_ATTR), 4), timed_request=True)
    assert status_of(out) == Status.TIMED_REQUEST_MISMATCH
