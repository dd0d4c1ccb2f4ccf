"""The gateway's garbage-collector settings, applied once it has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pigeon.cli import GC_THRESHOLDS, freeze_startup_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_freeze_startup_heap_freezes_what_lives_and_collects_young_objects_less_often() -> None:
    """After start-up the live heap is frozen and young collections wait for 20,000 allocations."""
    gc.unfreeze()
    freeze_startup_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700
