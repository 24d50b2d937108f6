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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe.bench.deployed import DEPLOYED, ServiceError, run_deployed, summarize_deployed
from mlpipe.bench.sampling import machine, result_line, run_sampled, versions
from mlpipe.bench.settings import BenchSettings, default_overrides
from mlpipe.bench.summary import summarize


def run_child(runner: str, home: Path, train_json: str, infer_json: str) -> dict[str, Any]:
    """Run one runner's pipelines in a fresh child process and collect its figures."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    child = run_sampled(
        [sys.executable, "-m", "mlpipe.bench.child", runner, str(home), train_json, infer_json], env
    )
    line = result_line(child.stdout, "BENCH_RESULT ")
    if child.returncode != 0 or line is None:
        tail = (child.stderr or child.stdout).strip().splitlines()[-6:]
        error = " | ".join(tail) or f"exit {child.returncode}"
        return {"runner": runner, "ok": False, "error": error, "wall_s": child.wall_s}
    result: dict[str, Any] = json.loads(line)
    result.update(ok=True, wall_s=child.wall_s, peak_rss_mib=child.peak_rss_bytes / 2**20)
    pipelines_s = result["training"]["seconds"] + result["inference"]["seconds"]
    result["startup_s"] = child.wall_s - pipelines_s - result.get("measure_s", 0.0)
    return result


def run_benchmark(
    settings: BenchSettings, on_progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run every runner ``repetitions`` times, rotating the order each repetition."""
    from mlpipe.core.config import TrainingConfig, load_config

    train_o, infer_o = default_overrides(settings.quick, settings.task)
    train_cfg = load_config(None, [*train_o, *settings.training_overrides], pipeline="training")
    assert isinstance(train_cfg, TrainingConfig)
    infer_cfg = load_config(None, [*infer_o, *settings.inference_overrides], pipeline="inference")
    runners = list(settings.runners)
    deployed = [r for r in runners if settings.deployed and r in DEPLOYED]
    raw: list[dict[str, Any]] = []
    deployed_raw: list[dict[str, Any]] = []
    configs = {"training": train_cfg.model_dump_json(), "inference": infer_cfg.model_dump_json()}
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as tmp:
        for rep in range(settings.repetitions):
            order = runners[rep % len(runners) :] + runners[: rep % len(runners)]
            for runner in order:
                if on_progress:
                    on_progress(f"repetition {rep + 1}/{settings.repetitions}: {runner}")
                home = Path(tmp) / f"{runner}-{rep}"
                result = run_child(runner, home, configs["training"], configs["inference"])
                result["repetition"] = rep
                raw.append(result)
            for runner in deployed:  # one service start per runner and repetition
                if on_progress:
                    on_progress(f"repetition {rep + 1}/{settings.repetitions}: {runner} "
                                f"({DEPLOYED[runner]})")
                deployed_raw.append(_deployed_run(
                    runner, rep, Path(tmp) / f"deployed-{runner}-{rep}",
                    settings.out_dir / "deployed" / f"{runner}-{rep}", configs))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "mode": "quick" if settings.quick else "full",
        "task": settings.task,
        "repetitions": settings.repetitions,
        "model": train_cfg.model.base,
        "rows": {
            "training": train_cfg.data.generated.n_samples,
            "inference": infer_cfg.data.generated.n_samples,
        },
        "raw": raw,
        "summary": summarize(raw, runners),
    }
    if deployed:
        local = {r["repetition"]: r for r in raw if r["runner"] == "local" and r.get("ok")}
        report["deployed"] = {"raw": deployed_raw,
                              "summary": summarize_deployed(deployed_raw, local)}
    return report


def _deployed_run(runner: str, rep: int, home: Path, service_dir: Path,
                  configs: dict[str, str]) -> dict[str, Any]:
    """One deployed run; a service that fails is recorded (with its log), like a failed child."""
    started = time.perf_counter()
    try:
        result = run_deployed(runner, home, service_dir, configs)
    except ServiceError as exc:
        result = {"runner": runner, "ok": False, "error": str(exc)}
    else:
        result["ok"] = True
    result.update(repetition=rep, wall_s=time.perf_counter() - started)
    return result
