"""A deployed service never outlives the benchmark that started it, however the benchmark ends."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mlpipe.bench.deployed import Service, group_alive

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]

#: A benchmark stand-in: starts a service, writes its group id, then waits to be killed.
BENCH = f"""
import os, pathlib, sys, time
from mlpipe.bench.deployed import Service
out = pathlib.Path(sys.argv[1])
svc = Service("sleeper", {SLEEPER!r}, env=dict(os.environ), log=out / "svc.log", cwd=out)
(out / "pgid").write_text(str(svc.pgid))
time.sleep(600)
"""


def _until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.2)
    return False


def test_a_sigkilled_benchmark_takes_its_service_group_with_it(tmp_path: Path) -> None:
    bench = subprocess.Popen([sys.executable, "-c", BENCH, str(tmp_path)])
    try:
        assert _until(lambda: (tmp_path / "pgid").is_file(), 60), "the service never started"
        pgid = int((tmp_path / "pgid").read_text())
        assert group_alive(pgid)
        bench.kill()  # no finally, no atexit: only the watchdog is left to stop the service
        bench.wait(timeout=30)
        assert _until(lambda: not group_alive(pgid), 60), "the service outlived the benchmark"
    finally:
        bench.kill()
        bench.wait(timeout=30)


def test_stop_ends_the_service_and_its_watchdog(tmp_path: Path) -> None:
    svc = Service("sleeper", SLEEPER, env={}, log=tmp_path / "svc.log", cwd=tmp_path)
    watchdog = svc._watchdog
    svc.stop(grace=5)
    assert not group_alive(svc.pgid)
    assert watchdog.wait(timeout=10) == 0
