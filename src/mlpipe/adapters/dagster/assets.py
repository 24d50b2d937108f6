"""Core's plan as Dagster assets, in either mode: a step or fused group is one (multi-)asset with
its declared checks as asset checks; a map step a graph-backed asset (shard list op with
``DynamicOut``, shard op mapped over it, gather op after ``.collect()``). What a task does is the
mode's *body*: :func:`run_task` (``execute`` in the run's process) or ``cluster.run_pod``."""

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import dagster as dg
from pydantic import Field

from mlpipe.core.config import config_from_json
from mlpipe.core.errors import ConfigError
from mlpipe.core.execution.body import run_task as run
from mlpipe.core.execution.execute import TaskResult
from mlpipe.core.execution.plan import Plan, TaskSpec
from mlpipe.core.execution.step import StepRun
from mlpipe.core.paths import resolve_home, safe_run_id
from mlpipe.core.pipeline import Pipeline
from mlpipe.core.progress import forward_to
from mlpipe.core.refs import CheckResult, ref_from_json
from mlpipe.core.refstore import RefStore

RESOURCE_KEY = "mlpipe"
PIPES_KEY = "pipes_k8s"  # cluster mode: the dagster-k8s Pipes client the assets launch pods with
RUN_ID_TAG = "mlpipe/run_id"  # set it on a run to choose the mlpipe run id; else Dagster's run id


def dagster_name(name: str) -> str:
    """A pipeline, step or asset name as a valid Dagster name (``my-pipe`` -> ``my_pipe``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def job_name(pipeline: str) -> str:
    return f"mlpipe_{dagster_name(pipeline)}"


class MlpipeResource(dg.ConfigurableResource):
    """Configs by pipeline name (JSON; a run may replace them, core validates again) and the
    mlpipe home."""

    home: str = ""
    configs: dict[str, str] = Field(default_factory=dict)
    use_cache: bool | None = None

    def config_json(self, pipeline: str) -> str:
        text = self.configs.get(pipeline, "")
        if not text:
            raise ConfigError(f"resource '{RESOURCE_KEY}': no config given for '{pipeline}'")
        return text


class RefIOManager(dg.ConfigurableIOManager):
    """Each asset's reference as JSON in core's :class:`~mlpipe.core.refstore.RefStore` under
    ``<home>/dagster/refs`` (per run, and the latest): safe across processes and runs."""

    home: str = ""

    def _store(self) -> RefStore:
        return RefStore(resolve_home(self.home or None) / "dagster" / "refs")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        self._store().put("/".join(context.asset_key.path), context.run_id, obj)

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        return self._store().get("/".join(context.asset_key.path),
                                 upstream.run_id if upstream is not None else None)


def resources(home: Path, configs: dict[str, str], use_cache: bool | None, pods: bool
              ) -> dict[str, Any]:
    """What the assets use: the configs and home, the references' IO manager and, in cluster
    mode, the dagster-k8s Pipes client (in-cluster config in a pod, else ``~/.kube/config``) the
    assets launch pods with."""
    found: dict[str, Any] = {
        RESOURCE_KEY: MlpipeResource(home=str(home), configs=configs, use_cache=use_cache),
        "io_manager": RefIOManager(home=str(home))}
    if pods:
        from dagster_k8s import PipesK8sClient

        found[PIPES_KEY] = PipesK8sClient()
    return found


def mlpipe_run_id(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> str:
    """The run id the steps write under: the ``mlpipe/run_id`` tag, else Dagster's run id."""
    return safe_run_id(context.run.tags.get(RUN_ID_TAG) or context.run.run_id)


def check_result(asset: str, check: CheckResult) -> dg.AssetCheckResult:
    """A core CheckResult as a Dagster one: ERROR severity only where core says it blocks."""
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(asset), check_name=check.name, passed=check.passed,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        description=check.message or None, metadata=check.facts())


def retry_policy(task: TaskSpec) -> dg.RetryPolicy | None:
    return dg.RetryPolicy(max_retries=task.retries, delay=task.retry_delay_s) \
        if task.retries else None


#: What a task body does, per mode: (context, pipeline, task, shard, the op's input values: each
#: upstream asset's ref JSON, by input name) -> the task's result (in process), its shard list
#: (``shard_list``), or None (a pod).
Body = Callable[[Any, Pipeline, TaskSpec, "int | None", dict[str, Any]],
                "TaskResult | list[int] | None"]


@functools.lru_cache(maxsize=8)
def _run_config(dagster_run_id: str, text: str, config_type: type) -> Any:
    """A run's config, validated once for all its ops (as the local runner shares one)."""
    return config_from_json(text, config_type)


def run_task(context: Any, pipeline: Pipeline, task: TaskSpec, shard: int | None,
             values: dict[str, Any]) -> TaskResult | list[int] | None:
    """The in-process body: core's ``run_task`` on the upstream references the asset loaded;
    bad input fails without retries."""
    res: MlpipeResource = getattr(context.resources, RESOURCE_KEY)
    inputs = {src: ref_from_json(values[dagster_name(src)]) for src in task.sources}
    job = task.job(mlpipe_run_id(context), home=res.home or None, runner="dagster",
                   shard=shard, use_cache=res.use_cache, orchestrator_run_id=context.run.run_id,
                   attempt=context.retry_number + 1)
    config = _run_config(context.run.run_id, res.config_json(pipeline.name), pipeline.config_type)
    with forward_to(context.log.info):  # progress lines into Dagster's event log
        return run(task, job, lambda exc, retry: dg.Failure(str(exc), allow_retries=retry),
                   pipeline=pipeline, inputs=inputs, config=config)


def _metadata(context: Any, step: str, run: StepRun | None) -> dict[str, Any]:
    """An asset's materialization metadata: the run id and step, and (in process) the
    reference's own summary, the step's seconds and cache."""
    meta: dict[str, Any] = {"mlpipe/run_id": mlpipe_run_id(context), "mlpipe/step": step}
    if run is None:  # a pod: its outputs stay on the shared volume or store
        return meta
    context.log.info(f"{step}: {run.seconds:.2f}s{' (cached)' if run.cached else ''} -> "
                     f"{run.ref.uri}")
    meta.update(run.ref.summary())  # Dagster shows a mapping or a list as JSON itself
    if "row_count" in meta:
        meta["dagster/row_count"] = meta.pop("row_count")
    return {**meta, "uri": dg.MetadataValue.path(run.ref.uri), "mlpipe/seconds": run.seconds,
            "mlpipe/cached": run.cached}


def _upstream(pipeline: Pipeline, task: TaskSpec, pod: bool) -> dict[str, Any]:
    """Input name -> ``AssetIn`` of each upstream step's asset (a pod only waits for it)."""
    return {dagster_name(src): dg.AssetIn(key=dagster_name(pipeline.step(src).asset),
                                          dagster_type=dg.Nothing if pod else Any)
            for src in task.sources}


def task_asset(pipeline: Pipeline, task: TaskSpec, body: Body, pod: bool) -> Any:
    """A step or fused group: one op materializing each of its steps' assets, with checks."""
    steps = [pipeline.step(name) for name in task.steps]
    kind = "kubernetes" if pod else "python"
    # a pod enforces its blocking checks itself (``mlpipe step`` exits non-zero)
    declared = {s.name: () if pod else pipeline.checks_for(s.name, task.config) for s in steps}
    # Every spec is blocking: whether a failure gates is then decided per result by its severity
    specs = [dg.AssetCheckSpec(name, asset=dagster_name(s.asset), blocking=True,
                               description=f"mlpipe quality check '{name}' from step {s.name}")
             for s in steps for name in declared[s.name]]
    outs = {dagster_name(s.asset): dg.AssetOut(
        description=s.description, metadata={"mlpipe/step": s.name}, kinds={kind}) for s in steps}

    @dg.multi_asset(
        name=dagster_name(steps[0].asset if task.kind == "step" else task.name), outs=outs,
        group_name=dagster_name(pipeline.name), description=task.description, can_subset=False,
        ins=_upstream(pipeline, task, pod), check_specs=specs, retry_policy=retry_policy(task),
        required_resource_keys={PIPES_KEY if pod else RESOURCE_KEY},
        op_tags={"mlpipe/task": task.name})
    def _task(context: dg.AssetExecutionContext, **values: Any) -> Iterator[Any]:
        try:
            result = body(context, pipeline, task, None, values)
        except dg.Failure as exc:  # a blocking check core enforced: Dagster records it too
            step = getattr(exc.__cause__, "step", "")
            for check in getattr(getattr(exc.__cause__, "cause", None), "checks", ()):
                if check.name in declared.get(step, ()):
                    yield check_result(dagster_name(pipeline.step(step).asset), check)
            raise
        for name in task.steps:  # each step's reference (in process) or materialization (pod)
            asset = dagster_name(pipeline.step(name).asset)
            run = result.runs[name] if isinstance(result, TaskResult) else None
            meta = _metadata(context, name, run)
            if run is None:
                yield dg.MaterializeResult(asset_key=asset, metadata=meta)
                continue
            yield dg.Output(run.ref.model_dump(mode="json"), output_name=asset, metadata=meta)
            yield from (check_result(asset, c) for c in run.ref.checks if c.name in declared[name])

    return _task


def map_asset(tasks: Plan, gather: TaskSpec, body: Body, pod: bool) -> Any:
    """A map step (its shard_list, shard and gather tasks) as a graph-backed asset; each op
    takes the step's upstream (a pod only waits for it)."""
    pipeline, shards = tasks.pipeline, tasks.task(gather.upstream[-1])
    listing, resource = tasks.task(shards.upstream[0]), {PIPES_KEY if pod else RESOURCE_KEY}
    step, ins = pipeline.step(gather.step), _upstream(pipeline, gather, pod)
    op_ins = {k: dg.In(dg.Nothing) if pod else dg.In() for k in ins}

    # the ops pass no values, only order (a shard's number is its mapping key); the runner
    # maps each op to its task by its tag
    @dg.op(name=dagster_name(listing.name), ins=op_ins, required_resource_keys=resource,
           out=dg.DynamicOut(dg.Nothing), tags={"mlpipe/task": listing.name})
    def list_shards(context: dg.OpExecutionContext, **values: Any) -> Iterator[Any]:
        listed = cast("list[int]", body(context, pipeline, listing, None, values))
        yield from (dg.DynamicOutput(None, mapping_key=f"shard_{i:04d}") for i in listed)

    @dg.op(name=dagster_name(shards.name), ins={"listed": dg.In(dg.Nothing), **op_ins},
           out=dg.Out(dg.Nothing), required_resource_keys=resource,
           tags={"mlpipe/task": shards.name}, retry_policy=retry_policy(shards))
    def run_shard(context: dg.OpExecutionContext, **values: Any) -> dg.Output[None]:
        shard = int(str(context.get_mapping_key()).removeprefix("shard_"))
        body(context, pipeline, shards, shard, values)
        return dg.Output(None)  # after a Pipes session an op returns typed events only

    @dg.op(name=dagster_name(gather.name), ins={"done": dg.In(dg.Nothing), **op_ins},
           out=dg.Out(dg.Nothing if pod else Any), required_resource_keys=resource,
           tags={"mlpipe/task": gather.name})
    def run_gather(context: dg.OpExecutionContext, **values: Any) -> dg.Output[Any]:
        result = body(context, pipeline, gather, None, values)
        run = result.run if isinstance(result, TaskResult) else None
        ref = None if run is None else run.ref.model_dump(mode="json")
        return dg.Output(ref, metadata=_metadata(context, step.name, run))

    def compose(**values: Any) -> Any:
        done = list_shards(**values).map(lambda i: run_shard(listed=i, **values)).collect()
        return run_gather(done=done, **values)

    return dg.graph_asset(
        name=dagster_name(step.asset), group_name=dagster_name(pipeline.name), ins=ins,
        description=step.description, kinds={"kubernetes" if pod else "python"},
        metadata={"mlpipe/step": step.name},
    )(compose)


def plan_assets(tasks: Plan, body: Body, pod: bool) -> list[Any]:
    """The plan's assets in order: a step or group each; a map step one, made at its gather."""
    return [map_asset(tasks, t, body, pod) if t.kind == "gather"
            else task_asset(tasks.pipeline, t, body, pod)
            for t in tasks if t.kind in ("step", "group", "gather")]
