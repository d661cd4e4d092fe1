"""Invoke interactions (Core spec 8.8): single and batched commands, statuses, timed, chunked responses."""

from __future__ import annotations

from typing import Any

import pytest

from jfds_device.codec.message import InteractionModelOpcode as Op
from jfds_device.im import messages as m
from jfds_device.im.provider import Status
from jfds_device.im.server import MAX_PATHS_PER_INVOKE, InteractionServer, Outgoing
from tests.im.fakes import (
    ADMIN,
    ADMIN_CMD,
    BASIC,
    BIG_CMD,
    BIG_CMD_B,
    BIG_RESPONSE,
    ECHO,
    ECHO_RESPONSE,
    FABRIC_CMD,
    FAIL_CMD,
    OPERATOR,
    SUCCESS,
    TEST,
    TIMED_CMD,
    TIMED_FABRIC_CMD,
    TOGGLE,
    VIEWER,
    FakeProvider,
    make_ctx,
    status_of,
)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def server(provider: FakeProvider) -> InteractionServer:
    return InteractionServer(provider)


def command(endpoint: int | None, cluster: int, cmd: int, fields: Any = None, ref: int | None = None) -> Any:
    return m.CommandDataIB(
        path=m.CommandPathIB(endpoint=endpoint, cluster=cluster, command=cmd), fields=fields, command_ref=ref
    )


def invoke(
    server: InteractionServer, *commands: m.CommandDataIB, subject: int = ADMIN, exchange: int = 1, **kw: Any
) -> list[Outgoing]:
    request = m.InvokeRequest(timed_request=kw.pop("timed_request", False), invoke_requests=list(commands), **kw)
    return server.on_message(exchange, make_ctx(subject), Op.INVOKE_REQUEST, request.encode(), kw.get("now", 0.0))


def responses(outs: list[Outgoing]) -> list[m.InvokeResponseIB]:
    [out] = outs
    assert out.opcode is Op.INVOKE_RESPONSE
    message = m.InvokeResponse.decode(out.payload)
    assert message.suppress_response is False
    return message.invoke_responses


def only_status(outs: list[Outgoing]) -> tuple[int, int | None]:
    [ib] = responses(outs)
    assert ib.command is None
    return ib.status.status.status, ib.status.status.cluster_status


def test_plain_status_command(server: InteractionServer, provider: FakeProvider) -> None:
    outs = invoke(server, command(1, TEST, TOGGLE, {}))
    assert only_status(outs) == (Status.SUCCESS, None)
    assert outs[0].close_exchange and provider.toggled
    [ib] = responses(outs)
    assert ib.status.path == m.CommandPathIB(endpoint=1, cluster=TEST, command=TOGGLE)
    assert ib.status.command_ref is None


def test_absent_fields_mean_an_empty_struct(server: InteractionServer, provider: FakeProvider) -> None:
    assert only_status(invoke(server, command(1, TEST, TOGGLE))) == (Status.SUCCESS, None)


def test_command_with_response(server: InteractionServer) -> None:
    [ib] = responses(invoke(server, command(1, TEST, ECHO, {0: 42})))
    assert ib.status is None
    assert ib.command.path == m.CommandPathIB(endpoint=1, cluster=TEST, command=ECHO_RESPONSE)
    assert ib.command.fields == {0: 42}


@pytest.mark.parametrize(
    ("cmd", "subject", "status"),
    [
        (command(9, TEST, TOGGLE, {}), ADMIN, Status.UNSUPPORTED_ENDPOINT),
        (command(0, TEST, TOGGLE, {}), ADMIN, Status.UNSUPPORTED_CLUSTER),
        (command(0, BASIC, TOGGLE, {}), ADMIN, Status.UNSUPPORTED_COMMAND),
        (command(1, TEST, 0x77, {}), ADMIN, Status.UNSUPPORTED_COMMAND),
        (command(1, TEST, TOGGLE, {}), VIEWER, Status.UNSUPPORTED_ACCESS),
        (command(1, TEST, ADMIN_CMD, {}), OPERATOR, Status.UNSUPPORTED_ACCESS),
        (command(1, TEST, TIMED_CMD, {}), ADMIN, Status.NEEDS_TIMED_INTERACTION),
        (command(1, TEST, TIMED_CMD, {}), VIEWER, Status.UNSUPPORTED_ACCESS),  # access before the timed flag
        (command(1, TEST, ECHO, {}), ADMIN, Status.INVALID_COMMAND),  # missing field
        (command(1, TEST, ECHO, {0: "x"}), ADMIN, Status.INVALID_COMMAND),  # wrong type
        (command(1, TEST, ECHO, [1]), ADMIN, Status.INVALID_COMMAND),  # fields not a structure
        (command(1, TEST, ECHO, m.NULL), ADMIN, Status.INVALID_COMMAND),
        (command(1, TEST, ECHO, {0: 201}), ADMIN, Status.CONSTRAINT_ERROR),  # out of range
    ],
)
def test_command_statuses(server: InteractionServer, cmd: m.CommandDataIB, subject: int, status: int) -> None:
    assert only_status(invoke(server, cmd, subject=subject)) == (status, None)


def test_cluster_specific_failure(server: InteractionServer) -> None:
    assert only_status(invoke(server, command(1, TEST, FAIL_CMD, {}))) == (Status.FAILURE, 5)


def test_fabric_scoped_command_needs_a_fabric(server: InteractionServer) -> None:
    request = m.InvokeRequest(timed_request=False, invoke_requests=[command(1, TEST, FABRIC_CMD, {})]).encode()
    [out] = server.on_message(1, make_ctx(ADMIN, fabric=0), Op.INVOKE_REQUEST, request, 0.0)
    assert only_status([out]) == (Status.UNSUPPORTED_ACCESS, None)
    assert only_status(invoke(server, command(1, TEST, FABRIC_CMD, {}))) == (Status.SUCCESS, None)


def test_timed_is_checked_before_the_accessing_fabric(server: InteractionServer) -> None:
    request = m.InvokeRequest(timed_request=False, invoke_requests=[command(1, TEST, TIMED_FABRIC_CMD, {})]).encode()
    [out] = server.on_message(1, make_ctx(ADMIN, fabric=0), Op.INVOKE_REQUEST, request, 0.0)
    assert only_status([out]) == (Status.NEEDS_TIMED_INTERACTION, None)  # CheckCommandFlags order


def test_suppress_response(server: InteractionServer, provider: FakeProvider) -> None:
    assert invoke(server, command(1, TEST, TOGGLE, {}), suppress_response=True) == []
    assert provider.toggled


def test_batch_with_command_refs(server: InteractionServer, provider: FakeProvider) -> None:
    outs = invoke(
        server,
        command(1, TEST, ECHO, {0: 1}, ref=10),
        command(1, TEST, TOGGLE, {}, ref=11),
        command(1, TEST, FAIL_CMD, {}, ref=12),
    )
    ibs = responses(outs)
    assert ibs[0].command.command_ref == 10 and ibs[0].command.fields == {0: 1}
    assert (ibs[1].status.command_ref, ibs[1].status.status.status) == (11, Status.SUCCESS)
    assert (ibs[2].status.command_ref, ibs[2].status.status.cluster_status) == (12, 5)


@pytest.mark.parametrize(
    "commands",
    [
        [command(1, TEST, ECHO, {0: 1}, ref=1), command(1, TEST, TOGGLE, {})],  # a missing CommandRef
        [command(1, TEST, ECHO, {0: 1}, ref=1), command(1, TEST, TOGGLE, {}, ref=1)],  # duplicate refs
        [command(1, TEST, TOGGLE, {}, ref=1), command(1, TEST, TOGGLE, {}, ref=2)],  # duplicate paths
        [command(None, TEST, TOGGLE, {})],  # wildcard endpoint outside a group
        [],
        [command(1, TEST, TOGGLE, {}, ref=i) for i in range(MAX_PATHS_PER_INVOKE + 1)],
    ],
)
def test_invalid_batches(server: InteractionServer, provider: FakeProvider, commands: list[Any]) -> None:
    [out] = invoke(server, *commands)
    assert status_of(out) == Status.INVALID_ACTION
    assert provider.invokes == []


def test_max_paths_per_invoke_is_configurable(provider: FakeProvider) -> None:
    server = InteractionServer(provider, max_paths_per_invoke=1)
    [out] = invoke(server, command(1, TEST, TOGGLE, {}, ref=1), command(1, TEST, ECHO, {0: 1}, ref=2))
    assert status_of(out) == Status.INVALID_ACTION


def test_timed_invoke(server: InteractionServer, provider: FakeProvider) -> None:
    [ack] = server.on_message(1, make_ctx(), Op.TIMED_REQUEST, m.TimedRequest(timeout=200).encode(), 3.0)
    assert status_of(ack) == Status.SUCCESS and ack.expect_response
    request = m.InvokeRequest(timed_request=True, invoke_requests=[command(1, TEST, TIMED_CMD, {})]).encode()
    [out] = server.on_message(1, make_ctx(), Op.INVOKE_REQUEST, request, 3.1)
    assert only_status([out]) == (Status.SUCCESS, None)
    assert provider.invokes[-1][2].timed is True


def test_timed_invoke_expired_and_mismatched(server: InteractionServer, provider: FakeProvider) -> None:
    server.on_message(1, make_ctx(), Op.TIMED_REQUEST, m.TimedRequest(timeout=200).encode(), 3.0)
    request = m.InvokeRequest(timed_request=True, invoke_requests=[command(1, TEST, TIMED_CMD, {})]).encode()
    [out] = server.on_message(1, make_ctx(), Op.INVOKE_REQUEST, request, 3.3)
    assert status_of(out) == Status.UNSUPPORTED_ACCESS
    [out] = server.on_message(2, make_ctx(), Op.INVOKE_REQUEST, request, 3.3)
    assert status_of(out) == Status.TIMED_REQUEST_MISMATCH
    assert provider.invokes == []


def test_big_responses_are_chunked(provider: FakeProvider) -> None:
    server = InteractionServer(provider, max_payload=600)
    outs = invoke(
        server,
        command(1, TEST, BIG_CMD, {0: 400}, ref=0),
        command(1, TEST, ECHO, {0: 7}, ref=1),
        command(1, TEST, BIG_CMD_B, {0: 400}, ref=2),
        command(1, TEST, TOGGLE, {}, ref=3),
    )
    seen = []
    messages = 0
    while True:
        messages += 1
        [out] = outs
        assert len(out.payload) <= 600
        message = m.InvokeResponse.decode(out.payload)
        seen.extend(message.invoke_responses)
        if not message.more_chunked_messages:
            assert out.close_exchange
            break
        assert out.expect_response and not out.close_exchange
        outs = server.on_message(1, make_ctx(), Op.STATUS_RESPONSE, SUCCESS, 0.0)
    assert len(seen) == 4 and outs[0].close_exchange and messages >= 2
    assert [seen[0].command.command_ref, seen[1].command.command_ref, seen[2].command.command_ref] == [0, 1, 2]
    assert seen[0].command.fields == seen[2].command.fields == {0: b"\xab" * 400}
    assert seen[0].command.path.command == BIG_RESPONSE
    assert seen[3].status.command_ref == 3


def test_response_too_big_for_any_message(provider: FakeProvider) -> None:
    server = InteractionServer(provider, max_payload=600)
    assert only_status(invoke(server, command(1, TEST, BIG_CMD, {0: 2000}))) == (Status.RESOURCE_EXHAUSTED, None)
