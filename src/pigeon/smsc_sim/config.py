"""Configuration of the SMSC simulator, and its command-line flags.

Everything is a frozen dataclass so tests build a config in one expression; the same values
come from the command line through :func:`build_config_from_args` (the flags are listed in
the package docstring, :mod:`pigeon.smsc_sim`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "OUTCOMES",
    "AlphabetName",
    "Faults",
    "IdFormat",
    "Outcome",
    "SmscSimConfig",
    "build_config_from_args",
    "parse_fault",
]

Outcome = Literal["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "none"]
"""What becomes of an accepted message: the receipt's ``stat``, or ``none`` (no receipt)."""
OUTCOMES: tuple[Outcome, ...] = ("DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "none")

IdFormat = Literal["hex", "HEX", "decimal"]
"""How message ids are written: lower-case hex, upper-case hex or decimal."""

AlphabetName = Literal["gsm7", "latin1"]


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviours on demand. Counters ("every N") run over all submits the simulator got.

    * ``throttle_per_second``: ESME_RTHROTTLED for submits beyond this many in the last second;
    * ``queue_full_every``: every N-th submit answered ESME_RMSGQFUL;
    * ``no_response_every``: every N-th submit silently dropped (never answered);
    * ``error_status`` / ``error_every``: every N-th submit answered with this status;
    * ``disconnect_after``: a connection that got this many submits is closed at once, none
      of them answered (``disconnect_times`` times in all, then never again);
    * ``receipt_before_response``: the receipt is sent, and acknowledged by the client, before
      the submit_sm_resp;
    * ``duplicate_receipts``: every receipt is sent twice;
    * ``response_delay``: seconds before each submit_sm_resp (fills the client's window).
    """

    throttle_per_second: float | None = None
    queue_full_every: int = 0
    no_response_every: int = 0
    error_status: int | None = None
    error_every: int = 1
    disconnect_after: int = 0
    disconnect_times: int = 1
    receipt_before_response: bool = False
    duplicate_receipts: bool = False
    response_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class SmscSimConfig:
    """The simulated carrier: where it listens, who may bind, ids, receipts and faults.

    ``port`` 0 takes any free port (:meth:`SmscSimulator.start` returns it). Outcomes: the
    longest prefix of the destination (without ``+``) in ``outcomes`` decides; else a draw
    from ``outcome_mix`` (weights, e.g. percentages) when it is set; else ``default_outcome``.
    A deliver_sm the client refuses (or leaves unanswered) is sent again after
    ``redelivery_delay``. Message ids count up from ``id_start``, written as ``message_ids``
    in submit_sm_resp and as ``receipt_ids`` (default: the same) in receipts, zero-padded to
    ``id_width``.
    """

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "pigeon"
    password: str = field(default="secret", repr=False)
    message_ids: IdFormat = "hex"
    receipt_ids: IdFormat | None = None
    id_start: int = 0xA1B2C300
    id_width: int = 0
    receipt_delay: float = 0.5
    outcomes: Mapping[str, Outcome] = field(default_factory=dict)
    outcome_mix: Mapping[Outcome, float] = field(default_factory=dict)
    default_outcome: Outcome = "DELIVRD"
    default_alphabet: AlphabetName = "gsm7"
    window: int = 10
    redelivery_delay: float = 1.0
    receipt_tlvs: bool = True
    seed: int | None = None
    control_port: int | None = None
    faults: Faults = field(default_factory=Faults)


def _int(text: str) -> int:
    return int(text, 0)


def parse_fault(spec: str, faults: Faults | None = None) -> Faults:
    """Add one ``--fault`` spec to ``faults`` (see the package docstring for the forms)."""
    faults = faults or Faults()
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    try:
        if name == "throttle":
            return dataclasses.replace(faults, throttle_per_second=float(arg))
        if name == "queue-full":
            return dataclasses.replace(faults, queue_full_every=int(arg or "1"))
        if name == "no-response":
            return dataclasses.replace(faults, no_response_every=int(arg or "1"))
        if name == "error":
            status, _, every = arg.partition(":")
            return dataclasses.replace(
                faults, error_status=_int(status), error_every=int(every or "1")
            )
        if name == "disconnect":
            after, _, times = arg.partition(":")
            return dataclasses.replace(
                faults, disconnect_after=int(after), disconnect_times=int(times or "1")
            )
        if name == "receipt-before-resp":
            return dataclasses.replace(faults, receipt_before_response=True)
        if name == "duplicate-receipts":
            return dataclasses.replace(faults, duplicate_receipts=True)
        if name == "response-delay":
            return dataclasses.replace(faults, response_delay=float(arg))
    except ValueError as exc:
        raise ValueError(f"bad --fault {spec!r}: {exc}") from None
    raise ValueError(f"unknown --fault {spec!r}")


def _outcome(text: str) -> Outcome:
    value = text.strip()
    value = value if value == "none" else value.upper()
    if value not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {text!r}")
    return value  # narrowed to Outcome by the membership test above


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pigeon smsc-sim", description="A simulated SMPP carrier (SMSC) for tests."
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=2775)
    add("--system-id", default="pigeon")
    add("--password", default="secret")
    add("--ids", choices=["hex", "HEX", "decimal"], default="hex")
    add("--receipt-ids", choices=["hex", "HEX", "decimal"], default=None)
    add("--id-start", type=_int, default=0xA1B2C300)
    add("--id-width", type=int, default=0)
    add("--receipt-delay", type=float, default=0.5)
    add("--outcome", action="append", default=[], metavar="PREFIX=STAT")
    add("--outcome-mix", default="", metavar="STAT=WEIGHT,...")
    add("--default-outcome", default="DELIVRD")
    add("--default-alphabet", choices=["gsm7", "latin1"], default="gsm7")
    add("--window", type=int, default=10)
    add("--no-receipt-tlvs", action="store_true")
    add("--seed", type=int, default=None)
    add("--control-port", type=int, default=None)
    add("--fault", action="append", default=[], metavar="SPEC")
    return parser


def build_config_from_args(argv: Sequence[str]) -> SmscSimConfig:
    """The configuration the command-line flags ``argv`` describe; ``ValueError`` if bad."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on errors
        if exc.code == 0:
            raise
        raise ValueError("invalid smsc-sim arguments (see --help)") from None
    outcomes: dict[str, Outcome] = {}
    for item in args.outcome:
        prefix, sep, stat = item.partition("=")
        if not sep:
            raise ValueError(f"--outcome wants PREFIX=STAT, got {item!r}")
        outcomes[prefix.strip().lstrip("+")] = _outcome(stat)
    mix: dict[Outcome, float] = {}
    for item in filter(None, (p.strip() for p in args.outcome_mix.split(","))):
        stat, sep, weight = item.partition("=")
        if not sep:
            raise ValueError(f"--outcome-mix wants STAT=WEIGHT, got {item!r}")
        mix[_outcome(stat)] = float(weight)
    faults = Faults()
    for spec in args.fault:
        faults = parse_fault(spec, faults)
    return SmscSimConfig(
        host=args.host,
        port=args.port,
        system_id=args.system_id,
        password=args.password,
        message_ids=args.ids,
        receipt_ids=args.receipt_ids,
        id_start=args.id_start,
        id_width=args.id_width,
        receipt_delay=args.receipt_delay,
        outcomes=outcomes,
        outcome_mix=mix,
        default_outcome=_outcome(args.default_outcome),
        default_alphabet=args.default_alphabet,
        window=args.window,
        receipt_tlvs=not args.no_receipt_tlvs,
        seed=args.seed,
        control_port=args.control_port,
        faults=faults,
    )
