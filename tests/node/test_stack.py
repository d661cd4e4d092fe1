"""The one stack (node/stack.py) and its links (node/links.py): the routing policy, end to end between two stacks on
a VirtualLink (no socket), and the stack's timer on virtual time.

* PASE to a serving stack: the handshake is routed to the responders, ``on_pase_established`` hears of the session,
  IM over it is served with the commissioner's implicit Administer (Core spec 6.6.2.9), and the commissioner's
  CloseSession ends it on the serving side at once (``on_session_closed``).
* A stack whose window never opened refuses PASE with BUSY; a client-only stack refuses IM requests and answers no
  CASE; a protocol other than Secure Channel on an unsecured session is dropped.
* The stack's timer runs the owner's deadlines in order, then the IM server's, and survives a failing one.
* VirtualLink: an address is attached once; blocked or departed hosts lose datagrams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clusters.basic_information import schema as bi
from clusters.basic_information.server import BasicInformationServer
from jfds_device.clock import ManualClock
from jfds_device.codec.message import InteractionModelOpcode, ProtocolId, SecureChannelOpcode
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.errors import IMStatusError, MatterError
from jfds_device.im import messages as m
from jfds_device.im.provider import Status
from jfds_device.node.links import VirtualLink, udp_link
from jfds_device.node.peer_connections import PeerId, PeerState
from jfds_device.node.stack import Stack
from jfds_device.securechannel.pase import PaseInitiator
from jfds_device.securechannel.status import GeneralCode, StatusReport
from jfds_device.transport.exchange import ExchangeClosed, MessageReceived
from jfds_device.transport.sessions import Address, SecureSession, SessionAuthMode
from jfds_device.transport.udp import UdpBindError
from tests.node.fabric_support import identity

PASSCODE, DISCRIMINATOR = 20202021, 3840
SERVER, CLIENT = 0x55, 0x77
SERVER_HOST, CLIENT_HOST = "fd00:4a46::55", "fd00:4a46::77"
BI = bi.CLUSTER_ID


class NoAcl:
    """No ACL entry at all: only implicit privileges (a PASE commissioner's) reach the data model."""

    def acl_entries(self) -> tuple[()]:
        return ()


def basic_node() -> Node:
    node = Node()
    node.add_endpoint(0, [DeviceType(device_type=0x0016, revision=3)], [BasicInformationServer()])
    node.set_acl_source(NoAcl())
    return node


class Pair:
    """A serving stack (BasicInformation, a commissioning window, an operational identity) and a client-only one."""

    def __init__(self) -> None:
        self.link = VirtualLink()
        self.window = CommissioningWindow(PASSCODE, DISCRIMINATOR)
        self.pase_sessions: list[SecureSession] = []
        self.closed: list[SecureSession] = []
        self.client_closed: list[SecureSession] = []

    async def start(self) -> Pair:
        server_identity, client_identity = identity(SERVER), identity(CLIENT)
        self.server = await Stack(data_model=basic_node(), window=self.window, identities=lambda: [server_identity],
                                  on_pase_established=self.pase_sessions.append,
                                  on_session_closed=self.closed.append).open(self.link.attach(SERVER_HOST))
        self.client = await Stack(identities=lambda: [client_identity], resolver=self,
                                  on_session_closed=self.client_closed.append).open(self.link.attach(CLIENT_HOST))
        return self

    @property
    def server_address(self) -> Address:
        return self.server.endpoint.local_address

    async def resolve_operational(self, compressed_fabric_id: bytes | int, node_id: int,
                                  timeout: float = 3.0) -> list[tuple[str, int]]:
        return [(SERVER_HOST, self.server_address[1])] if node_id == SERVER else []

    async def close(self) -> None:
        await self.client.close()
        await self.server.close()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    started = await Pair().start()
    try:
        yield started
    finally:
        await started.close()


async def pase(stack: Stack, address: Address, passcode: int = PASSCODE) -> SecureSession:
    """Commission-side PASE (Core spec 4.13) from ``stack``, as a commissioner runs it; raises if it fails."""
    endpoint, sessions = stack.endpoint, stack.sessions
    initiator = PaseInitiator(passcode, local_session_id=sessions.allocate_session_id(),
                              session_params=stack.session_params)
    exchange = endpoint.new_exchange(sessions.new_unsecured_initiator(address, endpoint.now()))
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    stack.dispatcher.watch(exchange, inbox.put_nowait)
    try:
        reply: tuple[int, bytes] | None = initiator.start()
        while reply is not None:
            endpoint.send(exchange, ProtocolId.SECURE_CHANNEL, *reply, expect_response=True)
            event = await asyncio.wait_for(inbox.get(), 5)
            if isinstance(event, ExchangeClosed):
                raise MatterError(f"PASE exchange closed: {event.reason}")
            if event.opcode == SecureChannelOpcode.STATUS_REPORT:
                report = StatusReport.decode(event.payload)
                if report.general_code != GeneralCode.SUCCESS:
                    raise MatterError(f"PASE refused: {report.general_code.name}")
            reply = initiator.receive(event.opcode, event.payload)
    finally:
        stack.dispatcher.unwatch(exchange)
        if endpoint.manager.is_open(exchange):
            endpoint.close_exchange(exchange)
    result = initiator.result
    assert result is not None, initiator.error
    encrypt_key, decrypt_key = result.keys.for_role(True)
    return sessions.add_secure(local_session_id=result.local_session_id, peer_session_id=result.peer_session_id,
                               encrypt_key=encrypt_key, decrypt_key=decrypt_key, auth_mode=SessionAuthMode.PASE,
                               peer_addr=address, now=endpoint.now(), is_initiator=True)


async def settle(condition: Any, rounds: int = 200) -> None:
    """Let the loop run (the link delivers with call_soon) until ``condition()``; no wall-clock wait."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


# ---------------------------------------------------------------------------------------------- routing


async def test_pase_is_routed_to_the_handshakes_and_im_over_it_is_served_as_the_commissioner(pair: Pair) -> None:
    pair.window.open_initial(pair.server.clock.now())
    session = await pase(pair.client, pair.server_address)
    [server_session] = pair.pase_sessions
    assert server_session.auth_mode is SessionAuthMode.PASE and server_session.peer_session_id == \
        session.local_session_id
    # No ACL entry exists: the read succeeds only through the PASE commissioner's implicit Administer.
    assert await pair.client.client.read_attribute(session, 0, BI, bi.VENDOR_ID) == 0xFFF1
    await pair.client.client.write_attribute(session, 0, BI, bi.NODE_LABEL, "commissioned")
    assert await pair.client.client.read_attribute(session, 0, BI, bi.NODE_LABEL) == "commissioned"
    pair.client.close_session(session)  # the commissioner's CloseSession (Core spec 4.10.1.3)
    await settle(lambda: pair.closed)
    assert pair.closed == [server_session] and server_session not in pair.server.sessions


async def test_a_window_that_never_opened_refuses_pase_with_busy(pair: Pair) -> None:
    with pytest.raises(MatterError, match="PASE refused") as err:
        await pase(pair.client, pair.server_address)
    assert str(err.value) == "PASE refused: BUSY"
    assert not pair.pase_sessions and not pair.server.sessions.secure_sessions()


async def test_case_and_a_client_only_stack_that_refuses_requests(pair: Pair) -> None:
    peer = PeerId(1, SERVER)
    session = await pair.client.peers.connect(peer)
    [inbound] = pair.server.sessions.secure_sessions()
    assert (inbound.auth_mode, inbound.peer_node_id) == (SessionAuthMode.CASE, CLIENT)
    # The serving side reads the client over the same session: a client-only stack serves nothing.
    with pytest.raises(IMStatusError) as err:
        await pair.server.client.read(inbound, [(0, BI, bi.VENDOR_ID)])
    assert err.value.status == Status.INVALID_ACTION
    # A report for a subscription it does not hold: INVALID_SUBSCRIPTION (and the exchange ends).
    exchange = pair.server.endpoint.new_exchange(inbound)
    answers: list[Any] = []
    pair.server.dispatcher.watch(exchange, answers.append)
    pair.server.endpoint.send(exchange, ProtocolId.INTERACTION_MODEL, InteractionModelOpcode.REPORT_DATA,
                              m.ReportData(subscription_id=9).encode(), expect_response=True)
    await settle(lambda: answers)
    assert isinstance(answers[0], MessageReceived) and answers[0].opcode == InteractionModelOpcode.STATUS_RESPONSE
    assert m.StatusResponse.decode(answers[0].payload).status == Status.INVALID_SUBSCRIPTION
    pair.server.dispatcher.unwatch(exchange)
    # The server judges the client's requests by its CASE subject: no ACL entry grants it anything (a PASE
    # commissioner's implicit Administer is not a CASE session's).
    with pytest.raises(IMStatusError) as err:
        await pair.client.client.read_attribute(session, 0, BI, bi.PRODUCT_NAME)
    assert err.value.status == Status.UNSUPPORTED_ACCESS


class FixedResolver:
    def __init__(self, *addresses: tuple[str, int]) -> None:
        self.addresses = list(addresses)

    async def resolve_operational(self, compressed_fabric_id: bytes | int, node_id: int,
                                  timeout: float = 3.0) -> list[tuple[str, int]]:
        return list(self.addresses)


async def test_a_client_only_stack_answers_no_case(pair: Pair) -> None:
    pair.server.peers.resolver = FixedResolver((CLIENT_HOST, pair.client.endpoint.local_address[1]))
    pair.server.peers._handshake_timeout = 0.2
    with pytest.raises(MatterError):
        await pair.server.peers.connect(PeerId(1, CLIENT))
    assert not pair.client.sessions.secure_sessions()


async def test_the_peer_closing_a_session_is_reported_at_once(pair: Pair) -> None:
    peer = PeerId(1, SERVER)
    session = await pair.client.peers.connect(peer)
    [inbound] = pair.server.sessions.secure_sessions()
    pair.server.close_fabric_sessions(1)  # e.g. RemoveFabric: CloseSession to every session of the fabric
    await settle(lambda: pair.client_closed)
    assert pair.client_closed == [session] and session not in pair.client.sessions
    assert pair.client.peers.state(peer) is PeerState.UNKNOWN
    assert inbound.closing and inbound not in pair.server.sessions  # gone on our side as soon as it was said


async def test_other_protocols_on_an_unsecured_session_are_dropped(pair: Pair, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="jfds_device.node.stack")
    client = pair.client
    exchange = client.endpoint.new_exchange(client.sessions.new_unsecured_initiator(pair.server_address,
                                                                                    client.endpoint.now()))
    client.endpoint.send(exchange, ProtocolId.INTERACTION_MODEL, InteractionModelOpcode.READ_REQUEST, b"\x15\x18")
    await settle(lambda: any("on an unsecured session" in r.message for r in caplog.records))
    assert pair.server.im is not None and not pair.server.im.subscriptions


async def test_a_stack_is_usable_only_once_open() -> None:
    stack = Stack()
    with pytest.raises(MatterError, match="not open"):
        _ = stack.endpoint
    with pytest.raises(MatterError, match="not open"):
        _ = stack.peers
    await stack.close()  # closing what never opened is a no-op


# ---------------------------------------------------------------------------------------------- timers


async def test_timers_run_in_order_on_virtual_time_and_survive_a_failing_one(caplog: Any) -> None:
    clock = ManualClock(start=100.0)
    stack = await Stack(data_model=basic_node(), clock=clock).open(VirtualLink().attach(SERVER_HOST))
    try:
        fired: list[tuple[str, float]] = []
        deadlines: dict[str, float | None] = {"a": 160.0, "b": 130.0}

        def on_a(now: float) -> None:
            fired.append(("a", now))
            if now == 160.0:
                deadlines["a"] = 260.0
                raise RuntimeError("a bug in a timer")
            if now == 260.0:
                deadlines["a"] = None

        def on_b(now: float) -> None:
            fired.append(("b", now))
            if now == 130.0:
                deadlines["b"] = None

        stack.add_timer(lambda: deadlines["a"], on_a)
        stack.add_timer(lambda: deadlines["b"], on_b)
        await clock.advance(29.0)
        assert fired == []
        await clock.advance(1.0)  # b's deadline: every handler sees the same now, in the order they were added
        assert fired == [("a", 130.0), ("b", 130.0)] and deadlines["b"] is None
        with caplog.at_level(logging.ERROR, logger="jfds_device.node.stack"):
            await clock.advance(30.0)  # a's deadline: its handler raises, the stack logs it and keeps its timer
        assert fired[2:] == [("a", 160.0)] and "timer handling failed" in caplog.text  # b is skipped this once
        assert deadlines["a"] == 260.0 and clock.next_deadline() == 260.0
        await clock.advance(100.0)
        assert fired[3:] == [("a", 260.0), ("b", 260.0)]
    finally:
        await stack.close()
    assert clock.next_deadline() is None  # closing the stack cancels its timer


# ---------------------------------------------------------------------------------------------- VirtualLink


async def test_virtual_link_attaches_an_address_once_and_loses_what_it_cannot_deliver() -> None:
    link = VirtualLink()
    a = await Stack().open(link.attach("fd00::a", 5540))
    with pytest.raises(UdpBindError) as err:
        await Stack().open(link.attach("fd00::a", 5540))
    assert err.value.busy
    b = await Stack(data_model=basic_node(), window=CommissioningWindow(PASSCODE, DISCRIMINATOR)).open(
        link.attach("fd00::b"))
    try:
        assert b.endpoint.local_address[:2] == ("fd00::b", 40000)  # the first free port of the link
        link.blocked.add("fd00::b")
        b.window.open_initial(b.clock.now())
        attempt = asyncio.ensure_future(pase(a, b.endpoint.local_address))
        await settle(lambda: link.lost > 0)
        assert link.delivered == 0
        link.blocked.clear()  # MRP retransmits: the handshake completes once the link carries it again
        session = await asyncio.wait_for(attempt, 10)
        assert session.auth_mode is SessionAuthMode.PASE and link.delivered > 0
    finally:
        await a.close()
        await b.close()


async def test_the_same_stacks_over_udp_on_loopback() -> None:
    """``udp_link``: the link ``Device`` uses, a real socket, here bound to ::1 only."""
    server_identity, client_identity = identity(SERVER), identity(CLIENT)
    server = await Stack(data_model=basic_node(), identities=lambda: [server_identity]).open(
        udp_link(0, host="::1"))
    port = server.endpoint.local_address[1]
    client = await Stack(identities=lambda: [client_identity],
                         resolver=FixedResolver(("::1", port))).open(udp_link(0, host="::1"))
    try:
        session = await client.peers.connect(PeerId(1, SERVER))
        assert client.peers.state(PeerId(1, SERVER)) is PeerState.REACHABLE
        with pytest.raises(IMStatusError) as err:  # served (and refused: no ACL entry for a CASE subject)
            await client.client.read_attribute(session, 0, BI, bi.VENDOR_ID)
        assert err.value.status == Status.UNSUPPORTED_ACCESS
        with pytest.raises(UdpBindError) as busy:
            await Stack().open(udp_link(port, host="::1"))
        assert busy.value.busy
    finally:
        await client.close()
        await server.close()
