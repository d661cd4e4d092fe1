"""Message counters (Core spec §4.6): what we send with, and the per-peer duplicate-detection window.

Two sending counters exist here:

* the Global Unencrypted Message Counter (§4.6.1): one per node, random start in [1, 2^28], rolls over at
  2^32. We also persist a reservation ahead of it, so a restarted node resumes above every value it may
  already have used instead of restarting inside its peers' windows;
* a Secure Session Message Counter (§4.6.1): one per secure session, random start in [1, 2^28], never
  rolls over. When it is exhausted the session must be closed (and re-established).

Group counters are not needed: we never send group messages.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from jfds_device.errors import LocalProtocolError

__all__ = [
    "COUNTER_INIT_MAX",
    "COUNTER_WINDOW_SIZE",
    "CounterExhaustedError",
    "MessageCounter",
    "ReceiveWindow",
    "random_counter_start",
]

COUNTER_WINDOW_SIZE = 32  # MSG_COUNTER_WINDOW_SIZE (Core spec §4.6.5)
COUNTER_INIT_MAX = 1 << 28  # counters start at a random value in [1, 2^28] (Core spec §4.6.1)
_U32 = 1 << 32
_HALF = 1 << 31
_WINDOW_MASK = (1 << COUNTER_WINDOW_SIZE) - 1
DEFAULT_RESERVE_BLOCK = 1000  # how many counter values one persisted reservation covers


def random_counter_start(rng: random.Random) -> int:
    return rng.randint(1, COUNTER_INIT_MAX)


class CounterExhaustedError(LocalProtocolError):
    """A secure session counter used its last value, 2^32 - 1: the session must close (Core spec §4.6.1)."""


class MessageCounter:
    """An outgoing message counter.

    ``reserve(upto)`` (optional) is called before the first value of each block of ``reserve_block`` values
    is handed out: it must persist ``upto`` (synchronously; if it raises, no value is handed out). Values
    strictly before ``upto`` (modulo 2^32) may then be used; after a restart, pass the persisted ``upto`` as
    ``start`` and no value repeats.
    """

    __slots__ = ("_remaining", "_reserve", "_reserve_block", "_rollover", "_value")

    def __init__(
        self,
        start: int,
        *,
        rollover: bool,
        reserve: Callable[[int], None] | None = None,
        reserve_block: int = DEFAULT_RESERVE_BLOCK,
    ) -> None:
        if not 0 <= start < _U32:
            raise LocalProtocolError(f"message counter start {start} is not a uint32")
        if reserve_block < 1:
            raise LocalProtocolError("reserve_block must be positive")
        self._value = start
        self._rollover = rollover
        self._reserve = reserve
        self._reserve_block = reserve_block
        self._remaining = 0  # values left in the current reservation

    @property
    def value(self) -> int:
        """The value the next call to ``next()`` returns (if the counter is not exhausted)."""
        return self._value

    def next(self) -> int:
        value = self._value
        if value >= _U32:
            raise CounterExhaustedError("secure session message counter exhausted")
        if self._reserve is not None and self._remaining == 0:
            self._reserve((value + self._reserve_block) % _U32)
            self._remaining = self._reserve_block
        self._remaining -= 1
        # The global counter wraps to 0 (§4.6.1); a session counter parks at 2^32 (exhausted) instead.
        self._value = (value + 1) % _U32 if self._rollover else value + 1
        return value


class ReceiveWindow:
    """Message reception state for one peer and key (Core spec §4.6.5): ``max_message_counter`` plus a
    32-bit bitmap. Bit ``i`` set means counter ``max - (i + 1)`` has been received.

    Two policies:

    * ``secure()`` (encrypted unicast, §4.6.5): no rollover. A counter above the max is new; one in the
      window is new unless its bit is set; the max itself and anything behind the window are duplicates.
      The state starts synchronised at 0 when the session is established (the CHIP SDK's
      kInitialSyncValue), since session counters start at 1 or above.
    * ``unencrypted()`` (§4.6.5): with rollover (a counter up to 2^31 ahead, modulo 2^32, is new). The
      peer's first message initialises the state, and a counter behind the window is accepted as a peer
      that restarted with a fresh random counter: the window re-syncs on it.
    """

    __slots__ = ("_bitmap", "_encrypted", "_max")

    def __init__(self, *, encrypted: bool, max_counter: int | None = None) -> None:
        self._encrypted = encrypted
        self._max = max_counter
        self._bitmap = 0

    @classmethod
    def secure(cls, initial_max: int = 0) -> ReceiveWindow:
        return cls(encrypted=True, max_counter=initial_max)

    @classmethod
    def unencrypted(cls) -> ReceiveWindow:
        return cls(encrypted=False)

    @property
    def max_counter(self) -> int | None:
        return self._max

    def accept(self, counter: int) -> bool:
        """Return True and record ``counter`` if it is new; False if it is a duplicate (state unchanged).

        Call only for messages that authenticated: a forged counter must not move the window.
        """
        if self._max is None:  # unencrypted, first message from this peer
            self._max, self._bitmap = counter, 0
            return True
        if self._encrypted:
            ahead = counter - self._max if counter > self._max else 0
            behind = self._max - counter if counter <= self._max else 0
        else:
            increase = (counter - self._max) % _U32
            ahead = increase if increase < _HALF else 0
            behind = (self._max - counter) % _U32 if increase >= _HALF or increase == 0 else 0
        if ahead:
            # A new maximum: slide the window so the old maximum becomes bit (ahead - 1).
            if ahead > COUNTER_WINDOW_SIZE:
                self._bitmap = 0
            else:
                self._bitmap = ((self._bitmap << ahead) | (1 << (ahead - 1))) & _WINDOW_MASK
            self._max = counter
            return True
        if behind == 0:
            return False  # the maximum itself
        if behind > COUNTER_WINDOW_SIZE:
            if self._encrypted:
                return False  # §4.6.5: everything behind the window counts as a duplicate
            self._max, self._bitmap = counter, 0  # §4.6.5: the peer restarted; trust the new counter
            return True
        bit = 1 << (behind - 1)
        if self._bitmap & bit:
            return False
        self._bitmap |= bit
        return True
