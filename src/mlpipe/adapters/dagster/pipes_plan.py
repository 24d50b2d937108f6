"""A cluster-mode shard list pod: ``python -m mlpipe.adapters.dagster.pipes_plan step NAME ...
--plan`` runs ``mlpipe step`` and reports its list as the Pipes custom message ``{"shards": [...]}``
(the one value a pod hands the run worker; other pods' outputs stay on the volume or store)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

#: The plan pod's command (``python`` is the image's venv, first on PATH).
COMMAND = ("python", "-m", "mlpipe.adapters.dagster.pipes_plan")


def main(argv: list[str] | None = None) -> int:
    from dagster_pipes import open_dagster_pipes

    args = list(sys.argv[1:] if argv is None else argv)
    with open_dagster_pipes() as pipes, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shards.json"
        code = subprocess.run([sys.executable, "-m", "mlpipe", *args, "--plan-out", str(out)],
                              check=False).returncode
        if code:
            return code  # mlpipe printed why; the pod fails with its exit code
        pipes.report_custom_message({"shards": json.loads(out.read_text())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
