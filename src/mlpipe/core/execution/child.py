"""An orchestrator run in a child process of its own: a JSON request in, a JSON report out.

Orchestrators that fix their home, database or logging when first imported run each pipeline
run in a child, ``python -m MODULE REQUEST.json REPORT.json``, its output appended to the run's
log; what the child reports is the orchestrator's view of the run. The child is fresh, or kept
between runs (:mod:`~mlpipe.core.execution.kept`) when the runner names the files its state is
bound to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlpipe.core.execution.runner import RunRequest


def run_child(module: str, request: dict[str, Any], env: dict[str, str], log_path: Path,
              keep: Sequence[Path] | None = None) -> tuple[dict[str, Any] | None, int]:
    """Run ``module`` on ``request``, its output appended to ``log_path`` (a resumed run keeps
    the first try's): (its report, or None when it wrote none, and its exit code). With
    ``keep`` (the files its state is bound to, such as its database: ``[]`` for none), in the
    child kept from the last run with the same environment and folder, unless one of those
    files was replaced since (:mod:`~mlpipe.core.execution.kept`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlpipe-child-") as tmp:
        request_path, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request))
        code = None
        if keep is not None:
            from mlpipe.core.execution.kept import run_kept

            code = run_kept(module, request_path, result, env, log_path, keep)
        if code is None:
            with log_path.open("ab") as log_file:
                code = subprocess.run(
                    [sys.executable, "-m", module, str(request_path), str(result)], env=env,
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    check=False).returncode
        report = json.loads(result.read_text()) if code == 0 and result.is_file() else None
        return report, code


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log ("" when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def request_json(request: RunRequest) -> dict[str, Any]:
    """``request`` as JSON for a child, its pipeline by ``portable_ref`` (:func:`read_request`)."""
    from mlpipe.core.pipeline import portable_ref

    return {"pipeline": portable_ref(request.pipeline), "home": str(request.home),
            "config": request.config.model_dump(mode="json"), "run_id": request.run_id,
            "use_cache": request.use_cache}


def read_request(data: dict[str, Any]) -> RunRequest:
    """The run request :func:`request_json` wrote, in the child: its pipeline imported again."""
    from mlpipe.core.config import config_from_json
    from mlpipe.core.pipeline import resolve_pipeline

    pipeline = resolve_pipeline(data["pipeline"])
    return RunRequest(pipeline, config_from_json(data["config"], pipeline.config_type),
                      Path(data["home"]), data["run_id"], data["use_cache"])
