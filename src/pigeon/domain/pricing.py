"""Money as integers: micro-units of a currency, never floats."""

from __future__ import annotations

from dataclasses import dataclass

MICROS = 1_000_000


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in micro-units (1/1,000,000) of ``currency``."""

    micros: int
    currency: str

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.micros + other.micros, self.currency)

    def times(self, count: int) -> Money:
        """This amount ``count`` times (e.g. a per-segment rate times the segments)."""
        return Money(self.micros * count, self.currency)

    def as_decimal_string(self) -> str:
        """The amount as a decimal string with six places, e.g. ``"0.012500"``."""
        sign = "-" if self.micros < 0 else ""
        whole, frac = divmod(abs(self.micros), MICROS)
        return f"{sign}{whole}.{frac:06d}"
