"""The ``mlpipe`` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad input, 130 Ctrl-C.

Thin: each command parses, calls the library and prints. Only the command's own work is imported:
``mlpipe --help`` loads neither torch nor any orchestrator.
"""

from __future__ import annotations

import sys

import typer

from mlpipe.cli import bench, cluster, registry, run, runs
from mlpipe.cli.common import err

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
for command in (run.train, run.infer, run.run, run.step, run.demo, run.predict):
    app.command()(command)
app.command("compile")(cluster.compile_)
app.command()(cluster.render)
app.command()(bench.bench)


def _version(value: bool) -> None:
    if value:
        from mlpipe import __version__

        typer.echo(f"mlpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit"
    ),
) -> None:
    """Write ML pipelines once; run them locally or on Airflow, Kubeflow or Dagster."""


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
