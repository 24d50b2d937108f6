"""A user pipeline with every task kind of a plan: a fused group, two map steps in a row (the
second maps over the first's gathered shards) and a plain step after them.

``numbers`` -> ``split`` (fused with it: ``numbers__split``) -> ``square`` (map) -> ``add_one``
(map over ``square``) -> ``total``. ``parts: 0`` makes ``split`` return no shards and
``parts: -1`` a plain reference instead of shards: both must exit 2 naming ``square``.
Importable by task processes (``tests.support.plan_pipelines:PLAN_PIPELINE``) from the repo root.

``HONOURS_PIPELINE`` checks what a runner does with settings it may not honour: a map step whose
two shards sleep (side by side or not) and record the limits their process got, then a step that
fails its first try.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from mlpipe.core.config import PipelineSettings
from mlpipe.core.hashing import sha256_file
from mlpipe.core.pipeline import Pipeline, Step, StepContext
from mlpipe.core.refs import Ref, ShardsRef

FUSED = [["numbers", "split"]]


class PlanConfig(PipelineSettings):
    pipeline: Literal["plan_test"] = "plan_test"
    n: int = 7
    parts: int = 3


class ValuesRef(Ref):
    kind: Literal["plan_test_values"] = "plan_test_values"
    count: int


def _values(ctx: StepContext, values: list[int], name: str = "values.json") -> ValuesRef:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / name
    path.write_text(json.dumps(values))
    return ValuesRef(uri=str(path), sha256=sha256_file(path), count=len(values))


def _read(ref: Ref) -> list[int]:
    data: list[int] = json.loads(Path(ref.uri).read_text())
    return data


def _all(ref: Ref) -> list[int]:
    return [v for r in ref.refs for v in _read(r)] if isinstance(ref, ShardsRef) else _read(ref)


def numbers(config: PlanConfig, ctx: StepContext) -> ValuesRef:
    return _values(ctx, list(range(config.n)))


def split(config: PlanConfig, ctx: StepContext, values: ValuesRef) -> Ref:
    rows = _read(values)
    if config.parts < 0:
        return _values(ctx, rows)  # not shards: the map step after it must refuse it
    parts = [rows[i::config.parts] for i in range(config.parts)]
    return ShardsRef.of([_values(ctx, p, f"part-{i}.json") for i, p in enumerate(parts)],
                        uri=str(ctx.out_dir))


def square(config: PlanConfig, ctx: StepContext, part: ValuesRef) -> ValuesRef:
    return _values(ctx, [v * v for v in _read(part)])


def add_one(config: PlanConfig, ctx: StepContext, part: ValuesRef, offset: ValuesRef) -> ValuesRef:
    return _values(ctx, [v + 1 + offset.count for v in _read(part)])


def total(config: PlanConfig, ctx: StepContext, values: Any) -> ValuesRef:
    return _values(ctx, [sum(_all(values))])


PLAN_PIPELINE = Pipeline("plan_test", PlanConfig, steps=(
    Step("numbers", numbers, "plan_numbers", "0..n-1"),
    Step("split", split, "plan_parts", "the numbers in parts", inputs={"values": "numbers"}),
    Step("square", square, "plan_squares", "each part squared", inputs={"part": "split"},
         map_over="split"),
    Step("add_one", add_one, "plan_plus", "each squared part plus one (and the count)",
         inputs={"part": "square", "offset": "numbers"}, map_over="square"),
    Step("total", total, "plan_total", "their sum", inputs={"values": "add_one"}),
))


class HonoursConfig(PipelineSettings):
    """``tries_file``: where ``flaky`` counts its tries (its first fails); ``nap_s``: each
    shard's sleep, long enough for side-by-side shards to overlap."""

    pipeline: Literal["honours_test"] = "honours_test"
    tries_file: str = ""
    nap_s: float = 1.0


def two_parts(config: HonoursConfig, ctx: StepContext) -> ShardsRef:
    return ShardsRef.of([_values(ctx, [i], f"part-{i}.json") for i in range(2)],
                        uri=str(ctx.out_dir))


def nap(config: HonoursConfig, ctx: StepContext, part: ValuesRef) -> Ref:
    """Sleeps, then records what limits reached its process (memory, CPUs)."""
    import time

    time.sleep(config.nap_s)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / "limits.json"
    path.write_text(json.dumps(process_limits()))
    return ValuesRef(uri=str(path), sha256=sha256_file(path), count=1)


def process_limits() -> dict[str, Any]:
    """This process's memory limits and usable CPUs: a runner that applied
    ``cluster.resources`` to a local task would change one of them."""
    import os
    import resource

    return {"as": list(resource.getrlimit(resource.RLIMIT_AS)),
            "data": list(resource.getrlimit(resource.RLIMIT_DATA)),
            "cpus": len(os.sched_getaffinity(0))}


def flaky(config: HonoursConfig, ctx: StepContext, naps: Ref) -> ValuesRef:
    """Fails its first try (an ordinary error, not bad input: a retry may run it again)."""
    tries = Path(config.tries_file)
    with tries.open("a") as f:
        f.write("try\n")
    if len(tries.read_text().splitlines()) == 1:
        raise RuntimeError("flaky: the first try fails")
    return _values(ctx, [len(naps.refs) if isinstance(naps, ShardsRef) else 1])


HONOURS_PIPELINE = Pipeline("honours_test", HonoursConfig, steps=(
    Step("two_parts", two_parts, "honours_parts", "two parts"),
    Step("nap", nap, "honours_nap", "each part sleeps and records its limits",
         inputs={"part": "two_parts"}, map_over="two_parts"),
    Step("flaky", flaky, "honours_flaky", "fails its first try", inputs={"naps": "nap"}),
))
