"""The runner comparison: the same pipelines, config and seed through local, Airflow, Kubeflow
(kfp.local) and Dagster, interleaved over repetitions so machine noise hits all alike.

Each (repetition, runner) pair runs in a fresh child process (:mod:`mlpipe.bench.child`) with its
own mlpipe home and no cache, so every figure includes what a user pays: imports and service
start-up (reported apart from the run itself), orchestration overhead (run time minus the steps'
own time) and peak memory of the whole process tree. Outputs are compared by sha256 against
``local``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe.bench.deployed import DEPLOYED, ServiceError, run_deployed, summarize_deployed
from mlpipe.bench.sampling import machine, result_line, run_sampled, versions
from mlpipe.bench.settings import BenchSettings, default_overrides
from mlpipe.bench.summary import summarize


def run_child(runner: str, home: Path, pipelines: list[tuple[str, str]]) -> dict[str, Any]:
    """Run one runner's pipelines in a fresh child process and collect its figures."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    child = run_sampled(
        [sys.executable, "-m", "mlpipe.bench.child", runner, str(home), json.dumps(pipelines)], env
    )
    line = result_line(child.stdout, "BENCH_RESULT ")
    if child.returncode != 0 or line is None:
        tail = (child.stderr or child.stdout).strip().splitlines()[-6:]
        error = " | ".join(tail) or f"exit {child.returncode}"
        return {"runner": runner, "ok": False, "error": error, "wall_s": child.wall_s}
    result: dict[str, Any] = json.loads(line)
    result.update(ok=True, wall_s=child.wall_s, peak_rss_mib=child.peak_rss_bytes / 2**20)
    pipelines_s = sum(result[name]["seconds"] for name in result["pipelines"])
    hashes = {name: result[name]["sha256"] for name in result["pipelines"]}
    for key, pipe, step in (("weights_sha256", "training", "train_model"),
                            ("predictions_sha256", "inference", "save_results")):
        if step in hashes.get(pipe, {}):  # the built-ins' headline outputs, named
            result[key] = hashes[pipe][step]
    result["startup_s"] = child.wall_s - pipelines_s - result.get("measure_s", 0.0)
    return result


def bench_configs(settings: BenchSettings) -> list[tuple[str, Any]]:
    """Each pipeline to run and its validated config. The built-ins start from the benchmark's
    own sizes (quick or full) plus ``--set-training`` / ``--set-inference``; every pipeline then
    takes the ``-c`` file that names it and ``--set``, as ``mlpipe run`` would."""
    from mlpipe.core.config import load_config
    from mlpipe.core.pipeline import resolve_pipeline

    train_o, infer_o = default_overrides(settings.quick, settings.task)
    builtin = {"training": [*train_o, *settings.training_overrides],
               "inference": [*infer_o, *settings.inference_overrides]}
    pipelines = [(ref, resolve_pipeline(ref)) for ref in settings.pipelines]
    files = config_files(settings.configs, [p.name for _, p in pipelines])
    out = []
    for ref, pipeline in pipelines:
        overrides = [*builtin.get(ref, []), *settings.overrides]
        out.append((ref, load_config(files.get(pipeline.name), overrides, pipeline=pipeline.name,
                                     config_type=pipeline.config_type)))
    return out


def config_files(files: Sequence[Path], names: Sequence[str]) -> dict[str, Path]:
    """Which ``-c`` file configures which pipeline: the one whose ``pipeline:`` key names it
    (several pipelines, several files), or a file that names no pipeline, for every pipeline."""
    from mlpipe.core.config import read_yaml
    from mlpipe.core.errors import ConfigError

    chosen: dict[str, Path] = {}
    for file in files:
        if not file.is_file():
            raise ConfigError(f"--config {file}: no such file")
        named = read_yaml(file).get("pipeline")
        targets = list(names) if named is None else [named]
        if named is not None and named not in names:
            raise ConfigError(f"--config {file}: configures pipeline '{named}', which this "
                              f"benchmark does not run ({', '.join(names)}); name it, or drop "
                              "the file")
        for name in targets:
            if name in chosen:
                raise ConfigError(f"--config {file}: pipeline '{name}' already has "
                                  f"{chosen[name]}; give one file per pipeline")
            chosen[name] = file
    return chosen


def not_honoured(settings: BenchSettings) -> dict[str, dict[str, list[list[str]]]]:
    """Per runner and pipeline: the settings its config (or shape) uses that the runner, as run
    here, only approximates or ignores (``[setting, level, why]``), from each plugin's
    declarations (``Runner.honours``)."""
    from mlpipe.core import plugins
    from mlpipe.core.execution.honours import not_honoured as check
    from mlpipe.core.pipeline import resolve_pipeline

    out: dict[str, dict[str, list[list[str]]]] = {}
    loaded = [(resolve_pipeline(ref), cfg) for ref, cfg in bench_configs(settings)]
    for runner in settings.runners:
        honours = getattr(plugins.load("runner", runner), "honours", {})
        found = {p.name: [list(x) for x in check(honours, p, cfg)] for p, cfg in loaded}
        if any(found.values()):
            out[runner] = {k: v for k, v in found.items() if v}
    return out


def run_benchmark(
    settings: BenchSettings, on_progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run every runner ``repetitions`` times, rotating the order each repetition."""
    loaded = bench_configs(settings)
    pipelines = [(ref, cfg.model_dump_json()) for ref, cfg in loaded]
    names = [cfg.pipeline for _, cfg in loaded]
    runners = list(settings.runners)
    deployed = [r for r in runners if settings.deployed and r in DEPLOYED]
    served = [(ref, raw) for (ref, raw), name in zip(pipelines, names, strict=True)
              if not settings.deployed_pipelines or {ref, name} & set(settings.deployed_pipelines)]
    raw: list[dict[str, Any]] = []
    deployed_raw: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as tmp:
        for rep in range(settings.repetitions):
            order = runners[rep % len(runners) :] + runners[: rep % len(runners)]
            for runner in order:
                if on_progress:
                    on_progress(f"repetition {rep + 1}/{settings.repetitions}: {runner}")
                home = Path(tmp) / f"{runner}-{rep}"
                result = run_child(runner, home, pipelines)
                result["repetition"] = rep
                raw.append(result)
            for runner in deployed:  # one service start per runner and repetition
                if on_progress:
                    on_progress(f"repetition {rep + 1}/{settings.repetitions}: {runner} "
                                f"({DEPLOYED[runner]})")
                deployed_raw.append(_deployed_run(
                    runner, rep, Path(tmp) / f"deployed-{runner}-{rep}",
                    settings.out_dir / "deployed" / f"{runner}-{rep}", served))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "mode": "quick" if settings.quick else "full",
        "task": settings.task,
        "repetitions": settings.repetitions,
        "pipelines": names,
        "references": [ref for ref, _ in loaded],
        "model": next((c.model.base for _, c in loaded if hasattr(c, "model")), None),
        "rows": {cfg.pipeline: cfg.data.generated.n_samples for _, cfg in loaded
                 if getattr(getattr(cfg, "data", None), "generated", None) is not None},
        "not_honoured": not_honoured(settings),
        "raw": raw,
        "summary": summarize(raw, runners, names),
    }
    if deployed:
        local = {r["repetition"]: r for r in raw if r["runner"] == "local" and r.get("ok")}
        report["deployed"] = {"raw": deployed_raw,
                              "summary": summarize_deployed(deployed_raw, local)}
    return report


def _deployed_run(runner: str, rep: int, home: Path, service_dir: Path,
                  pipelines: list[tuple[str, str]]) -> dict[str, Any]:
    """One deployed run; a service that fails is recorded (with its log), like a failed child."""
    started = time.perf_counter()
    try:
        result = run_deployed(runner, home, service_dir, pipelines)
    except ServiceError as exc:
        result = {"runner": runner, "ok": False, "error": str(exc)}
    else:
        result["ok"] = True
    result.update(repetition=rep, wall_s=time.perf_counter() - started)
    return result
