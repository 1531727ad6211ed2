"""The memory ceiling a training run works under (training/resources.py)."""

from __future__ import annotations

import time

import pytest

from training.resources import MemoryCeilingExceeded, memory_ceiling


def test_a_block_that_passes_the_ceiling_is_stopped_with_memory_ceiling_exceeded():
    with pytest.raises(MemoryCeilingExceeded), memory_ceiling(0, interval=0.01):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the watcher's exception lands here
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_ceiling_still_stops_the_block_when_its_exception_lands_where_python_ignores_it():
    class Finalized:
        def __del__(self):
            # Python reports and ignores what a __del__ raises, as it does in a weakref
            # callback, and a garbage collection can run either in the middle of training.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the watcher's exception lands here
                pass

    with pytest.raises(MemoryCeilingExceeded), memory_ceiling(0, interval=0.01):
        Finalized()


def test_a_block_under_the_ceiling_finishes_as_it_would_without_one():
    with memory_ceiling(1_000_000, interval=0.01):
        total = sum(range(1_000_000))
    assert total == 499_999_500_000
