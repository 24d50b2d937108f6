"""An orchestrator run in a child process of its own: a JSON request in, a JSON report out.

Orchestrators that fix their home, database or logging when first imported run each pipeline
run in a fresh ``python -m MODULE REQUEST.json REPORT.json``, its output appended to the run's
log; what the child reports is the orchestrator's view of the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def run_child(module: str, request: dict[str, Any], env: dict[str, str], log_path: Path
              ) -> tuple[dict[str, Any] | None, int]:
    """Run ``module`` on ``request``, its output appended to ``log_path`` (a resumed run keeps
    the first try's): (its report, or None when it wrote none, and its exit code)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlpipe-child-") as tmp:
        request_path, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request))
        with log_path.open("ab") as log_file:
            code = subprocess.run(
                [sys.executable, "-m", module, str(request_path), str(result)], env=env,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, check=False,
            ).returncode
        report = json.loads(result.read_text()) if code == 0 and result.is_file() else None
        return report, code


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log ("" when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def seed_home(template_env: str, home: Path, files: tuple[str, ...], lock: str) -> bool:
    """Copy ``files`` (a database, then its migration marker) from the home ``$template_env``
    names into ``home`` unless it has the first already: where many fresh homes would each
    migrate their own database, a copy takes milliseconds. Under ``home/lock`` (the lock the
    migration takes); returns whether it copied."""
    import os
    import shutil

    from mlpipe.core.errors import ConfigError
    from mlpipe.core.files import exclusive

    template = os.environ.get(template_env)
    if not template:
        return False
    source = Path(template).expanduser()
    if not all((source / f).is_file() for f in files):
        raise ConfigError(f"{template_env}={template}: no migrated database there "
                          f"({' and '.join(files)}); point it at a home mlpipe has run in, "
                          "or unset it")
    if source.resolve() == home.resolve():
        return False
    home.mkdir(parents=True, exist_ok=True)
    with exclusive(home / lock, what="metadata DB migration"):
        if (home / files[0]).exists():
            return False
        for name in files:  # the database whole before its marker says it is there
            shutil.copyfile(source / name, home / f".{name}.copy")
            os.replace(home / f".{name}.copy", home / name)
    return True
