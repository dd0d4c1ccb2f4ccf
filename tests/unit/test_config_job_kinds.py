"""``job_kinds``: which jobs a process's runner takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pigeon.config import JOB_KINDS, ConfigError, load_settings


def _load(tmp_path: Path, value: str) -> frozenset[str]:
    empty = tmp_path / "pigeon.toml"
    empty.write_text("")
    return load_settings({"PIGEON_JOB_KINDS": value}, empty).job_kinds_wanted


def test_job_kinds_parse_to_a_set_and_empty_means_every_kind(tmp_path: Path) -> None:
    """A comma list becomes a set; an empty value leaves the runner every kind."""
    assert _load(tmp_path, " webhook, notify ,") == {"webhook", "notify"}
    assert _load(tmp_path, "") == frozenset()
    assert {"dispatch", "receipt", "expire", "notify", "webhook"} == JOB_KINDS


def test_unknown_job_kinds_are_refused(tmp_path: Path) -> None:
    """A kind no handler exists for is a configuration error naming the known ones."""
    with pytest.raises(ConfigError, match="job_kinds: unknown teleport"):
        _load(tmp_path, "dispatch,teleport")
