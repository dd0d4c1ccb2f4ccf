"""What a sender is told: receipt wishes, stat and err of customer receipts, SMPP accounts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.accounts import (
    new_smpp_password,
    valid_smpp_password,
    valid_system_id,
)
from pigeon.domain.messages import MessageStatus, ReceiptRequest
from pigeon.domain.receipts import ReceiptStatus, receipt_error, receipt_for

S = MessageStatus
FINAL = [S.DELIVERED, S.UNDELIVERED, S.EXPIRED, S.FAILED, S.REJECTED, S.CANCELED, S.UNKNOWN]


@pytest.mark.parametrize("status", list(MessageStatus))
def test_receipt_wishes(status: MessageStatus) -> None:
    """all: every final outcome; failure: all but delivered; success: delivered; none: none."""
    final = status in FINAL
    assert ReceiptRequest.ALL.wants(status) is final
    assert ReceiptRequest.FAILURE.wants(status) is (final and status is not S.DELIVERED)
    assert ReceiptRequest.SUCCESS.wants(status) is (status is S.DELIVERED)
    assert ReceiptRequest.NONE.wants(status) is False


@pytest.mark.parametrize(
    ("status", "stat", "err"),
    [
        (S.DELIVERED, ReceiptStatus.DELIVRD, "000"),
        (S.UNDELIVERED, ReceiptStatus.UNDELIV, "001"),
        (S.EXPIRED, ReceiptStatus.EXPIRED, "002"),
        (S.REJECTED, ReceiptStatus.REJECTD, "003"),
        (S.FAILED, ReceiptStatus.UNDELIV, "004"),
        (S.CANCELED, ReceiptStatus.DELETED, "005"),
        (S.UNKNOWN, ReceiptStatus.UNKNOWN, "000"),
    ],
)
def test_final_statuses_have_a_stat_and_a_default_err(
    status: MessageStatus, stat: ReceiptStatus, err: str
) -> None:
    """Each final status maps to its stat word and, without a carrier error, a fixed err."""
    assert receipt_for(status) is stat
    assert receipt_error(status, None) == err
    assert receipt_error(status, "carrier_rejected") == err


def test_non_final_statuses_have_no_receipt() -> None:
    """Queued or sent messages are not reported."""
    assert receipt_for(S.SENT) is None
    assert receipt_for(S.QUEUED) is None


@given(st.integers(min_value=1, max_value=99999))
def test_a_numeric_carrier_error_is_kept_as_three_digits(code: int) -> None:
    """A numeric carrier error becomes err, zero-padded, its last three digits kept."""
    assert receipt_error(S.UNDELIVERED, str(code)) == str(code).zfill(3)[-3:]
    assert receipt_error(S.DELIVERED, str(code)) == "000"


@pytest.mark.parametrize(
    ("system_id", "valid"),
    [("demo", True), ("a" * 15, True), ("a" * 16, False), ("", False), ("no spaces", False)],
)
def test_system_ids(system_id: str, valid: bool) -> None:
    """A system_id is 1-15 letters, digits, '_', '.' or '-' (SMPP gives it 16 octets)."""
    assert valid_system_id(system_id) is valid


def test_generated_passwords_fit_smpp_and_differ() -> None:
    """Generated passwords are 8 printable characters (SMPP's most) and not repeated."""
    passwords = {new_smpp_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 8 and valid_smpp_password(p) for p in passwords)
    assert not valid_smpp_password("123456789")
    assert not valid_smpp_password("")
