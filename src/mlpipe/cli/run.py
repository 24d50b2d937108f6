"""Commands that run pipelines: ``train``, ``infer``, ``run``, ``demo`` and ``step`` (pods)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mlpipe.cli.common import (
    ConfigOpt,
    HomeOpt,
    JsonOpt,
    NoCacheOpt,
    SetOpt,
    err,
    on_step,
    out,
    plugin_names,
    print_run,
    progress_printer,
    safe,
    step_printer,
    terminal_console,
)
from mlpipe.core.errors import MlpipeError

RunnerOpt = Annotated[
    str,
    typer.Option(
        "--runner", "-r", help=f"Who runs the steps: {', '.join(plugin_names('runner'))}"
    ),
]


def pipeline_from_cli(ref: str) -> Any:
    """A registered pipeline name or ``module:ATTR``; modules are found from the current
    directory too, here and in the processes that orchestrators start for their tasks."""
    from mlpipe.core.pipeline import resolve_pipeline

    if ":" in ref:
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if cwd not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, *paths) if p)
    return resolve_pipeline(ref)


def run_command(
    pipeline_ref: str,
    runner: str,
    config: Path | None,
    overrides: list[str] | None,
    home: Path | None,
    no_cache: bool,
    as_json: bool,
    resume: str | None = None,
) -> Any:
    from mlpipe.core.config import config_from_json, load_config
    from mlpipe.core.execution import get_runner

    pipeline = pipeline_from_cli(pipeline_ref)
    if resume and config is None and not overrides:
        cfg = config_from_json(_run_record(pipeline.name, resume, home)["config"],
                               pipeline.config_type)  # the run's own config
    elif resume and config is None:  # --set fixes applied to the run's own config
        cfg = load_config(None, overrides or [], pipeline=pipeline.name,
                          config_type=pipeline.config_type,
                          base=_run_record(pipeline.name, resume, home)["config"])
    else:
        cfg = load_config(
            config, overrides or [], pipeline=pipeline.name, config_type=pipeline.config_type
        )
    chosen = get_runner(runner)
    if not resume:  # a resumed run's recorded config sets everything; its first try warned
        warn_ignored(runner, chosen, pipeline, cfg)
    local = runner == "local"
    console = err if local else terminal_console()
    run = chosen.run(
        pipeline,
        cfg,
        home=home,
        run_id=resume,
        resume=resume is not None,
        use_cache=False if no_cache else None,
        on_step=on_step if local else step_printer(console),
        quiet=not local,  # orchestrator chatter goes to a log file, printed below
        on_progress=None if local else progress_printer(console),  # tasks' progress lines
    )
    print_run(run, as_json)
    if resume and not as_json:
        _say_what_resumed(run)
    if run.extra.get("log") and not as_json:
        err.print("orchestrator log:", highlight=False)
        err.print(str(run.extra["log"]), markup=False, highlight=False, soft_wrap=True)
    return run


def warn_ignored(name: str, runner: Any, pipeline: Any, cfg: Any) -> None:
    """Before a run: each setting the config sets that this runner ignores, by name."""
    from mlpipe.core.execution.honours import ignored_settings

    for setting, why in ignored_settings(type(runner).honours, pipeline, cfg):
        err.print(f"[yellow]warning: {name} ignores {setting}: {why}[/]", highlight=False,
                  soft_wrap=True)


def _say_what_resumed(run: Any) -> None:
    """After ``--resume``: which steps were reused and which reran, and why."""
    from mlpipe.core.explain import explain

    try:
        report = explain(Path(run.run_dir).parent.parent.parent, run.run_id)
    except (MlpipeError, OSError, ValueError):
        return
    for record in report:
        verb = "reused" if record["status"] == "hit" else "reran"
        why = f": {record['reason']}" if record.get("reason") and verb == "reran" else ""
        err.print(f"resume: {verb} {record['step']}{why}", highlight=False, markup=False)


def _run_record(pipeline: str, run_id: str, home: Path | None) -> dict[str, Any]:
    from mlpipe.core.errors import ConfigError
    from mlpipe.core.execution.runner import read_run
    from mlpipe.core.paths import resolve_home, run_dir

    path = run_dir(resolve_home(home), pipeline, run_id) / "run.json"
    if not path.is_file():
        raise ConfigError(f"--resume: no run {run_id} of {pipeline} (see mlpipe runs list)")
    return read_run(path)


ResumeOpt = Annotated[
    str | None,
    typer.Option("--resume", help="Continue this run: reuse its finished steps, rerun the rest"),
]


def _pipeline_command(pipeline: str, name: str) -> Callable[..., None]:
    """``mlpipe train`` / ``mlpipe infer``: ``mlpipe run`` of one built-in pipeline."""

    def command(
        config: ConfigOpt = None,
        set_: SetOpt = None,
        home: HomeOpt = None,
        runner: RunnerOpt = "local",
        no_cache: NoCacheOpt = False,
        json_: JsonOpt = False,
    ) -> None:
        run_command(pipeline, runner, config, set_, home, no_cache, json_)

    command.__name__ = name
    command.__doc__ = f"Run the {pipeline} pipeline (default: locally, in this process)."
    return command


train = _pipeline_command("training", "train")
infer = _pipeline_command("inference", "infer")


def run(
    pipeline: Annotated[
        str,
        typer.Argument(
            help=f"A registered pipeline ({', '.join(plugin_names('pipeline'))}) "
            "or your own as module:ATTRIBUTE"
        ),
    ],
    runner: RunnerOpt = "local",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    home: HomeOpt = None,
    no_cache: NoCacheOpt = False,
    json_: JsonOpt = False,
    resume: ResumeOpt = None,
) -> None:
    """Run a pipeline through a runner: local, airflow, kubeflow (kfp.local), dagster..."""
    run_command(pipeline, runner, config, set_, home, no_cache, json_, resume)


def _step_run_id(raw: str) -> str:
    """An orchestrator's run id (Airflow's ``manual__2026-...``) as a directory name; one with
    nothing usable in it (``..``, ``/``) is refused rather than replaced by a fresh id."""
    from mlpipe.core import names
    from mlpipe.core.errors import ConfigError

    cleaned = names.sanitize_run_id(raw, fallback="")
    if not cleaned:
        raise ConfigError(
            f"--run-id {raw!r}: not a usable run id; use letters, digits, '_', '.', '-'"
        )
    return cleaned


def step(
    name: Annotated[str, typer.Argument(help="Step name, e.g. train_model")],
    pipeline: Annotated[
        str, typer.Option(help="Pipeline the step belongs to: a name or module:ATTRIBUTE")
    ],
    run_id: Annotated[str, typer.Option(help="Run id shared by all steps of one run")],
    config: ConfigOpt = None,
    config_json: Annotated[
        str | None, typer.Option(help="The whole config as JSON (instead of --config)")
    ] = None,
    set_: SetOpt = None,
    home: HomeOpt = None,
    no_cache: NoCacheOpt = False,
    shard: Annotated[
        int | None,
        typer.Option(help="A map step: run only this shard (0-based), e.g. in its own pod"),
    ] = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="A map step: print the shards it runs over, as JSON")
    ] = False,
    plan_out: Annotated[
        Path | None, typer.Option(help="With --plan: also write that JSON list to this file")
    ] = None,
    gather: Annotated[
        bool, typer.Option("--gather", help="A map step: gather its shards once all have run")
    ] = False,
) -> None:
    """Run one task of a run (a step, a fused group ``a__b``, a map step's part); its inputs
    are read from the same run's earlier steps. For pods and tasks.

    A map step can run as one pod per shard: ``--plan`` lists the shards, ``--shard I`` runs one,
    ``--gather`` records the step from them; without them it runs all shards, then gathers.
    """
    from mlpipe.core.config import config_from_json, load_config
    from mlpipe.core.errors import ConfigError
    from mlpipe.core.execution.execute import execute
    from mlpipe.core.execution.plan import SHARD_LIST_SUFFIX, SHARD_SUFFIX
    from mlpipe.core.execution.plan import plan as plan_of
    from mlpipe.core.execution.step import shard_threads
    from mlpipe.core.paths import resolve_home

    chosen = [o for o, on in (("--shard", shard is not None), ("--plan", plan),
                              ("--gather", gather)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)}: choose one")
    if plan_out is not None and not plan:
        raise ConfigError("--plan-out: only with --plan")
    if shard is not None and shard < 0:
        raise ConfigError(f"--shard: {shard} is not a shard number (0, 1, ...)")
    pipe = pipeline_from_cli(pipeline)
    cfg = (
        config_from_json(config_json, pipe.config_type)
        if config_json
        else load_config(config, set_ or [], pipeline=pipe.name, config_type=pipe.config_type)
    )
    where, rid = resolve_home(home), _step_run_id(run_id)
    tasks = plan_of(pipe, cfg)
    task = tasks.task_of(name)
    if chosen:
        if task.kind not in ("shard_list", "shard", "gather"):
            raise ConfigError(f"{chosen[0]}: step '{name}' of pipeline {pipe.name} is not a "
                              "map step (only steps with map_over run as shards)")
        suffix = {"--plan": SHARD_LIST_SUFFIX, "--shard": SHARD_SUFFIX, "--gather": ""}
        task = tasks.task(task.step + suffix[chosen[0]])
    jobs = [task]
    if task.kind == "gather" and not chosen and name == task.step:
        jobs = tasks.select([task.step + SHARD_LIST_SUFFIX, task.step + SHARD_SUFFIX,
                             task.step])  # the whole map step here, as before
    use_cache = False if no_cache else None
    result = None
    for each in jobs:
        job = each.job(rid, home=str(where), runner="step", use_cache=use_cache, sync=True,
                       shard=(shard or 0) if each.kind == "shard" else None)
        if each.kind == "shard" and shard is None:
            from mlpipe.core.execution.local import run_shards

            run_shards(pipe, each, job, result.shards if result else ())
            continue
        # a shard alone in its pod uses all the pod's cores, not a share of them
        with shard_threads(1) if each.kind == "shard" else contextlib.nullcontext():
            result = execute(job, pipeline=pipe, config=cfg)
    assert result is not None
    if result.kind == "shard_list":
        listed = json.dumps(list(result.shards))
        if plan_out is not None:
            plan_out.parent.mkdir(parents=True, exist_ok=True)
            plan_out.write_text(listed)
        sys.stdout.write(listed + "\n")
        return
    runs = {k: v.to_json() for k, v in result.runs.items()}
    sys.stdout.write(json.dumps(next(iter(runs.values())) if len(runs) == 1 else runs) + "\n")


def demo(home: HomeOpt = None, no_cache: NoCacheOpt = False) -> None:
    """The main job on embedded defaults: train MiniLM on the built-in data, publish, predict."""
    from mlpipe.core import INFERENCE, TRAINING, InferenceConfig, TrainingConfig
    from mlpipe.core.execution import get_runner
    from mlpipe.core.paths import resolve_home

    root = resolve_home(home)
    started = time.perf_counter()
    err.print(f"[bold]mlpipe demo[/] · home {root}", highlight=False)
    use_cache = False if no_cache else None
    local = get_runner("local")
    training = local.run(TRAINING, TrainingConfig(), home=root, use_cache=use_cache,
                         on_step=on_step)
    version: Any = training.final
    inference_config = InferenceConfig.model_validate({"inference": {"model": version.spec}})
    inference = local.run(INFERENCE, inference_config, home=root, use_cache=use_cache,
                          on_step=on_step)
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


def predict(
    model: Annotated[str, typer.Argument(help="Registry version: name:alias or name:vN")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify")] = None,
    input_: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Predict every row of this csv/jsonl/parquet file"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the rows and predictions here "
                     "(csv/jsonl/parquet by extension; written atomically)"),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option("--text-column", help="The input's text column (default: the one the "
                     "model was trained on, else 'text')"),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per batch")] = 32,
    backend: Annotated[
        str,
        typer.Option("--backend", help="torch, or onnx (the version's exported model.onnx on "
                     "onnxruntime; trained with artifacts.onnx: true)"),
    ] = "torch",
    config: ConfigOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Predict texts, or a whole file, with a registry version (its own task decides what
    comes out: label and score, or SQL)."""
    from mlpipe.core.config import load_config
    from mlpipe.core.errors import ConfigError
    from mlpipe.core.predict import load_model

    if (input_ is None) != (output is None):
        raise ConfigError("--input and --output go together: mlpipe predict M "
                          "--input rows.csv --output predictions.csv")
    if input_ is not None and texts:
        raise ConfigError("give texts or --input FILE, not both")
    if input_ is None and not texts:
        raise ConfigError("give at least one text, e.g. mlpipe predict sentiment:latest "
                          "'good', or --input FILE --output FILE")
    registry = load_config(config).registry if config else None
    loaded = load_model(model, home=home, registry=registry, backend=backend)
    if input_ is not None and output is not None:
        rows = loaded.predict_file(input_, output, text_column=text_column,
                                   batch_size=batch_size)
        if json_:
            out.print_json(json.dumps({"model": loaded.version.spec, "rows": rows,
                                       "output": str(output.resolve())}))
        else:
            err.print(f"{rows} rows predicted with {loaded.version.spec}; written to:",
                      highlight=False, markup=False)
            out.print(str(output.resolve()), markup=False, highlight=False, soft_wrap=True)
        return
    assert texts is not None
    predictions = loaded.predict(texts, batch_size=batch_size)
    if json_:
        out.print_json(json.dumps([{"text": t, **p} for t, p in zip(texts, predictions,
                                                                   strict=True)]))
        return
    table = Table(title=f"{loaded.version.spec} · {loaded.task}")
    table.add_column("text", overflow="fold")
    table.add_column("prediction", overflow="fold")
    for text, prediction in zip(texts, predictions, strict=True):
        shown = prediction.get("label") or prediction.get("sql") or prediction
        score = f" ({prediction['score']:.3f})" if "score" in prediction else ""
        table.add_row(Text(safe(text)), Text(safe(f"{shown}{score}")))  # text, not markup
    out.print(table)
