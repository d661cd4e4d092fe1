"""Two ExchangeManagers joined by an in-memory link on a virtual clock (the aioquic client_and_server idea).

The link delivers instantly, can drop, duplicate and reorder datagrams, and records every transmission with
its time so tests can assert MRP timing exactly. Only public and constructor-injected seams are used.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from jfds_device.crypto.session_keys import SessionKeys
from jfds_device.transport.exchange import Event, ExchangeManager
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import Address, SecureSession, SessionAuthMode, SessionTable
from jfds_device.transport.wire import DecodedMessage, decode_header, open_payload

KEYS = SessionKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
A_ADDR: Address = ("fe80::a", 5540, 0, 1)
B_ADDR: Address = ("fe80::b", 5540, 0, 1)
A_NODE_ID = 0x0000_0000_0000_AAAA
B_NODE_ID = 0x0000_0000_0000_BBBB


class FixedJitter(random.Random):
    """A seeded Random whose ``random()`` (used only for MRP jitter) always returns ``value``."""

    def __init__(self, value: float, seed: int = 1) -> None:
        super().__init__(seed)
        self.value = value

    def random(self) -> float:
        return self.value

    def getrandbits(self, k: int, /) -> int:
        # Defining getrandbits keeps randrange/randint on the Mersenne Twister; otherwise a subclass that
        # overrides random() gets integers derived from it, and a constant random() never terminates.
        return super().getrandbits(k)


@dataclass
class Node:
    name: str
    addr: Address
    table: SessionTable
    manager: ExchangeManager
    events: list[Event] = field(default_factory=list)

    @classmethod
    def make(cls, name: str, addr: Address, *, seed: int, jitter: float = 0.0, **table_kwargs: object) -> Node:
        table = SessionTable(rng=random.Random(seed), **table_kwargs)  # type: ignore[arg-type]
        return cls(name, addr, table, ExchangeManager(table, rng=FixedJitter(jitter, seed)))

    def drain(self) -> None:
        while (event := self.manager.next_event()) is not None:
            self.events.append(event)

    def take(self) -> list[Event]:
        self.drain()
        events, self.events = self.events, []
        return events


@dataclass(frozen=True)
class Tx:
    time: float
    src: str
    dst: str
    data: bytes


class Link:
    def __init__(self, a: Node, b: Node) -> None:
        self.a, self.b = a, b
        self.now = 0.0
        self.sent: list[Tx] = []
        self.drop: Callable[[Tx], bool] = lambda tx: False
        self.duplicate: Callable[[Tx], bool] = lambda tx: False
        self.reorder = False  # deliver each batch in reverse order
        self._in_flight: list[Tx] = []
        self._by_addr = {a.addr: a, b.addr: b}
        self._by_name = {a.name: a, b.name: b}

    def _collect(self) -> None:
        for node in (self.a, self.b):
            for data, addr in node.manager.datagrams_to_send():
                tx = Tx(self.now, node.name, self._by_addr[addr].name, data)
                self.sent.append(tx)
                if self.drop(tx):
                    continue
                self._in_flight.append(tx)
                if self.duplicate(tx):
                    self._in_flight.append(tx)

    def pump(self) -> None:
        """Deliver everything in flight (and whatever that provokes) at the current time."""
        self._collect()
        while self._in_flight:
            batch, self._in_flight = self._in_flight, []
            if self.reorder:
                batch.reverse()
            for tx in batch:
                src = self._by_name[tx.src]
                self._by_name[tx.dst].manager.receive_datagram(tx.data, src.addr, self.now)
                self._collect()
        self.a.drain()
        self.b.drain()

    def advance(self, until: float) -> None:
        """Run both nodes' timers in deadline order up to ``until`` (inclusive), then set the clock there."""
        self.pump()
        while True:
            timers = [t for t in (self.a.manager.next_timer(), self.b.manager.next_timer()) if t is not None]
            if not timers or min(timers) > until:
                break
            self.now = max(self.now, min(timers))
            for node in (self.a, self.b):
                timer = node.manager.next_timer()
                if timer is not None and timer <= self.now:
                    node.manager.handle_timer(self.now)
            self.pump()
        self.now = max(self.now, until)

    def sent_by(self, name: str) -> list[Tx]:
        return [tx for tx in self.sent if tx.src == name]

    def peek(self, tx: Tx) -> DecodedMessage:
        """Decode a transmission with the receiver's keys (test-side inspection only)."""
        header, length = decode_header(tx.data)
        if header.session_id == 0:
            return open_payload(tx.data, header, length)
        session = self._by_name[tx.dst].table.get(header.session_id)
        assert session is not None
        return open_payload(tx.data, header, length, key=session.decrypt_key, nonce_node_id=session.peer_nonce_node_id)


def make_link(*, jitter: float = 0.0, **table_kwargs: object) -> Link:
    return Link(
        Node.make("A", A_ADDR, seed=1, jitter=jitter, **table_kwargs),
        Node.make("B", B_ADDR, seed=2, jitter=jitter, **table_kwargs),
    )


def secure_pair(
    link: Link,
    *,
    auth_mode: SessionAuthMode = SessionAuthMode.CASE,
    peer_mrp: MrpParameters | None = None,
    a_counter_start: int | None = None,
) -> tuple[SecureSession, SecureSession]:
    """A CASE (or PASE) session between A (initiator) and B, as PASE/CASE would install it."""
    a, b = link.a, link.b
    a_id, b_id = a.table.allocate_session_id(), b.table.allocate_session_id()
    case = auth_mode is SessionAuthMode.CASE
    a_enc, a_dec = KEYS.for_role(True)
    b_enc, b_dec = KEYS.for_role(False)
    sa = a.table.add_secure(
        local_session_id=a_id,
        peer_session_id=b_id,
        encrypt_key=a_enc,
        decrypt_key=a_dec,
        auth_mode=auth_mode,
        peer_addr=b.addr,
        now=link.now,
        local_node_id=A_NODE_ID if case else 0,
        peer_node_id=B_NODE_ID if case else 0,
        fabric_index=1 if case else 0,
        peer_mrp=peer_mrp,
        is_initiator=True,
        counter_start=a_counter_start,
    )
    sb = b.table.add_secure(
        local_session_id=b_id,
        peer_session_id=a_id,
        encrypt_key=b_enc,
        decrypt_key=b_dec,
        auth_mode=auth_mode,
        peer_addr=a.addr,
        now=link.now,
        local_node_id=B_NODE_ID if case else 0,
        peer_node_id=A_NODE_ID if case else 0,
        fabric_index=1 if case else 0,
        peer_mrp=peer_mrp,
        is_initiator=False,
    )
    return sa, sb
