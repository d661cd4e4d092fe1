"""The IM client (im/client.py), the client-side dispatcher (node/client_dispatch.py) and the peer connection
manager (node/peer_connections.py).

* Sans-IO: request encodings (checked with the CHIP SDK's own TLV reader), write chunking, report reassembly and
  error mapping, each interaction driven straight against our InteractionServer (no sockets, no clock).
* Routing and backoff: ExchangeDispatcher consumption rules, BackoffPolicy arithmetic.
* Two stacks (node/stack.py, the one the node runs) on a VirtualLink (node/links.py, no socket): PeerConnections
  opens CASE to a serving stack, reads BasicInformation, reuses the session, resumes it, backs off, reconnects when
  watched.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Hashable
from types import SimpleNamespace
from typing import Any

import pytest
from chip.tlv import TLVList as ChipTLVList
from chip.tlv import TLVReader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters.basic_information import schema as bi
from clusters.basic_information.server import BasicInformationServer
from jfds_device import errors
from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.codec.message import ProtocolId
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.model import AuthMode as SessionAuthMode  # the one AuthMode
from jfds_device.datamodel.acl import AclEntry
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from jfds_device.im import client, client_messages, interactions
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, RequestContext, Status
from jfds_device.im.server import InteractionServer, LocalExchange
from jfds_device.node.client_dispatch import ExchangeDispatcher
from jfds_device.node.links import VirtualLink
from jfds_device.node.peer_connections import (
    Backoff,
    BackoffPolicy,
    PeerId,
    PeerState,
    PeerUnreachableError,
    socket_address,
)
from jfds_device.node.stack import SessionBudget, Stack
from jfds_device.securechannel.case_identity import InMemoryResumptionStore
from jfds_device.transport.exchange import (
    CloseReason,
    ExchangeClosed,
    ExchangeRef,
    MessageReceived,
    SessionClosed,
)
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import SecureSession, SessionTable, UnsecuredSession
from tests.im.fakes import (
    BASIC,
    BIG_CMD,
    BIG_CMD_B,
    BIG_LIST,
    ECHO,
    ECHO_RESPONSE,
    FAIL_CMD,
    LABEL,
    SMALL,
    TEST,
    TIMED_ATTR,
    TIMED_CMD,
    FakeProvider,
    big_list,
    drive_chunks,
    make_ctx,
    reassemble,
)
from tests.node.fabric_support import identity
from tests.transport.pair import KEYS

# The IM client's API as one namespace: the asyncio client, its messages and results, its sans-IO interactions
# and the errors it raises.
c = SimpleNamespace(**{name: getattr(module, name) for module in (client, client_messages, interactions)
                       for name in module.__all__},
                    IMStatusError=errors.IMStatusError, InteractionError=errors.InteractionError,
                    ReportTooLargeError=errors.ReportTooLargeError)

BIG = AttributePath(1, TEST, BIG_LIST)

# ReadRequest (Core spec 10.7.2), decoded by hand: 15 { 36 00 [ 17 <24 02 00, 24 03 28, 24 04 01> 18,
# 17 <24 03 1f> 18 ] 18, 28 03 (FabricFiltered false), 36 04 [ 15 { 37 00 <24 01 00, 24 02 28> 18, 25 01 3412 } 18 ]
# 18, 24 ff 0c (InteractionModelRevision 12) } 18.
READ_REQUEST_HEX = (
    "1536001724020024032824040118172403" "1f1818280336041537002401002402281825013412181824ff0c18"
)  # fmt: skip


# ---------------------------------------------------------------------------------------------- helpers


def chip_decode(data: bytes) -> Any:
    """Decode with the CHIP SDK's Python TLV reader, lists as (tag, value) tuples: an independent check."""

    def plain(value: Any) -> Any:
        if isinstance(value, ChipTLVList):
            return [(tag, plain(v)) for tag, v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(TLVReader(data).get()["Any"])


def converse(server: InteractionServer, interaction: c.Interaction, ctx: RequestContext | None = None,
             key: Hashable = 1, now: float = 0.0) -> tuple[c.Interaction, int]:
    """Run a client interaction against the server on one exchange; returns it and the peer's message count."""
    ctx = ctx or make_ctx()
    step: c.Send | None = interaction.start()
    count = 0
    while step is not None:
        outs = server.on_message(key, ctx, step.opcode, step.payload, now)
        if not step.expect_response:
            assert outs == []
            break
        [out] = outs
        count += 1
        step = interaction.receive(out.opcode, out.payload)
        if step is None:
            assert out.close_exchange
    return interaction, count


def read(server: InteractionServer, *paths: c.PathLike, **kwargs: Any) -> c.ReadResult:
    interaction, _ = converse(server, c.ReadInteraction(c.build_read_request(paths, **kwargs)))
    assert interaction.done, interaction.error
    result: c.ReadResult = interaction.result
    return result


def write(server: InteractionServer, writes: list[c.AttributeWrite], timed_timeout_ms: int | None = None,
          max_payload: int = c.DEFAULT_MAX_PAYLOAD) -> tuple[list[c.AttributeStatus], int]:
    payloads = c.build_write_requests(writes, timed=timed_timeout_ms is not None, max_payload=max_payload)
    interaction, count = converse(server, c.WriteInteraction(payloads, timed_timeout_ms))
    assert interaction.done, interaction.error
    return c.summarize_write(writes, interaction.result), count


def invoke(server: InteractionServer, *commands: c.CommandRequest, timed_timeout_ms: int | None = None,
           ) -> list[c.InvokeResult]:
    request = c.build_invoke_request(commands, timed=timed_timeout_ms is not None)
    interaction, _ = converse(server, c.InvokeInteraction(request, timed_timeout_ms))
    assert interaction.done, interaction.error
    results: list[c.InvokeResult] = interaction.result
    return results


# ---------------------------------------------------------------------------------------------- encodings


def test_read_request_encoding() -> None:
    payload = c.build_read_request([(0, 0x28, 1), (None, 0x1F, None)], fabric_filtered=False,
                                   data_version_filters={(0, 0x28): 0x1234})
    # Core spec 10.7.2: AttributeRequests (0) of AttributePathIB *lists* (10.6.2: endpoint 2, cluster 3,
    # attribute 4), FabricFiltered (3), DataVersionFilters (4: {0 ClusterPathIB list, 1 version}), revision 0xFF.
    assert chip_decode(payload) == {
        0: [[(2, 0), (3, 0x28), (4, 1)], [(3, 0x1F)]],
        3: False,
        4: [{0: [(1, 0), (2, 0x28)], 1: 0x1234}],
        255: m.IM_REVISION,
    }
    assert payload.hex() == READ_REQUEST_HEX


def test_subscribe_and_timed_request_encoding() -> None:
    payload = c.build_subscribe_request([(0, 0x28, 5)], 1, 60, keep_subscriptions=False)
    assert chip_decode(payload) == {0: False, 1: 1, 2: 60, 3: [[(2, 0), (3, 0x28), (4, 5)]], 7: True, 255: 12}
    assert chip_decode(c.build_timed_request(500)) == {0: 500, 255: 12}
    with pytest.raises(LocalProtocolError):
        c.build_subscribe_request([(0, 0x28, 5)], 10, 5)
    with pytest.raises(LocalProtocolError):
        c.build_timed_request(0)


def test_write_request_encoding() -> None:
    [payload] = c.build_write_requests([c.AttributeWrite(0, 0x28, 5, "kitchen", data_version=7)])
    # Core spec 10.7.6: TimedRequest (1), WriteRequests (2) of AttributeDataIB {0 version, 1 path, 2 data}.
    assert chip_decode(payload) == {1: False, 2: [{0: 7, 1: [(2, 0), (3, 0x28), (4, 5)], 2: "kitchen"}], 255: 12}
    with pytest.raises(LocalProtocolError):
        c.build_write_requests([])


def test_invoke_request_encoding_numbers_a_batch() -> None:
    single = c.build_invoke_request([c.CommandRequest(1, 6, 2)], timed=True)
    # Core spec 10.7.9: SuppressResponse (0), TimedRequest (1), InvokeRequests (2) of CommandDataIB
    # {0 CommandPathIB list (endpoint 0, cluster 1, command 2), 1 fields}; an empty struct for no fields.
    assert chip_decode(single) == {0: False, 1: True, 2: [{0: [(0, 1), (1, 6), (2, 2)], 1: {}}], 255: 12}
    batch = m.InvokeRequest.decode(c.build_invoke_request(
        [c.CommandRequest(1, TEST, ECHO, {0: 1}), c.CommandRequest(1, TEST, ECHO, {0: 3})]))
    assert [ib.command_ref for ib in batch.invoke_requests] == [0, 1]
    with pytest.raises(LocalProtocolError):
        c.build_invoke_request([])


def test_struct_values_are_encoded_through_their_schema() -> None:
    appearance = bi.ProductAppearanceStruct(finish=bi.ProductFinishEnum.MATTE, primary_color=bi.ColorEnum.BLACK)
    [payload] = c.build_write_requests([c.AttributeWrite(0, 0x28, 0x14, [appearance, appearance])])
    [ib] = m.WriteRequest.decode(payload).write_requests
    assert ib.data == [appearance.to_tlv(), appearance.to_tlv()]


# ---------------------------------------------------------------------------------------------- write chunking


def test_small_list_goes_whole() -> None:
    [payload] = c.build_write_requests([c.AttributeWrite(1, TEST, BIG_LIST, big_list(3))])
    [ib] = m.WriteRequest.decode(payload).write_requests
    assert ib.path.list_index is None and ib.data == big_list(3)


def test_big_list_is_replaced_then_appended_like_the_sdk() -> None:
    items = big_list(60)
    payloads = c.build_write_requests([c.AttributeWrite(1, TEST, BIG_LIST, items, data_version=9)])
    assert len(payloads) > 1 and all(len(p) <= c.DEFAULT_MAX_PAYLOAD for p in payloads)
    requests = [m.WriteRequest.decode(p) for p in payloads]
    assert [r.more_chunked_messages for r in requests] == [True] * (len(requests) - 1) + [None]
    ibs = [ib for r in requests for ib in r.write_requests]
    assert (ibs[0].path.list_index, ibs[0].data, ibs[0].data_version) == (None, [], 9)  # replace-all with []
    assert all(ib.path.list_index is m.NULL and ib.data_version is None for ib in ibs[1:])
    assert [ib.data for ib in ibs[1:]] == items

    provider = FakeProvider()
    provider.versions[(1, TEST)] = 9
    server = InteractionServer(provider)
    statuses, responses = write(server, [c.AttributeWrite(1, TEST, BIG_LIST, items, data_version=9)])
    assert statuses == [c.AttributeStatus(BIG, Status.SUCCESS)]
    assert responses == len(payloads) and provider.values[BIG] == items


def test_conditional_chunked_list_write_sends_its_replace_all_alone() -> None:
    """The DataVersion rides on the replace-all only, and no append shares its message (a refused replace would
    still let them land on the list the peer kept); an unconditional list packs as before."""
    items = big_list(60)
    chunks = c.build_write_chunks([c.AttributeWrite(0, BASIC, LABEL, "hall"),
                                   c.AttributeWrite(1, TEST, BIG_LIST, items, data_version=9)])
    first = m.WriteRequest.decode(chunks[0].payload).write_requests
    assert [(ib.path.attribute, ib.path.list_index, ib.data, ib.data_version) for ib in first] == [
        (LABEL, None, "hall", None), (BIG_LIST, None, [], 9)]
    assert chunks[0].guarded == {BIG} and all(not chunk.guarded for chunk in chunks[1:])
    appends = [ib for chunk in chunks[1:] for ib in m.WriteRequest.decode(chunk.payload).write_requests]
    assert [ib.data for ib in appends] == items and all(ib.data_version is None for ib in appends)
    unconditional = c.build_write_chunks([c.AttributeWrite(1, TEST, BIG_LIST, items)])
    assert len(m.WriteRequest.decode(unconditional[0].payload).write_requests) > 1
    assert all(not chunk.guarded for chunk in unconditional)
    small = c.build_write_chunks([c.AttributeWrite(1, TEST, BIG_LIST, big_list(3), data_version=9)])
    assert [chunk.guarded for chunk in small] == [frozenset()]  # one IB, nothing follows it


def test_refused_conditional_replace_ends_a_chunked_write_before_any_append() -> None:
    """Core spec 8.7.3: the peer answers DATA_VERSION_MISMATCH for the replace-all; the appends are not sent and
    a StatusResponse(FAILURE) ends the write, so the peer's list stays as it was."""
    provider = FakeProvider()
    provider.values[BIG] = [b"theirs"]
    server = InteractionServer(provider)
    stale = provider.versions[(1, TEST)] - 1
    writes = [c.AttributeWrite(1, TEST, BIG_LIST, big_list(60), data_version=stale)]
    chunks = c.build_write_chunks(writes)
    interaction = c.WriteInteraction([ch.payload for ch in chunks], guards=[ch.guarded for ch in chunks])
    step = interaction.start()
    [out] = server.on_message(1, make_ctx(), step.opcode, step.payload, 0.0)
    end = interaction.receive(out.opcode, out.payload)
    assert end is not None and end.opcode is Op.STATUS_RESPONSE and not end.expect_response
    assert m.StatusResponse.decode(end.payload).status == Status.FAILURE
    # The server drops the write and closes the exchange (as the CHIP SDK's WriteHandler does: InvalidAction).
    [closing] = server.on_message(1, make_ctx(), end.opcode, end.payload, 0.0)
    assert closing.close_exchange and m.StatusResponse.decode(closing.payload).status == Status.INVALID_ACTION
    assert interaction.done and provider.values[BIG] == [b"theirs"]
    [status] = c.summarize_write(writes, interaction.result)
    assert status.status == Status.DATA_VERSION_MISMATCH
    # The same write with the version the peer holds goes through, chunk after chunk.
    writes = [c.AttributeWrite(1, TEST, BIG_LIST, big_list(60), data_version=provider.versions[(1, TEST)])]
    statuses, responses = write(server, writes)
    assert statuses == [c.AttributeStatus(BIG, Status.SUCCESS)] and provider.values[BIG] == big_list(60)
    assert responses == len(c.build_write_chunks(writes))


def test_write_guards_must_match_the_payloads() -> None:
    with pytest.raises(LocalProtocolError, match="guard"):
        c.WriteInteraction([b"a", b"b"], guards=[frozenset()])


def test_mixed_write_keeps_order_and_reports_per_attribute() -> None:
    provider = FakeProvider()
    server = InteractionServer(provider)
    writes = [
        c.AttributeWrite(0, BASIC, LABEL, "hall"),
        c.AttributeWrite(1, TEST, BIG_LIST, big_list(40)),
        c.AttributeWrite(1, TEST, SMALL, 101),  # above the attribute's maximum of 100
    ]
    statuses, _ = write(server, writes)
    assert [s.status for s in statuses] == [Status.SUCCESS, Status.SUCCESS, Status.CONSTRAINT_ERROR]
    assert provider.values[AttributePath(0, BASIC, LABEL)] == "hall" and provider.values[BIG] == big_list(40)
    with pytest.raises(c.IMStatusError) as err:
        statuses[2].check()
    assert err.value.status == Status.CONSTRAINT_ERROR


def test_write_limits() -> None:
    with pytest.raises(LocalProtocolError, match="timed write"):
        c.build_write_requests([c.AttributeWrite(1, TEST, BIG_LIST, big_list(60))], timed=True)
    with pytest.raises(LocalProtocolError, match="does not fit"):
        c.build_write_requests([c.AttributeWrite(1, TEST, LABEL, "x" * 2000)])
    with pytest.raises(LocalProtocolError, match="item"):
        c.build_write_requests([c.AttributeWrite(1, TEST, BIG_LIST, [b"x" * 2000])])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(0, 80), size=st.integers(1, 200), max_payload=st.integers(300, 1200))
def test_list_write_round_trips_through_the_server(count: int, size: int, max_payload: int) -> None:
    provider = FakeProvider()
    items = [bytes([i % 256]) * size for i in range(count)]
    payloads = c.build_write_requests([c.AttributeWrite(1, TEST, BIG_LIST, items)], max_payload=max_payload)
    assert all(len(p) <= max_payload for p in payloads)
    statuses, _ = write(InteractionServer(provider), [c.AttributeWrite(1, TEST, BIG_LIST, items)],
                        max_payload=max_payload)
    assert statuses[0].ok and provider.values[BIG] == items


# ---------------------------------------------------------------------------------------------- reports


def test_chunked_list_read_is_reassembled() -> None:
    provider = FakeProvider()
    provider.values[BIG] = big_list(200, size=60)  # about 12.6 kB: many chunks, replace + appends
    interaction, messages = converse(InteractionServer(provider), c.ReadInteraction(
        c.build_read_request([(1, TEST, BIG_LIST)])))
    assert messages > 10
    assert interaction.result.value(1, TEST, BIG_LIST) == provider.values[BIG]
    assert interaction.result.data_versions == {(1, TEST): provider.versions[(1, TEST)]}


def test_wildcard_read_matches_the_reference_reassembly() -> None:
    provider = FakeProvider()
    provider.values[BIG] = big_list(50)
    server = InteractionServer(provider, max_payload=400)
    result = read(server, (None, None, None))
    ctx = make_ctx()
    request = m.ReadRequest(attribute_requests=[m.AttributePathIB()], fabric_filtered=True).encode()
    reports = drive_chunks(server, server.on_message(2, ctx, Op.READ_REQUEST, request, 0.0), ctx).reports
    values, statuses = reassemble(reports)
    assert result.attributes == values and {p: s.status for p, s in result.statuses.items()} == statuses
    assert result.value(0, BASIC, LABEL) == "kitchen"


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 120), size=st.integers(1, 200), max_payload=st.integers(256, 1500))
def test_list_read_round_trips(count: int, size: int, max_payload: int) -> None:
    provider = FakeProvider()
    provider.values[BIG] = [bytes([i % 256]) * size for i in range(count)]
    result = read(InteractionServer(provider, max_payload=max_payload), (1, TEST, BIG_LIST), (0, BASIC, LABEL))
    assert result.value(1, TEST, BIG_LIST) == provider.values[BIG]
    assert result.value(0, BASIC, LABEL) == "kitchen"


def test_report_assembler_rejects_what_a_report_cannot_say() -> None:
    path = m.AttributePathIB(endpoint=1, cluster=TEST, attribute=BIG_LIST, list_index=m.NULL)
    append = m.AttributeReportIB(attribute_data=m.AttributeDataIB(data_version=1, path=path, data=b"x"))
    with pytest.raises(RemoteProtocolError, match="append"):
        c.ReportAssembler().feed(m.ReportData(attribute_reports=[append]))
    wildcard = m.AttributeReportIB(attribute_data=m.AttributeDataIB(path=m.AttributePathIB(cluster=1), data=1))
    with pytest.raises(RemoteProtocolError, match="concrete"):
        c.ReportAssembler().feed(m.ReportData(attribute_reports=[wildcard]))


def _big_list_read(provider: FakeProvider, max_report_bytes: int) -> tuple[c.ReadInteraction, int]:
    interaction = c.ReadInteraction(c.build_read_request([(1, TEST, BIG_LIST)]), max_report_bytes=max_report_bytes)
    done, messages = converse(InteractionServer(provider), interaction)
    assert isinstance(done, c.ReadInteraction)
    return done, messages


def test_a_chunked_report_is_bounded_at_exactly_its_limit(caplog: pytest.LogCaptureFixture) -> None:
    provider = FakeProvider()
    provider.values[BIG] = big_list(200, size=60)  # about 12.6 kB in many chunks
    whole, messages = _big_list_read(provider, c.DEFAULT_MAX_REPORT_BYTES)
    size = whole._assembler.budget.received
    assert whole.done and messages > 10 and 12_000 < size < c.DEFAULT_MAX_REPORT_BYTES

    exact, _ = _big_list_read(provider, size)  # the bound counts every chunk's IM payload, inclusive
    assert exact.done and exact.result.value(1, TEST, BIG_LIST) == provider.values[BIG]

    caplog.set_level("WARNING", logger="jfds_device.im.client_messages")
    over, answered = _big_list_read(provider, size - 1)
    # The last chunk passed the bound: no result, the error says so, the peer got RESOURCE_EXHAUSTED (converse
    # checked that our StatusResponse ended the server's side: it answered nothing more), and one warning.
    assert over.failed and not over.done and over.result is None and answered == messages
    error = over.error
    assert isinstance(error, c.ReportTooLargeError) and isinstance(error, RemoteProtocolError)
    assert (error.received, error.limit, error.chunks, error.status) == (size, size - 1, messages,
                                                                         Status.RESOURCE_EXHAUSTED)
    assert "exceeds the" in str(error)
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "ending the interaction" in caplog.text
    with pytest.raises(LocalProtocolError, match="is over"):
        over.receive(Op.REPORT_DATA, b"")


def test_a_peer_that_never_stops_chunking_is_cut_off_with_resource_exhausted() -> None:
    """A hostile or broken peer: endless ReportData chunks, each with MoreChunkedMessages, each appending 1 kB."""
    limit = 64 * 1024
    interaction = c.ReadInteraction(c.build_read_request([(1, TEST, BIG_LIST)]), max_report_bytes=limit)
    interaction.start()
    path = m.AttributePathIB(endpoint=1, cluster=TEST, attribute=BIG_LIST)
    first = m.AttributeReportIB(attribute_data=m.AttributeDataIB(data_version=1, path=path, data=[]))
    appended = m.AttributePathIB(endpoint=1, cluster=TEST, attribute=BIG_LIST, list_index=m.NULL)
    item = m.AttributeReportIB(attribute_data=m.AttributeDataIB(data_version=1, path=appended, data=b"\xee" * 1000))
    chunks = [m.ReportData(attribute_reports=[first], more_chunked_messages=True).encode()]
    chunk = m.ReportData(attribute_reports=[item], more_chunked_messages=True).encode()
    answers = []
    for n in range(10_000):
        step = interaction.receive(Op.REPORT_DATA, chunks[0] if n == 0 else chunk)
        assert step is not None
        answers.append(m.StatusResponse.decode(step.payload).status)
        if interaction.failed:
            break
    assert answers[-1] == Status.RESOURCE_EXHAUSTED and set(answers[:-1]) == {Status.SUCCESS}
    assert len(answers) <= limit // len(chunk) + 2  # cut off at the bound, not after 10 000 chunks
    assert len(interaction._assembler.result.attributes[AttributePath(1, TEST, BIG_LIST)]) < len(answers)
    assert step.expect_response is False  # the interaction is over: nothing more is awaited


def test_subscribe_priming_and_chunked_invoke_responses_are_bounded_too() -> None:
    provider = FakeProvider()
    provider.values[BIG] = big_list(200, size=60)
    subscribe = c.SubscribeInteraction(c.build_subscribe_request([(1, TEST, BIG_LIST)], 0, 10),
                                       max_report_bytes=4096)
    subscribe, _ = converse(InteractionServer(provider), subscribe)
    assert isinstance(subscribe.error, c.ReportTooLargeError) and not subscribe.done

    commands = [c.CommandRequest(1, TEST, BIG_CMD, {0: 700}), c.CommandRequest(1, TEST, BIG_CMD_B, {0: 700})]
    invoke_ = c.InvokeInteraction(c.build_invoke_request(commands), max_report_bytes=1000)
    invoke_, _ = converse(InteractionServer(FakeProvider()), invoke_)
    assert isinstance(invoke_.error, c.ReportTooLargeError) and not invoke_.done
    with pytest.raises(LocalProtocolError):
        c.ReportAssembler(0)


# ---------------------------------------------------------------------------------------------- errors


def test_attribute_status_is_raised_on_access() -> None:
    result = read(InteractionServer(FakeProvider()), (1, TEST, 0x77), (0, BASIC, LABEL))
    assert result.statuses[AttributePath(1, TEST, 0x77)].status == Status.UNSUPPORTED_ATTRIBUTE
    with pytest.raises(c.IMStatusError, match="UNSUPPORTED_ATTRIBUTE") as err:
        result.value(1, TEST, 0x77)
    assert (err.value.status, err.value.cluster_status) == (Status.UNSUPPORTED_ATTRIBUTE, None)
    with pytest.raises(KeyError):
        result.value(0, BASIC, 0x10)


def test_status_response_refusing_a_read_is_an_im_status_error() -> None:
    bad = m.AttributePathIB(endpoint=0, cluster=BASIC, attribute=LABEL, list_index=m.NULL)  # no ListIndex in reads
    interaction, _ = converse(InteractionServer(FakeProvider()), c.ReadInteraction(c.build_read_request([bad])))
    assert isinstance(interaction.error, c.IMStatusError) and interaction.error.status == Status.INVALID_ACTION


def test_invoke_results_and_errors() -> None:
    server = InteractionServer(FakeProvider())
    [echo] = invoke(server, c.CommandRequest(1, TEST, ECHO, {0: 42}))
    assert (echo.path.command, echo.fields, echo.ok) == (ECHO_RESPONSE, {0: 42}, True)
    [failed] = invoke(server, c.CommandRequest(1, TEST, FAIL_CMD))
    with pytest.raises(c.IMStatusError) as err:
        failed.check()
    assert (err.value.status, err.value.cluster_status) == (Status.FAILURE, 5)
    [untimed] = invoke(server, c.CommandRequest(1, TEST, TIMED_CMD))
    assert untimed.status == Status.NEEDS_TIMED_INTERACTION
    [timed] = invoke(server, c.CommandRequest(1, TEST, TIMED_CMD), timed_timeout_ms=1000)
    assert timed.ok and timed.fields is None


def test_chunked_invoke_response_is_acknowledged_and_collected() -> None:
    commands = [c.CommandRequest(1, TEST, BIG_CMD, {0: 700}), c.CommandRequest(1, TEST, BIG_CMD_B, {0: 700})]
    interaction, messages = converse(InteractionServer(FakeProvider()),
                                     c.InvokeInteraction(c.build_invoke_request(commands)))
    results: list[c.InvokeResult] = interaction.result
    assert messages == 2 and [r.command_ref for r in results] == [0, 1]
    assert all(r.ok and r.fields == {0: b"\xab" * 700} for r in results)


def test_timed_write() -> None:
    server = InteractionServer(FakeProvider())
    [untimed], _ = write(server, [c.AttributeWrite(1, TEST, TIMED_ATTR, 3)])
    assert untimed.status == Status.NEEDS_TIMED_INTERACTION
    [timed], _ = write(server, [c.AttributeWrite(1, TEST, TIMED_ATTR, 3)], timed_timeout_ms=500)
    assert timed.ok


def test_refused_timed_request_ends_without_a_reply() -> None:
    interaction = c.WriteInteraction([b"unused"], timed_timeout_ms=100)
    assert interaction.start().opcode is Op.TIMED_REQUEST
    assert interaction.receive(Op.STATUS_RESPONSE, c.build_status_response(Status.UNSUPPORTED_ACCESS)) is None
    assert isinstance(interaction.error, c.IMStatusError) and interaction.error.status == Status.UNSUPPORTED_ACCESS


def test_malformed_or_unexpected_messages_fail_with_invalid_action() -> None:
    for opcode, payload, error in (
        (Op.REPORT_DATA, b"\x15", DecodeError),
        (Op.WRITE_RESPONSE, m.WriteResponse(write_responses=[]).encode(), RemoteProtocolError),
        (0x77, b"", RemoteProtocolError),
        (Op.STATUS_RESPONSE, c.build_status_response(Status.SUCCESS), RemoteProtocolError),
    ):
        interaction = c.ReadInteraction(c.build_read_request([(0, 0x28, 1)]))
        interaction.start()
        reply = interaction.receive(opcode, payload)
        assert reply == c.Send(Op.STATUS_RESPONSE, c.build_status_response(Status.INVALID_ACTION), False)
        assert isinstance(interaction.error, error) and interaction.failed
        with pytest.raises(LocalProtocolError):
            interaction.receive(opcode, payload)


def test_unknown_status_code_keeps_its_number() -> None:
    assert str(c.IMStatusError(0xEE, 3)) == "0xEE (cluster status 0x03)"


# ---------------------------------------------------------------------------------------------- subscriptions


def test_subscribe_then_change_report() -> None:
    provider = FakeProvider()
    server = InteractionServer(provider, subscription_ids=lambda: 0x5EED)
    interaction, _ = converse(server, c.SubscribeInteraction(c.build_subscribe_request([(0, BASIC, LABEL)], 0, 30)))
    established: c.SubscribeResult = interaction.result
    assert (established.subscription_id, established.max_interval) == (0x5EED, 30)
    assert established.report.value(0, BASIC, LABEL) == "kitchen"

    provider.set_value(AttributePath(0, BASIC, LABEL), "hall")
    [out] = server.on_timer(1.0)
    assert out.new_exchange and isinstance(out.exchange, LocalExchange)
    report = c.ReadInteraction(subscription_id=0x5EED)
    ack = report.receive(out.opcode, out.payload)
    assert ack == c.Send(Op.STATUS_RESPONSE, c.build_status_response(Status.SUCCESS), expect_response=False)
    assert report.done and report.result.value(0, BASIC, LABEL) == "hall"
    assert server.on_message(out.exchange, make_ctx(), ack.opcode, ack.payload, 1.0) == []

    stranger = c.ReadInteraction(subscription_id=0x1)
    refused = stranger.receive(Op.REPORT_DATA, m.ReportData(subscription_id=0x5EED).encode())
    assert refused == c.Send(Op.STATUS_RESPONSE, c.build_status_response(Status.INVALID_SUBSCRIPTION), False)
    with pytest.raises(LocalProtocolError):
        c.ReadInteraction(subscription_id=1).start()


# ---------------------------------------------------------------------------------------------- routing, backoff


def _secure(table: SessionTable) -> SecureSession:
    enc, dec = KEYS.for_role(True)
    return table.add_secure(peer_session_id=1, encrypt_key=enc, decrypt_key=dec, auth_mode=SessionAuthMode.CASE,
                            peer_addr=("::1", 5540, 0, 0), now=0.0)


def _message(ref: ExchangeRef, opcode: int, payload: bytes = b"", new: bool = False,
             protocol: int = ProtocolId.INTERACTION_MODEL) -> MessageReceived:
    return MessageReceived(ref, ref.session, protocol, opcode, payload, new)


def test_dispatcher_consumes_only_client_side_events() -> None:
    table = SessionTable(rng=random.Random(1))
    session = _secure(table)
    ours, theirs = ExchangeRef(session, 7, True), ExchangeRef(session, 8, False)
    dispatcher = ExchangeDispatcher()
    got: list[Any] = []
    dispatcher.watch(ours, got.append)
    assert dispatcher.dispatch(_message(ours, Op.REPORT_DATA))
    assert not dispatcher.dispatch(_message(theirs, Op.READ_REQUEST, new=True))  # the node's server takes it
    dispatcher.unwatch(ours)
    assert dispatcher.dispatch(ExchangeClosed(ours, CloseReason.CLOSED))  # still ours after unwatch, once
    assert not dispatcher.dispatch(ExchangeClosed(ours, CloseReason.CLOSED))
    assert not dispatcher.dispatch(ExchangeClosed(theirs, CloseReason.CLOSED))
    assert [type(e) for e in got] == [MessageReceived]

    # A closed exchange that is unwatched afterwards leaves nothing behind.
    dispatcher.watch(ours, got.append)
    assert dispatcher.dispatch(ExchangeClosed(ours, CloseReason.TIMEOUT))
    dispatcher.unwatch(ours)
    assert not dispatcher.dispatch(ExchangeClosed(ours, CloseReason.CLOSED))


def test_dispatcher_routes_reports_by_subscription_and_observes_session_close() -> None:
    table = SessionTable(rng=random.Random(2))
    session, other = _secure(table), _secure(table)
    dispatcher = ExchangeDispatcher()
    reports: list[Any] = []
    closed: list[Any] = []
    remove = dispatcher.add_report_handler(session, 0x42, reports.append)
    # Our subscription lives on ``session``: the session table keeps it longest (transport/eviction.py).
    assert dispatcher.has_report_routes(session) and not dispatcher.has_report_routes(other)
    dispatcher.add_session_listener(closed.append)
    report = m.ReportData(subscription_id=0x42).encode()
    assert dispatcher.dispatch(_message(ExchangeRef(session, 1, False), Op.REPORT_DATA, report, new=True))
    assert not dispatcher.dispatch(_message(ExchangeRef(other, 1, False), Op.REPORT_DATA, report, new=True))
    unknown = m.ReportData(subscription_id=0x43).encode()
    assert not dispatcher.dispatch(_message(ExchangeRef(session, 2, False), Op.REPORT_DATA, unknown, new=True))
    assert not dispatcher.dispatch(_message(ExchangeRef(session, 3, False), Op.REPORT_DATA, b"\x00", new=True))
    assert not dispatcher.dispatch(SessionClosed(session))  # the node must see it too
    assert [type(e) for e in reports] == [MessageReceived, SessionClosed] and closed == [session]
    assert not dispatcher.has_report_routes(session)  # the session's close took its routes along
    remove()
    remove()  # idempotent
    assert not dispatcher.dispatch(_message(ExchangeRef(session, 4, False), Op.REPORT_DATA, report, new=True))


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.25)
    assert [policy.delay(n, 0.5) for n in (1, 2, 3, 4, 7, 8, 100)] == [1, 2, 4, 8, 60, 60, 60]
    assert (policy.delay(3, 0.0), policy.delay(3, 1.0)) == (3.0, 5.0)
    backoff = Backoff(policy)
    assert backoff.wait(0.0) == 0.0
    assert backoff.failed(10.0, 0.5) == 1.0 and backoff.wait(10.5) == 0.5
    assert backoff.failed(11.0, 0.5) == 2.0 and backoff.retry_at == 13.0 and backoff.failures == 2
    backoff.succeeded()
    assert (backoff.failures, backoff.wait(0.0)) == (0, 0.0)
    for bad in (dict(initial=0), dict(factor=0.5), dict(maximum=0.5), dict(jitter=1.0)):
        with pytest.raises(LocalProtocolError):
            BackoffPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        policy.delay(0, 0.5)


def test_socket_address_keeps_scopes() -> None:
    assert socket_address("fe80::1%7", 5540) == ("fe80::1", 5540, 0, 7)
    assert socket_address("fe80::1%lo", 5540) == ("fe80::1", 5540, 0, 1)
    assert socket_address("fd00::2", 5541) == ("fd00::2", 5541, 0, 0)
    assert socket_address("10.0.0.1", 5540) == ("10.0.0.1", 5540)


# ---------------------------------------------------------------------------------------------- over loopback

SERVER_NODE, CLIENT_NODE = 0x0000_0000_0000_0055, 0x0000_0000_0000_7777
ROOT = DeviceType(device_type=0x0016, revision=3)
BI = bi.CLUSTER_ID


class StaticAcl:
    def __init__(self, *entries: AclEntry) -> None:
        self.entries = entries

    def acl_entries(self) -> tuple[AclEntry, ...]:
        return self.entries


class MiniNode:
    """A serving node: the node's ``Stack`` over a BasicInformation data model (CASE responder, IM server, and the
    client side: replies to our exchanges go to it first), on ``link`` at a host of its own."""

    hosts = iter(range(1, 1000))

    def __init__(self, link: VirtualLink | None = None, max_payload: int = c.DEFAULT_MAX_PAYLOAD,
                 node_id: int = SERVER_NODE, admin: int = CLIENT_NODE, mrp: MrpParameters | None = None) -> None:
        self.link = link or VirtualLink()
        self.host = f"fd00:4a46::{next(self.hosts):x}"
        self.mrp = mrp
        self.node = Node()
        self.node.add_endpoint(0, [ROOT], [BasicInformationServer()])
        self.node.set_acl_source(StaticAcl(AclEntry(1, Privilege.ADMINISTER, AuthMode.CASE, (admin,))))
        self.identity = identity(node_id)
        self.resumption = InMemoryResumptionStore()
        self.resolver = FakeResolver()
        self.max_payload = max_payload

    async def start(self) -> None:
        self.stack = Stack(data_model=self.node, max_payload=self.max_payload, identities=lambda: [self.identity],
                           resumption=self.resumption, resolver=self.resolver, local_mrp=self.mrp,
                           budget=SessionBudget(rng=random.Random(5)))
        await self.stack.open(self.link.attach(self.host))
        self.im, self.sessions = self.stack.im, self.stack.sessions
        self.peers, self.client = self.stack.peers, self.stack.client

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.stack.endpoint.local_address[1])

    def close(self) -> None:
        """Gone without a word (a crash): the link loses whatever is sent to it from now on."""
        self.stack.endpoint.close()

    async def stop(self) -> None:
        await self.stack.close()

    def close_sessions(self) -> None:
        """CloseSession to every peer, as the node does on RemoveFabric."""
        for session in self.sessions.secure_sessions():
            self.stack.close_session(session)


class FakeResolver:
    def __init__(self, *addresses: tuple[str, int]) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[bytes | int, int]] = []

    async def resolve_operational(self, compressed_fabric_id: bytes | int, node_id: int,
                                  timeout: float = 3.0) -> list[tuple[str, int]]:
        self.calls.append((compressed_fabric_id, node_id))
        return list(self.addresses)


class Client:
    """Our node's client side: a client-only ``Stack`` (its PeerConnections and InteractionClient) on ``link``."""

    def __init__(self, link: VirtualLink, resolver: FakeResolver, resumption: InMemoryResumptionStore,
                 mrp: MrpParameters | None = None, backoff: BackoffPolicy | None = None) -> None:
        self.link, self.resolver, self.resumption, self.mrp, self.backoff = link, resolver, resumption, mrp, backoff
        self.identity = identity(CLIENT_NODE)

    async def start(self) -> Client:
        self.stack = Stack(identities=lambda: [self.identity], resumption=self.resumption, resolver=self.resolver,
                           local_mrp=self.mrp, peer_backoff=self.backoff)
        await self.stack.open(self.link.attach("fd00:4a46::c1"))
        self.endpoint, self.peers, self.im = self.stack.endpoint, self.stack.peers, self.stack.client
        self.states: list[PeerState] = []
        self.peers.add_listener(lambda peer, state: self.states.append(state))
        return self

    async def close(self) -> None:
        await self.stack.close()


PEER = PeerId(1, SERVER_NODE)


@pytest.fixture
async def server() -> AsyncIterator[MiniNode]:
    node = MiniNode(max_payload=256)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def client(server: MiniNode) -> AsyncIterator[Client]:
    started = await Client(server.link, FakeResolver(server.address), InMemoryResumptionStore()).start()
    try:
        yield started
    finally:
        await started.close()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_case_connect_reads_basic_information_and_reuses_the_session(server: MiniNode, client: Client) -> None:
    session = await client.peers.connect(PEER)
    assert client.peers.state(PEER) is PeerState.REACHABLE and client.states == [PeerState.CONNECTING,
                                                                                 PeerState.REACHABLE]
    assert (session.peer_node_id, session.local_node_id, session.auth_mode) == (SERVER_NODE, CLIENT_NODE,
                                                                                SessionAuthMode.CASE)
    result = await client.im.read(session, [(0, BI, bi.VENDOR_NAME), (0, BI, bi.PRODUCT_NAME), (0, BI, bi.VENDOR_ID)])
    assert result.value(0, BI, bi.VENDOR_NAME) == "jfds-device"
    assert result.value(0, BI, bi.PRODUCT_NAME) == "JFDS Device"
    assert result.value(0, BI, bi.VENDOR_ID) == 0xFFF1
    assert await client.peers.connect(PEER) is session and len(client.resolver.calls) == 1
    status = client.peers.status(PEER)
    assert (status.resumed, status.failures, status.address) == (False, 0, socket_address(*server.address))
    [server_session] = server.sessions.secure_sessions()
    assert server_session.peer_node_id == CLIENT_NODE

    # A whole-cluster wildcard read comes in many chunks (the server's payload limit is 256 bytes).
    everything = await client.im.read(session, [(0, BI, None)])
    assert everything.value(0, BI, 0xFFFB) == sorted(a for a in everything.value(0, BI, 0xFFFB))
    assert len(everything.attributes) > 15


async def test_a_session_evicted_for_room_reconnects_without_a_reachability_change(server: MiniNode,
                                                                                    client: Client) -> None:
    """Our outbound budget evicting a peer's session is not the peer going away: listeners (the reconciler verifies
    a peer on REACHABLE) hear nothing, and the next connect sets up a session again (resumed)."""
    table = client.endpoint.manager.sessions
    table.max_outbound_sessions = 1
    first = await client.peers.connect(PEER)
    assert client.states == [PeerState.CONNECTING, PeerState.REACHABLE]
    table.add_secure(peer_session_id=7, encrypt_key=bytes(16), decrypt_key=bytes(16), auth_mode=SessionAuthMode.CASE,
                     peer_addr=socket_address(*server.address), now=client.endpoint.now(), is_initiator=True)
    client.endpoint.transmit()  # the manager reports SessionClosed; the dispatcher delivers it
    await wait_for(lambda: client.peers.session(PEER) is None)
    assert first.evicted and table.evictions["outbound"] == 1
    assert client.peers.state(PEER) is PeerState.REACHABLE and client.states == [PeerState.CONNECTING,
                                                                                 PeerState.REACHABLE]
    second = await client.peers.connect(PEER)  # evicts the stand-in session in turn
    assert second is not first and client.peers.status(PEER).resumed
    assert await client.im.read_attribute(second, 0, BI, bi.VENDOR_ID) == 0xFFF1
    assert client.states == [PeerState.CONNECTING, PeerState.REACHABLE]
    # A session that failed is a reachability change, as before.
    client.peers.session_failed(PEER)
    await client.peers.connect(PEER)
    assert client.states[2:] == [PeerState.UNKNOWN, PeerState.CONNECTING, PeerState.REACHABLE]


async def test_concurrent_connects_share_one_attempt(server: MiniNode, client: Client) -> None:
    sessions = await asyncio.gather(*(client.peers.connect(PEER) for _ in range(4)))
    assert len({id(s) for s in sessions}) == 1 and len(server.sessions.secure_sessions()) == 1
    assert len(client.resolver.calls) == 1


async def test_second_connect_resumes(server: MiniNode, client: Client) -> None:
    first = await client.peers.connect(PEER)
    client.peers.session_failed(PEER)
    assert client.peers.state(PEER) is PeerState.UNKNOWN and client.peers.session(PEER) is None
    second = await client.peers.connect(PEER)
    assert second is not first and client.peers.status(PEER).resumed
    assert await client.im.read_attribute(second, 0, BI, bi.VENDOR_ID) == 0xFFF1

    # A restarted client (new session table, same resumption store) resumes too.
    again = await Client(client.link, client.resolver, client.resumption).start()
    try:
        third = await again.peers.connect(PEER)
        assert again.peers.status(PEER).resumed
        assert await again.im.read_attribute(third, 0, BI, bi.PRODUCT_NAME) == "JFDS Device"
    finally:
        await again.close()


async def test_write_invoke_and_subscribe_over_the_network(server: MiniNode, client: Client) -> None:
    session = await client.peers.connect(PEER)
    reports: list[c.ReadResult] = []
    lost: list[Exception] = []
    subscription = await client.im.subscribe(session, [(0, BI, bi.NODE_LABEL)], 0, 10, reports.append,
                                             on_lost=lost.append)
    assert subscription.priming.value(0, BI, bi.NODE_LABEL) == "" and subscription.active

    await client.im.write_attribute(session, 0, BI, bi.NODE_LABEL, "kitchen")
    await wait_for(lambda: bool(reports))
    assert reports[-1].value(0, BI, bi.NODE_LABEL) == "kitchen"
    await client.im.write_attribute(session, 0, BI, bi.NODE_LABEL, "hall", timed_timeout_ms=2000)
    await wait_for(lambda: reports[-1].value(0, BI, bi.NODE_LABEL) == "hall")
    with pytest.raises(c.IMStatusError) as err:
        await client.im.write_attribute(session, 0, BI, bi.VENDOR_NAME, "nope")
    assert err.value.status == Status.UNSUPPORTED_WRITE
    with pytest.raises(c.IMStatusError) as err:
        await client.im.invoke(session, 0, BI, 0x00)
    assert err.value.status == Status.UNSUPPORTED_COMMAND

    client.peers.session_failed(PEER)
    await wait_for(lambda: bool(lost))
    assert isinstance(lost[0], c.InteractionError) and lost[0].reason == "session_closed"
    assert not subscription.active


async def test_an_oversized_report_ends_the_read_and_the_session_stays_usable(server: MiniNode) -> None:
    small = await Client(server.link, FakeResolver(server.address), InMemoryResumptionStore()).start()
    small.im.max_report_bytes = 400  # a whole-cluster read takes several 256-byte chunks
    try:
        session = await small.peers.connect(PEER)
        with pytest.raises(c.ReportTooLargeError) as err:
            await small.im.read(session, [(0, BI, None)])
        assert err.value.received > 400 and err.value.chunks >= 2
        # The server saw RESOURCE_EXHAUSTED and dropped its side; the session serves the next interaction.
        assert await small.im.read_attribute(session, 0, BI, bi.VENDOR_ID) == 0xFFF1
        await wait_for(lambda: not server.im._pending)
    finally:
        await small.close()


async def test_keep_alives_hold_a_subscription_and_silence_ends_it() -> None:
    fast = MrpParameters(idle_interval=0.01, active_interval=0.01, active_threshold=1.0)
    server = MiniNode(mrp=fast)
    await server.start()
    client = await Client(server.link, FakeResolver(server.address), InMemoryResumptionStore(), mrp=fast).start()
    try:
        session = await client.peers.connect(PEER)
        reports: list[c.ReadResult] = []
        lost: list[Exception] = []
        subscription = await client.im.subscribe(session, [(0, BI, bi.NODE_LABEL)], 0, 1, reports.append,
                                                 on_lost=lost.append)
        assert subscription.max_interval == 1
        # The watchdog runs MaxInterval + the response timeout (2.28 s with these intervals) = 3.28 s after each
        # report: only the keep-alives (every second, empty) keep it alive past that.
        await asyncio.sleep(4.0)
        assert subscription.active and not lost and not reports  # keep-alives are empty: no callback
        server.close()
        await wait_for(lambda: bool(lost), timeout=5.0)
        assert isinstance(lost[0], c.InteractionError) and lost[0].reason == "timeout" and not subscription.active
    finally:
        await client.close()
        await server.stop()


async def test_unreachable_peer_backs_off(server: MiniNode) -> None:
    resolver = FakeResolver()
    client = await Client(server.link, resolver, InMemoryResumptionStore(), backoff=BackoffPolicy(initial=30.0)).start()
    try:
        with pytest.raises(PeerUnreachableError, match="no operational address") as err:
            await client.peers.connect(PEER)
        assert 22.5 <= err.value.retry_in <= 37.5 and client.peers.state(PEER) is PeerState.UNREACHABLE
        with pytest.raises(PeerUnreachableError, match="backing off"):
            await client.peers.connect(PEER)  # fails fast: no second resolution
        assert len(resolver.calls) == 1

        # An address where nobody answers: the handshake times out.
        dead = ("fd00:4a46::dead", 5540)
        resolver.addresses = [dead]
        client.peers._handshake_timeout = 0.2
        with pytest.raises(PeerUnreachableError, match="timeout"):
            await client.peers.connect(PEER, ignore_backoff=True)
        assert client.peers.status(PEER).failures == 2

        resolver.addresses = [dead, server.address]  # the second address works
        session = await client.peers.connect(PEER, ignore_backoff=True)
        assert client.peers.status(PEER).failures == 0 and session.peer_node_id == SERVER_NODE
        assert client.states[-1] is PeerState.REACHABLE
    finally:
        await client.close()


async def test_watched_peer_reconnects_after_the_peer_closes_the_session(server: MiniNode, client: Client) -> None:
    client.peers.watch(PEER)
    await wait_for(lambda: client.peers.state(PEER) is PeerState.REACHABLE)
    first = client.peers.session(PEER)
    server.close_sessions()
    await wait_for(lambda: client.peers.session(PEER) not in (None, first))
    assert client.peers.status(PEER).resumed
    assert PeerState.UNKNOWN in client.states[2:] and client.states[-1] is PeerState.REACHABLE
    client.peers.unwatch(PEER)


async def test_a_watched_peer_whose_session_was_evicted_waits_for_the_next_connect(server: MiniNode,
                                                                                  client: Client) -> None:
    """The watcher does not fight the outbound budget (two watchers over a one-session budget would evict each
    other forever); the next ``connect`` sets the session up again, and a later failure is watched as before."""
    table = client.endpoint.manager.sessions
    table.max_outbound_sessions = 1
    client.peers.watch(PEER)
    await wait_for(lambda: client.peers.session(PEER) is not None)
    table.add_secure(peer_session_id=7, encrypt_key=bytes(16), decrypt_key=bytes(16), auth_mode=SessionAuthMode.CASE,
                     peer_addr=socket_address(*server.address), now=client.endpoint.now(), is_initiator=True)
    client.endpoint.transmit()
    await wait_for(lambda: client.peers.session(PEER) is None)
    await asyncio.sleep(0.3)
    assert client.peers.session(PEER) is None and table.evictions["outbound"] == 1  # no reconnect by the watcher
    again = await client.peers.connect(PEER)
    assert await client.im.read_attribute(again, 0, BI, bi.VENDOR_ID) == 0xFFF1  # the server installed it too
    server.close_sessions()  # a real loss: the watcher reconnects
    await wait_for(lambda: client.peers.session(PEER) not in (None, again))
    assert client.states[-2:] == [PeerState.CONNECTING, PeerState.REACHABLE]
    client.peers.unwatch(PEER)


async def test_interaction_on_a_dead_session_raises_interaction_error(server: MiniNode) -> None:
    client = await Client(server.link, FakeResolver(server.address), InMemoryResumptionStore()).start()
    try:
        session = await client.peers.connect(PEER)
        server.close()
        client.im.response_timeout = 0.3
        with pytest.raises(c.InteractionError) as err:
            await client.im.read(session, [(0, BI, bi.VENDOR_ID)])
        assert err.value.reason in (CloseReason.TIMEOUT, CloseReason.DELIVERY_FAILED)
    finally:
        await client.close()


async def test_two_serving_nodes_reach_each_other_through_the_hook() -> None:
    """Both nodes serve and initiate on one endpoint each: replies to our exchanges and reports of our
    subscriptions reach the client side, never the node's own IM server (which would refuse them)."""
    link = VirtualLink()
    a = MiniNode(link, node_id=SERVER_NODE, admin=CLIENT_NODE)
    b = MiniNode(link, node_id=CLIENT_NODE, admin=SERVER_NODE)
    await a.start()
    await b.start()
    try:
        a.resolver.addresses, b.resolver.addresses = [b.address], [a.address]
        to_b, to_a = await asyncio.gather(a.peers.connect(PeerId(1, CLIENT_NODE)),
                                          b.peers.connect(PeerId(1, SERVER_NODE)))
        assert len(a.sessions.secure_sessions()) == len(b.sessions.secure_sessions()) == 2  # one each way
        reports: list[c.ReadResult] = []
        subscription = await a.client.subscribe(to_b, [(0, BI, bi.NODE_LABEL)], 0, 10, reports.append)
        await b.client.write_attribute(to_a, 0, BI, bi.NODE_LABEL, "written by b")
        await a.client.write_attribute(to_b, 0, BI, bi.NODE_LABEL, "written by a")
        await wait_for(lambda: bool(reports))
        assert reports[-1].value(0, BI, bi.NODE_LABEL) == "written by a"
        assert await a.client.read_attribute(to_b, 0, BI, bi.NODE_LABEL) == "written by a"
        assert await b.client.read_attribute(to_a, 0, BI, bi.NODE_LABEL) == "written by b"
        assert len(b.im.subscriptions) == 1 and not a.im.subscriptions
        subscription.cancel()
    finally:
        await a.stop()
        await b.stop()


def test_unsecured_sessions_are_not_report_routes() -> None:
    session = UnsecuredSession(("::1", 1), 5, initiator=True)
    message = _message(ExchangeRef(session, 1, False), Op.REPORT_DATA, m.ReportData(subscription_id=1).encode(), True)
    assert not ExchangeDispatcher().dispatch(message)
