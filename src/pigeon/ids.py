"""Prefixed, time-ordered ids: ``msg_`` + a 26-character ULID (Crockford base32).

Ids made by one factory are strictly increasing, so ordering by id is ordering by creation
(cursor pagination and index locality come for free).
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


class UlidFactory:
    """Makes monotonic ULIDs: within one millisecond the random part is incremented."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = 0

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
            return _base32(now_ms, 10) + _base32(self._last_random, 16)

    def new(self, prefix: str) -> str:
        """A new id such as ``msg_01JD3...``."""
        return f"{prefix}_{self.ulid()}"
