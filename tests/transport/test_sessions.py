"""SessionTable: id allocation, lookup, eviction and removal."""

from __future__ import annotations

import random

import pytest

from jfds_device.errors import CryptoError, LocalProtocolError
from jfds_device.transport.sessions import SecureSession, SessionAuthMode, SessionTable

KEY = bytes(16)
PEER = ("fe80::1", 5540, 0, 1)


def add(table: SessionTable, now: float = 0.0, **kwargs: object) -> SecureSession:
    params: dict[str, object] = {
        "peer_session_id": 1,
        "encrypt_key": KEY,
        "decrypt_key": KEY,
        "auth_mode": SessionAuthMode.CASE,
        "peer_addr": PEER,
        "now": now,
    }
    params.update(kwargs)
    return table.add_secure(**params)  # type: ignore[arg-type]


def test_session_ids_are_unique_and_non_zero() -> None:
    table = SessionTable(rng=random.Random(3), max_inbound_sessions=300)
    ids = {table.allocate_session_id() for _ in range(300)}
    assert len(ids) == 300 and 0 not in ids


def test_session_id_allocation_wraps_past_65535() -> None:
    for seed in range(50):  # some seed starts near the top of the range
        table = SessionTable(rng=random.Random(seed))
        ids = [table.allocate_session_id() for _ in range(3)]
        assert all(1 <= i <= 0xFFFF for i in ids) and len(set(ids)) == 3


def test_allocated_id_is_used_by_add_secure_and_can_be_released() -> None:
    table = SessionTable(rng=random.Random(1))
    sid = table.allocate_session_id()
    session = add(table, local_session_id=sid)
    assert table.get(sid) is session and session in table
    with pytest.raises(LocalProtocolError):
        add(table, local_session_id=sid)
    other = table.allocate_session_id()
    table.release_session_id(other)
    assert table.get(other) is None


def test_peer_session_id_zero_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        add(SessionTable(), peer_session_id=0)


def test_lru_eviction_prefers_idle_sessions() -> None:
    table = SessionTable(rng=random.Random(1), max_inbound_sessions=3)
    busy = add(table, now=0.0)
    busy.exchange_count = 1  # what the ExchangeManager does for an open exchange
    idle_old = add(table, now=1.0)
    idle_new = add(table, now=2.0)
    newcomer = add(table, now=3.0)
    assert idle_old not in table and table.drain_removed() == [idle_old]
    assert busy in table and idle_new in table and newcomer in table
    # With no idle session left, plain LRU.
    for s in (idle_new, newcomer):
        s.exchange_count = 1
    add(table, now=4.0)
    assert table.drain_removed() == [busy]


def test_sessions_for_fabric_and_remove() -> None:
    table = SessionTable(rng=random.Random(1))
    a = add(table, fabric_index=1)
    b = add(table, fabric_index=2)
    c = add(table, fabric_index=1)
    assert table.sessions_for_fabric(1) == [a, c]
    table.remove(a.local_session_id)
    table.remove(a)  # idempotent
    table.remove(999)  # unknown id: no-op
    assert table.sessions_for_fabric(1) == [c] and table.drain_removed() == [a]
    assert a.closing and table.secure_sessions() == [b, c]


def test_mark_for_close_without_exchanges_removes_now() -> None:
    table = SessionTable()
    s = add(table)
    table.mark_for_close(s)
    assert s not in table and table.drain_removed() == [s]


def test_unsecured_sessions_are_keyed_by_address_and_ephemeral_id() -> None:
    table = SessionTable(rng=random.Random(1))
    s1 = table.unsecured_for(PEER, 0x1234, 0.0)
    assert table.unsecured_for(PEER, 0x1234, 1.0) is s1
    s2 = table.unsecured_for(PEER, 0x5678, 1.0)  # a restarted handshake: a fresh session and window
    s3 = table.unsecured_for(("fe80::2", 5540, 0, 1), 0x1234, 1.0)
    assert len({id(s1), id(s2), id(s3)}) == 3 and not s1.initiator


def test_unsecured_initiator_sessions() -> None:
    table = SessionTable(rng=random.Random(1))
    s = table.new_unsecured_initiator(PEER, 0.0)
    assert s.initiator and 1 <= s.ephemeral_node_id <= 0xFFFF_FFEF_FFFF_FFFF
    assert table.find_unsecured_initiator(s.ephemeral_node_id) is s
    table.remove(s)
    assert table.find_unsecured_initiator(s.ephemeral_node_id) is None


def test_unsecured_sessions_are_capped() -> None:
    table = SessionTable(rng=random.Random(1), max_unsecured_sessions=4)
    sessions = [table.unsecured_for(PEER, n, float(n)) for n in range(1, 10)]
    assert sum(s in table for s in sessions) == 4
    assert sessions[-1] in table and sessions[0] not in table


def test_peer_activity() -> None:
    table = SessionTable()
    s = add(table, now=10.0)
    assert s.peer_active(10.0) and s.peer_active(13.9) and not s.peer_active(14.0)


def test_keys_must_be_128_bit() -> None:
    with pytest.raises(CryptoError):
        add(SessionTable(), encrypt_key=bytes(15))
