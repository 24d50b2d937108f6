"""``mlpipe render`` for many argument lists in one process.

A render in a fresh process pays the interpreter, mlpipe and the orchestrator's imports each time
(seconds each; a fixture rendering every orchestrator and pipeline started 6 to 12 of them at
once on two cores). The command and its option parsing are the CLI's own (``mlpipe.cli.app``).
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
from mlpipe.cli import app
for args in json.loads(sys.argv[1]):
    app(["render", *args], prog_name="mlpipe", standalone_mode=False)
"""


def render_all(commands: list[list[str]], env: dict[str, str], timeout: float = 300) -> str:
    """Run ``mlpipe render ARGS`` for each ARGS in order, in one child process; its stdout (one
    ``wrote PATH`` line per file). Fails naming the child's error if any render fails."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"mlpipe render: {proc.stderr[-3000:]}"
    return proc.stdout
