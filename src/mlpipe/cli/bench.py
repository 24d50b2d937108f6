"""``mlpipe bench``: the same pipelines through every runner, compared."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlpipe.cli.common import err, out, plugin_names
from mlpipe.core.errors import ConfigError


def bench(
    pipelines: Annotated[
        list[str] | None,
        typer.Argument(
            help="Pipelines to compare, in order: registered names or module:PIPELINE (your "
            "own) [default: training inference]",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", "-c", help="Config file (as mlpipe run), for the pipeline its "
                     "'pipeline:' key names (repeatable: one per pipeline)"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override for every pipeline, dotted.key=value (repeatable)"),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Tiny model, small data (minutes)", show_default=False, metavar=""
        ),
    ] = False,
    repetitions: Annotated[
        int, typer.Option("--repetitions", "-n", min=1, help="Interleaved rounds")
    ] = 3,
    runners: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated subset of {','.join(plugin_names('runner'))}"),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Where the JSON, Markdown and PNG go [default: <home>/bench]"),
    ] = None,
    set_train: Annotated[
        list[str] | None, typer.Option("--set-training", help="Training override")
    ] = None,
    set_infer: Annotated[
        list[str] | None, typer.Option("--set-inference", help="Inference override")
    ] = None,
    task: Annotated[
        str, typer.Option(help=f"Which ML task to run: {', '.join(plugin_names('task'))}")
    ] = "text-classification",
    backend: Annotated[
        str,
        typer.Option(help="Inference backend: torch, or onnx (training exports model.onnx)"),
    ] = "torch",
    scale: Annotated[
        bool,
        typer.Option(
            "--scale",
            help="Sharded inference at growing row counts instead (10k/100k/1M rows; "
            "--quick: 1k/4k), 1 shard against 2",
            show_default=False,
            metavar="",
        ),
    ] = False,
    rows: Annotated[
        str | None, typer.Option(help="With --scale: comma-separated row counts")
    ] = None,
    deployed: Annotated[
        bool,
        typer.Option(
            "--deployed",
            help="Also run through each orchestrator's service (airflow standalone, dagster "
            "dev) for the chosen runners that have one",
            show_default=False, metavar="",
        ),
    ] = False,
    deployed_pipelines: Annotated[
        str | None,
        typer.Option(
            "--deployed-pipelines",
            help="With --deployed: comma-separated names of the pipelines that go through the "
            "services, in their order above [default: all]",
        ),
    ] = None,
) -> None:
    """Compare the runners on the same pipelines (the built-ins, or your own): time, overhead,
    the orchestrator's floor, per-step breakdown, cached rerun, memory, identical outputs."""
    from rich.markdown import Markdown

    from mlpipe.bench.deployed import DEPLOYED
    from mlpipe.bench.report import render_markdown, write_report
    from mlpipe.bench.runs import not_honoured, run_benchmark
    from mlpipe.bench.settings import BenchSettings, registered_runners
    from mlpipe.cli.run import pipeline_from_cli
    from mlpipe.core import plugins
    from mlpipe.core.paths import resolve_home

    known = registered_runners()
    chosen = [r.strip() for r in (runners or ",".join(known)).split(",") if r.strip()]
    unknown = [r for r in chosen if r not in known]
    if unknown or not chosen:
        raise ConfigError(f"--runners: unknown {unknown}; registered: {', '.join(known)}")
    if task not in plugins.names("task"):
        raise plugins.unknown("task", task)
    if scale and deployed:
        raise ConfigError("--scale and --deployed: run them one at a time")
    refs = list(pipelines or ("training", "inference"))
    served = [p.strip() for p in (deployed_pipelines or "").split(",") if p.strip()]
    names = {ref: pipeline_from_cli(ref).name for ref in refs}
    unknown_served = [p for p in served if p not in {*names, *names.values()}]
    if unknown_served:
        raise ConfigError(f"--deployed-pipelines: {', '.join(unknown_served)} not among the "
                          f"pipelines benchmarked ({', '.join(names.values())})")
    if served and not deployed:
        raise ConfigError("--deployed-pipelines: add --deployed")
    if deployed and not set(chosen) & set(DEPLOYED):
        raise ConfigError(f"--deployed: needs one of {', '.join(DEPLOYED)} in --runners "
                          f"(got {', '.join(chosen)})")
    if "local" not in chosen:
        chosen.insert(0, "local")  # every ratio and identity check is against local
    if backend != "torch":  # overrides the user's own --set-* for the same fields come after
        set_train = ["artifacts.onnx=true", *(set_train or [])]
        set_infer = [f"inference.backend={backend}", *(set_infer or [])]
    out_dir = out_dir or resolve_home() / "bench"
    if scale:
        _bench_scale(chosen, out_dir, quick=quick, rows=rows, overrides=set_infer or [])
        return
    settings = BenchSettings(
        quick=quick,
        repetitions=repetitions,
        runners=chosen,
        out_dir=out_dir,
        task=task,
        pipelines=refs,
        configs=[c.resolve() for c in config or []],
        overrides=set_ or [],
        training_overrides=set_train or [],
        inference_overrides=set_infer or [],
        deployed=deployed,
        deployed_pipelines=served,
    )
    for runner, found in not_honoured(settings).items():  # said before the minutes it takes
        for pipe, items in found.items():
            for setting, level, why in items:
                err.print(f"[yellow]warning: {runner} {level} {setting} ({pipe}): {why}[/]",
                          highlight=False, soft_wrap=True)
    with err.status("benchmark starting") as status:
        report = run_benchmark(settings, on_progress=lambda msg: status.update(msg))
    paths = write_report(report, out_dir)
    out.print(Markdown(render_markdown(report)))
    out.print(
        f"raw figures: {paths['json']}\ntable: {paths['markdown']}\nchart: {paths['chart']}"
        + (f"\nbreakdown: {paths['breakdown_chart']}" if "breakdown_chart" in paths else ""),
        highlight=False,
        soft_wrap=True,
    )
    failed = [r for r, e in report["summary"].items() if e["failed"]]
    for runner, entry in report.get("deployed", {}).get("summary", {}).items():
        if entry["failed"]:
            failed.append(f"{runner} (deployed)")
            for error in entry["errors"]:
                err.print(f"[red]{error}[/]", highlight=False, soft_wrap=True)
    if failed:
        err.print(f"[yellow]failed runners: {', '.join(failed)}[/]")
        raise typer.Exit(1)


def _bench_scale(
    runners: list[str], out_dir: Path, *, quick: bool, rows: str | None, overrides: list[str]
) -> None:
    """``mlpipe bench --scale``: the sharded-inference table, growth, memory and chart."""
    from rich.markdown import Markdown

    from mlpipe.bench.scale import ScaleSettings, render_markdown, run_scale, write_report

    try:
        counts = [int(x.replace("_", "")) for x in rows.split(",") if x.strip()] if rows else []
    except ValueError:
        raise ConfigError(f"--rows {rows!r}: use whole numbers, e.g. 10000,100000") from None
    if any(n < 1 for n in counts):
        raise ConfigError(f"--rows {rows!r}: every row count must be at least 1")
    settings = ScaleSettings(runners=runners, out_dir=out_dir, quick=quick, rows=counts,
                             inference_overrides=overrides)
    with err.status("scale benchmark starting") as status:
        report = run_scale(settings, on_progress=lambda msg: status.update(msg))
    paths = write_report(report, out_dir)
    out.print(Markdown(render_markdown(report)))
    out.print(f"raw figures: {paths['json']}\ntable: {paths['markdown']}\nchart: {paths['chart']}",
              highlight=False, soft_wrap=True)
    if report["summary"]["failed"]:
        err.print("[yellow]failed: " + "; ".join(report["summary"]["failed"]) + "[/]")
        raise typer.Exit(1)
