"""Time as a seam: the running loop's monotonic clock and wall time, or a manual clock on virtual time for tests.

Protocol logic takes ``now`` as an argument; the asyncio shells (the reconciler's runner, timers) read time and
sleep through a ``Clock`` instead of ``loop.time()`` / ``time.time()`` / ``asyncio.sleep`` directly, so tests drive
them on virtual time: ``ManualClock.advance`` jumps to each due timer in order and lets the woken tasks run, and
nothing waits for the wall clock.

* ``LoopClock``: ``now()`` is the running loop's monotonic time (the clock MRP and the fail-safe use), ``wall()``
  POSIX seconds (certificate validity, TimeSnapshot); timers are the loop's own.
* ``ManualClock``: both start where the test says and move only by ``advance`` / ``run_until`` (which let woken
  tasks run) or ``tick`` / ``tick_to`` (synchronous).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "LoopClock", "ManualClock", "TimerHandle"]

MAX_FIRINGS_AT_ONE_INSTANT = 10_000
"""More timers than this firing without time moving is a timer that re-arms itself at its own deadline forever (a
busy loop on a real clock): ``ManualClock`` raises instead of spinning."""

SETTLE_ROUNDS = 50
"""Loop iterations ``ManualClock`` yields after each step, so tasks woken by a timer run before time moves on. A
task that needs more iterations than this before its next timer (e.g. one waiting for real I/O) is not virtual-time
material."""


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds (``now``), wall seconds (``wall``), timers on the monotonic scale, and ``sleep``."""

    def now(self) -> float: ...

    def wall(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle: ...

    async def sleep(self, delay: float) -> None: ...


class LoopClock:
    """The real clock: the loop's monotonic time and timers (bound to the loop running when it is made)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return self._loop.call_at(when, callback, *args)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return self._loop.call_later(delay, callback, *args)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)


class _ManualTimer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when, self.callback, self.args = when, callback, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Virtual time for tests. Timers and sleeps fire only when ``advance`` or ``run_until`` moves time past them,
    in deadline order (ties in the order they were set), each at its own deadline."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()
        self._firings_now = 0

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        timer = _ManualTimer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return self.call_at(self._now + max(0.0, delay), callback, *args)

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)  # a zero sleep still yields, as asyncio.sleep(0) does
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_later(delay, lambda: woken.done() or woken.set_result(None))
        try:
            await woken
        finally:
            timer.cancel()

    def next_deadline(self) -> float | None:
        """The earliest live timer, or None."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def tick(self, seconds: float) -> float:
        """Move time forward by ``seconds`` at once, for synchronous code and tests: due timers fire in order, each at
        its deadline, with no task running in between (``advance`` lets them run). Returns the new ``now()``."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        while (when := self.next_deadline()) is not None and when <= target:
            self._fire_next()
        self._now = target
        return self._now

    def tick_to(self, when: float) -> float:
        """``tick`` up to the monotonic time ``when`` (not before ``now()``)."""
        return self.tick(when - self._now)

    async def settle(self) -> None:
        """Let the loop run what is ready now (tasks woken by a timer, ``call_soon`` callbacks) without moving time."""
        for _ in range(SETTLE_ROUNDS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer due on the way at its deadline."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        await self.settle()
        while (when := self.next_deadline()) is not None and when <= target:
            self._fire_next()
            await self.settle()
        self._now = target
        await self.settle()

    async def run_until(self, predicate: Callable[[], object], within: float = 60.0) -> float:
        """Jump from timer to timer until ``predicate()`` holds; returns the virtual seconds that took. Raises
        ``TimeoutError`` when it does not hold within ``within`` virtual seconds (or nothing is left to fire)."""
        started = self._now
        deadline = started + within
        await self.settle()
        while not predicate():
            when = self.next_deadline()
            if when is None or when > deadline:
                self._now = max(self._now, deadline if when is not None else self._now)
                raise TimeoutError(f"not true after {self._now - started:g} virtual seconds")
            self._fire_next()
            await self.settle()
        return self._now - started

    def _fire_next(self) -> None:
        when, _, timer = heapq.heappop(self._timers)
        if when > self._now:
            self._now, self._firings_now = when, 0
        self._firings_now += 1
        if self._firings_now > MAX_FIRINGS_AT_ONE_INSTANT:
            raise RuntimeError(f"timers keep firing at {self._now:g} without time moving (a timer re-arms itself)")
        timer.callback(*timer.args)
