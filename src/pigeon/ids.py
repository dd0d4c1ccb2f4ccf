"""Prefixed, time-ordered ids: ``msg_`` + a 26-character ULID (Crockford base32).

Ids made by one factory are strictly increasing, so ordering by id is ordering by creation
(cursor pagination and index locality come for free).
"""

from __future__ import annotations

import os
import threading
import time
import weakref

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: Every pair of base32 digits, indexed by the 10 bits they encode: two digits per step.
_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)


def _base32(value: int, length: int) -> str:
    """``value`` as ``length`` (even) Crockford base32 digits, most significant first."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 0x3FF] for shift in range(5 * length - 10, -1, -10)])


def _base32_14(value: int) -> str:
    """``_base32(value, 14)`` spelt out: a random part's high digits, made in every new
    millisecond (about half the loop's time: no comprehension, no range)."""
    pairs = _PAIRS
    return "".join(
        (
            pairs[value >> 60 & 0x3FF],
            pairs[value >> 50 & 0x3FF],
            pairs[value >> 40 & 0x3FF],
            pairs[value >> 30 & 0x3FF],
            pairs[value >> 20 & 0x3FF],
            pairs[value >> 10 & 0x3FF],
            pairs[value & 0x3FF],
        )
    )


#: Bytes of the system's randomness read at once: a ULID's random part takes 10 of them in
#: each new millisecond, and ``os.urandom`` is a system call (``getrandom``) per read, which
#: ``serve``'s profile put at most of a ULID's cost (docs/benchmarks.md, session 19).
ENTROPY_BYTES = 4096

#: Every factory, so that a forked child drops the randomness it inherited (it would repeat
#: its parent's random parts).
_FACTORIES: weakref.WeakSet[UlidFactory] = weakref.WeakSet()


class UlidFactory:
    """Makes monotonic ULIDs: within one millisecond the random part is incremented.

    The random part of a new millisecond is 79 bits of the system's randomness
    (``os.urandom``), read ``ENTROPY_BYTES`` at a time; a forked child reads afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = 0
        self._time_digits = _base32(0, 10)
        #: The time's digits but its last two, which change only every 1,024 ms.
        self._second = -1
        self._second_digits = ""
        #: The random part but its last 10 bits, and its 14 digits: within a millisecond only
        #: the last two digits change, but for a carry every 1,024 ids.
        self._high = -1
        self._high_digits = ""
        self._entropy = b""
        self._entropy_at = 0
        _FACTORIES.add(self)

    def ulid(self) -> str:
        """A new ULID string, greater than every one this factory made before."""
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                now_ms = self._last_ms
                self._last_random += 1
            else:
                self._last_ms = now_ms
                self._last_random = self._random_bits()
                second = now_ms >> 10
                if second != self._second:
                    self._second = second
                    self._second_digits = _base32(second, 8)
                self._time_digits = self._second_digits + _PAIRS[now_ms & 0x3FF]
            random = self._last_random
            high = random >> 10
            if high != self._high:
                self._high = high
                self._high_digits = _base32_14(high)
            return self._time_digits + self._high_digits + _PAIRS[random & 0x3FF]

    def _random_bits(self) -> int:
        """79 random bits (a ULID's random part, with room to count up within a
        millisecond), from the buffered system randomness."""
        at = self._entropy_at
        if at + 10 > len(self._entropy):
            self._entropy = os.urandom(ENTROPY_BYTES)
            at = 0
        self._entropy_at = at + 10
        return int.from_bytes(self._entropy[at : at + 10], "big") >> 1

    def forget_entropy(self) -> None:
        """Drop the buffered randomness (a forked child must not reuse its parent's)."""
        self._entropy = b""
        self._entropy_at = 0

    def new(self, prefix: str) -> str:
        """A new id such as ``msg_01JD3...``."""
        return f"{prefix}_{self.ulid()}"


def _forget_entropy_after_fork() -> None:
    for factory in list(_FACTORIES):
        factory.forget_entropy()


os.register_at_fork(after_in_child=_forget_entropy_after_fork)
