"""Repetitions to figures: medians, ratios to local, the floor and adapter overhead, the
per-step phase breakdown, the cached rerun and whether the outputs are identical."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def summarize(raw: list[dict[str, Any]], runners: Sequence[str],
              pipelines: Sequence[str] = ("training", "inference")) -> dict[str, Any]:
    """Per runner: medians, min/max, ratio to local in the same repetition, identical outputs
    (every output reference's sha256, each pipeline's, against local's in the same repetition)."""
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
            for pipe in pipelines:
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
            for pipe in pipelines:  # the cached rerun (of the first pipeline)
                rerun = [r[pipe]["rerun_s"] for r in ok if "rerun_s" in r[pipe]]
                if rerun:
                    first = entry[pipe]["median_s"]
                    entry[pipe]["rerun_s"] = statistics.median(rerun)
                    entry[pipe]["rerun_pct"] = 100 * statistics.median(rerun) / first
            entry["startup_s"] = statistics.median(r["startup_s"] for r in ok)
            entry["import_s"] = statistics.median(r["import_s"] for r in ok)
            entry["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
            compared = [r for r in ok if r["repetition"] in local]
            different = sorted({d for r in compared
                                for d in different_outputs(r, local[r["repetition"]], pipelines)})
            entry["identical_outputs"] = bool(compared) and not different
            entry["different_outputs"] = different
            entry["outputs_compared"] = sum(len(ok[0][p]["sha256"]) for p in pipelines)
            for key, name in (("weights_sha256", "weights"), ("predictions_sha256", "predictions")):
                if key in ok[0]:  # the built-ins' two headline outputs, named
                    entry[f"identical_{name}"] = bool(compared) and all(
                        r[key] == local[r["repetition"]][key] for r in compared)
                    entry[key] = ok[0][key]
        summary[runner] = entry
    return summary


def different_outputs(run: dict[str, Any], reference: dict[str, Any],
                      pipelines: Sequence[str]) -> list[str]:
    """``pipeline/output`` for every output reference whose sha256 differs from the reference
    run's (or that only one of the two produced)."""
    out = []
    for pipe in pipelines:
        mine, theirs = run[pipe]["sha256"], reference[pipe]["sha256"]
        out += [f"{pipe}/{k}" for k in sorted(set(mine) | set(theirs))
                if mine.get(k) != theirs.get(k)]
    return out


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
