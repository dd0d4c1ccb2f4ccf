"""Settings of one SMPP carrier connector (see :mod:`pigeon.connectors.smpp_client`).

Kept apart from the client so that the per-connection driver (:mod:`.smpp_link`) and the
text composer (:mod:`.smpp_compose`) can read them without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pigeon.smpp.constants import CommandStatus

__all__ = [
    "DEFAULT_MESSAGE_FAULT_STATUSES",
    "DEFAULT_TEMPORARY_STATUSES",
    "BindMode",
    "ConcatMode",
    "DefaultAlphabet",
    "SmppConnectorSettings",
]

BindMode = Literal["trx", "tx", "rx+tx"]
"""``trx``: transceiver binds; ``tx``: transmitter binds only (no receipts, no MO);
``rx+tx``: a transmitter and a receiver bind per bind slot."""

ConcatMode = Literal["udh8", "udh16", "sar", "payload"]
"""How a long message travels: a UDH with an 8- or 16-bit reference in each part, the SAR
TLVs on each part, or the whole text in one submit_sm's message_payload TLV."""

DefaultAlphabet = Literal["gsm7", "latin1"]
"""What data_coding 0 means at this carrier: the GSM 03.38 default alphabet (one septet per
octet, unpacked) or ISO-8859-1."""

_S = CommandStatus

DEFAULT_TEMPORARY_STATUSES: frozenset[int] = frozenset(
    {
        _S.ESME_RSYSERR,
        _S.ESME_RINVBNDSTS,
        _S.ESME_RX_T_APPN,
        _S.ESME_RUNKNOWNERR,
    }
)
"""submit_sm_resp statuses that mean "try again later" (throttling statuses aside, which are
handled by slowing down and retrying). Every other error status is a permanent refusal."""

DEFAULT_MESSAGE_FAULT_STATUSES: frozenset[int] = frozenset({_S.ESME_RINVDSTADR})
"""Permanent submit_sm_resp statuses that blame the message, not the route: such a message
fails at once instead of failing over (no carrier delivers to an invalid destination). Every
other permanent status is the route's fault and moves the message to the next candidate."""


@dataclass(frozen=True, slots=True)
class SmppConnectorSettings:
    """How to reach and talk to one SMPP carrier. Times are in seconds.

    ``binds`` is the number of bind slots: with ``bind_mode="rx+tx"`` each slot opens one
    transmitter and one receiver. ``window`` is the number of requests awaiting a response
    per bind; ``throughput_per_second`` caps submit_sm per second for the whole connector
    (a token bucket holding a tenth of a second of burst, at least one message).

    ``source_ton``/``source_npi`` of None derive them from the sender: alphanumeric 5/0,
    ``+digits`` 1/1, other digits 0/1. Destinations are sent without their ``+``.
    """

    id: str
    host: str
    port: int
    system_id: str
    password: str = field(default="", repr=False)
    system_type: str = ""
    bind_mode: BindMode = "trx"
    binds: int = 1
    window: int = 10
    throughput_per_second: float | None = None
    concat: ConcatMode = "udh8"
    data_coding_default: DefaultAlphabet = "gsm7"
    default_source: str = ""
    source_ton: int | None = None
    source_npi: int | None = None
    dest_ton: int = 1
    dest_npi: int = 1
    service_type: str = ""
    registered_delivery: bool = True
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    connect_timeout: float = 10.0
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    unhealthy_after_timeouts: int = 3
    """Consecutive response timeouts after which the connection is dropped and re-made."""
    throttle_pause_min: float = 0.5
    """Pause of a bind after ESME_RTHROTTLED / ESME_RMSGQFUL; doubles while it goes on."""
    throttle_pause_max: float = 10.0
    throttle_retry_for: float = 30.0
    """How long one segment is retried while the carrier keeps throttling, then Throttled."""
    temporary_statuses: frozenset[int] = DEFAULT_TEMPORARY_STATUSES
    message_fault_statuses: frozenset[int] = DEFAULT_MESSAGE_FAULT_STATUSES
    drain_timeout: float = 2.0
    """On stop: how long to wait for submits in flight and receipts being handled."""
    unbind_timeout: float = 1.0
    mo_reassembly_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.bind_mode not in ("trx", "tx", "rx+tx"):
            raise ValueError(f"bind_mode must be trx, tx or rx+tx, not {self.bind_mode!r}")
        if self.concat not in ("udh8", "udh16", "sar", "payload"):
            raise ValueError(f"concat must be udh8, udh16, sar or payload, not {self.concat!r}")
        if self.data_coding_default not in ("gsm7", "latin1"):
            raise ValueError("data_coding_default must be gsm7 or latin1")
        if self.binds < 1 or self.window < 1:
            raise ValueError("binds and window must be at least 1")
        if self.throughput_per_second is not None and self.throughput_per_second <= 0:
            raise ValueError("throughput_per_second must be positive (or None: unlimited)")
        if self.reconnect_min_delay <= 0 or self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect delays: 0 < min <= max")
        if self.unhealthy_after_timeouts < 1:
            raise ValueError("unhealthy_after_timeouts must be at least 1")
