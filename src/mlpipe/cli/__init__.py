"""The ``mlpipe`` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad input, 130 Ctrl-C.

Thin: each command parses, calls the library and prints. Only the command's own work is imported:
``mlpipe --help`` loads neither torch nor any orchestrator.
"""

from __future__ import annotations

import signal
import sys

try:  # Ctrl-C while the CLI's own modules import: a line, not a traceback
    import typer

    from mlpipe.cli import bench, cache, cluster, gc, new, registry, run, runs
    from mlpipe.cli.common import err, report_error
    from mlpipe.cli.interrupts import SIGNALS, Interrupts
    from mlpipe.core.errors import MlpipeError
    from mlpipe.core.execution.teardown import exit_now, skip_teardown_at_exit
except KeyboardInterrupt:  # pragma: no cover - timing-dependent
    sys.stderr.write("error: interrupted (Ctrl-C)\n")
    raise SystemExit(130) from None

app = typer.Typer(
    name="mlpipe",
    help="Write ML pipelines once; run them locally or on Airflow, Kubeflow or Dagster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(registry.app, name="registry")
app.add_typer(runs.app, name="runs")
app.add_typer(new.app, name="new")
app.add_typer(cache.app, name="cache")
for command in (run.train, run.infer, run.run, run.step, run.demo, run.predict):
    app.command()(command)
app.command("compile")(cluster.compile_)
app.command()(cluster.render)
app.command()(bench.bench)
app.command()(gc.gc)


def _version(value: bool) -> None:
    if value:
        from mlpipe.version import __version__

        typer.echo(f"mlpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and exit",
        metavar="",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print an error's traceback too", show_default=False
    ),
) -> None:
    """Write ML pipelines once; run them locally or on Airflow, Kubeflow or Dagster."""
    if verbose:
        import os

        from mlpipe.cli.common import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"


def main() -> None:
    """Run the CLI: Ctrl-C exits 130 and SIGTERM 143, each with a one-line message (the step in
    progress records the interruption and removes its outputs on the way out); once a command's
    status is decided the signals are ignored, so the exit handlers (a tracker's finish) complete
    and the status stands. Commands raise; an ``MlpipeError`` or an OSError (a read-only or full
    disk, a home that is a file) becomes one ``error:`` line here and its exit code, never a
    traceback (``-v`` adds one)."""
    interrupts = Interrupts()
    interrupts.catch()
    received = interrupts.received
    try:
        try:
            app()
        except (MlpipeError, OSError) as exc:  # the one error boundary: commands just raise
            sys.exit(report_error(exc))
    except KeyboardInterrupt:
        received.append(received[-1] if received else signal.SIGINT)
    except SystemExit as exc:
        if not received:
            interrupts.ignore()  # the status is decided: the exit handlers (trackers) finish
            if exc.code in (0, None):  # done and written: skip the interpreter's teardown
                skip_teardown_at_exit()
            raise
        if exc.code not in (130, 1, None):  # an exit the command chose after the interrupt
            raise
    if received:
        first = received[0]
        interrupts.ignore()  # the run is over: a second Ctrl-C must not change the status
        err.print(f"[bold red]error:[/] {SIGNALS.get(first, 'interrupted')}", highlight=False)
        exit_now(128 + first)  # exactly 130 / 143, whatever the interpreter's teardown would do


if __name__ == "__main__":
    main()
