"""How the SMPP client turns submit_sm_resp error statuses into domain errors."""

from __future__ import annotations

from pigeon.connectors.smpp_client import carrier_error
from pigeon.domain.errors import Fault, PermanentFailure, TemporaryFailure, Throttled
from pigeon.smpp.constants import CommandStatus


def test_invalid_destination_blames_the_message() -> None:
    """ESME_RINVDSTADR is a permanent failure at the message's fault: no failover."""
    error = carrier_error(CommandStatus.ESME_RINVDSTADR, "refused")
    assert isinstance(error, PermanentFailure)
    assert error.fault is Fault.MESSAGE
    assert error.code == "smpp_0x0000000b"


def test_other_permanent_statuses_blame_the_route() -> None:
    """A permanent status not listed as a message fault (e.g. ESME_RINVSRCADR) fails over."""
    error = carrier_error(CommandStatus.ESME_RINVSRCADR, "refused")
    assert isinstance(error, PermanentFailure)
    assert error.fault is Fault.ROUTE


def test_message_fault_statuses_are_configurable() -> None:
    """A connector lists its own message-fault statuses; unlisted defaults blame the route."""
    custom = frozenset({int(CommandStatus.ESME_RINVSRCADR)})
    moved = carrier_error(CommandStatus.ESME_RINVSRCADR, "refused", message_faults=custom)
    default = carrier_error(CommandStatus.ESME_RINVDSTADR, "refused", message_faults=custom)
    assert isinstance(moved, PermanentFailure)
    assert moved.fault is Fault.MESSAGE
    assert isinstance(default, PermanentFailure)
    assert default.fault is Fault.ROUTE


def test_temporary_and_throttling_statuses_are_not_permanent() -> None:
    """ESME_RSYSERR retries later; ESME_RTHROTTLED slows down."""
    assert type(carrier_error(CommandStatus.ESME_RSYSERR, "x")) is TemporaryFailure
    assert isinstance(carrier_error(CommandStatus.ESME_RTHROTTLED, "x"), Throttled)
