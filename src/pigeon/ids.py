"""Prefixed, time-ordered ids: ``msg_`` + a 26-character ULID (Crockford base32).

Ids made by one factory are strictly increasing, so ordering by id is ordering by creation
(cursor pagination and index locality come for free).
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: Every pair of base32 digits, indexed by the 10 bits they encode: two digits per step.
_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)


def _base32(value: int, length: int) -> str:
    """``value`` as ``length`` (even) Crockford base32 digits, most significant first."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 0x3FF] for shift in range(5 * length - 10, -1, -10)])


class UlidFactory:
    """Makes monotonic ULIDs: within one millisecond the random part is incremented."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = 0
        self._time_digits = _base32(0, 10)
        #: The random part but its last 10 bits, and its 14 digits: within a millisecond only
        #: the last two digits change, but for a carry every 1,024 ids.
        self._high = -1
        self._high_digits = ""

    def ulid(self) -> str:
        """A new ULID string, greater than every one this factory made before."""
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                now_ms = self._last_ms
                self._last_random += 1
            else:
                self._last_ms = now_ms
                self._last_random = int.from_bytes(os.urandom(10), "big") >> 1
                self._time_digits = _base32(now_ms, 10)
            random = self._last_random
            high = random >> 10
            if high != self._high:
                self._high = high
                self._high_digits = _base32(high, 14)
            return self._time_digits + self._high_digits + _PAIRS[random & 0x3FF]

    def new(self, prefix: str) -> str:
        """A new id such as ``msg_01JD3...``."""
        return f"{prefix}_{self.ulid()}"
