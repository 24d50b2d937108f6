"""One runner in a fresh process: ``python -m mlpipe.bench.child RUNNER HOME TRAIN_JSON INFER_JSON``
runs the pipelines, the cached rerun and the floor, and prints one ``BENCH_RESULT`` JSON line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def child_main(argv: Sequence[str]) -> None:
    """``python -m mlpipe.bench.child RUNNER HOME TRAIN_JSON INFER_JSON`` -> one JSON line."""
    started = time.perf_counter()
    runner, home, train_json, infer_json = argv
    from mlpipe.bench.floor import floor_seconds, shape_of
    from mlpipe.core.config import config_from_json
    from mlpipe.core.execution import get_runner
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    from mlpipe.core.pipeline import resolve_pipeline

    chosen = get_runner(runner)  # imports the orchestrator (its start-up is measured apart)
    import_s = time.perf_counter() - started
    out: dict[str, Any] = {"runner": runner, "import_s": import_s}
    runs: dict[str, Any] = {}
    for name, raw in (("training", train_json), ("inference", infer_json)):
        run = runs[name] = chosen.run(name, config_from_json(raw), home=Path(home),
                                      use_cache=False)
        out[name] = {
            "seconds": run.seconds,
            "wall_s": run.extra.get("wall_seconds", run.seconds),
            "steps": {s.step: s.seconds for s in run.steps},
            "step_sum": sum(s.seconds for s in run.steps),
            "sha256": {s.step: s.ref.sha256 for s in run.steps},
            "breakdown": {s.step: _breakdown(s, run.extra) for s in run.steps},
        }
    # an unchanged rerun, served from the step cache (the first runs filled it)
    measuring = time.perf_counter()
    rerun = chosen.run("training", config_from_json(train_json), home=Path(home), use_cache=True)
    out["training"]["rerun_s"] = rerun.seconds
    out["training"]["rerun_cached"] = [s.cached for s in rerun.steps]
    for name in ("training", "inference"):  # the orchestrator's own floor, same shape and fan-out
        shape = shape_of(resolve_pipeline(name), runs[name])
        floor = floor_seconds(runner, shape, name, Path(home) / "floor")
        if floor is not None:  # a runner without a floor is reported as having none
            out[name]["floor_s"] = floor
    out["measure_s"] = time.perf_counter() - measuring  # the rerun and floors: not start-up
    out["weights_sha256"] = out["training"]["sha256"]["train_model"]
    out["predictions_sha256"] = out["inference"]["sha256"]["save_results"]
    out["child_s"] = time.perf_counter() - started
    print("BENCH_RESULT " + json.dumps(out), flush=True)
    skip_teardown_at_exit()  # the child's own process: its teardown is nobody's start-up


def _breakdown(step: Any, extra: dict[str, Any]) -> dict[str, float]:
    """A step's phases (``result.json``), with its wait split where the orchestrator's metadata
    says when it started the step's task: ``scheduled_s`` (upstream end -> the orchestrator
    started the task) and the rest of ``wait_s`` (task start -> the step's process or entry)."""
    from mlpipe.core.execution.timings import PHASES

    phases = {p: float(step.timings.get(p, 0.0)) for p in PHASES}
    started = (extra.get("task_started") or {}).get(step.step)
    upstream = step.timings.get("upstream_ended")
    scheduled = 0.0
    if started is not None and upstream is not None:
        scheduled = min(max(float(started) - upstream, 0.0), phases["wait_s"])
    phases["scheduled_s"] = scheduled
    phases["wait_s"] -= scheduled
    return {"scheduled_s": phases.pop("scheduled_s"), **phases}


if __name__ == "__main__":
    child_main(sys.argv[1:])
