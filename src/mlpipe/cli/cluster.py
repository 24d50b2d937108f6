"""``mlpipe compile`` and ``mlpipe render``: what an orchestrator would deploy, written to files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlpipe.cli.common import ConfigOpt, SetOpt, out, plugin_names

PipelineOpt = Annotated[
    str, typer.Option(help="Pipeline: a registered name or module:ATTRIBUTE")
]


def compile_(
    runner: Annotated[str, typer.Argument(help="Orchestrator, e.g. kubeflow")],
    pipeline: PipelineOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Compile a pipeline for an orchestrator (kubeflow: kfp v2 YAML any KFP backend loads)."""
    from mlpipe.cli.run import pipeline_from_cli
    from mlpipe.core.config import load_config
    from mlpipe.core.execution import get_runner

    pipe = pipeline_from_cli(pipeline)
    cfg = load_config(config, set_ or [], pipeline=pipe.name, config_type=pipe.config_type)
    path = get_runner(runner).compile(pipe, cfg, output)
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)


def render(
    orchestrator: Annotated[
        str,
        typer.Argument(
            help="Who would submit the pods: "
            + ", ".join(n for n in plugin_names("runner") if n != "local")
        ),
    ],
    pipeline: PipelineOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write into")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write what cluster mode would submit (pod specs, kfp YAML, Dagster pod specs) for review.

    The config's ``cluster`` section decides image, resources, volumes and secrets; the files
    hold Secret references only, never a secret's value. Nothing is submitted.
    """
    from mlpipe.cli.run import pipeline_from_cli
    from mlpipe.core.config import load_config
    from mlpipe.core.execution import get_runner

    pipe = pipeline_from_cli(pipeline)
    cfg = load_config(config, set_ or [], pipeline=pipe.name, config_type=pipe.config_type)
    cfg = cfg.model_copy(
        update={"runtime": cfg.runtime.model_copy(update={"mode": "kubernetes"})}
    )
    paths = get_runner(orchestrator).render_cluster(pipe, cfg, output)
    for path in paths:
        out.print(f"wrote {path}", highlight=False, soft_wrap=True)
