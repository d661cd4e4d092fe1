"""Chunked reports (Core spec 8.4.3.3, 10.7.3): boundaries, list splitting, reassembly, aborts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, Status
from jfds_device.im.server import InteractionServer
from tests.im.fakes import (
    BASIC,
    BIG_LIST,
    LABEL,
    SUCCESS,
    TEST,
    FakeProvider,
    apath,
    big_list,
    drive_chunks,
    make_ctx,
    reassemble,
    status_of,
)

BIG = AttributePath(1, TEST, BIG_LIST)


def read_big(server: InteractionServer, *paths: m.AttributePathIB) -> list[m.ReportData]:
    ctx = make_ctx()
    request = m.ReadRequest(attribute_requests=list(paths) or [apath(1, TEST, BIG_LIST)], fabric_filtered=True)
    return drive_chunks(server, server.on_message(1, ctx, Op.READ_REQUEST, request.encode(), 0.0), ctx).reports


def single_report_size(items: list[bytes]) -> int:
    provider = FakeProvider()
    provider.values[BIG] = items
    [report] = read_big(InteractionServer(provider, max_payload=60_000))
    return len(report.encode())


def test_report_exactly_at_the_limit_is_one_message() -> None:
    items = big_list(20)
    size = single_report_size(items)
    provider = FakeProvider()
    provider.values[BIG] = items
    reports = read_big(InteractionServer(provider, max_payload=size))
    assert len(reports) == 1 and len(reports[0].encode()) == size
    assert reassemble(reports)[0][BIG] == items


def test_one_byte_less_splits_the_list() -> None:
    items = big_list(20)
    size = single_report_size(items)
    provider = FakeProvider()
    provider.values[BIG] = items
    reports = read_big(InteractionServer(provider, max_payload=size - 1))
    assert len(reports) == 2
    first, second = (r.attribute_reports for r in reports)
    # First the attribute with as many items as fit, then the rest appended one IB per item (the SDK's way).
    assert first[0].attribute_data.path.list_index is None
    assert first[0].attribute_data.data == items[:19]
    assert [ib.attribute_data.path.list_index for ib in second] == [m.NULL]
    assert second[0].attribute_data.data == items[19]
    assert reassemble(reports)[0][BIG] == items


def test_one_item_over_the_limit() -> None:
    size = single_report_size(big_list(20))
    provider = FakeProvider()
    provider.values[BIG] = big_list(21)
    reports = read_big(InteractionServer(provider, max_payload=size))
    assert len(reports) == 2
    assert reassemble(reports)[0][BIG] == big_list(21)


def test_list_needing_many_chunks() -> None:
    provider = FakeProvider()
    items = big_list(200, size=60)  # about 12.6 kB
    provider.values[BIG] = items
    reports = read_big(InteractionServer(provider, max_payload=1100))
    assert len(reports) >= 12
    assert all(r.more_chunked_messages for r in reports[:-1])
    assert reports[-1].suppress_response is True and reports[-1].more_chunked_messages is None
    assert reassemble(reports)[0][BIG] == items


def test_wildcard_read_with_a_big_list_reassembles_like_an_unchunked_read() -> None:
    provider = FakeProvider()
    provider.values[BIG] = big_list(60, size=50)
    reference = reassemble(read_big(InteractionServer(provider, max_payload=60_000), apath()))
    chunked = read_big(InteractionServer(provider, max_payload=600), apath())
    assert len(chunked) > 5
    assert reassemble(chunked) == reference


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(0, 80),
    size=st.integers(0, 200),
    budget=st.integers(256, 1500),
)
def test_any_list_reassembles(count: int, size: int, budget: int) -> None:
    provider = FakeProvider()
    items = big_list(count, size)
    provider.values[BIG] = items
    reports = read_big(InteractionServer(provider, max_payload=budget), apath(1))
    values, statuses = reassemble(reports)
    assert statuses == {}
    assert values[BIG] == items
    assert all(len(r.encode()) <= budget for r in reports)


def test_value_larger_than_a_message_reports_resource_exhausted() -> None:
    provider = FakeProvider()
    provider.values[AttributePath(0, BASIC, LABEL)] = "x" * 2000
    reports = read_big(InteractionServer(provider, max_payload=1100), apath(0, BASIC, LABEL), apath(1, TEST, 0))
    values, statuses = reassemble(reports)
    assert statuses == {AttributePath(0, BASIC, LABEL): Status.RESOURCE_EXHAUSTED}
    assert values == {AttributePath(1, TEST, 0): 5}


def start_chunked_read() -> tuple[InteractionServer, list[m.ReportData]]:
    provider = FakeProvider()
    provider.values[BIG] = big_list(100)
    server = InteractionServer(provider, max_payload=600)
    request = m.ReadRequest(attribute_requests=[apath(1, TEST, BIG_LIST)], fabric_filtered=True)
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request.encode(), 0.0)
    assert out.expect_response and not out.close_exchange
    return server, [m.ReportData.decode(out.payload)]


def test_client_error_status_ends_the_read() -> None:
    server, _ = start_chunked_read()
    failure = m.StatusResponse(status=Status.FAILURE).encode()
    assert server.on_message(1, make_ctx(), Op.STATUS_RESPONSE, failure, 0.0) == []
    # The exchange is forgotten: a late StatusResponse is unsolicited.
    [out] = server.on_message(1, make_ctx(), Op.STATUS_RESPONSE, SUCCESS, 0.0)
    assert status_of(out) == Status.INVALID_ACTION


def test_unexpected_message_mid_report_is_invalid_action() -> None:
    server, _ = start_chunked_read()
    request = m.ReadRequest(attribute_requests=[apath()], fabric_filtered=True)
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request.encode(), 0.0)
    assert status_of(out) == Status.INVALID_ACTION and out.close_exchange


def test_malformed_status_response_mid_report() -> None:
    server, _ = start_chunked_read()
    [out] = server.on_message(1, make_ctx(), Op.STATUS_RESPONSE, b"\x15\x18", 0.0)
    assert status_of(out) == Status.INVALID_ACTION


def test_exchange_failure_drops_the_read() -> None:
    server, _ = start_chunked_read()
    server.on_exchange_closed(1, failed=True)
    [out] = server.on_message(1, make_ctx(), Op.STATUS_RESPONSE, SUCCESS, 0.0)
    assert status_of(out) == Status.INVALID_ACTION


def test_other_exchanges_are_independent() -> None:
    server, _ = start_chunked_read()
    request = m.ReadRequest(attribute_requests=[apath(0, BASIC, LABEL)], fabric_filtered=True)
    [out] = server.on_message(2, make_ctx(), Op.READ_REQUEST, request.encode(), 0.0)
    assert out.exchange == 2 and out.close_exchange
    [next_chunk] = server.on_message(1, make_ctx(), Op.STATUS_RESPONSE, SUCCESS, 0.0)
    assert next_chunk.exchange == 1 and next_chunk.opcode is Op.REPORT_DATA
