"""The runner comparison: the same pipelines, config and seed through local, Airflow, Kubeflow
(kfp.local) and Dagster, interleaved over repetitions so machine noise hits all alike.

Each (repetition, runner) pair runs in a fresh child process with its own mlpipe home and no
cache, so every figure includes what a user pays: imports and service start-up (reported apart
from the run itself), orchestration overhead (run time minus the steps' own time) and peak
memory of the whole process tree. Outputs are compared by sha256 against ``local``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe.benchmark_deployed import (
    DEPLOYED,
    ServiceError,
    render_deployed,
    run_deployed,
    summarize_deployed,
)


#: The runners compared by default: every registered runner (``local`` first: the reference).
def registered_runners() -> tuple[str, ...]:
    from mlpipe.core import plugins

    names = plugins.names("runner")
    return ("local", *(n for n in names if n != "local"))


@dataclass
class BenchSettings:
    """What to run. ``quick`` uses the tiny model and small data."""

    quick: bool = True
    repetitions: int = 3
    task: str = "text-classification"
    runners: Sequence[str] = field(default_factory=registered_runners)
    out_dir: Path = Path("bench/results")
    training_overrides: list[str] = field(default_factory=list)
    inference_overrides: list[str] = field(default_factory=list)
    #: Also run the pipelines through the services of the chosen runners that have a deployed
    #: mode (``airflow standalone``, ``dagster dev``): see :mod:`mlpipe.benchmark_deployed`.
    deployed: bool = False


def default_overrides(
    quick: bool, task: str = "text-classification"
) -> tuple[list[str], list[str]]:
    """Training / inference overrides on top of the built-in defaults (the demo's config)."""
    if task == "text-to-sql":
        size = (
            ["data.generated.n_samples=400", "training.epochs=1"]
            if quick
            else ["data.generated.n_samples=1500", "training.epochs=5"]
        )
        train = [
            "task=text-to-sql",
            "model.base=tiny",
            "model.max_length=128",
            "model.tiny.hidden_size=128",
            "model.tiny.num_heads=4",
            "model.tiny.intermediate_size=256",
            "data.eval_fraction=0.1",
            *size,
            "training.batch_size=16",
            "training.learning_rate=0.002",
            "training.num_threads=1",
            "sql.max_new_tokens=48",
            "sql.eval_max_rows=20",
            "sql.tokenizer_vocab_size=600",
            "registry.model_name=bench",
        ]
        infer = [
            "task=text-to-sql",
            f"data.generated.n_samples={50 if quick else 200}",
            "inference.model=bench:latest",
            "inference.num_threads=1",
            "sql.max_new_tokens=48",
            "registry.model_name=bench",
        ]
        return train, infer
    if quick:
        train = [
            "model.base=tiny",
            "model.max_length=48",
            "data.generated.n_samples=300",
            "training.epochs=1",
            "training.batch_size=16",
            "training.learning_rate=0.002",
            "training.num_threads=1",
            "registry.model_name=bench",
        ]
        infer = [
            "data.generated.n_samples=200",
            "inference.model=bench:latest",
            "inference.num_threads=1",
            "registry.model_name=bench",
        ]
    else:
        train = [
            "data.generated.n_samples=2000",
            "training.num_threads=2",
            "registry.model_name=bench",
        ]
        infer = [
            "data.generated.n_samples=1000",
            "inference.model=bench:latest",
            "inference.num_threads=2",
            "registry.model_name=bench",
        ]
    return train, infer


# -- child: one runner, both pipelines, in a fresh process ----------------------------------------


def child_main(argv: Sequence[str]) -> None:
    """``python -m mlpipe.benchmark RUNNER HOME TRAIN_JSON INFER_JSON`` -> one JSON line."""
    started = time.perf_counter()
    runner, home, train_json, infer_json = argv
    from mlpipe.benchmark_floor import floor_seconds, shape_of
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


@dataclass(frozen=True)
class Sampled:
    """A finished child process: exit code, output, wall seconds, peak RSS of its process tree."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_bytes: int


def run_sampled(cmd: Sequence[str], env: dict[str, str] | None = None) -> Sampled:
    """Run ``cmd``, sampling the summed RSS of it and its children every 50 ms.

    Output goes to temporary files, not pipes: a chatty child (kfp.local logs every task) would
    otherwise fill a pipe nobody reads while sampling, and hang.
    """
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, text=True, env=env)
        peak = 0
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(_rss(p) for p in tree))
            time.sleep(0.05)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Sampled(proc.returncode, out.read(), err.read(), wall, peak)


def run_child(runner: str, home: Path, train_json: str, infer_json: str) -> dict[str, Any]:
    """Run one runner's pipelines in a fresh child process and collect its figures."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    child = run_sampled(
        [sys.executable, "-m", "mlpipe.benchmark", runner, str(home), train_json, infer_json], env
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


def result_line(stdout: str, marker: str) -> str | None:
    """The JSON after ``marker`` in a child's output. Not anchored at the line's start: kfp.local
    indents what its tasks print, and the child's own final line can come out indented after it."""
    for line in reversed(stdout.splitlines()):
        _, found, rest = line.partition(marker)
        if found:
            return rest
    return None


def _rss(p: Any) -> int:
    try:
        return int(p.memory_info().rss)
    except Exception:
        return 0


# -- parent: interleave, summarize, render ------------------------------------------------------


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


def summarize(raw: list[dict[str, Any]], runners: Sequence[str]) -> dict[str, Any]:
    """Per runner: medians, min/max, ratio to local in the same repetition, identical outputs."""
    local = {r["repetition"]: r for r in raw if r["runner"] == "local" and r.get("ok")}
    summary: dict[str, Any] = {}
    for runner in runners:
        runs = [r for r in raw if r["runner"] == runner]
        ok = [r for r in runs if r.get("ok")]
        entry: dict[str, Any] = {
            "ok": len(ok),
            "failed": len(runs) - len(ok),
            "errors": [r["error"] for r in runs if not r.get("ok")],
        }
        if ok:
            for pipe in ("training", "inference"):
                secs = [r[pipe]["seconds"] for r in ok]
                ratios = [
                    r[pipe]["seconds"] / local[r["repetition"]][pipe]["seconds"]
                    for r in ok
                    if r["repetition"] in local
                ]
                overhead = [r[pipe]["seconds"] - r[pipe]["step_sum"] for r in ok]
                steps = {
                    s: statistics.median(r[pipe]["steps"][s] for r in ok)
                    for s in ok[0][pipe]["steps"]
                }
                entry[pipe] = {
                    "median_s": statistics.median(secs),
                    "min_s": min(secs),
                    "max_s": max(secs),
                    "ratio_to_local": statistics.median(ratios) if ratios else None,
                    "step_s": steps,
                    "step_sum_s": sum(steps.values()),
                    "overhead_s": statistics.median(overhead),
                    **_floor_figures(ok, pipe),
                }
            rerun = [r["training"]["rerun_s"] for r in ok if "rerun_s" in r["training"]]
            if rerun:
                first = entry["training"]["median_s"]
                entry["training"]["rerun_s"] = statistics.median(rerun)
                entry["training"]["rerun_pct"] = 100 * statistics.median(rerun) / first
            entry["startup_s"] = statistics.median(r["startup_s"] for r in ok)
            entry["import_s"] = statistics.median(r["import_s"] for r in ok)
            entry["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
            same = [
                (
                    r["weights_sha256"] == local[r["repetition"]]["weights_sha256"],
                    r["predictions_sha256"] == local[r["repetition"]]["predictions_sha256"],
                )
                for r in ok
                if r["repetition"] in local
            ]
            entry["identical_weights"] = bool(same) and all(w for w, _ in same)
            entry["identical_predictions"] = bool(same) and all(p for _, p in same)
            entry["weights_sha256"] = ok[0]["weights_sha256"]
            entry["predictions_sha256"] = ok[0]["predictions_sha256"]
        summary[runner] = entry
    return summary


def _floor_figures(ok: list[dict[str, Any]], pipe: str) -> dict[str, Any]:
    """The floor, mlpipe's adapter overhead above it, and the per-step phase breakdown."""
    runs = [r[pipe] for r in ok if "floor_s" in r[pipe]]
    if not runs:
        return {}
    floor = statistics.median(r["floor_s"] for r in runs)
    adapter = statistics.median(r["seconds"] - r["step_sum"] - r["floor_s"] for r in runs)
    steps = list(runs[0]["breakdown"])
    breakdown = {
        step: {p: statistics.median(r["breakdown"][step][p] for r in runs)
               for p in runs[0]["breakdown"][step]}
        for step in steps
    }
    phases = {p: sum(b[p] for b in breakdown.values()) for p in next(iter(breakdown.values()))}
    return {
        "floor_s": floor,
        "adapter_overhead_s": adapter,
        "adapter_pct_of_floor": 100 * adapter / floor if floor > 0.05 else None,
        "breakdown": breakdown,
        "phase_s": phases,
    }


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        f"Measured {report['date'][:10]} on {report['machine']}; {report['mode']} mode, "
        f"task {report.get('task', 'text-classification')} "
        f"(model `{report['model']}`, {report['rows']['training']} training rows, "
        f"{report['rows']['inference']} inference rows), "
        f"{report['repetitions']} interleaved repetitions; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        "",
        "| runner | training s (min-max) | x local | inference s (min-max) | x local "
        "| overhead s (train / infer) | start-up s | peak RSS MiB | same weights "
        "| same predictions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for runner, e in s.items():
        if not e["ok"]:
            lines.append(f"| {runner} | failed: {e['errors'][0][:80]} | | | | | | | | |")
            continue
        t, i = e["training"], e["inference"]
        lines.append(
            f"| {runner} | {t['median_s']:.1f} ({t['min_s']:.1f}-{t['max_s']:.1f}) | "
            f"{_ratio(t['ratio_to_local'])} | "
            f"{i['median_s']:.1f} ({i['min_s']:.1f}-{i['max_s']:.1f}) | "
            f"{_ratio(i['ratio_to_local'])} | {t['overhead_s']:.2f} / {i['overhead_s']:.2f} | "
            f"{e['startup_s']:.1f} | {e['peak_rss_mib']:.0f} | {_yes(e['identical_weights'])} | "
            f"{_yes(e['identical_predictions'])} |"
        )
    lines += [
        "",
        "Median seconds per step:",
        "",
        "| step | " + " | ".join(r for r in s if s[r]["ok"]) + " |",
        "|---|" + "---|" * sum(1 for r in s if s[r]["ok"]),
    ]
    ok = [r for r in s if s[r]["ok"]]
    if ok:
        for pipe in ("training", "inference"):
            for step in s[ok[0]][pipe]["step_s"]:
                lines.append(
                    f"| {step} | "
                    + " | ".join(f"{s[r][pipe]['step_s'][step]:.2f}" for r in ok)
                    + " |"
                )
        lines += _render_floor(s, ok)
    if "deployed" in report:
        lines += render_deployed(report["deployed"]["summary"], s)
    return "\n".join(lines)


def _render_floor(s: dict[str, Any], ok: list[str]) -> list[str]:
    """The floor table, the phase breakdown and the cached rerun, for runners that have them."""
    have = [r for r in ok if "floor_s" in s[r]["training"]]
    if not have:
        return []
    lines = [
        "",
        "Orchestrator floor (a native no-op pipeline of the same shape and fan-out) and mlpipe's "
        "adapter overhead = run time - step time - floor, median seconds:",
        "",
        "| runner | pipeline | run s | step time s | floor s | adapter overhead s "
        "| overhead / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in have:
        for pipe in ("training", "inference"):
            e = s[r][pipe]
            pct = e.get("adapter_pct_of_floor")
            lines.append(
                f"| {r} | {pipe} | {e['median_s']:.2f} | {e['step_sum_s']:.2f} | "
                f"{e['floor_s']:.2f} | {e['adapter_overhead_s']:.2f} | "
                f"{'-' if pct is None else f'{pct:.0f}%'} |"
            )
    phases = list(s[have[0]]["training"]["phase_s"])
    lines += [
        "",
        "Where the steps' time went, summed over each pipeline's steps (median seconds; "
        "from the timestamps each step records in result.json):",
        "",
        "| runner | pipeline | " + " | ".join(p.removesuffix("_s") for p in phases) + " |",
        "|---|---|" + "---|" * len(phases),
    ]
    for r in have:
        for pipe in ("training", "inference"):
            ph = s[r][pipe]["phase_s"]
            lines.append(f"| {r} | {pipe} | " + " | ".join(f"{ph[p]:.2f}" for p in phases) + " |")
    rerun = [r for r in have if "rerun_s" in s[r]["training"]]
    if rerun:
        lines += [
            "",
            "Unchanged training rerun, served from the step cache:",
            "",
            "| runner | first run s | rerun s | rerun / first run | floor s | rerun / floor |",
            "|---|---|---|---|---|---|",
        ]
        for r in rerun:
            t = s[r]["training"]
            over = f"{t['rerun_s'] / t['floor_s']:.2f}x" if t["floor_s"] > 0.05 else "-"
            lines.append(f"| {r} | {t['median_s']:.2f} | {t['rerun_s']:.2f} | "
                         f"{t['rerun_pct']:.1f}% | {t['floor_s']:.2f} | {over} |")
    return lines


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _yes(x: bool) -> str:
    return "yes" if x else "**no**"


def render_chart(report: dict[str, Any], path: Path) -> Path:
    """Stacked bars per runner: the steps' own time and orchestration overhead, per pipeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = {r: e for r, e in report["summary"].items() if e["ok"]}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, pipe in zip(axes, ("training", "inference"), strict=True):
        names = list(s)
        steps = [s[r][pipe]["step_sum_s"] for r in names]
        over = [max(s[r][pipe]["median_s"] - s[r][pipe]["step_sum_s"], 0) for r in names]
        start = [s[r]["startup_s"] / 2 for r in names]  # start-up split across the two pipelines
        ax.bar(names, steps, label="step time", color="#4C72B0")
        ax.bar(names, over, bottom=steps, label="orchestration overhead", color="#DD8452")
        ax.bar(
            names,
            start,
            bottom=[a + b for a, b in zip(steps, over, strict=True)],
            label="start-up (half)",
            color="#BBBBBB",
        )
        ax.set_title(f"{pipe} pipeline")
        ax.set_ylabel("seconds (median)")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"mlpipe runners · {report['mode']} · {report['date'][:10]} · {report['machine']}",
        fontsize=9,
    )
    return save_chart(fig, path)


PHASE_COLORS = {"scheduled_s": "#8172B3", "wait_s": "#BBBBBB", "start_s": "#DD8452",
                "inputs_s": "#937860", "imports_s": "#C44E52", "work_s": "#4C72B0",
                "outputs_s": "#55A868"}


def render_breakdown_chart(report: dict[str, Any], path: Path) -> Path | None:
    """Stacked bars per runner: each phase summed over the steps, with the floor as a tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = {r: e for r, e in report["summary"].items() if e["ok"] and "phase_s" in e["training"]}
    if not s:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, pipe in zip(axes, ("training", "inference"), strict=True):
        names = list(s)
        bottom = [0.0] * len(names)
        for phase, color in PHASE_COLORS.items():
            values = [s[r][pipe]["phase_s"].get(phase, 0.0) for r in names]
            ax.bar(names, values, bottom=bottom, color=color, label=phase.removesuffix("_s"))
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
        ax.scatter(names, [s[r][pipe]["floor_s"] for r in names], marker="_", s=600,
                   color="black", label="orchestrator floor", zorder=3)
        ax.set_title(f"{pipe}: where the steps' time went")
        ax.set_ylabel("seconds (median, summed over steps)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"mlpipe step breakdown · {report['mode']} · {report['date'][:10]}", fontsize=9)
    return save_chart(fig, path)


def save_chart(fig: Any, path: Path) -> Path:
    """Lay out, write (PNG, 110 dpi) and close a benchmark chart."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "bench.json",
        "markdown": out_dir / "bench.md",
        "chart": out_dir / "bench.png",
    }
    paths["json"].write_text(json.dumps(report, indent=2))
    paths["markdown"].write_text(render_markdown(report) + "\n")
    render_chart(report, paths["chart"])
    breakdown = render_breakdown_chart(report, out_dir / "bench-breakdown.png")
    if breakdown is not None:
        paths["breakdown_chart"] = breakdown
    return paths


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} CPUs, {memory:.0f} GiB, {platform.system()}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("mlpipe", "torch", "transformers", "apache-airflow", "kfp", "dagster"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


if __name__ == "__main__":
    child_main(sys.argv[1:])
