"""The benchmark's charts: run time split into step time, overhead and start-up; the per-step
phase breakdown against the orchestrator's floor."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
