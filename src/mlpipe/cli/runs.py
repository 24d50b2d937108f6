"""``mlpipe runs``: the history of runs made by any runner, one run, its logs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from mlpipe.cli.common import HomeOpt, JsonOpt, out, safe

app = typer.Typer(help="Runs made by any runner: list, show, logs, diff.", no_args_is_help=True)


@app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline")] = None,
    status: Annotated[str | None, typer.Option(help="running, succeeded or failed")] = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List runs, newest first, one line each: status, runner, model version or failed step and
    error (cut to the width; runs show has it whole)."""
    from mlpipe.core.paths import resolve_home
    from mlpipe.core.runs import list_runs

    records = list_runs(resolve_home(home), pipeline=pipeline, status=status)
    if json_:
        out.print_json(json.dumps([{k: v for k, v in r.items() if k != "config"}
                                   for r in records], default=str))
        return
    for line in run_lines(records, out.width):
        out.print(safe(line), markup=False, highlight=False, soft_wrap=True)


_LIST_COLUMNS = ("run id", "pipeline", "runner", "status", "seconds")


def run_lines(records: list[dict[str, Any]], width: int) -> list[str]:
    """One line per run, ``width`` columns at most: the result (model version, or the failed
    step and the error's first line) takes what is left, cut with ``…`` (``runs show`` has it
    whole). Seconds, then the runner, are left out when the result would get too little."""
    rows = []
    for r in records:
        seconds = r.get("seconds")
        result = str(r.get("model_version") or "")
        if r.get("status") == "failed":
            step = r.get("failed_step")
            message = str((r.get("error") or {}).get("message", "")).strip()
            message = message.removeprefix(f"step '{step}' failed: ")
            result = f"{step}: {message.splitlines()[0] if message else ''}"
        rows.append((str(r.get("run_id", "")), str(r.get("pipeline", "")),
                     str(r.get("runner", "")), str(r.get("status", "")),
                     f"{seconds:.1f}" if isinstance(seconds, int | float) else "-", result))
    if not rows:
        return ["no runs yet (mlpipe run PIPELINE ...)"]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(_LIST_COLUMNS)]
    shown = list(range(len(_LIST_COLUMNS)))
    for dropped in (4, 2):
        if sum(widths[i] + 2 for i in shown) + _RESULT_ROOM <= width:
            break
        shown.remove(dropped)
    lines = []
    for row in [(*_LIST_COLUMNS, "result"), *rows]:
        cells = [row[i].rjust(widths[i]) if i == 4 else row[i].ljust(widths[i]) for i in shown]
        lines.append(_cut("  ".join([*cells, row[5]]).rstrip(), width))
    return lines


_RESULT_ROOM = 30  # the result column's share of a narrow line


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(1, width - 1)] + "…"


@app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (see mlpipe runs list)")],
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One run: status, times, failed step and its whole error, then each step, then the
    config (--json: the whole record)."""
    from mlpipe.core.paths import resolve_home
    from mlpipe.core.runs import find_run

    record = find_run(resolve_home(home), run_id)
    if json_:
        out.print_json(json.dumps(record, default=str))
        return
    for line in show_lines(record):
        out.print(safe(line), markup=False, highlight=False, soft_wrap=True)


def show_lines(record: dict[str, Any]) -> list[str]:
    """The summary first (what ``runs list`` cut short, whole), the config last."""
    import yaml

    seconds = record.get("seconds")
    took = f" in {seconds:.1f}s" if isinstance(seconds, int | float) else ""
    lines = [f"run {record.get('run_id')}: {record.get('pipeline')} via {record.get('runner')}, "
             f"{record.get('status')}{took}"]
    for key in ("started_at", "ended_at", "orchestrator_run_id", "model_version"):
        if record.get(key):
            lines.append(f"{key.replace('_', ' ')}: {record[key]}")
    error = record.get("error") or {}
    if record.get("status") == "failed":
        lines.append(f"failed step: {record.get('failed_step') or '-'} "
                     f"({error.get('type', 'error')}, exit {error.get('exit_code', 1)})")
        lines.append(f"error: {error.get('message', '')}")
        lines.append(f"traceback: mlpipe runs logs {record.get('run_id')}")
    steps = record.get("steps") or []
    if steps:
        lines.append("steps:")
        for s in steps:
            cached = " (cached)" if s.get("cached") else ""
            lines.append(f"  {s.get('step')}  {float(s.get('seconds') or 0):.2f}s{cached}")
    lines.append(f"run dir: {record.get('path')}")
    if record.get("log"):
        lines.append(f"orchestrator log: {record['log']}")
    if record.get("config"):
        lines.append(f"config (sha256 {str(record.get('config_sha256', ''))[:12]}):")
        dumped = yaml.safe_dump(record["config"], sort_keys=False, default_flow_style=False)
        lines += ["  " + line for line in dumped.splitlines()]
    return lines


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

    parts = step_logs(find_run(resolve_home(home), run_id), step)
    for title, text in parts:
        out.print(f"[bold]{escape(title)}[/]", highlight=False)
        if text:
            out.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command("diff")
def runs_diff(
    run_a: Annotated[str, typer.Argument(help="Run id (see mlpipe runs list)")],
    run_b: Annotated[str, typer.Argument(help="Run id to compare it with (any runner)")],
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Two runs side by side (any runners): config, code and environment differences, each
    step's seconds, and whether each step's output has the same sha256."""
    from mlpipe.core.paths import resolve_home
    from mlpipe.core.runs import diff_runs, find_run

    where = resolve_home(home)
    diff = diff_runs(find_run(where, run_a), find_run(where, run_b))
    if json_:
        out.print_json(json.dumps(diff, default=str))
        return
    for line in diff_lines(diff):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def diff_lines(diff: dict[str, Any]) -> list[str]:
    """Differences first (config, code, environment), then the steps, then the verdict."""
    a, b = diff["runs"]
    ra, rb = diff["runners"]
    lines = [f"A {a} ({diff['pipelines'][0]} via {ra})", f"B {b} ({diff['pipelines'][1]} via {rb})"]
    for section in ("config", "code", "environment"):
        changed = diff[section]
        if not changed:
            lines.append(f"{section}: same")
            continue
        lines.append(f"{section}: {len(changed)} different")
        lines += [f"  {key}: {va!r} -> {vb!r}" for key, (va, vb) in changed.items()]
    width = max([4, *(len(str(s["step"])) for s in diff["steps"])])
    lines.append(f"{'step'.ljust(width)}  {'A s':>8}  {'B s':>8}  output")

    def secs(x: Any, cached: Any) -> str:
        return "-" if x is None else f"{float(x):.2f}{'c' if cached else ''}"

    for s in diff["steps"]:
        (sa, sb), (ca, cb) = s["seconds"], s["cached"]
        lines.append(f"{str(s['step']).ljust(width)}  {secs(sa, ca):>8}  {secs(sb, cb):>8}  "
                     f"{'same' if s['same_output'] else 'DIFFERENT'}")
    ta, tb = diff["seconds"]
    lines.append(f"{'run'.ljust(width)}  {secs(ta, False):>8}  {secs(tb, False):>8}  "
                 + ("identical outputs" if diff["identical_outputs"] else "outputs differ"))
    return lines
