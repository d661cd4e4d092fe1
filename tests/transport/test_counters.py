"""Message counters and the duplicate-detection window (Core spec §4.6.1, §4.6.5)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfds_device.errors import LocalProtocolError, StorageError
from jfds_device.transport.counters import (
    COUNTER_INIT_MAX,
    COUNTER_WINDOW_SIZE,
    CounterExhaustedError,
    MessageCounter,
    ReceiveWindow,
    random_counter_start,
)

U32 = 2**32


def test_random_start_range() -> None:
    rng = random.Random(7)
    starts = [random_counter_start(rng) for _ in range(1000)]
    assert all(1 <= s <= COUNTER_INIT_MAX for s in starts)


def test_session_counter_is_exhausted_after_the_last_value() -> None:
    counter = MessageCounter(U32 - 2, rollover=False)
    assert counter.next() == U32 - 2
    assert counter.next() == U32 - 1
    with pytest.raises(CounterExhaustedError):
        counter.next()
    with pytest.raises(CounterExhaustedError):
        counter.next()


def test_global_counter_rolls_over() -> None:
    counter = MessageCounter(U32 - 1, rollover=True)
    assert [counter.next() for _ in range(3)] == [U32 - 1, 0, 1]


def test_reservation_is_made_before_use_and_wraps() -> None:
    reserved: list[int] = []
    counter = MessageCounter(U32 - 3, rollover=True, reserve=reserved.append, reserve_block=4)
    assert reserved == []  # nothing reserved until a value is needed
    values = [counter.next() for _ in range(5)]
    assert values == [U32 - 3, U32 - 2, U32 - 1, 0, 1]
    assert reserved == [1, 5]  # (U32 - 3 + 4) mod 2^32, then (1 + 4)


def test_failed_reservation_hands_out_nothing() -> None:
    def fail(upto: int) -> None:
        raise StorageError("disk full")

    counter = MessageCounter(10, rollover=True, reserve=fail)
    with pytest.raises(StorageError):
        counter.next()
    assert counter.value == 10


def test_bad_start_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        MessageCounter(U32, rollover=True)


# --- encrypted unicast window ------------------------------------------------------------------------------


def test_secure_window_basics() -> None:
    w = ReceiveWindow.secure()
    assert not w.accept(0)  # the synchronised initial value itself
    assert w.accept(100)
    assert not w.accept(100)
    assert w.accept(90) and not w.accept(90)  # in the window, once
    assert w.accept(100 - COUNTER_WINDOW_SIZE)  # the window's oldest slot
    assert not w.accept(100 - COUNTER_WINDOW_SIZE - 1)  # behind the window: rejected
    assert w.accept(2000) and w.max_counter == 2000
    assert not w.accept(1990 - COUNTER_WINDOW_SIZE)


def test_secure_window_does_not_roll_over() -> None:
    w = ReceiveWindow.secure(U32 - 5)
    assert not w.accept(3)  # would be "ahead" with rollover; for a session it is far behind


def test_secure_window_keeps_old_maximum_when_sliding() -> None:
    w = ReceiveWindow.secure()
    assert w.accept(10) and w.accept(12)
    assert not w.accept(10)  # the old maximum is now a set bit
    assert w.accept(11)


@given(st.lists(st.integers(0, 200), max_size=80))
def test_secure_window_matches_a_set_model(counters: list[int]) -> None:
    # The rule of §4.6.5 stated with a set: new if above the maximum, or inside the 32 counters below it and
    # not seen before; everything else is a duplicate.
    w = ReceiveWindow.secure()
    seen = {0}  # the synchronised start value counts as received (peers never send counter 0)
    highest = 0
    for c in counters:
        expected = c > highest or (highest - c <= COUNTER_WINDOW_SIZE and c != highest and c not in seen)
        assert w.accept(c) == expected
        if expected:
            seen.add(c)
            highest = max(highest, c)


# --- unencrypted window ------------------------------------------------------------------------------------


def test_unencrypted_first_message_initialises() -> None:
    w = ReceiveWindow.unencrypted()
    assert w.max_counter is None
    assert w.accept(123456) and w.max_counter == 123456
    assert not w.accept(123456)


def test_unencrypted_rollover_is_ahead() -> None:
    w = ReceiveWindow.unencrypted()
    w.accept(U32 - 2)
    assert w.accept(1) and w.max_counter == 1  # 3 ahead modulo 2^32
    assert w.accept(U32 - 1)  # in the window across the wrap
    assert not w.accept(U32 - 2)


def test_unencrypted_behind_window_resyncs() -> None:
    w = ReceiveWindow.unencrypted()
    w.accept(5000)
    assert w.accept(10)  # a peer that restarted with a new random counter
    assert w.max_counter == 10
    assert not w.accept(10)
    assert w.accept(11)


def test_unencrypted_duplicate_in_window() -> None:
    w = ReceiveWindow.unencrypted()
    for c in (100, 101, 99):
        assert w.accept(c)
    assert not w.accept(99) and not w.accept(100) and not w.accept(101)
