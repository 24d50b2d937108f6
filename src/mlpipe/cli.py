"""The ``mlpipe`` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad input.

Only the command's own work is imported: ``mlpipe --help`` loads neither torch nor any
orchestrator.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlpipe.core.config import (
    InferenceConfig,
    InferenceSettings,
    PipelineConfig,
    TrainingConfig,
    load_config,
)
from mlpipe.core.errors import ConfigError, MlpipeError
from mlpipe.core.runner import PipelineRun, StepRun, resolve_home

app = typer.Typer(
    name="mlpipe",
    help="Write ML pipelines once; run them locally or on Airflow, Kubeflow or Dagster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
registry_app = typer.Typer(help="List model versions and move aliases.", no_args_is_help=True)
compile_app = typer.Typer(help="Compile a pipeline for an orchestrator.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(compile_app, name="compile")
out = Console()
err = Console(stderr=True)


class PipelineChoice(StrEnum):
    training = "training"
    inference = "inference"


class TaskChoice(StrEnum):
    classification = "text-classification"
    sql = "text-to-sql"


class RunnerChoice(StrEnum):
    local = "local"
    airflow = "airflow"
    kubeflow = "kubeflow"
    dagster = "dagster"


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
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Run every step even if cached")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def fail(exc: BaseException) -> typer.Exit:
    """Print a clear error and pick the exit code: 2 for bad input, 1 otherwise."""
    code = getattr(exc, "exit_code", 1) if isinstance(exc, MlpipeError) else 1
    err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _load(config: Path | None, overrides: list[str] | None, pipeline: str) -> PipelineConfig:
    return load_config(config, overrides or [], pipeline=pipeline)  # type: ignore[arg-type]


def run_with(
    runner: str, pipeline_name: str, cfg: PipelineConfig, home: Path, use_cache: bool | None
) -> PipelineRun:
    """Dispatch to the local runner or an adapter's ``run_pipeline`` (imported only when used)."""
    from mlpipe.core.pipelines import get_pipeline

    pipeline = get_pipeline(pipeline_name)
    if runner == "local":
        from mlpipe.core.runner import run_pipeline

        return run_pipeline(pipeline, cfg, home=home, use_cache=use_cache, on_step=_progress)
    module = _adapter_module(f"mlpipe.adapters.{runner}.runner", runner, f"--runner {runner}")
    result: PipelineRun = module.run_pipeline(pipeline, cfg, home=home, use_cache=use_cache)
    return result


def _adapter_module(module: str, extra: str, what: str) -> Any:
    """Import an adapter module; a missing orchestrator is a clear install hint (exit 2)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{what} needs the {extra} extra: pip install 'mlpipe[{extra}]' ({exc})"
        ) from exc


def _progress(step: str, state: str, result: StepRun | None) -> None:
    if state == "running":
        err.print(f"[cyan]▶ {step}[/]", highlight=False)
    elif result is not None:
        tag = " [dim](cached)[/]" if result.cached else ""
        err.print(f"[green]✓ {step}[/] {result.seconds:.2f}s{tag}", highlight=False)


def print_run(run: PipelineRun, as_json: bool) -> None:
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
        table.add_column(col)
    for s in run.steps:
        table.add_row(s.step, f"{s.seconds:.2f}", "yes" if s.cached else "", _describe(s))
    out.print(table)


def _describe(s: StepRun) -> str:
    ref: Any = s.ref
    if ref.kind == "dataset":
        return ", ".join(f"{k}: {v} rows" for k, v in ref.rows.items())
    if ref.kind == "model":
        return _quality(ref.metrics, prefix="eval ")
    if ref.kind == "model_version":
        return f"{ref.spec} [{', '.join(ref.aliases)}]"
    if ref.kind == "predictions":
        return f"{ref.rows} rows, {ref.throughput:.0f} rows/s"
    if ref.kind == "results":
        quality = _quality({f"eval_{k}": v for k, v in ref.metrics.items()}, prefix="")
        return f"{ref.predictions_uri} ({quality})" if quality else ref.predictions_uri
    return ref.uri


_SHOWN = ("accuracy", "f1", "exact_match", "execution_match")  # whichever the task reports


def _quality(metrics: dict[str, float], prefix: str) -> str:
    found = [(name, metrics[f"eval_{name}"]) for name in _SHOWN if f"eval_{name}" in metrics]
    return ", ".join(f"{prefix}{name.replace('_', ' ')} {value:.4f}" for name, value in found)


def _run_command(
    pipeline: str,
    runner: str,
    config: Path | None,
    overrides: list[str] | None,
    home: Path | None,
    no_cache: bool,
    as_json: bool,
) -> PipelineRun:
    try:
        cfg = _load(config, overrides, pipeline)
        run = run_with(runner, pipeline, cfg, resolve_home(home), False if no_cache else None)
    except MlpipeError as exc:
        raise fail(exc) from exc
    print_run(run, as_json)
    return run


@app.command()
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    home: HomeOpt = None,
    runner: RunnerChoice = RunnerChoice.local,
    no_cache: NoCacheOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Run the training pipeline (default: locally, in this process)."""
    _run_command("training", runner.value, config, set_, home, no_cache, json_)


@app.command()
def infer(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    home: HomeOpt = None,
    runner: RunnerChoice = RunnerChoice.local,
    no_cache: NoCacheOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Run the inference pipeline (default: locally, in this process)."""
    _run_command("inference", runner.value, config, set_, home, no_cache, json_)


@app.command()
def run(
    pipeline: PipelineChoice,
    runner: Annotated[RunnerChoice, typer.Option(help="Who runs the steps")] = RunnerChoice.local,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    home: HomeOpt = None,
    no_cache: NoCacheOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Run a pipeline through a runner: local, airflow, kubeflow (kfp.local) or dagster."""
    _run_command(pipeline.value, runner.value, config, set_, home, no_cache, json_)


@app.command()
def step(
    name: Annotated[str, typer.Argument(help="Step name, e.g. train_model")],
    pipeline: Annotated[PipelineChoice, typer.Option(help="Pipeline the step belongs to")],
    run_id: Annotated[str, typer.Option(help="Run id shared by all steps of one run")],
    config: ConfigOpt = None,
    config_json: Annotated[
        str | None, typer.Option(help="The whole config as JSON (instead of --config)")
    ] = None,
    set_: SetOpt = None,
    home: HomeOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Run one step; its inputs are read from the same run's earlier steps. For pods and tasks."""
    from mlpipe.core.config import config_from_json
    from mlpipe.core.pipelines import get_pipeline
    from mlpipe.core.runner import load_step_result, run_step, safe_run_id
    from mlpipe.core.storage import pull_for_step, push_for_step

    run_id = safe_run_id(run_id)  # orchestrator run ids (Airflow's run_id) -> a directory name
    try:
        cfg = config_from_json(config_json) if config_json else _load(config, set_, pipeline.value)
        pipe = get_pipeline(pipeline.value)
        try:
            spec = pipe.step(name)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
        root = resolve_home(home)
        pull_for_step(cfg, pipe, name, root, run_id)  # cluster.storage_uri: fetch inputs first
        inputs = {}
        for arg, source in spec.inputs.items():
            try:
                inputs[arg] = load_step_result(root, pipe.name, run_id, source).ref
            except FileNotFoundError:
                raise ConfigError(
                    f"step '{name}' needs '{source}' of run {run_id} first (no result under {root})"
                ) from None
        result = run_step(
            pipe,
            name,
            cfg,
            inputs,
            home=root,
            run_id=run_id,
            use_cache=False if no_cache else None,
            tags={"runner": "step"},
        )
        push_for_step(cfg, pipe, name, root, run_id, result.ref)
    except MlpipeError as exc:
        raise fail(exc) from exc
    sys.stdout.write(json.dumps(result.to_json()) + "\n")


@app.command()
def demo(home: HomeOpt = None, no_cache: NoCacheOpt = False) -> None:
    """The main job on embedded defaults: train MiniLM on the built-in data, publish, predict."""
    root = resolve_home(home)
    started = time.perf_counter()
    err.print(f"[bold]mlpipe demo[/] · home {root}", highlight=False)
    try:
        training = run_with(
            "local", "training", TrainingConfig(), root, False if no_cache else None
        )
        version: Any = training.final
        inference = run_with(
            "local",
            "inference",
            InferenceConfig(inference=InferenceSettings(model=version.spec)),
            root,
            False if no_cache else None,
        )
    except MlpipeError as exc:
        raise fail(exc) from exc
    results: Any = inference.final
    table = Table(title=f"mlpipe demo · {time.perf_counter() - started:.0f}s")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("eval accuracy (training)", f"{version.metrics.get('eval_accuracy', 0):.4f}")
    table.add_row("model version", f"{version.spec} [{', '.join(version.aliases)}]")
    table.add_row(
        "inference accuracy", f"{results.metrics.get('accuracy', 0):.4f} on {results.rows} rows"
    )
    table.add_row("predictions", results.predictions_uri)
    table.add_row("registry", str(Path(version.uri).parent.parent))
    out.print(table)


@registry_app.command("list")
def registry_list(
    name: Annotated[str | None, typer.Argument(help="Model name (default: all)")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List model versions with their aliases and metrics."""
    try:
        registry = _registry(config, home)
        versions = registry.versions(name)
    except MlpipeError as exc:
        raise fail(exc) from exc
    if json_:
        out.print_json(json.dumps([v.model_dump(mode="json") for v in versions]))
        return
    table = Table(title="model registry")
    for col in ("model", "version", "aliases", "eval accuracy", "sha256"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v.name,
            f"v{v.version}",
            ", ".join(v.aliases),
            f"{v.metrics.get('eval_accuracy', float('nan')):.4f}",
            v.sha256[:12],
        )
    out.print(table)


@registry_app.command("promote")
def registry_promote(
    name: str,
    version: Annotated[str, typer.Argument(help="Version number, e.g. 3 or v3")],
    alias: str,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Point ALIAS (e.g. production) at VERSION of model NAME."""
    try:
        number = int(version.lstrip("v"))
    except ValueError:
        raise fail(ConfigError(f"version {version!r}: expected a number like 3 or v3")) from None
    try:
        ref = _registry(config, home).promote(name, number, alias)
    except MlpipeError as exc:
        raise fail(exc) from exc
    out.print(f"{ref.spec} now has aliases: {', '.join(ref.aliases)}", highlight=False)


def _registry(config: Path | None, home: Path | None) -> Any:
    from mlpipe.core.config import RegistryConfig
    from mlpipe.core.registry import open_registry

    cfg = load_config(config).registry if config else RegistryConfig()
    return open_registry(cfg, resolve_home(home))


@compile_app.command("kubeflow")
def compile_kubeflow(
    pipeline: Annotated[PipelineChoice, typer.Option(help="Pipeline to compile")],
    output: Annotated[Path, typer.Option("--output", "-o", help="YAML file to write")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Compile a pipeline to kfp v2 YAML (loadable by any KFP backend)."""
    from mlpipe.core.pipelines import get_pipeline

    try:
        cfg = _load(config, set_, pipeline.value)
        compile_pipeline = _adapter_module(
            "mlpipe.adapters.kubeflow", "kubeflow", "compile kubeflow"
        ).compile_pipeline
        path = compile_pipeline(get_pipeline(pipeline.value), cfg, output)
    except MlpipeError as exc:
        raise fail(exc) from exc
    out.print(f"wrote {path}", highlight=False)


class OrchestratorChoice(StrEnum):
    airflow = "airflow"
    kubeflow = "kubeflow"
    dagster = "dagster"


#: The module of each adapter that translates core's ContainerSpec (``render_cluster``).
_CLUSTER_MODULES = {
    "airflow": "mlpipe.adapters.airflow.kubernetes",
    "kubeflow": "mlpipe.adapters.kubeflow.cluster",
    "dagster": "mlpipe.adapters.dagster.cluster",
}


@app.command()
def render(
    orchestrator: Annotated[OrchestratorChoice, typer.Argument(help="Who would submit the pods")],
    pipeline: Annotated[PipelineChoice, typer.Option(help="Pipeline to render")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write into")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write what cluster mode would submit (pod specs, kfp YAML, Dagster pod specs) for review.

    The config's ``cluster`` section decides image, resources, volumes and secrets; the files
    hold Secret references only, never a secret's value. Nothing is submitted.
    """
    from mlpipe.core.pipelines import get_pipeline

    try:
        cfg = _load(config, set_, pipeline.value)
        cfg = cfg.model_copy(
            update={"runtime": cfg.runtime.model_copy(update={"mode": "kubernetes"})}
        )
        module = _adapter_module(
            _CLUSTER_MODULES[orchestrator.value], orchestrator.value, f"render {orchestrator.value}"
        )
        paths = module.render_cluster(get_pipeline(pipeline.value), cfg, output)
    except MlpipeError as exc:
        raise fail(exc) from exc
    for path in paths:
        out.print(f"wrote {path}", highlight=False)


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny model, small data (minutes)")
    ] = False,
    repetitions: Annotated[
        int, typer.Option("--repetitions", "-n", min=1, help="Interleaved rounds")
    ] = 3,
    runners: Annotated[
        str, typer.Option(help="Comma-separated subset of local,airflow,kubeflow,dagster")
    ] = ("local,airflow,kubeflow,dagster"),
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where the JSON, Markdown and PNG go")
    ] = Path("bench/results"),
    set_train: Annotated[
        list[str] | None, typer.Option("--set-training", help="Training override")
    ] = None,
    set_infer: Annotated[
        list[str] | None, typer.Option("--set-inference", help="Inference override")
    ] = None,
    task: Annotated[
        TaskChoice, typer.Option(help="Which ML task to run")
    ] = TaskChoice.classification,
) -> None:
    """Compare the runners on the same pipelines: time, overhead, memory, identical outputs."""
    from rich.markdown import Markdown

    from mlpipe.benchmark import (
        RUNNERS,
        BenchSettings,
        render_markdown,
        run_benchmark,
        write_report,
    )

    chosen = [r.strip() for r in runners.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in RUNNERS]
    if unknown or not chosen:
        raise fail(ConfigError(f"--runners: unknown {unknown}; choose from {', '.join(RUNNERS)}"))
    if "local" not in chosen:
        chosen.insert(0, "local")  # every ratio and identity check is against local
    settings = BenchSettings(
        quick=quick,
        repetitions=repetitions,
        runners=chosen,
        out_dir=out_dir,
        task=task.value,
        training_overrides=set_train or [],
        inference_overrides=set_infer or [],
    )
    try:
        with err.status("benchmark starting") as status:
            report = run_benchmark(settings, on_progress=lambda msg: status.update(msg))
    except MlpipeError as exc:
        raise fail(exc) from exc
    paths = write_report(report, out_dir)
    out.print(Markdown(render_markdown(report)))
    out.print(
        f"raw figures: {paths['json']}\ntable: {paths['markdown']}\nchart: {paths['chart']}",
        highlight=False,
    )
    failed = [r for r, e in report["summary"].items() if e["failed"]]
    if failed:
        err.print(f"[yellow]failed runners: {', '.join(failed)}[/]")
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
