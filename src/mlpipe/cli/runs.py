"""``mlpipe runs``: the history of runs made by any runner, one run, its logs."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlpipe.cli.common import HomeOpt, JsonOpt, fail, out
from mlpipe.core.errors import MlpipeError

app = typer.Typer(help="Runs made by any runner: list, show, logs.", no_args_is_help=True)


@app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline")] = None,
    status: Annotated[str | None, typer.Option(help="running, succeeded or failed")] = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List runs, newest first: status, runner, time, model version, failed step."""
    from mlpipe.core.paths import resolve_home
    from mlpipe.core.runs import list_runs

    try:
        records = list_runs(resolve_home(home), pipeline=pipeline, status=status)
    except MlpipeError as exc:
        raise fail(exc) from exc
    if json_:
        out.print_json(json.dumps([{k: v for k, v in r.items() if k != "config"}
                                   for r in records], default=str))
        return
    table = Table(title="runs")
    for col in ("run id", "pipeline", "runner", "status", "started", "seconds", "result"):
        table.add_column(col, overflow="fold")
    for r in records:
        result = r.get("model_version") or ""
        if r.get("status") == "failed":
            result = f"{r.get('failed_step')}: {(r.get('error') or {}).get('message', '')}"
        seconds = r.get("seconds")
        table.add_row(r.get("run_id", ""), r.get("pipeline", ""), r.get("runner", ""),
                      r.get("status", ""), str(r.get("started_at") or ""),
                      f"{seconds:.1f}" if isinstance(seconds, int | float) else "",
                      escape(str(result)))
    out.print(table)


@app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (see mlpipe runs list)")],
    home: HomeOpt = None,
) -> None:
    """Print one run's record (JSON): status, times, steps, error, config."""
    from mlpipe.core.paths import resolve_home
    from mlpipe.core.runs import find_run

    try:
        record = find_run(resolve_home(home), run_id)
    except MlpipeError as exc:
        raise fail(exc) from exc
    out.print_json(json.dumps(record, default=str))


@app.command("logs")
def runs_logs(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    step: Annotated[str | None, typer.Argument(help="Only this step")] = None,
    home: HomeOpt = None,
) -> None:
    """What a run left to read: each step's outcome, a failed step's traceback, the
    orchestrator's log."""
    from mlpipe.core.paths import resolve_home
    from mlpipe.core.runs import find_run, step_logs

    try:
        parts = step_logs(find_run(resolve_home(home), run_id), step)
    except MlpipeError as exc:
        raise fail(exc) from exc
    for title, text in parts:
        out.print(f"[bold]{escape(title)}[/]", highlight=False)
        if text:
            out.print(text, markup=False, highlight=False, soft_wrap=True)
