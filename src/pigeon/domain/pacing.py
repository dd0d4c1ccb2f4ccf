"""Sharing a carrier's throughput cap among the processes that send to it.

A connector's ``throughput_per_second`` is what the carrier allows the account, whichever
process sends: ``pigeon serve`` with worker processes has each worker (and each OTP worker)
pace its own submits, so each gets a part of the cap. ``shared_rates`` works the parts out
from what each process asked for lately: a process that had to wait for its pacer wants
twice its rate, one that did not wants a quarter more than it used; every process keeps at
least ``FLOOR`` of an even part, so an idle one (the OTP worker between OTPs) can start at
once. The cap is then filled in order of want (max-min fairness): no process gets more than
it wants while another gets less than an even part, and what nobody wants is spread in
proportion to the wants. The parts always add up to the cap. ``granted_rates`` then moves
the processes towards those parts without the parts in use ever adding up to more.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

#: The least part of an even share a process keeps, however idle.
FLOOR = 0.1
#: How much more than it used a process that did not have to wait asks for.
HEADROOM = 1.25

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class PacerUse:
    """How one process used its part of a cap lately: submits per second it paced, whether
    any of them had to wait for a token, and its part then (per second)."""

    demand: float
    waited: bool
    rate: float


def shared_rates(cap: float, uses: Mapping[K, PacerUse]) -> dict[K, float]:
    """Each process's part of ``cap`` (per second), from how it used its part lately."""
    if not uses:
        return {}
    count = len(uses)
    floor = cap * FLOOR / count
    wants = {
        key: max(floor, 2 * use.rate if use.waited else HEADROOM * use.demand)
        for key, use in uses.items()
    }
    parts: dict[K, float] = {}
    remaining = cap
    for index, key in enumerate(sorted(wants, key=lambda k: wants[k])):
        part = min(wants[key], remaining / (count - index))
        parts[key] = part
        remaining -= part
    if remaining > 0:  # every want met: the rest in proportion to the wants
        wanted = sum(parts.values())
        for key in parts:
            parts[key] += remaining * parts[key] / wanted
    return parts


def granted_rates(
    cap: float, targets: Mapping[K, float], current: Mapping[K, float]
) -> dict[K, float]:
    """The parts to give now on the way from ``current`` to ``targets`` without the parts in
    use ever adding up to more than ``cap``: the processes apply their new parts at different
    moments, so a part only grows into what the others' parts left (as they reported them),
    and a part that shrinks does so at once; the rest of a rise follows at the next sharing."""
    in_use = {key: current.get(key, target) for key, target in targets.items()}
    granted = {key: min(target, in_use[key]) for key, target in targets.items()}
    # What the parts in use now leave: a shrinking part counts until its process applies it.
    headroom = cap - sum(in_use.values())
    short = {key: targets[key] - granted[key] for key in targets if targets[key] > granted[key]}
    wanted = sum(short.values())
    if headroom <= 0 or wanted <= 0:
        return granted
    scale = min(1.0, headroom / wanted)
    for key, missing in short.items():
        granted[key] += missing * scale
    return granted
