"""Each orchestrator's own floor: a no-op pipeline of the same shape, written natively.

Same task names, same dependencies, the same fan-out (a map step is a shard lister, one task per
shard the run produced and a gather, as mlpipe's adapters run it), task bodies that do nothing,
run the way mlpipe's runner runs
its pipeline (Airflow: ``dag.test()`` in a fresh process on a migrated sqlite DB; kfp.local: the
SubprocessRunner; Dagster: ``execute_in_process`` on an ephemeral instance), and timed over the
same span as the runner's own figure. What mlpipe's run costs above its steps' time and this
floor is mlpipe's adapter overhead. Written in each orchestrator's API directly, on purpose: it
must not share mlpipe's translation, whose cost it measures.

``python -m mlpipe.benchmark_floor airflow SHAPE_JSON`` is the Airflow child (``AIRFLOW_HOME`` set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple


class Node(NamedTuple):
    """One step of a pipeline's shape: its name, the steps it depends on and, for a map step,
    how many shards the run produced (each orchestrator runs a map step as a shard lister, one
    task per shard and a gather task)."""

    name: str
    upstream: list[str]
    shards: int | None = None  # None: a plain step, one task


#: A pipeline's shape: its steps, in order.
Shape = list[Node]


@dataclass(frozen=True)
class Floor:
    """A floor run: its seconds and how many task executions the orchestrator itself recorded."""

    seconds: float
    tasks: int


def shape_of(pipeline: Any, run: Any = None) -> Shape:
    """The shape of an mlpipe ``Pipeline``: its steps, each step's upstream steps and, for a map
    step, its shard count in ``run`` (a finished run: the map step's output lists one reference
    per shard); 1 shard without a run."""
    refs = {s.step: s.ref for s in getattr(run, "steps", ())}
    return [
        Node(step.name, list(step.upstream),
             None if step.map_over is None
             else len(getattr(refs.get(step.name), "shards", None) or (None,)))
        for step in pipeline.steps
    ]


def floor_seconds(runner: str, shape: Shape, name: str, work_dir: Path) -> float:
    """Seconds the orchestrator behind ``runner`` takes to run a no-op pipeline of ``shape``."""
    return run_floor(runner, shape, name, work_dir).seconds


def run_floor(runner: str, shape: Shape, name: str, work_dir: Path) -> Floor:
    """Run the no-op pipeline of ``shape`` on the orchestrator behind ``runner``."""
    shape = [Node(*node) for node in shape]
    work_dir.mkdir(parents=True, exist_ok=True)
    if runner == "airflow":
        return _airflow(shape, name, work_dir / "airflow")
    if runner == "kubeflow":
        return _kubeflow(shape, name, work_dir / "kfp")
    if runner == "dagster":
        return _dagster(shape, name)
    return _local(shape)


def _local(shape: Shape) -> Floor:
    """The local runner's floor: calling a no-op function per step in order, a map step's once
    per shard and once more to gather."""
    calls = 0

    def noop(*_: Any) -> int:
        nonlocal calls
        calls += 1
        return 0

    started = time.perf_counter()
    done: dict[str, int] = {}
    for task, upstream, shards in shape:
        inputs = [done[u] for u in upstream]
        if shards is None:
            done[task] = noop(*inputs)
        else:
            done[task] = noop([noop(shard, *inputs) for shard in range(shards)])
    return Floor(time.perf_counter() - started, calls)


# -- Airflow: a TaskFlow DAG of no-op tasks, dag.test() in a fresh process -----------------------


def _airflow(shape: Shape, name: str, airflow_home: Path) -> Floor:
    """Run the no-op DAG in a child process, as ``AirflowRunner`` runs mlpipe's DAG."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for key in ("AIRFLOW_CONFIG", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "AIRFLOW__CORE__DAGS_FOLDER"):
        env.pop(key, None)
    env.update(AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", __name__, "airflow", json.dumps({"shape": shape, "name": name})],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FLOOR ")), None)
    if proc.returncode != 0 or line is None:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"airflow floor failed (exit {proc.returncode}): {tail}")
    seconds, tasks = line.removeprefix("FLOOR ").split()
    return Floor(float(seconds), int(tasks))


def _airflow_child(shape: Shape, name: str) -> Floor:
    import pendulum
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import DAG, task
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.upgradedb()  # idempotent; mlpipe's runner migrates once per Airflow home, untimed too

    with DAG(dag_id=f"floor_{name}", schedule=None, catchup=False,
             start_date=pendulum.datetime(2025, 1, 1, tz="UTC")) as dag:
        made: dict[str, Any] = {}
        for task_id, upstream, shards in shape:
            if shards is None:

                @task(task_id=task_id)
                def noop() -> None:
                    return None

                first = made[task_id] = noop()
            else:  # as mlpipe maps: <step>__shards lists, <step>__shard expands, <step> gathers

                @task(task_id=f"{task_id}__shards")
                def list_shards(count: int = shards) -> list[int]:
                    return list(range(count))

                @task(task_id=f"{task_id}__shard")
                def noop_shard(shard: int) -> None:
                    return None

                @task(task_id=task_id)
                def gather(shard_results: Any) -> None:
                    return None

                first = list_shards()
                made[task_id] = gather(shard_results=noop_shard.expand(shard=first))
            for up in upstream:
                made[up] >> first
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bag = DagBag(dag_folder=os.devnull)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    started = time.perf_counter()
    run = dag.test()
    seconds = time.perf_counter() - started
    if str(run.state) != "success":
        raise RuntimeError(f"airflow floor DAG ended {run.state}")
    ran = [ti for ti in run.get_task_instances() if str(ti.state) == "success"]
    return Floor(seconds, len(ran))


# -- kfp.local: lightweight no-op components, SubprocessRunner ---------------------------------


def _kubeflow(shape: Shape, name: str, pipeline_root: Path) -> Floor:
    import contextlib
    import typing
    from typing import List  # noqa: UP035 (kfp's component source, as mlpipe's compiler writes)

    from kfp import dsl, local
    from kfp.local import config as local_config

    def component(fn: Any) -> Any:
        # real types, not this module's postponed strings, which kfp would read as artifacts
        fn.__annotations__ = typing.get_type_hints(fn, localns={"List": List})  # noqa: UP006
        return dsl.component(fn, packages_to_install=[], install_kfp_package=False)

    def noop():  # no "-> None": kfp would read it as an output artifact
        return None

    def list_shards(count: int) -> List[int]:  # noqa: UP006 (the component's source: kfp's List)
        return list(range(count))

    def noop_shard(shard: int) -> int:
        return shard

    def gather(shard_results: List[int]):  # noqa: UP006 (as for list_shards and noop)
        return None

    noop_task, lister_task, shard_task, gather_task = (
        component(fn) for fn in (noop, list_shards, noop_shard, gather))

    @dsl.pipeline(name=f"floor-{name}")
    def floor_pipeline():  # (as for noop)
        made: dict[str, Any] = {}
        for task_id, upstream, shards in shape:
            if shards is None:
                first = made[task_id] = noop_task().set_display_name(task_id)
            else:  # as mlpipe maps: a lister, a ParallelFor over its list, a gather after it
                first = lister_task(count=shards).set_display_name(f"{task_id} shards")
                with dsl.ParallelFor(first.output) as shard:
                    one = shard_task(shard=shard).set_display_name(f"{task_id} shard")
                made[task_id] = gather_task(shard_results=dsl.Collected(one.output))
                made[task_id].set_display_name(task_id)
            for up in upstream:
                first.after(made[up])

    pipeline_root.mkdir(parents=True, exist_ok=True)
    previous = local_config.LocalExecutionConfig.instance
    before = set(pipeline_root.iterdir())
    try:
        with contextlib.redirect_stdout(sys.stderr):
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(pipeline_root), raise_on_error=True)
            started = time.perf_counter()
            floor_pipeline()
            seconds = time.perf_counter() - started
    finally:
        local_config.LocalExecutionConfig.instance = previous
    return Floor(seconds, _kfp_tasks(set(pipeline_root.iterdir()) - before))


def _kfp_tasks(runs: set[Path]) -> int:
    """The tasks kfp.local ran: one folder each, with its ``executor_output.json``, in the run's
    folder under the pipeline root (a ParallelFor's in one folder per iteration)."""
    return sum(1 for run in runs for _ in run.rglob("executor_output.json"))


# -- Dagster: no-op assets, execute_in_process on an ephemeral instance -------------------------


def _dagster(shape: Shape, name: str) -> Floor:
    import dagster as dg

    assets = []
    for task_id, upstream, shards in shape:
        if shards is None:

            @dg.asset(name=task_id, deps=[dg.AssetKey(u) for u in upstream],
                      group_name=f"floor_{name}")
            def noop() -> None:
                return None

            assets.append(noop)
        else:
            assets.append(_dagster_mapped(task_id, upstream, shards, name))
    job = dg.define_asset_job(f"floor_{name}", selection=dg.AssetSelection.all())
    defs = dg.Definitions(assets=assets, jobs=[job], executor=dg.in_process_executor)
    resolved = defs.resolve_job_def(f"floor_{name}")
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = resolved.execute_in_process(instance=instance, raise_on_error=True)
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError("dagster floor job failed")
    return Floor(seconds, len(result.get_step_success_events()))


def _dagster_mapped(task_id: str, upstream: list[str], shards: int, name: str) -> Any:
    """A map step as mlpipe's Dagster adapter builds it: a graph-backed asset whose
    ``<step>__shards`` op yields one ``DynamicOutput`` per shard, ``<step>__shard`` mapped over
    them and a gather op collecting them."""
    import inspect

    import dagster as dg

    @dg.op(name=f"{task_id}__shards", ins={u: dg.In(dg.Nothing) for u in upstream},
           out=dg.DynamicOut())
    def list_shards() -> Any:
        for shard in range(shards):
            yield dg.DynamicOutput(shard, mapping_key=f"shard_{shard:04d}")

    @dg.op(name=f"{task_id}__shard")
    def noop_shard(shard: int) -> int:
        return shard

    @dg.op(name=f"{task_id}__gather")  # "<step>" is the asset's graph here
    def gather(shard_results: list[int]) -> None:
        return None

    def compose(**inputs: Any) -> Any:
        return gather(list_shards(**inputs).map(noop_shard).collect())

    compose.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(u, inspect.Parameter.POSITIONAL_OR_KEYWORD) for u in upstream])
    return dg.graph_asset(name=task_id, group_name=f"floor_{name}",
                          ins={u: dg.AssetIn(key=dg.AssetKey(u), dagster_type=dg.Nothing)
                               for u in upstream})(compose)


def main(argv: Sequence[str]) -> None:
    kind, request = argv
    data = json.loads(request)
    if kind != "airflow":
        raise SystemExit(f"unknown floor child {kind!r}")
    floor = _airflow_child([Node(*node) for node in data["shape"]], data["name"])
    print(f"FLOOR {floor.seconds} {floor.tasks}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
