"""What classifying a new number costs the accept, for one country's numbers and for numbers of
every region, with libphonenumber's own cache of compiled patterns (as Pigeon runs it) and
without it (the library's default, which leaves them to ``re``'s cache).

    .venv/bin/python bench/number_classification.py [--numbers 20000] [--rounds 3]

Each mode runs in a process of its own (the cache is a setting of the whole process), rounds
alternated: ``pattern cache`` is ``pigeon.domain.addressing`` as it is; ``re's cache only``
turns the library's cache off again after importing it. Each round classifies ``--numbers``
numbers with :func:`pigeon.domain.addressing.parse_msisdn`, Pigeon's cache of classified
numbers emptied before each, so that every number is new, as a campaign's are:

- ``one country``: ``+1415555`` and four digits, the recipients of scenario c;
- ``every region``: libphonenumber's example mobile number of each region (some 240), its
  last four digits varied, drawn at random, the valid ones kept: the traffic of a gateway
  that sends worldwide.

``re`` keeps the last 512 patterns it compiled. The metadata of every region hold a few
thousand, so numbers of many countries make it compile them again and again. Since session 48
Pigeon finds a number's type with one pattern of its own per region and length (made from the
metadata once, kept), so the library's cache matters less to it. Each mix is timed twice: its
first pass meets those patterns for the first time (their making counted), its second
(``, again``) runs with every pattern made, as a gateway does once it has seen a country's
numbers. Printed: CPU microseconds per new number (median of the rounds) of each mode and row,
and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import command_and_machine

ROOT = Path(__file__).resolve().parents[1]
MODES = ("re's cache only", "pattern cache")
MIXES = ("one country", "every region")
#: The table's rows: each mix's first pass (patterns met for the first time) and a second pass
#: over the same numbers (every pattern already made; Pigeon's cache of numbers still emptied).
PASSES = tuple(row for mix in MIXES for row in (mix, f"{mix}, again"))


def numbers_of(mix: str, count: int, seed: int = 1) -> list[str]:
    """``count`` numbers of ``mix``, in E.164."""
    if mix == "one country":
        return [f"+1415555{index % 10_000:04d}" for index in range(count)]
    import phonenumbers

    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is not None:
            examples.append(
                phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            )
    draw = random.Random(seed)
    numbers: list[str] = []
    index = 0
    while len(numbers) < count:
        number = draw.choice(examples)[:-4] + f"{index % 10_000:04d}"
        index += 1
        # Only valid ones, as a gateway's traffic mostly is (a variation may leave the plan).
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            numbers.append(number)
    return numbers


def classify(mode: str, numbers_by_mix: dict[str, list[str]]) -> dict[str, float]:
    """In this process: CPU us per new number of each mix, in ``mode``. The numbers are drawn
    by the parent: drawing them checks each with libphonenumber, which would make its patterns
    here before the first pass is timed."""
    from phonenumbers import re_util

    from pigeon.domain import addressing
    from pigeon.domain.errors import InvalidRecipient

    if mode == MODES[0]:
        # The library's default: no cache of its own (``enable_pattern_cache`` not called).
        re_util._COMPILED_PATTERNS = None
    found: dict[str, float] = {}
    for mix in MIXES:
        numbers = numbers_by_mix[mix]
        count = len(numbers)
        for row in (mix, f"{mix}, again"):
            started = time.process_time()
            for number in numbers:
                addressing._numbers.clear()  # every number new to Pigeon's own cache
                # Valid numbers only; a refusal would be classified all the same.
                with contextlib.suppress(InvalidRecipient):
                    addressing.parse_msisdn(number)
            found[row] = (time.process_time() - started) * 1e6 / count
    return found


def run_mode(mode: str, numbers_by_mix: dict[str, list[str]]) -> dict[str, float]:
    """One round of ``mode`` in a process of its own, given the numbers on its stdin."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode],
        input=json.dumps(numbers_by_mix),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    found: dict[str, float] = json.loads(done.stdout)
    return found


def report(medians: dict[str, dict[str, float]]) -> str:
    """The Markdown table of the medians: each mix's CPU us per new number in each mode."""
    lines = [
        f"| numbers | {MODES[0]} (us per new number) | {MODES[1]} (us) | ratio |",
        "|---|---|---|---|",
    ]
    for row in PASSES:
        before, after = medians[MODES[0]][row], medians[MODES[1]][row]
        ratio = before / after if after else float("nan")
        lines.append(f"| {row} | {before:.1f} | {after:.1f} | {ratio:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=20_000, help="of each mix, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(classify(args.child, json.loads(sys.stdin.read()))))
        return
    numbers_by_mix = {mix: numbers_of(mix, args.numbers) for mix in MIXES}
    rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for index in range(args.rounds):
        for mode in MODES:
            found = run_mode(mode, numbers_by_mix)
            rounds[mode].append(found)
            figures = ", ".join(f"{mix} {us:.1f} us" for mix, us in found.items())
            print(f"round {index + 1}, {mode}: {figures}", file=sys.stderr, flush=True)
    medians = {
        mode: {row: statistics.median(r[row] for r in found) for row in PASSES}
        for mode, found in rounds.items()
    }
    print(report(medians))
    print()
    print(command_and_machine("number_classification.py", argv))


if __name__ == "__main__":
    main()
