"""Read interactions (Core spec 8.4): concrete and wildcard paths, statuses, filters, fabric filtering."""

from __future__ import annotations

import pytest

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.provider import AttributePath, Status
from jfds_device.im.server import MAX_ATTRIBUTE_PATHS, InteractionServer
from tests.im.fakes import (
    ADMIN,
    ATTRIBUTE_LIST,
    BASIC,
    BIG_LIST,
    CLUSTER_REVISION,
    DISABLED,
    FABRIC_LIST,
    FEATURE_MAP,
    GLOBALS,
    LABEL,
    OPERATOR,
    REVISION,
    SECRET,
    SMALL,
    TEST,
    VIEWER,
    WRITE_ONLY,
    FakeProvider,
    ReadResult,
    apath,
    drive_chunks,
    make_ctx,
    reassemble,
    status_of,
)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def server(provider: FakeProvider) -> InteractionServer:
    return InteractionServer(provider)


def read(server: InteractionServer, *paths: m.AttributePathIB, subject: int = ADMIN, **kw: object) -> ReadResult:
    ctx = make_ctx(subject)
    request = m.ReadRequest(attribute_requests=list(paths), fabric_filtered=kw.pop("fabric_filtered", True), **kw)
    return drive_chunks(server, server.on_message(1, ctx, Op.READ_REQUEST, request.encode(), 0.0), ctx)


def test_concrete_read(server: InteractionServer) -> None:
    result = read(server, apath(0, BASIC, LABEL))
    assert len(result.reports) == 1
    report = result.reports[0]
    assert report.suppress_response is True and report.more_chunked_messages is None
    assert report.subscription_id is None
    ib = report.attribute_reports[0].attribute_data
    assert ib.data == "kitchen" and ib.data_version == 0x100
    assert ib.path == m.AttributePathIB(endpoint=0, cluster=BASIC, attribute=LABEL)


@pytest.mark.parametrize(
    ("path", "subject", "status"),
    [
        (apath(9, BASIC, LABEL), ADMIN, Status.UNSUPPORTED_ENDPOINT),
        (apath(0, TEST, SMALL), ADMIN, Status.UNSUPPORTED_CLUSTER),
        (apath(0, BASIC, 0x4242), ADMIN, Status.UNSUPPORTED_ATTRIBUTE),
        (apath(1, TEST, SECRET), OPERATOR, Status.UNSUPPORTED_ACCESS),
        (apath(0, BASIC, LABEL), 0x4444, Status.UNSUPPORTED_ACCESS),
        (apath(1, TEST, WRITE_ONLY), ADMIN, Status.UNSUPPORTED_READ),
        # View on the cluster comes first, so a stranger learns nothing about what exists ...
        (apath(9, BASIC, LABEL), 0x4444, Status.UNSUPPORTED_ACCESS),
        # ... while existence comes before the attribute's own privilege
        (apath(9, BASIC, SECRET), VIEWER, Status.UNSUPPORTED_ENDPOINT),
        (apath(1, TEST, 0x4242), VIEWER, Status.UNSUPPORTED_ATTRIBUTE),
    ],
)
def test_concrete_path_errors(server: InteractionServer, path: m.AttributePathIB, subject: int, status: int) -> None:
    values, statuses = reassemble(read(server, path, subject=subject).reports)
    assert values == {}
    assert statuses == {AttributePath(path.endpoint, path.cluster, path.attribute): status}


def test_whole_node_wildcard(server: InteractionServer, provider: FakeProvider) -> None:
    values, statuses = reassemble(read(server, apath()).reports)
    assert statuses == {}  # wildcards skip unreadable paths silently
    expected = {
        AttributePath(ep, c.id, a)
        for ep in provider.endpoints()
        for c in provider.clusters(ep)
        for a in provider.attribute_ids(ep, c.id)
        if a != WRITE_ONLY or c.id != TEST
    }
    assert set(values) == expected
    assert values[AttributePath(1, TEST, BIG_LIST)] == provider.values[AttributePath(1, TEST, BIG_LIST)]
    assert values[AttributePath(1, TEST, FEATURE_MAP)] == 5
    assert values[AttributePath(0, BASIC, CLUSTER_REVISION)] == 3


def test_wildcard_skips_forbidden_attributes(server: InteractionServer) -> None:
    values, statuses = reassemble(read(server, apath(1), subject=OPERATOR).reports)
    assert AttributePath(1, TEST, SECRET) not in values and statuses == {}
    assert AttributePath(1, TEST, SMALL) in values
    values, _ = reassemble(read(server, apath(), subject=0x4444).reports)
    assert values == {}


def test_wildcard_endpoint_with_global_attribute(server: InteractionServer) -> None:
    values, _ = reassemble(read(server, apath(attribute=CLUSTER_REVISION)).reports)
    assert values == {AttributePath(0, BASIC, CLUSTER_REVISION): 3, AttributePath(1, TEST, CLUSTER_REVISION): 1}
    values, _ = reassemble(read(server, apath(None, TEST)).reports)
    assert {p.endpoint for p in values} == {1}
    assert len(values) == 6 + len(GLOBALS)
    values, _ = reassemble(read(server, apath(0, None, ATTRIBUTE_LIST)).reports)
    assert values == {AttributePath(0, BASIC, ATTRIBUTE_LIST): [REVISION, LABEL, DISABLED, *GLOBALS]}


def test_wildcard_on_missing_endpoint_reports_nothing(server: InteractionServer) -> None:
    values, statuses = reassemble(read(server, apath(9)).reports)
    assert values == {} and statuses == {}


@pytest.mark.parametrize(
    "path",
    [
        apath(None, None, LABEL),  # a wildcard cluster needs a global attribute (Core spec 8.9.2.2)
        apath(0, BASIC, LABEL, list_index=3),
        apath(0, BASIC, LABEL, list_index=m.NULL),
    ],
)
def test_malformed_paths_are_invalid_action(server: InteractionServer, path: m.AttributePathIB) -> None:
    request = m.ReadRequest(attribute_requests=[path], fabric_filtered=True)
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request.encode(), 0.0)
    assert status_of(out) == Status.INVALID_ACTION and out.close_exchange


def test_no_paths_is_invalid_action(server: InteractionServer) -> None:
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, m.ReadRequest(fabric_filtered=True).encode(), 0.0)
    assert status_of(out) == Status.INVALID_ACTION


def test_too_many_paths(server: InteractionServer) -> None:
    paths = [apath(0, BASIC, LABEL)] * (MAX_ATTRIBUTE_PATHS + 1)
    request = m.ReadRequest(attribute_requests=paths, fabric_filtered=True)
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request.encode(), 0.0)
    assert status_of(out) == Status.PATHS_EXHAUSTED


def test_data_version_filter_skips_matching_cluster(server: InteractionServer, provider: FakeProvider) -> None:
    matching = m.DataVersionFilterIB(path=m.ClusterPathIB(endpoint=1, cluster=TEST), data_version=0xFFFF_FFF0)
    stale = m.DataVersionFilterIB(path=m.ClusterPathIB(endpoint=0, cluster=BASIC), data_version=1)
    wildcard = m.DataVersionFilterIB(path=m.ClusterPathIB(cluster=BASIC), data_version=0x100)  # ignored
    values, _ = reassemble(read(server, apath(), data_version_filters=[matching, stale, wildcard]).reports)
    assert {p.cluster for p in values} == {BASIC}
    # Concrete paths honour the filter too, but still report their errors.
    values, statuses = reassemble(
        read(server, apath(1, TEST, SMALL), apath(1, TEST, 0x4242), data_version_filters=[matching]).reports
    )
    assert values == {} and statuses == {AttributePath(1, TEST, 0x4242): Status.UNSUPPORTED_ATTRIBUTE}
    # Once the version moves on, the filter no longer matches.
    provider.set_value(AttributePath(1, TEST, SMALL), 6)
    values, _ = reassemble(read(server, apath(1, TEST, SMALL), data_version_filters=[matching]).reports)
    assert values == {AttributePath(1, TEST, SMALL): 6}


@pytest.mark.parametrize("filtered", [True, False])
def test_fabric_filtered_read(server: InteractionServer, provider: FakeProvider, filtered: bool) -> None:
    values, _ = reassemble(read(server, apath(1, TEST, FABRIC_LIST), fabric_filtered=filtered).reports)
    entries = values[AttributePath(1, TEST, FABRIC_LIST)]
    assert [e[0xFE] for e in entries] == ([1] if filtered else [1, 2])
    assert provider.read_contexts[-1].fabric_filtered is filtered


def test_event_only_read_gets_an_empty_report(server: InteractionServer) -> None:
    request = m.ReadRequest(event_requests=[m.EventPathIB()], fabric_filtered=True)
    [out] = server.on_message(1, make_ctx(), Op.READ_REQUEST, request.encode(), 0.0)
    report = m.ReportData.decode(out.payload)
    assert report.attribute_reports is None and report.event_reports is None
    assert report.suppress_response is True and out.close_exchange


def test_concrete_event_paths_get_statuses(server: InteractionServer) -> None:
    request = m.ReadRequest(
        attribute_requests=[apath(0, BASIC, REVISION)],
        event_requests=[
            m.EventPathIB(endpoint=0, cluster=BASIC, event=0),
            m.EventPathIB(endpoint=5, cluster=BASIC, event=0),
            m.EventPathIB(endpoint=1, cluster=BASIC, event=0),
            m.EventPathIB(endpoint=0, cluster=BASIC),  # wildcard event: nothing
        ],
        fabric_filtered=True,
    )
    [out] = server.on_message(1, make_ctx(VIEWER), Op.READ_REQUEST, request.encode(), 0.0)
    report = m.ReportData.decode(out.payload)
    assert [r.event_status.status.status for r in report.event_reports] == [
        Status.UNSUPPORTED_EVENT,
        Status.UNSUPPORTED_ENDPOINT,
        Status.UNSUPPORTED_CLUSTER,
    ]
    assert report.attribute_reports[0].attribute_data.data == 17


def test_provider_crash_becomes_failure_status(server: InteractionServer, provider: FakeProvider) -> None:
    def boom(ctx: object, path: object) -> None:
        raise RuntimeError("bug")

    provider.read_attribute = boom  # type: ignore[method-assign]
    _, statuses = reassemble(read(server, apath(0, BASIC, LABEL)).reports)
    assert statuses == {AttributePath(0, BASIC, LABEL): Status.FAILURE}
