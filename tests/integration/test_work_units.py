"""The work units really reach xdist: one file's tests all run on one worker.

xdist's own ``--dist loadgroup`` once silently stopped grouping (pytest 9 reads node ids from
a field xdist no longer writes), which split the container tests over two workers: the image
was built twice and a test that reads the others' output failed.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT, venv_env


def test_the_tests_of_one_file_run_on_one_worker() -> None:
    files = ["tests/unit/test_architecture.py", "tests/unit/test_deadlines.py"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist",
         "loadscope", "-v", *files], capture_output=True, text=True, cwd=ROOT, env=venv_env(),
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    workers: dict[str, set[str]] = {}
    for worker, path in re.findall(r"\[(gw\d+)\] \[\s*\d+%\] PASSED (\S+?)::", proc.stdout):
        workers.setdefault(path, set()).add(worker)
    assert set(workers) == set(files), proc.stdout[-3000:]
    assert all(len(ran_on) == 1 for ran_on in workers.values()), workers
