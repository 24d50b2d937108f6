"""Any mlpipe pipeline as Dagster software-defined assets, generated from ``Pipeline.steps``.

One asset per step output (``Step.asset``); each asset body is one ``execute_step`` call and its
value is the step's reference as a JSON dict, never the artifact. The step's declared quality
checks (``Pipeline.checks_for``) become Dagster asset checks on the asset they describe, so a failed
blocking check stops downstream assets the Dagster way (blocking checks), not by an exception.
"""

import inspect
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mlpipe.core.config import PipelineSettings
from mlpipe.core.errors import ConfigError, StepFailedError
from mlpipe.core.execution import execute_gather, execute_step
from mlpipe.core.execution.group import execute_group, group_inputs, group_name
from mlpipe.core.paths import resolve_home, safe_run_id
from mlpipe.core.pipeline import Pipeline, Step
from mlpipe.core.progress import forward_to
from mlpipe.core.refs import CheckResult, Ref, ref_from_json

RESOURCE_KEY = "mlpipe"
SHARD_IO_KEY = "mlpipe_shard_io"  # what a map step's ops pass each other (shard jobs, results)
RUN_ID_TAG = "mlpipe/run_id"  # set it on a run to choose the mlpipe run id; else Dagster's run id
BUILT_IN = ("training", "inference")  # what the shipped code location serves unasked


def dagster_name(name: str) -> str:
    """A pipeline, step or asset name as a valid Dagster name (``my-pipe`` -> ``my_pipe``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def job_name(pipeline: str) -> str:
    return f"mlpipe_{dagster_name(pipeline)}"


def config_env(pipeline: str) -> str:
    """The env var naming a pipeline's config file for the shipped code location."""
    return f"MLPIPE_{dagster_name(pipeline).upper()}_CONFIG"


class MlpipeResource(dg.ConfigurableResource):
    """The validated configs (as JSON) and pipeline refs, by pipeline name, and the mlpipe home.

    ``configs[name]`` is ``config.model_dump_json()``; a run can replace it through the run config
    (``resources.mlpipe.config.configs``) and core validates it again. ``refs[name]`` is what
    another process imports the pipeline by (``training`` or ``module:ATTR``).
    """

    home: str = ""
    configs: dict[str, str] = Field(default_factory=dict)
    refs: dict[str, str] = Field(default_factory=dict)
    use_cache: bool | None = None

    def config_json(self, pipeline: str) -> str:
        text = self.configs.get(pipeline, "")
        if not text:
            raise ConfigError(f"resource '{RESOURCE_KEY}': no config given for '{pipeline}'")
        return text

    def home_path(self) -> Path:
        return resolve_home(self.home or None)


class RefIOManager(dg.ConfigurableIOManager):
    """Stores each asset's value (a reference dict) as JSON under ``<home>/dagster/refs``.

    Small, readable and safe across processes (atomic replace), so the multiprocess executor and
    ``dagster dev`` runs pass references between steps exactly like the in-process runner. Each
    value is kept per run (``runs/<run_id>/``) and as the asset's latest: a step reads its own
    run's upstream first, so two runs of one job at once never read each other's references;
    the latest serves runs that materialize only downstream assets.
    """

    home: str = ""

    def _path(self, key: dg.AssetKey, run_id: str | None = None) -> Path:
        root = resolve_home(self.home or None) / "dagster" / "refs"
        scope = root / "runs" / run_id if run_id else root / "latest"
        return scope / ("/".join(key.path) + ".json")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        text = json.dumps(obj, indent=2, sort_keys=True)
        for path in (self._path(context.asset_key, context.run_id), self._path(context.asset_key)):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        run_id = upstream.run_id if upstream is not None else None
        candidates = [self._path(context.asset_key, run_id)] if run_id else []
        for path in [*candidates, self._path(context.asset_key)]:
            if path.is_file():
                return json.loads(path.read_text())
        raise ConfigError(f"asset {context.asset_key.to_user_string()} has no stored "
                          f"reference under {self._path(context.asset_key).parent}: "
                          "materialize it first")


def mlpipe_run_id(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> str:
    """The run id the steps write under: the ``mlpipe/run_id`` tag, else Dagster's run id."""
    run = context.run
    return safe_run_id(run.tags.get(RUN_ID_TAG) or run.run_id)


def ref_metadata(ref: Ref) -> dict[str, Any]:
    """Materialization metadata from any reference: rows, metrics, versions, hashes, location."""
    meta: dict[str, Any] = {"uri": dg.MetadataValue.path(ref.uri), "sha256": ref.sha256}
    for name, value in ref.model_dump(mode="json", exclude={"uri", "sha256", "checks"}).items():
        if isinstance(value, bool | str | int | float):
            meta[name] = value
        elif isinstance(value, dict) and value and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
        ):
            meta.update({f"{name}/{k}": v for k, v in value.items()})
        elif value:
            meta[name] = dg.MetadataValue.json(value)
    rows = getattr(ref, "rows", None)
    if isinstance(rows, dict):
        meta["dagster/row_count"] = sum(rows.values())
    elif isinstance(rows, int):
        meta["dagster/row_count"] = rows
    spec = getattr(ref, "spec", None)
    if isinstance(spec, str):
        meta["model_version"] = spec
    return meta


def check_result(asset: str, check: CheckResult) -> dg.AssetCheckResult:
    """A core CheckResult as a Dagster one: ERROR severity only where core says it blocks."""
    meta: dict[str, Any] = {"blocking": check.blocking}
    if check.value is not None:
        meta["value"] = check.value
    if check.threshold is not None:
        meta["threshold"] = check.threshold
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(asset), check_name=check.name, passed=check.passed,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        description=check.message or None, metadata=meta,
    )


def retry_policy(config: PipelineSettings) -> dg.RetryPolicy | None:
    runtime = config.runtime
    if not runtime.retries:
        return None
    return dg.RetryPolicy(max_retries=runtime.retries, delay=runtime.retry_delay_s)


def step_asset(
    pipeline: Pipeline, step: Step, config: PipelineSettings
) -> dg.AssetsDefinition:
    """One asset for one step: inputs are the upstream assets' references, output its own."""
    asset = dagster_name(step.asset)
    ins = {arg: dg.AssetIn(key=dagster_name(pipeline.step(source).asset))
           for arg, source in step.inputs.items()}
    declared = pipeline.checks_for(step.name, config)
    # Every spec is blocking: whether a failure gates is then decided per result by its severity,
    # which mirrors core (label_balance blocks only when a class is missing entirely).
    specs = [dg.AssetCheckSpec(name, asset=asset, blocking=True,
                               description=f"mlpipe quality check '{name}' from step {step.name}")
             for name in declared]

    @dg.asset(
        name=asset, group_name=dagster_name(pipeline.name), description=step.description,
        ins=ins, check_specs=specs, required_resource_keys={RESOURCE_KEY},
        retry_policy=retry_policy(config), kinds={"python"},
        tags={"mlpipe/pipeline": dagster_name(pipeline.name)},
        metadata={"mlpipe/step": step.name}, op_tags={"mlpipe/step": step.name},
    )
    def _asset(context: dg.AssetExecutionContext, **inputs: Any) -> Iterator[Any]:
        res: MlpipeResource = getattr(context.resources, RESOURCE_KEY)
        run_id = mlpipe_run_id(context)
        try:
            with forward_to(context.log.info):  # progress lines into Dagster's event log
                result = execute_step(
                    res.refs.get(pipeline.name) or pipeline, step.name,
                    res.config_json(pipeline.name), inputs, home=res.home_path(), run_id=run_id,
                    use_cache=res.use_cache, enforce_checks=False,  # the asset checks gate instead
                    tags={"runner": "dagster", "orchestrator_run_id": context.run.run_id,
                          "dagster_job": context.job_name},
                )
        except StepFailedError as exc:  # error.json says what; Dagster only needs to stop
            raise dg.Failure(description=str(exc), allow_retries=exc.exit_code != 2) from exc
        ref = ref_from_json(result["ref"])
        meta = ref_metadata(ref)
        meta.update({"mlpipe/run_id": run_id, "mlpipe/seconds": result["seconds"],
                     "mlpipe/cached": result["cached"]})
        context.log.info(f"{step.name}: {result['seconds']:.2f}s"
                         f"{' (cached)' if result['cached'] else ''} -> {ref.uri}")
        yield dg.Output(result["ref"], metadata=meta)
        for check in ref.checks:
            if check.name in declared:
                yield check_result(asset, check)
        undeclared = [c for c in ref.checks if c.name not in declared]
        for check in undeclared:
            context.log.warning(f"check {check.name} (not declared to Dagster): "
                                f"passed={check.passed} blocking={check.blocking} {check.message}")
        failed = [c for c in undeclared if c.blocking and not c.passed]
        if failed:  # result.json records it too: the runner reports it as a QualityGateError
            raise dg.Failure(description="; ".join(f"check {c.name} failed: {c.message}"
                                                   for c in failed), allow_retries=False)

    return _asset


def group_asset(
    pipeline: Pipeline, group: tuple[str, ...], config: PipelineSettings
) -> dg.AssetsDefinition:
    """A fused group (``runtime.fuse``) as one op materializing each step's own asset, with its
    checks and metadata: every step stays an asset by name, in one Dagster step."""
    steps = [pipeline.step(name) for name in group]
    upstream = group_inputs(pipeline, group)
    ins = {dagster_name(pipeline.step(src).asset): dg.AssetIn(
        key=dagster_name(pipeline.step(src).asset)) for src in upstream}
    outs = {dagster_name(step.asset): dg.AssetOut(
        description=step.description, metadata={"mlpipe/step": step.name},
        tags={"mlpipe/pipeline": dagster_name(pipeline.name)}, kinds={"python"},
    ) for step in steps}
    declared = {step.name: pipeline.checks_for(step.name, config) for step in steps}
    specs = [dg.AssetCheckSpec(name, asset=dagster_name(step.asset), blocking=True,
                               description=f"mlpipe quality check '{name}' from step {step.name}")
             for step in steps for name in declared[step.name]]
    task = group_name(group)

    @dg.multi_asset(
        name=dagster_name(task), outs=outs, ins=ins, check_specs=specs,
        group_name=dagster_name(pipeline.name), required_resource_keys={RESOURCE_KEY},
        retry_policy=retry_policy(config), op_tags={"mlpipe/steps": ",".join(group)},
        description=f"mlpipe steps run as one task: {', '.join(group)}",
    )
    def _group(context: dg.AssetExecutionContext, **inputs: Any) -> Iterator[Any]:
        res: MlpipeResource = getattr(context.resources, RESOURCE_KEY)
        run_id = mlpipe_run_id(context)
        try:
            results = execute_group(
                res.refs.get(pipeline.name) or pipeline, group, res.config_json(pipeline.name),
                {src: inputs[dagster_name(pipeline.step(src).asset)] for src in upstream},
                home=res.home_path(), run_id=run_id, use_cache=res.use_cache,
                enforce_checks=False,
                tags={"runner": "dagster", "orchestrator_run_id": context.run.run_id,
                      "dagster_job": context.job_name},
            )
        except StepFailedError as exc:
            raise dg.Failure(description=str(exc), allow_retries=exc.exit_code != 2) from exc
        for step in steps:
            result = results[step.name]
            ref = ref_from_json(result["ref"])
            meta = ref_metadata(ref)
            meta.update({"mlpipe/run_id": run_id, "mlpipe/seconds": result["seconds"],
                         "mlpipe/cached": result["cached"], "mlpipe/step": step.name,
                         "mlpipe/fused_task": task})
            context.log.info(f"{step.name} (fused in {task}): {result['seconds']:.2f}s -> "
                             f"{ref.uri}")
            yield dg.Output(result["ref"], output_name=dagster_name(step.asset), metadata=meta)
            for check in ref.checks:
                if check.name in declared[step.name]:
                    yield check_result(dagster_name(step.asset), check)

    return _group


def asset_to_step(pipeline: Pipeline) -> Mapping[str, str]:
    return {dagster_name(step.asset): step.name for step in pipeline.steps}


def mapped_step_asset(
    pipeline: Pipeline, step: Step, config: PipelineSettings
) -> dg.AssetsDefinition:
    """A map step as a graph-backed asset with Dagster dynamic outputs: ``<step>__shards``
    yields one ``DynamicOutput`` per shard the upstream made (known only at run time),
    ``<step>__shard`` is mapped over them (each its own op, retried on its own) and ``<step>``
    collects them and gathers the shards in order into the asset's value."""
    name = dagster_name(step.name)
    ins = {arg: dg.AssetIn(key=dagster_name(pipeline.step(source).asset))
           for arg, source in step.inputs.items()}
    tags = {"mlpipe/step": step.name}

    @dg.op(name=f"{name}__shards", ins={arg: dg.In() for arg in step.inputs},
           out=dg.DynamicOut(io_manager_key=SHARD_IO_KEY), tags=tags)
    def list_shards(**inputs: Any) -> Iterator[dg.DynamicOutput[dict[str, Any]]]:
        shards = ref_from_json(inputs[step.mapped_inputs[0]])
        for shard in range(len(getattr(shards, "shards", ()))):
            yield dg.DynamicOutput({"shard": shard, "inputs": inputs},
                                   mapping_key=f"shard_{shard:04d}")

    @dg.op(name=f"{name}__shard", out=dg.Out(io_manager_key=SHARD_IO_KEY),
           required_resource_keys={RESOURCE_KEY}, retry_policy=retry_policy(config), tags=tags)
    def run_shard(context: dg.OpExecutionContext, job: dict[str, Any]) -> dict[str, Any]:
        res: MlpipeResource = getattr(context.resources, RESOURCE_KEY)
        try:
            return execute_step(
                res.refs.get(pipeline.name) or pipeline, step.name,
                res.config_json(pipeline.name), job["inputs"], home=res.home_path(),
                run_id=mlpipe_run_id(context), use_cache=res.use_cache,
                tags={"runner": "dagster", "orchestrator_run_id": context.run.run_id,
                      "dagster_job": context.job_name}, shard=int(job["shard"]),
            )
        except StepFailedError as exc:
            raise dg.Failure(description=str(exc), allow_retries=exc.exit_code != 2) from exc

    @dg.op(name=name, required_resource_keys={RESOURCE_KEY}, tags=tags)
    def gather(context: dg.OpExecutionContext, results: list[dict[str, Any]]) -> Iterator[Any]:
        res: MlpipeResource = getattr(context.resources, RESOURCE_KEY)
        run_id = mlpipe_run_id(context)
        try:
            result = execute_gather(res.refs.get(pipeline.name) or pipeline, step.name,
                                    home=res.home_path(), run_id=run_id, count=len(results))
        except StepFailedError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        meta = ref_metadata(ref_from_json(result["ref"]))
        meta.update({"mlpipe/run_id": run_id, "mlpipe/seconds": result["seconds"],
                     "mlpipe/cached": result["cached"], "mlpipe/shards": len(results)})
        yield dg.Output(result["ref"], metadata=meta)

    def compose(**inputs: Any) -> Any:
        return gather(list_shards(**inputs).map(run_shard).collect())

    compose.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for arg in step.inputs])
    return dg.graph_asset(
        name=dagster_name(step.asset), group_name=dagster_name(pipeline.name),
        description=step.description, ins=ins, kinds={"python"},
        tags={"mlpipe/pipeline": dagster_name(pipeline.name)},
        metadata={"mlpipe/step": step.name},
    )(compose)
