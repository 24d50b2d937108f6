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
    pipes = report.get("pipelines", ["training", "inference"])
    fig, axes = _axes(plt, len(pipes))
    for ax, pipe in zip(axes, pipes, strict=True):
        names = list(s)
        steps = [s[r][pipe]["step_sum_s"] for r in names]
        over = [max(s[r][pipe]["median_s"] - s[r][pipe]["step_sum_s"], 0) for r in names]
        start = [s[r]["startup_s"] / len(pipes) for r in names]  # start-up split across them
        ax.bar(names, steps, label="step time", color="#4C72B0")
        ax.bar(names, over, bottom=steps, label="orchestration overhead", color="#DD8452")
        ax.bar(
            names,
            start,
            bottom=[a + b for a, b in zip(steps, over, strict=True)],
            label=f"start-up (1/{len(pipes)})",
            color="#BBBBBB",
        )
        _fit(ax, [a + b + c for a, b, c in zip(steps, over, start, strict=True)])
        ax.set_title(f"{pipe} pipeline")
        ax.set_ylabel("seconds (median)")
    _legend(fig, axes[0])
    fig.suptitle(
        f"mlpipe runners · {_names(report)} · {report['mode']} · {report['date'][:10]} · "
        f"{report['machine']}",
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

    pipes = report.get("pipelines", ["training", "inference"])
    s = {r: e for r, e in report["summary"].items() if e["ok"] and "phase_s" in e[pipes[0]]}
    if not s:
        return None
    fig, axes = _axes(plt, len(pipes))
    for ax, pipe in zip(axes, pipes, strict=True):
        names = list(s)
        bottom = [0.0] * len(names)
        for phase, color in PHASE_COLORS.items():
            values = [s[r][pipe]["phase_s"].get(phase, 0.0) for r in names]
            ax.bar(names, values, bottom=bottom, color=color, label=phase.removesuffix("_s"))
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
        floors = [s[r][pipe]["floor_s"] for r in names]
        ax.scatter(names, floors, marker="_", s=600,
                   color="black", label="orchestrator floor", zorder=3)
        _fit(ax, [*bottom, *floors])
        ax.set_title(f"{pipe}: where the steps' time went")
        ax.set_ylabel("seconds (median, summed over steps)")
    _legend(fig, axes[0])
    fig.suptitle(f"mlpipe step breakdown · {_names(report)} · {report['mode']} · "
                 f"{report['date'][:10]}", fontsize=9)
    return save_chart(fig, path)


def _names(report: dict[str, Any]) -> str:
    return ", ".join(report.get("pipelines", ("training", "inference")))


def _axes(plt: Any, n: int) -> tuple[Any, list[Any]]:
    """One panel per pipeline, side by side, with room on the right for the legend."""
    fig, grid = plt.subplots(1, n, figsize=(4.2 * n + 2.2, 4), squeeze=False)
    return fig, list(grid[0])


def _fit(ax: Any, tops: list[float]) -> None:
    """Scale the y axis to the largest bar (or floor tick), so none is ever cut."""
    ax.set_ylim(0, max([*tops, 0.01]) * 1.12)


def _legend(fig: Any, ax: Any) -> None:
    """The legend outside the panels, on the right, never over a bar."""
    fig.legend(*ax.get_legend_handles_labels(), loc="center right", fontsize=7, frameon=False)


def save_chart(fig: Any, path: Path) -> Path:
    """Lay out, write (PNG, 110 dpi) and close a benchmark chart."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=(0, 0, 0.8, 1) if fig.legends else None)  # a legend outside: its room
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
