"""Every Python block of docs/extending.md runs, in order, as one importable module: a snippet
that stops working fails here, with the doc's own line number in the traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, venv_env

DOC = ROOT / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w*)\s*$")


def python_blocks(text: str) -> str:
    """The doc with everything but its ```python blocks blanked: line N is the doc's line N."""
    lines, inside, keep = [], False, False
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and not inside:
            inside, keep = True, fence.group(1) == "python"
            lines.append("")
        elif fence and inside:
            inside = keep = False
            lines.append("")
        else:
            lines.append(line if inside and keep else "")
    return "\n".join(lines) + "\n"


def test_extending_snippets_run(tmp_path: Path) -> None:
    source = python_blocks(DOC.read_text())
    assert source.count("\n") > 100 and "run_pipeline(PIPELINE" in source
    assert source.count('if __name__ == "__main__":') >= 2  # nothing runs when imported
    module = tmp_path / "extending_doc.py"
    module.write_text(source)
    env = {**venv_env(), "MLPIPE_HOME": str(tmp_path / "home"), "MLPIPE_PROGRESS": "plain",
           "PYTHONPATH": str(tmp_path) + ":" + venv_env().get("PYTHONPATH", "")}
    # as a script, the way its `if __name__ == "__main__":` blocks are meant to run (the
    # pipeline then lives in __main__, so a map step's shards run in this one process)
    ran = subprocess.run([sys.executable, str(module)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert ran.returncode == 0, ran.stderr.replace(str(module), str(DOC))[-5000:]
    assert (tmp_path / "home" / "runs" / "scoring").is_dir()
    assert (tmp_path / "home" / "runs" / "gated").is_dir()
