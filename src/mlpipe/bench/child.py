"""One runner in a fresh process: ``python -m mlpipe.bench.child RUNNER HOME PIPELINES_JSON``
runs the pipelines, the cached rerun and the floor, and prints one ``BENCH_RESULT`` JSON line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def child_main(argv: Sequence[str]) -> None:
    """``python -m mlpipe.bench.child RUNNER HOME PIPELINES_JSON`` -> one JSON line.

    ``PIPELINES_JSON``: ``[[pipeline reference, config JSON], ...]``, run in order (inference
    after the training that registered its model); the first one is rerun unchanged, from the
    step cache the first run filled."""
    started = time.perf_counter()
    runner, home, pipelines_json = argv
    from mlpipe.bench.floor import floor_seconds, shape_of
    from mlpipe.core.config import config_from_json
    from mlpipe.core.execution import get_runner
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    from mlpipe.core.pipeline import resolve_pipeline

    chosen = get_runner(runner)  # imports the orchestrator (its start-up is measured apart)
    import_s = time.perf_counter() - started
    pipelines = [(resolve_pipeline(ref), raw) for ref, raw in json.loads(pipelines_json)]
    out: dict[str, Any] = {"runner": runner, "import_s": import_s,
                           "pipelines": [p.name for p, _ in pipelines]}
    runs: dict[str, Any] = {}
    for pipeline, raw in pipelines:
        run = runs[pipeline.name] = chosen.run(pipeline, config_from_json(raw,
                                               pipeline.config_type), home=Path(home),
                                               use_cache=False)
        out[pipeline.name] = {
            "seconds": run.seconds,
            "wall_s": run.extra.get("wall_seconds", run.seconds),
            "steps": {s.step: s.seconds for s in run.steps},
            "step_sum": sum(s.seconds for s in run.steps),
            "sha256": output_hashes(run),
            "breakdown": {s.step: _breakdown(s, run.extra) for s in run.steps},
        }
    # an unchanged rerun of the first pipeline, served from the step cache (the first run filled it)
    measuring = time.perf_counter()
    first, first_raw = pipelines[0]
    rerun = chosen.run(first, config_from_json(first_raw, first.config_type), home=Path(home),
                       use_cache=True)
    out[first.name]["rerun_s"] = rerun.seconds
    out[first.name]["rerun_cached"] = [s.cached for s in rerun.steps]
    for pipeline, _ in pipelines:  # the orchestrator's own floor, same shape and fan-out
        shape = shape_of(pipeline, runs[pipeline.name])
        floor = floor_seconds(runner, shape, pipeline.name, Path(home) / "floor")
        if floor is not None:  # a runner without a floor is reported as having none
            out[pipeline.name]["floor_s"] = floor
    out["measure_s"] = time.perf_counter() - measuring  # the rerun and floors: not start-up
    out["child_s"] = time.perf_counter() - started
    print("BENCH_RESULT " + json.dumps(out), flush=True)
    skip_teardown_at_exit()  # the child's own process: its teardown is nobody's start-up


def output_hashes(run: Any) -> dict[str, str]:
    """Every output reference's sha256: each step's, and each shard's of a map step's output
    (``step[i]``), so identity covers every file a run produced, not one chosen output."""
    from mlpipe.core.refs import ShardsRef

    hashes: dict[str, str] = {}
    for s in run.steps:
        hashes[s.step] = s.ref.sha256
        if isinstance(s.ref, ShardsRef):
            hashes.update({f"{s.step}[{i}]": r.sha256 for i, r in enumerate(s.ref.refs)})
    return hashes


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
