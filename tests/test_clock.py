"""The clock seam (jfds_device/clock.py): ManualClock fires timers and wakes sleepers in deadline order, on virtual
time only; LoopClock is the running loop's time and timers."""

from __future__ import annotations

import asyncio
import time

import pytest

from jfds_device.clock import LoopClock, ManualClock


async def test_timers_fire_in_deadline_order_each_at_its_own_deadline() -> None:
    clock = ManualClock(start=10.0, wall_start=1_000.0)
    fired: list[tuple[str, float]] = []
    clock.call_at(12.0, lambda: fired.append(("b", clock.now())))
    clock.call_later(1.0, lambda: fired.append(("a", clock.now())))
    clock.call_at(12.0, lambda: fired.append(("c", clock.now())))  # a tie keeps the order it was set in
    cancelled = clock.call_later(1.5, lambda: fired.append(("x", clock.now())))
    cancelled.cancel()
    await clock.advance(1.9)
    assert fired == [("a", 11.0)] and clock.now() == pytest.approx(11.9) and clock.wall() == pytest.approx(1001.9)
    await clock.advance(0.1)
    assert fired == [("a", 11.0), ("b", 12.0), ("c", 12.0)] and clock.next_deadline() is None


async def test_sleepers_wake_on_virtual_time_only() -> None:
    clock = ManualClock()
    woke: list[float] = []

    async def sleeper(delay: float) -> None:
        await clock.sleep(delay)
        woke.append(clock.now() - 1000.0)

    started = time.monotonic()
    tasks = [asyncio.ensure_future(sleeper(d)) for d in (3600.0, 5.0, 0.0)]
    await clock.settle()
    assert woke == [0.0]  # a zero sleep only yields
    await clock.advance(4.9)
    assert woke == [0.0]
    await clock.advance(0.1)
    assert woke == [0.0, 5.0]
    took = await clock.run_until(lambda: len(woke) == 3, within=7200)
    assert woke == [0.0, 5.0, 3600.0] and took == pytest.approx(3595.0)
    assert time.monotonic() - started < 5  # an hour of virtual time, no wall-clock wait
    await asyncio.gather(*tasks)


async def test_a_cancelled_sleeper_leaves_no_timer_and_run_until_gives_up() -> None:
    clock = ManualClock()
    task = asyncio.ensure_future(clock.sleep(10.0))
    await clock.settle()
    assert clock.next_deadline() == 1010.0
    task.cancel()
    await clock.settle()
    assert clock.next_deadline() is None
    with pytest.raises(TimeoutError):
        await clock.run_until(lambda: False, within=1.0)  # nothing left to fire
    clock.call_later(5.0, lambda: None)
    with pytest.raises(TimeoutError):
        await clock.run_until(lambda: False, within=1.0)  # the next timer is past the limit
    assert clock.now() == 1001.0
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_loop_clock_is_the_loops_time_and_timers() -> None:
    loop = asyncio.get_running_loop()
    clock = LoopClock()
    assert abs(clock.now() - loop.time()) < 0.5 and abs(clock.wall() - time.time()) < 0.5
    fired = asyncio.Event()
    clock.call_later(0.01, fired.set)
    await asyncio.wait_for(fired.wait(), 2)
    handle = clock.call_at(clock.now() + 0.01, fired.clear)
    handle.cancel()
    await clock.sleep(0.02)
    assert fired.is_set()


async def test_a_timer_that_re_arms_itself_at_its_own_deadline_is_reported_not_spun() -> None:
    clock = ManualClock()

    def again() -> None:
        clock.call_at(clock.now(), again)  # a deadline that never moves: a busy loop on a real clock

    clock.call_later(1.0, again)
    with pytest.raises(RuntimeError, match="without time moving"):
        await clock.advance(2.0)


def test_tick_moves_time_synchronously_and_fires_what_is_due() -> None:
    clock = ManualClock(start=0.0, wall_start=946_684_800.0)
    fired: list[float] = []
    clock.call_at(5.0, lambda: fired.append(clock.now()))
    assert clock.tick(1.0) == 1.0 and fired == []
    assert clock.tick_to(7.5) == 7.5 and fired == [5.0] and clock.wall() == 946_684_807.5
    with pytest.raises(ValueError):
        clock.tick_to(7.0)
