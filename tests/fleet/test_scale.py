"""Many peers at once, in process (fleet nodes on a VirtualLink, our client stack): a burst of connects queues at
the handshake limit instead of evicting handshakes in progress, and an outbound budget sized to the managed nodes
keeps every peer's session (issue 13: one live subscription per managed peer rides on its session)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from jfds_device.fleet import FabricCA, Fleet, FleetConfig, provision
from jfds_device.node.links import VirtualLink
from jfds_device.node.peer_connections import MAX_CONCURRENT_HANDSHAKES, PeerId
from jfds_device.node.stack import SessionBudget, Stack
from tests.fleet.test_fleet import ADMIN, FIRST_NODE_ID, JFDS, FleetResolver, host

PEERS = 3 * MAX_CONCURRENT_HANDSHAKES


async def test_a_burst_of_connects_keeps_every_handshake_and_every_session() -> None:
    link, ca = VirtualLink(), FabricCA(admin_subject=ADMIN)
    fleet = Fleet(FleetConfig(nodes=PEERS, advertise=False), link_for=lambda i: link.attach(host(i)))
    await fleet.start()
    await provision(((node, FIRST_NODE_ID + node.index) for node in fleet), ca.issue, administrators=[JFDS])
    me = ca.identity(ADMIN)
    client = Stack(identities=lambda: [me], resolver=FleetResolver(fleet), response_timeout=2.0,
                   budget=SessionBudget(max_outbound_sessions=PEERS + 16))
    await client.open(link.attach("fd00:f1ee::ad"))
    try:
        peers = client.peers
        in_flight, most = 0, 0
        case: Callable[..., Any] = peers._case

        async def counted(*args: Any) -> Any:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                return await case(*args)
            finally:
                in_flight -= 1

        peers._case = counted  # type: ignore[method-assign]
        sessions = await asyncio.gather(*(peers.connect(PeerId(1, FIRST_NODE_ID + i)) for i in range(PEERS)))
        assert [s.peer_node_id for s in sessions] == [FIRST_NODE_ID + i for i in range(PEERS)]
        assert most == MAX_CONCURRENT_HANDSHAKES
        manager = client.endpoint.manager.sessions
        assert manager.evictions == {"inbound": 0, "outbound": 0, "unsecured": 0}
        assert all(peers.session(PeerId(1, FIRST_NODE_ID + i)) is sessions[i] for i in range(PEERS))
    finally:
        await client.close()
        await fleet.stop()
