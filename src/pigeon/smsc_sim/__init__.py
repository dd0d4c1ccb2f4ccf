"""``pigeon smsc-sim``: a standalone SMPP 3.4 carrier (SMSC) for staging and tests.

In process::

    sim = SmscSimulator(SmscSimConfig(port=0, receipt_delay=0.1))
    port = await sim.start()
    ...                                   # bind a client to 127.0.0.1:port
    await sim.send_mo("+447700900123", "12345", "Hello")
    await sim.wait_until(lambda: sim.stats.receipts_acked == 3)
    await sim.stop()

As a process: ``python -m pigeon.smsc_sim [flags]`` (or ``pigeon smsc-sim`` once wired), which
calls :func:`main`; :func:`build_config_from_args` turns the flags into a config and
:func:`run_smsc_sim` runs it until cancelled. Flags:

``--host 127.0.0.1``, ``--port 2775`` (0: any free port, printed at start)
    where to listen.
``--system-id pigeon``, ``--password secret``
    the one account allowed to bind (a wrong password gets ESME_RINVPASWD, an unknown
    system_id ESME_RINVSYSID).
``--ids hex|HEX|decimal``, ``--receipt-ids hex|HEX|decimal``, ``--id-start N``, ``--id-width N``
    message id format in submit_sm_resp and in receipts (default: the same), first id,
    zero-padding (leading zeros).
``--receipt-delay SECONDS`` (0.5)
    delay between the submit_sm_resp and the receipt.
``--outcome PREFIX=STAT`` (repeatable), ``--outcome-mix STAT=WEIGHT,...``,
``--default-outcome STAT``
    receipt outcome by destination prefix (longest wins), else drawn from the mix, else the
    default; STAT is DELIVRD, UNDELIV, EXPIRED, REJECTD or ``none`` (no receipt).
``--default-alphabet gsm7|latin1``
    how the simulator reads data_coding 0.
``--window N`` (10)
    deliver_sm the simulator keeps unacknowledged per bind.
``--no-receipt-tlvs``
    receipts carry only the text (no receipted_message_id / message_state TLVs).
``--seed N``
    seed of the outcome draws.
``--control-port N``
    serve the HTTP control endpoint on 127.0.0.1:N (``GET /stats``, ``GET /messages``,
    ``GET /received?since=N`` with arrival times, ``POST /mo``; see
    :mod:`pigeon.smsc_sim.control`).
``--fault SPEC`` (repeatable)
    ``throttle:RATE`` (ESME_RTHROTTLED beyond RATE submits/s), ``queue-full:N`` (every N-th
    submit ESME_RMSGQFUL), ``no-response:N`` (every N-th submit never answered),
    ``error:STATUS[:N]`` (every N-th submit answered STATUS, e.g. ``error:0x0B``),
    ``disconnect:N[:TIMES]`` (close a connection once it holds N unanswered submits),
    ``receipt-before-resp``, ``duplicate-receipts``, ``response-delay:SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Sequence

from pigeon.smsc_sim.config import Faults, SmscSimConfig, build_config_from_args, parse_fault
from pigeon.smsc_sim.server import BindStats, ReceivedMessage, SimStats, SmscSimulator

__all__ = [
    "BindStats",
    "Faults",
    "ReceivedMessage",
    "SimStats",
    "SmscSimConfig",
    "SmscSimulator",
    "build_config_from_args",
    "main",
    "parse_fault",
    "run_smsc_sim",
]


async def run_smsc_sim(config: SmscSimConfig) -> None:
    """Run a simulator with ``config`` until cancelled (Ctrl-C), printing where it listens."""
    sim = SmscSimulator(config)
    port = await sim.start()
    # What start made lives as long as the process: out of the cyclic collector's full scans,
    # which stalled the loop for tens of milliseconds under load (the carrier's answer late).
    gc.collect()
    gc.freeze()
    control = f", control on http://{config.host}:{sim.control_port}" if sim.control_port else ""
    print(f"smsc-sim listening on {config.host}:{port}{control}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: parse ``argv`` (default ``sys.argv[1:]``) and run; exit status."""
    try:
        config = build_config_from_args(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"smsc-sim: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_smsc_sim(config))
    return 0
