"""``bench/number_classification.py``: CPU per new number with and without libphonenumber's
cache of compiled patterns, for one country's numbers and every region's. No time is asserted."""

from __future__ import annotations

from types import ModuleType

import phonenumbers
import pytest

from support.bench import bench_module, run_bench, table_rows


@pytest.fixture(scope="module")
def classification() -> ModuleType:
    """The script as a module."""
    return bench_module("number_classification")


def test_every_region_mix_spans_the_calling_codes(classification: ModuleType) -> None:
    """The worldwide mix draws numbers of well over a hundred calling codes, each valid in
    form; the one-country mix is scenario c's recipients."""
    numbers = classification.numbers_of("every region", 3000)
    codes = {phonenumbers.parse(number).country_code for number in numbers}
    assert len(codes) > 100
    assert classification.numbers_of("one country", 2) == ["+14155550000", "+14155550001"]


def test_reports_both_mixes_in_both_modes() -> None:
    """One round of each mode reports a positive cost per number for each mix, first met and
    again, and the ratio."""
    done = run_bench("number_classification.py", "--numbers", "300", "--rounds", "1")
    rows = table_rows(done.stdout)
    assert [row[0] for row in rows[1:]] == [
        "one country",
        "one country, again",
        "every region",
        "every region, again",
    ]
    for row in rows[1:]:
        assert float(row[1]) > 0
        assert float(row[2]) > 0
        assert row[3].endswith("x")
    assert "command: python bench/number_classification.py" in done.stdout
