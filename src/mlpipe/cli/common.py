"""What every command shares: consoles, options, error reporting, how a run is printed."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mlpipe.core.errors import MlpipeError

out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Where mlpipe writes everything [env: MLPIPE_HOME; default ./.mlpipe]"
    ),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a field: dotted.key=value (repeatable)"),
]
NoCacheOpt = Annotated[
    bool,
    typer.Option(
        "--no-cache", help="Run every step even if cached", show_default=False, metavar=""
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON", show_default=False, metavar="")
]


VERBOSE_ENV = "MLPIPE_VERBOSE"


def verbose() -> bool:
    """``mlpipe -v``: errors come with their traceback (set by the top-level option)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def plugin_names(kind: str) -> list[str]:
    """Registered names for help texts; empty (not an error) when nothing is installed yet."""
    from mlpipe.core import plugins

    try:
        return plugins.names(kind)  # type: ignore[arg-type]
    except MlpipeError:
        return []


_OS_HINTS = {
    errno.ENOSPC: "free some space or point --home at another disk",
    errno.EDQUOT: "free some space or point --home at another disk",
    errno.EROFS: "the file system is read-only; point --home (or MLPIPE_HOME) at a writable "
    "directory",
    errno.EACCES: "check the permissions or point --home (or MLPIPE_HOME) at a writable directory",
    errno.EPERM: "check the permissions or point --home (or MLPIPE_HOME) at a writable directory",
    errno.ENOTDIR: "a file is in the way where a directory is needed; move it or pick another "
    "--home",
    errno.EEXIST: "a file is in the way where a directory is needed; move it or pick another "
    "--home",
    errno.ENOENT: "check the path",
}


def describe_oserror(exc: OSError) -> str:
    """One line for an OSError: what failed, on which file, and what to do."""
    what = exc.strerror or type(exc).__name__
    where = f" {exc.filename}" if exc.filename else ""
    if exc.filename2:
        where += f" -> {exc.filename2}"
    hint = _OS_HINTS.get(exc.errno or 0, "")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename:
        blocker = next((p for p in Path(str(exc.filename)).parents if p.is_file()), None)
        if blocker is not None:
            hint = f"{blocker} is a file, not a directory; move it or pick another --home"
    line = f"{what}:{where}" if where else what
    return f"{line} ({hint})" if hint else line


def report_error(exc: MlpipeError | OSError) -> int:
    """The CLI's one error boundary (``main``): commands raise, this prints the ``error:`` line
    and picks the exit code, 2 for bad input and 1 otherwise.

    An error that carries the orchestrator's log or the run record (a failed run) has them
    printed first. The message is printed as text, never as markup: ``[...]`` stays visible.
    """
    for label in ("log", "run_record"):
        if getattr(exc, label, None):
            err.print(f"{label.replace('_', ' ')}:", highlight=False)
            err.print(str(getattr(exc, label)), markup=False, highlight=False, soft_wrap=True)
    code = int(getattr(exc, "exit_code", 1)) if isinstance(exc, MlpipeError) else 1
    text = describe_oserror(exc) if isinstance(exc, OSError) else str(exc)
    if verbose():
        import traceback

        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False,
                  soft_wrap=True)
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    return code


def step_printer(console: Console) -> Any:
    """``on_step`` for a runner: one line per step on ``console``: started, done, failed."""

    def on_step(step: str, state: str, result: Any) -> None:
        if state == "running":
            console.print(f"[cyan]▶ {escape(step)}[/]", highlight=False)
        elif state == "failed":
            console.print(f"[red]✗ {escape(step)}[/]", highlight=False)
        elif result is not None:
            tag = " [dim](cached)[/]" if result.cached else ""
            console.print(f"[green]✓ {escape(step)}[/] {result.seconds:.2f}s{tag}", highlight=False)
            for line in failed_checks(result.ref):
                console.print(f"[yellow]  ! {escape(line)}[/]", highlight=False)

    return on_step


def failed_checks(ref: Any) -> list[str]:
    """A line per failed non-blocking check (a blocking one fails its step instead)."""
    return [f"check {c.name} failed (not blocking): {c.message}".rstrip(": ")
            for c in getattr(ref, "checks", ()) if not c.passed and not c.blocking]


def progress_printer(console: Console) -> Any:
    """``on_progress`` for a runner: a step's plain progress line, dimmed, as it comes."""

    def on_progress(step: str, line: str) -> None:
        console.print(Text(f"  {line}", style="dim"), highlight=False, soft_wrap=True)

    return on_progress


on_step = step_printer(err)


def terminal_console() -> Console:
    """A console on this process's real stderr, which keeps printing while a runner sends
    the orchestrator's own output (fds 1 and 2) to its log file."""
    return Console(file=os.fdopen(os.dup(2), "w", buffering=1, closefd=True), stderr=True)


def print_run(run: Any, as_json: bool) -> None:
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "pipeline": run.pipeline,
                    "runner": run.runner,
                    "run_id": run.run_id,
                    "run_dir": str(run.run_dir),
                    "seconds": run.seconds,
                    "steps": [s.to_json() for s in run.steps],
                    "extra": run.extra,
                },
                default=str,
            )
        )
        return
    table = Table(title=f"{run.pipeline} via {run.runner} · run {run.run_id} · {run.seconds:.1f}s")
    for col in ("step", "seconds", "cached", "output"):
        table.add_column(col, overflow="fold")
    for s in run.steps:
        cached = "yes" if s.cached else ""
        table.add_row(s.step, f"{s.seconds:.2f}", cached, escape(describe(s.ref)))
    out.print(table)


_SHOWN = ("accuracy", "f1", "exact_match", "execution_match")  # whichever the task reports


def describe(ref: Any) -> str:
    """One line about a step's output, whatever its kind."""
    kind = ref.kind
    if kind == "dataset":
        return ", ".join(f"{k}: {v} rows" for k, v in ref.rows.items())
    if kind == "model":
        return quality(ref.metrics, prefix="eval ")
    if kind == "model_version":
        return f"{ref.spec} [{', '.join(ref.aliases)}]"
    if kind == "predictions":
        return f"{ref.rows} rows, {ref.throughput:.0f} rows/s"
    if kind == "results":
        shown = quality({f"eval_{k}": v for k, v in ref.metrics.items()}, prefix="")
        return f"{ref.predictions_uri} ({shown})" if shown else ref.predictions_uri
    return str(ref.uri)


def quality(metrics: dict[str, float], prefix: str) -> str:
    found = [(name, metrics[f"eval_{name}"]) for name in _SHOWN if f"eval_{name}" in metrics]
    return ", ".join(f"{prefix}{name.replace('_', ' ')} {value:.4f}" for name, value in found)
