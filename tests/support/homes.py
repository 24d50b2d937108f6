"""Homes built once per worker (an xdist worker is one process, so "session" is per worker) and
copied per test: a copy takes milliseconds where building costs an orchestrator start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: Migrates the metadata DB of $AIRFLOW_HOME the way the Airflow runner's child does.
_MIGRATE = (
    "import os, pathlib\n"
    "from mlpipe.adapters.airflow._dagtest import ensure_db\n"
    "ensure_db(pathlib.Path(os.environ['AIRFLOW_HOME']))\n"
)


def migrated_airflow_home(path: Path, timeout_s: float = 600) -> Path:
    """An Airflow home at ``path`` with a migrated sqlite DB: a ``MLPIPE_AIRFLOW_DB_TEMPLATE``."""
    from mlpipe.adapters.airflow.runner import airflow_env

    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", _MIGRATE], env=airflow_env(path),
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"migrating the template Airflow DB in {path} failed "
                           f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return path
