"""The scale-out benchmark (``mlpipe bench --scale``): sharded batch inference at growing row
counts, on every runner, with 1 shard x all cores against N shards x their share of the cores.

One tiny model is trained once; then, for each row count, runner and shard count, a fresh child
process runs the inference pipeline without cache while the parent samples the peak memory of the
whole process tree. Each shard records its own peak memory and its own work time in its
``result.json``, so the report can say whether a shard's memory follows its chunk size or its row
count, and whether the row-dependent work grows linearly once start-up is set aside.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: the row counts of full and quick mode
FULL_ROWS = (10_000, 100_000, 1_000_000)
QUICK_ROWS = (1_000, 4_000)
#: the steps whose work depends on the row count (the rest is start-up and orchestration)
ROW_STEPS = ("load_inference_data", "split_inference_data", "run_inference", "save_results")
MAP_STEP = "run_inference"


@dataclass
class ScaleSettings:
    """What to run: row counts, shard counts, runners; ``quick`` uses small row counts."""

    runners: Sequence[str]
    out_dir: Path
    quick: bool = False
    rows: Sequence[int] = ()
    shards: Sequence[int] = (1, 2)
    inference_overrides: list[str] = field(default_factory=list)

    @property
    def row_counts(self) -> tuple[int, ...]:
        return tuple(sorted(self.rows or (QUICK_ROWS if self.quick else FULL_ROWS)))


def inference_overrides(rows: int, shards: int, quick: bool) -> list[str]:
    """One run's inference config: the cores split between the shards (each shard one thread on
    a 2-core box, the single shard both), chunks small enough that every row count has several,
    and each shard in its own process, side by side, whatever its size (what is compared)."""
    cores = os.cpu_count() or 1
    return [
        f"data.generated.n_samples={rows}",
        "inference.model=scale:latest",
        "registry.model_name=scale",
        f"inference.shards={shards}",
        f"inference.num_threads={max(1, cores // shards)}",
        f"inference.chunk_rows={500 if quick else 5_000}",
        "inference.batch_size=128",
        "runtime.in_process_shards_mib=0",
    ]


# -- child: one inference run in a fresh process --------------------------------------------------


def child_main(argv: Sequence[str]) -> None:
    """``python -m mlpipe.bench.scale RUNNER HOME INFER_JSON`` -> one JSON line."""
    started = time.perf_counter()
    runner, home, infer_json = argv
    from mlpipe.core.config import config_from_json
    from mlpipe.core.execution import get_runner

    chosen = get_runner(runner)
    run = chosen.run("inference", config_from_json(infer_json), home=Path(home), use_cache=False)
    steps = {s.step: s for s in run.steps}
    shards = _shard_records(run.run_dir / MAP_STEP)
    row_work = sum(
        max(s["work_s"] for s in shards) if name == MAP_STEP and shards
        else float(steps[name].timings.get("work_s", steps[name].seconds))
        for name in ROW_STEPS if name in steps
    )
    out = {
        "runner": runner,
        "seconds": run.seconds,
        "steps": {s.step: s.seconds for s in run.steps},
        "shards": shards,
        "row_work_s": row_work,
        "predictions_sha256": steps["save_results"].ref.sha256,
        "child_s": time.perf_counter() - started,
    }
    shutil.rmtree(run.run_dir, ignore_errors=True)  # a million rows' files, several times over
    print("SCALE_RESULT " + json.dumps(out), flush=True)


def _shard_records(step_dir: Path) -> list[dict[str, Any]]:
    """Each shard's seconds, own work time, peak memory and process, from its ``result.json``."""
    records = []
    for path in sorted(step_dir.glob("shard-*/result.json")):
        data = json.loads(path.read_text())
        timings = data.get("timings") or {}
        records.append({
            "seconds": float(data["seconds"]),
            "work_s": float(timings.get("work_s", data["seconds"])),
            "peak_rss_mib": float(timings.get("peak_rss_mib", 0.0)),
            "rows": int((data.get("ref") or {}).get("rows", 0)),
            "pid": data.get("pid"),
        })
    return records


# -- parent: train once, then every (rows, runner, shards) in a fresh child ----------------------


def run_scale(
    settings: ScaleSettings, on_progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Train the tiny model, then run every row count x runner x shard count once."""
    from mlpipe.bench.sampling import machine, run_sampled, versions
    from mlpipe.bench.settings import default_overrides
    from mlpipe.core.config import InferenceConfig, TrainingConfig, load_config
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution import get_runner

    train_o, _ = default_overrides(quick=True)
    train_cfg = load_config(None, [*train_o, "registry.model_name=scale"], pipeline="training")
    assert isinstance(train_cfg, TrainingConfig)
    raw: list[dict[str, Any]] = []
    env = dict(os.environ, HF_HUB_OFFLINE="1", MLPIPE_PROGRESS="off")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="mlpipe-scale-") as tmp:
        home = Path(tmp) / "home"
        if on_progress:
            on_progress("training the tiny model once")
        get_runner("local").run("training", train_cfg, home=home)
        for rows in settings.row_counts:
            for runner in settings.runners:
                for shards in settings.shards:
                    if on_progress:
                        on_progress(f"{rows:,} rows: {runner}, {shards} shard(s)")
                    overrides = [*inference_overrides(rows, shards, settings.quick),
                                 *settings.inference_overrides]
                    cfg = load_config(None, overrides, pipeline="inference")
                    assert isinstance(cfg, InferenceConfig)
                    child = run_sampled([sys.executable, "-m", "mlpipe.bench.scale", runner,
                                         str(home), cfg.model_dump_json()], env)
                    raw.append(_collect(child, runner, rows, shards))
    if not any(r["ok"] for r in raw):
        raise MlpipeError(f"every scale run failed; first error: {raw[0]['error']}")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cores": os.cpu_count() or 1,
        "versions": versions(),
        "mode": "quick" if settings.quick else "full",
        "model": f"tiny ({train_cfg.model.tiny.num_layers} layers, "
                 f"hidden {train_cfg.model.tiny.hidden_size})",
        "rows": list(settings.row_counts),
        "shards": list(settings.shards),
        "raw": raw,
        "summary": summarize(raw),
    }


def _collect(child: Any, runner: str, rows: int, shards: int) -> dict[str, Any]:
    from mlpipe.bench.sampling import result_line

    line = result_line(child.stdout, "SCALE_RESULT ")
    base = {"runner": runner, "rows": rows, "shard_count": shards, "wall_s": child.wall_s}
    if child.returncode != 0 or line is None:
        tail = (child.stderr or child.stdout).strip().splitlines()[-6:]
        return {**base, "ok": False, "error": " | ".join(tail) or f"exit {child.returncode}"}
    result: dict[str, Any] = json.loads(line)
    return {**base, **result, "ok": True, "tree_peak_rss_mib": child.peak_rss_bytes / 2**20,
            "rows_per_s": rows / result["seconds"] if result["seconds"] else 0.0}


def summarize(raw: list[dict[str, Any]]) -> dict[str, Any]:
    """Per runner and shard count: how time and memory grow with rows; per runner and row count:
    N shards against 1; per row count: whether every run wrote the same predictions."""
    ok = [r for r in raw if r["ok"]]
    cell = {(r["runner"], r["rows"], r["shard_count"]): r for r in ok}
    runners = list(dict.fromkeys(r["runner"] for r in raw))
    counts = sorted({r["rows"] for r in raw})
    shard_counts = sorted({r["shard_count"] for r in raw})
    growth: dict[str, dict[str, Any]] = {}
    for runner in runners:
        for n in shard_counts:
            runs = [cell[(runner, rows, n)] for rows in counts if (runner, rows, n) in cell]
            if len(runs) < 2:
                continue
            small, big, before = runs[0], runs[-1], runs[-2]
            factor = big["rows"] / small["rows"]
            growth[f"{runner}/{n}"] = {
                "runner": runner,
                "shards": n,
                "from_rows": small["rows"],
                "to_rows": big["rows"],
                "time_ratio": big["seconds"] / small["seconds"] / factor,
                "row_work_ratio": big["row_work_s"] / small["row_work_s"] / factor
                if small["row_work_s"] > 0 else None,
                "last_from_rows": before["rows"],  # the two largest: start-up matters least
                "last_row_work_ratio": big["row_work_s"] / before["row_work_s"]
                / (big["rows"] / before["rows"]) if len(runs) > 2 and before["row_work_s"] > 0
                else None,
                "shard_rss_mib": [max((s["peak_rss_mib"] for s in r["shards"]), default=0.0)
                                  for r in runs],
            }
    speedup: list[dict[str, Any]] = []
    if len(shard_counts) > 1:
        one, many = shard_counts[0], shard_counts[-1]
        for runner in runners:
            for rows in counts:
                a, b = cell.get((runner, rows, one)), cell.get((runner, rows, many))
                if a and b:
                    speedup.append({"runner": runner, "rows": rows,
                                    "ratio": b["seconds"] / a["seconds"]})
    identical = {
        str(rows): len({r["predictions_sha256"] for r in ok if r["rows"] == rows}) == 1
        for rows in counts if any(r["rows"] == rows for r in ok)
    }
    return {
        "failed": [f"{r['runner']} {r['rows']} rows {r['shard_count']} shards: {r['error']}"
                   for r in raw if not r["ok"]],
        "growth": growth,
        "shards_vs_one": speedup,
        "identical_predictions": identical,
    }


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    many = max(report["shards"])
    lines = [
        f"Measured {report['date'][:10]} on {report['machine']}; {report['mode']} mode, "
        f"model {report['model']}, one run per cell, no cache; the cores are split between the "
        f"shards (1 shard x {report['cores']} threads, {many} shards x "
        f"{max(1, report['cores'] // many)} thread(s)); "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
        "",
        "| runner | rows | shards | seconds | rows/s | row work s | peak RSS per shard MiB "
        "| peak RSS tree MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["raw"]:
        if not r["ok"]:
            lines.append(f"| {r['runner']} | {r['rows']:,} | {r['shard_count']} | failed: "
                         f"{r['error'][:80]} | | | | |")
            continue
        shard_rss = max((sh["peak_rss_mib"] for sh in r["shards"]), default=0.0)
        lines.append(
            f"| {r['runner']} | {r['rows']:,} | {r['shard_count']} | {r['seconds']:.1f} | "
            f"{r['rows_per_s']:,.0f} | {r['row_work_s']:.1f} | {shard_rss:.0f} | "
            f"{r['tree_peak_rss_mib']:.0f} |"
        )
    if s["growth"]:
        lines += [
            "",
            "How time grows with rows: time per row at the largest count over time per row at the "
            "smallest (1.00 = linear). *Whole run* includes start-up and orchestration, which do "
            "not grow with rows; *row work* is the row-dependent steps' own work (a map step's "
            "slowest shard), i.e. after start-up.",
            "",
            "| runner | shards | rows | whole run | row work | row work, two largest counts "
            "| peak RSS per shard MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for g in s["growth"].values():
            work = "-" if g["row_work_ratio"] is None else f"{g['row_work_ratio']:.2f}"
            last = g.get("last_row_work_ratio")
            last_s = "-" if last is None else f"{last:.2f} ({g['last_from_rows']:,} -> "\
                f"{g['to_rows']:,})"
            lines.append(
                f"| {g['runner']} | {g['shards']} | {g['from_rows']:,} -> {g['to_rows']:,} | "
                f"{g['time_ratio']:.2f} | {work} | {last_s} | "
                + " -> ".join(f"{m:.0f}" for m in g["shard_rss_mib"]) + " |"
            )
    if s["shards_vs_one"]:
        lines += ["", f"{many} shards against 1 (time ratio; below 1.00: the shards are faster):",
                  "", "| runner | rows | ratio |", "|---|---|---|"]
        lines += [f"| {x['runner']} | {x['rows']:,} | {x['ratio']:.2f} |"
                  for x in s["shards_vs_one"]]
    same = ", ".join(f"{int(k):,}: {'yes' if v else '**no**'}"
                     for k, v in s["identical_predictions"].items())
    lines += ["", f"Identical predictions (sha256) across runners and shard counts: {same}."]
    return "\n".join(lines)


def render_chart(report: dict[str, Any], path: Path) -> Path:
    """Seconds against rows (log-log) per runner and shard count, with a linear guide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in report["raw"] if r["ok"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for runner in dict.fromkeys(r["runner"] for r in ok):
        for n in report["shards"]:
            pts = sorted((r["rows"], r["seconds"]) for r in ok
                         if r["runner"] == runner and r["shard_count"] == n)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o",
                        linestyle="-" if n == 1 else "--", label=f"{runner}, {n} shard(s)")
    if ok:
        rows = sorted({r["rows"] for r in ok})
        base = statistics.median(r["row_work_s"] / r["rows"] for r in ok if r["rows"] == rows[0])
        ax.plot(rows, [base * x for x in rows], color="black", linewidth=0.8, linestyle=":",
                label="linear (row work at the smallest count)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("seconds (whole inference run)")
    ax.legend(fontsize=7)
    ax.set_title(f"mlpipe sharded inference · {report['mode']} · {report['date'][:10]} · "
                 f"{report['machine']}", fontsize=8)
    from mlpipe.bench.charts import save_chart

    return save_chart(fig, path)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "scale.json", "markdown": out_dir / "scale.md",
             "chart": out_dir / "scale.png"}
    paths["json"].write_text(json.dumps(report, indent=2))
    paths["markdown"].write_text(render_markdown(report) + "\n")
    render_chart(report, paths["chart"])
    return paths


if __name__ == "__main__":
    child_main(sys.argv[1:])
