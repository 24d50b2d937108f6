"""timings.process_started: this process's creation time, to the clock tick, not to the second."""

from __future__ import annotations

import sys
import time

import psutil
import pytest

from mlpipe.core.execution.timings import process_started


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the boot-clock path is Linux's")
def test_process_start_is_the_kernels_to_the_tick() -> None:
    started = process_started()
    assert started <= time.time()
    # psutil's answer rounds the boot time to whole seconds: within a second of ours, not equal
    assert abs(started - psutil.Process().create_time()) < 1.0 + 0.05
    # the same instant asked twice (10 ms ticks; the clocks read a few microseconds apart)
    assert abs(process_started() - started) < 0.02
