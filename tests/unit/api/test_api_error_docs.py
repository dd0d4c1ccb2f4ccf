"""docs/errors.md documents every problem code the API can answer with."""

from __future__ import annotations

from pathlib import Path

from pigeon.api.problems import PROBLEMS

DOC = Path(__file__).resolve().parents[3] / "docs" / "errors.md"


def test_every_code_is_documented_with_its_status() -> None:
    """Each code in the catalogue has a row in docs/errors.md with the same HTTP status."""
    text = DOC.read_text(encoding="utf-8")
    for code, kind in PROBLEMS.items():
        assert f"| `{code}` | {kind.status} |" in text, code
