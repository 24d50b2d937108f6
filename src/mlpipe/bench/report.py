"""The benchmark's Markdown table and the files it writes (JSON, Markdown, PNG charts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipe.bench.charts import render_breakdown_chart, render_chart
from mlpipe.bench.deployed import render_deployed


def render_markdown(report: dict[str, Any]) -> str:
    """The summary first (fastest runner per pipeline, overhead, identical or not), then tables."""
    s = report["summary"]
    pipes = report.get("pipelines", ["training", "inference"])
    rows = ", ".join(f"{n} {p} rows" for p, n in report.get("rows", {}).items())
    what = ", ".join(f"`{p}`" for p in report.get("references", pipes))
    lines = [
        f"Measured {report['date'][:10]} on {report['machine']}; {report['mode']} mode, "
        f"pipelines {what}"
        + (f" (model `{report['model']}`, {rows})" if report.get("model") else "")
        + f", {report['repetitions']} interleaved repetitions; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        "",
        *render_summary(report),
        "",
        "| runner | pipeline | s (min-max) | x local | overhead s | start-up s | peak RSS MiB "
        "| same outputs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for runner, e in s.items():
        if not e["ok"]:
            lines.append(f"| {runner} | failed: {e['errors'][0][:80]} | | | | | | |")
            continue
        for pipe in pipes:
            p = e[pipe]
            lines.append(
                f"| {runner} | {pipe} | {p['median_s']:.1f} ({p['min_s']:.1f}-{p['max_s']:.1f}) | "
                f"{_ratio(p['ratio_to_local'])} | {p['overhead_s']:.2f} | "
                f"{e['startup_s']:.1f} | {e['peak_rss_mib']:.0f} | "
                f"{_same(e)} |"
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
        for pipe in pipes:
            for step in s[ok[0]][pipe]["step_s"]:
                lines.append(
                    f"| {step} | "
                    + " | ".join(f"{s[r][pipe]['step_s'][step]:.2f}" for r in ok)
                    + " |"
                )
        lines += _render_floor(s, ok, pipes)
    if "deployed" in report:
        lines += render_deployed(report["deployed"]["summary"], s)
    return "\n".join(lines)


def _render_floor(s: dict[str, Any], ok: list[str], pipes: list[str]) -> list[str]:
    """The floor table, the phase breakdown and the cached rerun, for runners that have them."""
    have = [r for r in ok if "floor_s" in s[r][pipes[0]]]
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
        for pipe in pipes:
            e = s[r][pipe]
            pct = e.get("adapter_pct_of_floor")
            lines.append(
                f"| {r} | {pipe} | {e['median_s']:.2f} | {e['step_sum_s']:.2f} | "
                f"{e['floor_s']:.2f} | {e['adapter_overhead_s']:.2f} | "
                f"{'-' if pct is None else f'{pct:.0f}%'} |"
            )
    phases = list(s[have[0]][pipes[0]]["phase_s"])
    lines += [
        "",
        "Where the steps' time went, summed over each pipeline's steps (median seconds; "
        "from the timestamps each step records in result.json):",
        "",
        "| runner | pipeline | " + " | ".join(p.removesuffix("_s") for p in phases) + " |",
        "|---|---|" + "---|" * len(phases),
    ]
    for r in have:
        for pipe in pipes:
            ph = s[r][pipe]["phase_s"]
            lines.append(f"| {r} | {pipe} | " + " | ".join(f"{ph[p]:.2f}" for p in phases) + " |")
    rerun = [r for r in have if "rerun_s" in s[r][pipes[0]]]
    if rerun:
        lines += [
            "",
            f"Unchanged {pipes[0]} rerun, served from the step cache:",
            "",
            "| runner | first run s | rerun s | rerun / first run | floor s | rerun / floor |",
            "|---|---|---|---|---|---|",
        ]
        for r in rerun:
            t = s[r][pipes[0]]
            over = f"{t['rerun_s'] / t['floor_s']:.2f}x" if t["floor_s"] > 0.05 else "-"
            lines.append(f"| {r} | {t['median_s']:.2f} | {t['rerun_s']:.2f} | "
                         f"{t['rerun_pct']:.1f}% | {t['floor_s']:.2f} | {over} |")
    return lines


def render_summary(report: dict[str, Any]) -> list[str]:
    """The one-screen answer: per pipeline the fastest runner and each runner's overhead (run
    time above its steps' own time, in seconds and as a share of the run), and identity."""
    s = {r: e for r, e in report["summary"].items() if e["ok"]}
    lines = ["**Summary**", ""]
    for pipe in report.get("pipelines", ["training", "inference"]):
        if not s:
            break
        fastest = min(s, key=lambda r: s[r][pipe]["median_s"])
        over = "; ".join(
            f"{r} {s[r][pipe]['overhead_s']:.1f} s "
            f"({100 * s[r][pipe]['overhead_s'] / max(s[r][pipe]['median_s'], 1e-9):.0f}%)"
            for r in s)
        lines.append(f"- `{pipe}`: fastest **{fastest}** ({s[fastest][pipe]['median_s']:.1f} s); "
                     f"overhead {over}")
    same = [r for r in s if s[r].get("identical_outputs")]
    differ = {r: s[r].get("different_outputs", []) for r in s if r not in same}
    lines.append(f"- identical outputs (every output's sha256, against local): "
                 f"{', '.join(same) or 'none'}"
                 + "".join(f"; **{r} differs**: {', '.join(d[:5]) or 'not compared'}"
                           for r, d in differ.items()))
    for runner, pipes in report.get("not_honoured", {}).items():
        lines.append(f"- not honoured here by **{runner}**: " + "; ".join(
            f"{setting} in {pipe} ({level}: {why})"
            for pipe, found in pipes.items() for setting, level, why in found))
    failed = [r for r, e in report["summary"].items() if not e["ok"]]
    if failed:
        lines.append(f"- failed: {', '.join(failed)}")
    return lines


def _same(e: dict[str, Any]) -> str:
    return f"{_yes(e['identical_outputs'])} ({e['outputs_compared']})"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _yes(x: bool) -> str:
    return "yes" if x else "**no**"


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
