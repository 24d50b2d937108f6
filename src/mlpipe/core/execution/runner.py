"""The ``Runner`` base: what every runner does the same way, around the one thing that differs.

``Runner.run`` is a template method: preflight (config and credentials, before anything is
written) -> run record (``run.json``, status ``running``) -> ``launch`` (the orchestrator runs the
steps; each step leaves ``result.json`` or ``error.json`` behind, see
:mod:`mlpipe.core.execution.step`) -> collect (those records, read the same way for every runner)
-> record (``run.json`` with the outcome). A runner implements ``launch`` and nothing else; the
local runner, Airflow, Kubeflow and Dagster are plugins (group ``mlpipe.runners``) like any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from mlpipe.core import names, plugins
from mlpipe.core.artifacts import write_json
from mlpipe.core.config import DataConfig, PipelineSettings
from mlpipe.core.errors import ConfigError, MlpipeError, RemoteStepError, StepFailedError
from mlpipe.core.execution.execute import INSIDE_TASK
from mlpipe.core.execution.floor import Floor, FloorTask
from mlpipe.core.execution.honours import Level
from mlpipe.core.execution.plan import Plan, plan
from mlpipe.core.execution.step import StepCallback, StepRun, read_step
from mlpipe.core.faults import fault_point
from mlpipe.core.hashing import sha256_json
from mlpipe.core.liveness import HeldError, hold, identity
from mlpipe.core.paths import new_run_id, resolve_home, run_dir
from mlpipe.core.pipeline import Pipeline, resolve_pipeline
from mlpipe.core.refs import Ref
from mlpipe.core.runs import (
    OUTCOME_FILE,
    OUTCOME_SIZE,
    RUN_FILE,
    run_alive,
    sweep_killed,
)

#: ``on_progress(step, line)``: a plain progress line of a step running in another process
ProgressCallback = Callable[[str, str], None]


class RunnerError(MlpipeError):
    """The orchestrator itself failed (import, database, scheduling), not one of the steps."""


@dataclass
class PipelineRun:
    """A whole run: each step's result, in order, and what the runner knows about it."""

    pipeline: str
    run_id: str
    run_dir: Path
    steps: list[StepRun] = field(default_factory=list)
    seconds: float = 0.0
    runner: str = "local"
    extra: dict[str, Any] = field(default_factory=dict)  # runner-specific facts (its own run id...)

    @property
    def outputs(self) -> dict[str, Ref]:
        return {s.step: s.ref for s in self.steps}

    @property
    def final(self) -> Ref:
        return self.steps[-1].ref

    @property
    def orchestrator_run_id(self) -> str:
        return str(self.extra.get("orchestrator_run_id", ""))


@dataclass(frozen=True)
class RunRequest:
    """What ``Runner.launch`` is asked to run: one run of one pipeline, and its plan."""

    pipeline: Pipeline
    config: PipelineSettings
    home: Path
    run_id: str
    use_cache: bool | None = None
    on_step: StepCallback | None = None

    @property
    def plan(self) -> Plan:
        return plan(self.pipeline, self.config)

    def settings(self) -> PipelineSettings:
        """The config with ``use_cache``, when given, as its ``runtime.cache``: for an
        orchestrator whose tasks get the config alone."""
        if self.use_cache is None:
            return self.config
        runtime = self.config.runtime.model_copy(update={"cache": self.use_cache})
        return self.config.model_copy(update={"runtime": runtime})


@dataclass(frozen=True)
class TaskFacts:
    """What the orchestrator recorded about one task of the plan (by its name): its state,
    seconds, start (epoch), tries, and a mapped task's instance states in shard order."""

    state: str | None = None
    seconds: float | None = None
    started: float | None = None
    tries: int | None = None
    map_states: tuple[str | None, ...] = ()


@dataclass
class Launch:
    """What ``Runner.launch`` reports: the orchestrator's own view of the run it executed.

    ``tasks`` holds the orchestrator's facts per plan task (typed, the same for every runner);
    ``extra`` what only this orchestrator knows (its home, its job name...). ``failure`` says what
    went wrong when the orchestrator failed without a step recording why; ``note`` is appended to
    a step's error (e.g. which try failed and where its log is).
    """

    orchestrator_run_id: str = ""
    seconds: float | None = None
    tasks: dict[str, TaskFacts] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    note: str = ""
    log: str | None = None
    error: MlpipeError | None = None


def preflight(pipeline: Pipeline, config: PipelineSettings, home: Path) -> None:
    """Checks that need no work done: input files exist, models resolve, credentials are there.

    Runs before anything is written, so a bad config fails in seconds and leaves nothing behind.
    """
    from mlpipe.core.registry import preflight_registry
    from mlpipe.core.tracking import preflight_tracker

    pipeline.check_config(config)
    check_fuse(pipeline, config)
    data = getattr(config, "data", None)
    if isinstance(data, DataConfig) and data.source == "files":
        for label, path in (("data.path", data.path), ("data.eval_path", data.eval_path)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{label}: file not found: {path}")
    preflight_tracker(config.tracking)
    registry = getattr(config, "registry", None)
    if registry is not None:
        check_registry_names(registry)
        model = getattr(getattr(config, "inference", None), "model", None)
        preflight_registry(registry, home, model if isinstance(model, str) else None)


def check_registry_names(registry: Any) -> None:
    """The model name and aliases a training will publish under, checked before it trains
    (not found wrong at upload_model, after all its work)."""
    for field_name, value, check in [
        ("registry.model_name", getattr(registry, "model_name", None), names.model_name),
        *((f"registry.aliases[{i}]", a, names.alias)
          for i, a in enumerate(getattr(registry, "aliases", None) or ())),
    ]:
        if value is None:
            continue
        try:
            check(value)
        except ConfigError as exc:
            raise ConfigError(f"{field_name}: {exc}") from None


def check_fuse(pipeline: Pipeline, config: PipelineSettings) -> None:
    """``runtime.fuse`` names consecutive steps of this pipeline (a group is one task, or one
    pod in cluster mode)."""
    plan(pipeline, config)


def refuse_kubernetes(config: PipelineSettings, runner: str) -> None:
    """Runners that execute steps on this machine say so when the config asks for pods."""
    if config.runtime.mode == "kubernetes":
        raise ConfigError(
            f"runtime.mode: 'kubernetes' runs each step as a pod, but --runner {runner} runs "
            f"the steps on this machine; write what the cluster gets with `mlpipe render "
            f"{runner} --pipeline {config.pipeline} ...` (docs/kubernetes.md), or set "
            "runtime.mode=local"
        )


def collect(
    pipeline: Pipeline, home: Path, run_id: str
) -> tuple[list[StepRun], MlpipeError | None]:
    """Every step's outcome in pipeline order, up to the first failure or the first not run."""
    steps: list[StepRun] = []
    for step in pipeline.steps:
        outcome = read_step(home, pipeline.name, run_id, step.name)
        if outcome is None:
            break
        if isinstance(outcome, MlpipeError):
            return steps, outcome
        steps.append(outcome)
    return steps, None


class Runner(ABC):
    """Runs a pipeline through one orchestrator. Subclasses implement ``launch`` only."""

    name: ClassVar[str]
    #: whether the steps run on this machine (then ``runtime.mode: kubernetes`` is refused)
    runs_locally: ClassVar[bool] = True
    #: whether ``launch`` calls ``on_step`` itself; else the base watches the step records
    reports_steps: ClassVar[bool] = False
    #: what this runner does, on this machine, with each setting of
    #: :data:`mlpipe.core.execution.honours.SETTINGS`: (applied | approximated | ignored, why)
    honours: ClassVar[Mapping[str, tuple[Level, str]]] = {}
    #: the module of the task body its task processes call (``mlpipe.core.warm.delegate``)
    #: when the orchestrator starts a fresh Python per task: a warm server imports it once for
    #: the run, and forks a worker per task (None: no server)
    warm_body: ClassVar[str | None] = None

    def run(
        self,
        pipeline: Pipeline | str,
        config: PipelineSettings,
        *,
        home: str | Path | None = None,
        run_id: str | None = None,
        use_cache: bool | None = None,
        on_step: StepCallback | None = None,
        resume: bool = False,
        quiet: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> PipelineRun:
        """Run every step of ``pipeline`` and return what each produced.

        ``on_step`` hears each step start and end, whatever the runner (the base watches the
        steps' records for runners that do not report them). ``quiet=True`` sends the
        orchestrator's own output to ``<run dir>/<runner>.log`` (``run.json``'s ``log``) instead
        of this process's stdout and stderr. ``resume=True`` continues the existing run
        ``run_id`` (on this runner or another): the steps it finished are reused, the failed
        step and those after it run again; ``on_step`` hears this attempt only.
        ``on_progress`` hears the plain progress lines of steps that run in other processes
        (orchestrator tasks), which ``quiet`` would otherwise leave in the log only.
        Raises ``StepFailedError`` naming the first failed step (with its cause's exit code),
        or ``RunnerError`` when the orchestrator failed outside any step.
        """
        inside = os.environ.get(INSIDE_TASK)
        if inside:
            raise ConfigError(
                f"a pipeline run started inside task '{inside}' of another run: the module that "
                "defines the pipeline starts a run when imported, which every task process "
                "would repeat; put that call under `if __name__ == \"__main__\":`")
        pipe = resolve_pipeline(pipeline)
        root = resolve_home(home)
        if self.runs_locally:
            refuse_kubernetes(config, self.name)
        preflight(pipe, config, root)
        with self._warm(pipe, config) as warm:  # warming up while the run is set up
            run = self._run(pipe, config, root, run_id, use_cache, on_step, resume, quiet,
                            on_progress)
        if warm is not None:
            run.extra["warm_tasks"] = warm.served
        return run

    def _warm(self, pipe: Pipeline, config: PipelineSettings) -> Any:
        """The run's warm server for a runner that declares a ``warm_body`` (a no-op else)."""
        if self.warm_body is None:
            return contextlib.nullcontext()
        from mlpipe.core.pipeline import child_env, portable_ref
        from mlpipe.core.warm import warm_tasks

        try:
            ref = portable_ref(pipe)
        except ConfigError:  # the tasks cannot import it either: launch says why
            return contextlib.nullcontext()
        return warm_tasks([self.warm_body], ref, config.model_dump_json(), child_env(pipe))

    def _run(self, pipe: Pipeline, config: PipelineSettings, root: Path, run_id: str | None,
             use_cache: bool | None, on_step: StepCallback | None, resume: bool, quiet: bool,
             on_progress: ProgressCallback | None) -> PipelineRun:
        if resume and not run_id:
            raise ConfigError("resume: name the run to resume (mlpipe runs list)")
        run_id = names.run_id(run_id) if run_id else new_run_id()
        record = RunRecord(root, pipe, run_id, self.name, config)
        if resume:
            record.require_earlier()  # before the lock makes its folder
        record.lock()  # before the sweep: this run's folders are ours alone from here
        sweep_killed(root, pipe.name)  # what killed runs left half-written goes first
        if resume:
            record.resume()
        since = time.time()  # records older than this are an earlier attempt's (--resume)
        record.start()
        started = time.perf_counter()
        log = record.path.parent / f"{self.name}.log" if quiet else None
        watcher = None
        if (on_step is not None or on_progress is not None) and not self.reports_steps:
            watcher = StepWatcher(pipe, root, run_id, on_step, since=since,
                                  on_progress=on_progress)
        try:
            with _output_to(log), watcher or contextlib.nullcontext():
                launch = self.launch(RunRequest(pipe, config, root, run_id, use_cache, on_step))
            launch.extra = {**_facts(pipe, config, launch.tasks), **launch.extra}
            if log is not None and launch.log is None:
                launch.log = str(log)
        except MlpipeError as exc:  # the launcher failed, or (in-process runners) a step raised
            launch = Launch(error=exc)
        except BaseException as exc:  # Ctrl-C, SystemExit: record it, then let it through
            record.finish([], _interrupted(exc), Launch(), time.perf_counter() - started)
            raise
        wall = time.perf_counter() - started
        steps, failure = collect(pipe, root, run_id)
        failure = _failure(pipe, steps, failure, launch)
        record.finish(steps, failure, launch, wall)
        if failure is not None:
            failure.run_record = str(record.path)  # type: ignore[attr-defined]
            failure.log = launch.log  # type: ignore[attr-defined]
            raise failure
        extra = {"orchestrator_run_id": launch.orchestrator_run_id or run_id, **launch.extra}
        extra["wall_seconds"] = wall
        if launch.log:
            extra.setdefault("log", launch.log)
        return PipelineRun(
            pipeline=pipe.name,
            run_id=run_id,
            run_dir=run_dir(root, pipe.name, run_id),
            steps=steps,
            seconds=launch.seconds if launch.seconds is not None else wall,
            runner=self.name,
            extra=extra,
        )

    @abstractmethod
    def launch(self, request: RunRequest) -> Launch:
        """Have the orchestrator run every task of ``request.plan`` under ``request.run_id``
        (each task calls ``execute``, which records its outcome) and report what the
        orchestrator saw."""

    def floor(self, tasks: list[FloorTask], name: str, work_dir: Path) -> Floor | None:
        """Run a native no-op pipeline of ``tasks``' shape (see :mod:`.floor`) the way this
        runner runs mlpipe's; ``None``: this runner has no floor."""
        return None

    def compile(self, pipeline: Pipeline, config: PipelineSettings, output: Path) -> Path:
        """Write the pipeline as this orchestrator's deployable file (kfp YAML, say)."""
        raise ConfigError(f"runner {self.name!r} has nothing to compile: its orchestrator has no "
                          "deployable pipeline file (see mlpipe compile --help)")

    def render_cluster(
        self, pipeline: Pipeline, config: PipelineSettings, out_dir: Path
    ) -> list[Path]:
        """Write what cluster mode would submit (pod specs) for review; submits nothing."""
        raise ConfigError(f"runner {self.name!r} has no cluster mode to render")


class StepWatcher:
    """Calls ``on_step`` as step records appear, for runners whose steps run elsewhere.

    Polls each step's directory (a folder appears: running; ``result.json``: done or cached;
    ``error.json``: failed), so every runner gets the same step lines as the local runner. A
    record written before ``since`` is an earlier attempt's (a resumed run): it is not heard.
    ``on_progress`` hears each new line of ``<run>/.progress/<step>.log``.
    """

    def __init__(self, pipeline: Pipeline, home: Path, run_id: str,
                 on_step: StepCallback | None, interval: float = 0.25, *, since: float = 0.0,
                 on_progress: ProgressCallback | None = None) -> None:
        import threading

        from mlpipe.core.progress import PROGRESS_DIR

        self.pipeline, self.home, self.run_id = pipeline, home, run_id
        self.on_step, self.interval, self.since = on_step, interval, since
        self.on_progress = on_progress
        self.seen: dict[str, str] = {}
        self.run = run_dir(home, pipeline.name, run_id)
        self.progress = self.run / PROGRESS_DIR
        self.offsets = {p: p.stat().st_size for p in self._progress_files()}  # earlier tries'
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlpipe-step-watcher",
                                        daemon=True)

    def __enter__(self) -> StepWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()  # whatever finished after the last look

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def _progress_files(self) -> list[Path]:
        try:
            return sorted(self.progress.glob("*.log"))
        except OSError:
            return []

    def _tail_progress(self) -> None:
        if self.on_progress is None:
            return
        for path in self._progress_files():
            offset = self.offsets.get(path, 0)
            try:
                with path.open("rb") as file:
                    file.seek(offset)
                    chunk = file.read()
            except OSError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits
            self.offsets[path] = offset + len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    self.on_progress(path.stem, line)

    def _stale(self, directory: Path) -> bool:
        """Whether the record that decides this step's state predates this attempt."""
        from mlpipe.core.execution.step import ERROR_FILE, RESULT_FILE

        found = [directory / RESULT_FILE, directory / ERROR_FILE]
        found += sorted(directory.glob(f"shard-*/{ERROR_FILE}"))
        for record in found:
            try:
                return record.stat().st_mtime < self.since
            except OSError:
                continue
        return False

    def poll(self) -> None:
        self._tail_progress()
        if self.on_step is None:
            return
        for step in self.pipeline.steps:
            directory = self.run / step.name
            if not directory.is_dir():
                continue
            outcome: StepRun | MlpipeError | None
            try:
                outcome = read_step(self.home, self.pipeline.name, self.run_id, step.name)
                if outcome is not None and self._stale(directory):
                    continue  # the earlier attempt's record: this one has not got there yet
            except (OSError, ValueError, MlpipeError):
                continue  # being written right now: look again next time
            if outcome is None:
                state = "running"
            elif isinstance(outcome, StepRun):
                state = "cached" if outcome.cached else "done"
            else:
                state = "failed"
            previous = self.seen.get(step.name)
            if previous == state or (previous in ("done", "cached", "failed") and
                                     state == "running"):
                continue
            if previous is None and state != "running":
                self.on_step(step.name, "running", None)
            self.seen[step.name] = state
            self.on_step(step.name, state, outcome if isinstance(outcome, StepRun) else None)


@contextlib.contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``log``."""
    if log is None:
        yield
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as target:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _facts(pipeline: Pipeline, config: PipelineSettings,
           tasks: Mapping[str, TaskFacts]) -> dict[str, Any]:
    """The orchestrator's typed facts as the run's extra: per task (states, seconds, tries, a
    mapped task's states; a plan task it never reported is ``not_run``) and each step's task
    start (the first of its tasks that started)."""
    if not tasks:
        return {}
    started: dict[str, float] = {}
    order = plan(pipeline, config)
    tasks = {**{t.name: TaskFacts(state="not_run") for t in order}, **tasks}
    for task in order:
        at = tasks[task.name].started
        if at is not None:
            for step in task.steps:
                started.setdefault(step, at)
    return {"task_states": {n: t.state for n, t in tasks.items()},
            "task_seconds": {n: t.seconds for n, t in tasks.items()},
            "try_numbers": {n: t.tries for n, t in tasks.items()},
            "map_states": {n: list(t.map_states) for n, t in tasks.items() if t.map_states},
            "task_started": started}


def _failure(
    pipeline: Pipeline, steps: list[StepRun], recorded: MlpipeError | None, launch: Launch
) -> MlpipeError | None:
    """The error to raise: the step's own record first, then what the launcher knew."""
    if isinstance(launch.error, StepFailedError) and (
        recorded is None or getattr(recorded, "step", None) == launch.error.step
    ):
        recorded = launch.error  # same failure, with the original exception in this process
    if recorded is not None:
        if launch.note and isinstance(recorded, StepFailedError):
            recorded = StepFailedError(recorded.step, _with_note(recorded.cause, launch.note))
        return recorded
    if launch.error is not None:
        return launch.error
    if launch.failure:
        return RunnerError(launch.failure)
    if len(steps) < len(pipeline.steps):
        missing = pipeline.steps[len(steps)].name
        where = f"; log {launch.log}" if launch.log else ""
        return RunnerError(f"the run ended without running step '{missing}'{where}")
    return None


def _with_note(cause: BaseException, note: str) -> BaseException:
    from mlpipe.core.errors import error_from_record, error_record

    record = error_record(cause)
    record["message"] = f"{record['message']} [{note}]"
    return error_from_record(record)


def _interrupted(exc: BaseException) -> MlpipeError:
    if isinstance(exc, KeyboardInterrupt):
        return RemoteStepError("interrupted (Ctrl-C)", 130)
    return RemoteStepError(f"{type(exc).__name__}: {exc}", 1)


class RunRecord:
    """``run.json``: status, times, runner, the orchestrator's run id, config, steps, error."""

    def __init__(
        self, home: Path, pipeline: Pipeline, run_id: str, runner: str, config: PipelineSettings
    ) -> None:
        self.path = run_dir(home, pipeline.name, run_id) / RUN_FILE
        self._lock: int | None = None
        self.config = config.model_dump(mode="json")
        self.data: dict[str, Any] = {
            "pipeline": pipeline.name,
            "pipeline_ref": _ref_or_name(pipeline),
            "run_id": run_id,
            "runner": runner,
            "status": "running",
            # host, boot, PID namespace, pid, start time: a run whose process is gone is killed
            **identity(),
            "started_at": _now(),
            "started_ts": time.time(),  # epoch: the first step's wait is measured from it
            "ended_at": None,
            "seconds": None,
            "orchestrator_run_id": None,
            "config_sha256": sha256_json(self.config),
            "code": code_of(pipeline),  # what ``mlpipe runs diff`` compares
            "environment": environment(),
            "model_version": None,
            "failed_step": None,
            "error": None,
            "log": None,
            "steps": [],
            "extra": {},
            "config": self.config,
        }

    def lock(self) -> None:
        """Hold this run id's lock until the process ends: two processes never share a run's
        folders (a second ``--resume`` of one run is refused, exit 2)."""
        try:
            self._lock = hold(self.path.parent)
        except HeldError:
            raise ConfigError(
                f"run {self.data['run_id']} of {self.data['pipeline']} is in use by another "
                "mlpipe process (a run or a --resume of it); wait for it to end (mlpipe runs "
                "list)") from None

    def start(self) -> None:
        fault_point("run.start")
        write_json(self.path, self.data)
        # room for the outcome, taken now: a full disk at the end cannot stop a status word
        # overwriting it in place (run.json's atomic rewrite needs new blocks)
        (self.path.parent / OUTCOME_FILE).write_text(" " * OUTCOME_SIZE)

    def require_earlier(self) -> None:
        if not self.path.is_file():
            raise ConfigError(f"resume: no run {self.data['run_id']} of {self.data['pipeline']} "
                              f"under {self.path.parent.parent} (see mlpipe runs list)")

    def resume(self) -> None:
        """Continue an earlier run: its finished steps are reused (``run_step`` reads the flag)."""
        if not self.path.is_file():
            raise ConfigError(f"resume: no run {self.data['run_id']} of {self.data['pipeline']} "
                              f"under {self.path.parent.parent} (see mlpipe runs list)")
        earlier = read_run(self.path)
        mine = self._lock is not None
        if earlier.get("status") == "running" and (
            run_alive(earlier, locked_by_me=mine) is not False
        ):
            where = f" on {earlier.get('host')} (pid {earlier.get('pid')})"
            raise ConfigError(f"resume: run {self.data['run_id']} is still running{where}")
        self.data.update(resuming=True, resumed_from={
            # a changed config is allowed: steps whose cache key changed are rerun
            "config_changed": earlier.get("config_sha256") != self.data["config_sha256"],
            "runner": earlier.get("runner"), "status": earlier.get("status"),
            "failed_step": earlier.get("failed_step"), "started_at": earlier.get("started_at")})

    def _bounded(self, file_name: str, text: str) -> str:
        """``text``, or its start and where the rest is: run.json stays small and readable."""
        if len(text) <= RECORD_LIMIT:
            return text
        whole = self.path.parent / file_name
        with contextlib.suppress(OSError):
            whole.write_text(text)
        return f"{text[:RECORD_LIMIT]}... ({len(text) - RECORD_LIMIT} more characters in {whole})"

    def finish(
        self, steps: list[StepRun], failure: MlpipeError | None, launch: Launch, seconds: float
    ) -> None:
        versions = [s.ref for s in steps if s.ref.kind == "model_version"]
        self.data.update(
            status="failed" if failure is not None else "succeeded",
            resuming=False,
            ended_at=_now(),
            seconds=launch.seconds if launch.seconds is not None else seconds,
            orchestrator_run_id=launch.orchestrator_run_id or None,
            model_version=getattr(versions[-1], "spec", None) if versions else None,
            log=launch.log,
            steps=[s.to_json() for s in steps],
            extra=_jsonable(launch.extra),
        )
        if failure is not None:
            step_error = self.path.parent / str(getattr(failure, "step", "")) / "error.json"
            try:
                details = json.loads(step_error.read_text()) if step_error.is_file() else {}
            except (OSError, ValueError):
                details = {}
            self.data.update(
                failed_step=getattr(failure, "step", None),
                error={
                    "type": type(getattr(failure, "cause", failure)).__name__,
                    "message": self._bounded("error-message.txt", str(failure)),
                    "exit_code": int(getattr(failure, "exit_code", 1)),
                    "traceback": self._bounded(
                        "error-traceback.txt", str(details.get("traceback") or "")) or None
                        if isinstance(details, dict) else None,
                },
            )
        try:
            fault_point("run.finish")
            write_json(self.path, self.data)
        except OSError:  # the run's own outcome matters more than its record: keep the word
            outcome = self.path.parent / OUTCOME_FILE
            with contextlib.suppress(OSError), outcome.open("r+") as fh:
                fh.write(self.data["status"].ljust(OUTCOME_SIZE)[:OUTCOME_SIZE])
        else:  # recorded: the preallocated word is not needed
            with contextlib.suppress(OSError):
                (self.path.parent / OUTCOME_FILE).unlink()
        if self._lock is not None:
            os.close(self._lock)  # the run is over: a --resume may take it
            self._lock = None


#: the most of an error's text run.json holds; the whole text goes in a file beside it
RECORD_LIMIT = 4000


def read_run(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({type(exc).__name__}); it is damaged") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a run record (a JSON object); it is damaged")
    return data


def code_of(pipeline: Pipeline) -> dict[str, str]:
    """The code a run ran: mlpipe core's source hash and, for a user pipeline, its module's."""
    from mlpipe.core.cache import code_version, module_version

    code = {"mlpipe_core": code_version()}
    ref = _ref_or_name(pipeline)
    if ":" in ref:
        with contextlib.suppress(Exception):  # a module gone since: nothing to compare
            code[ref.split(":")[0]] = module_version(ref.split(":")[0])
    return code


def environment() -> dict[str, str]:
    """Where a run ran: Python, the platform and the versions of the libraries a step uses."""
    import platform

    from mlpipe.core.cache import package_version

    env = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("mlpipe", "torch", "transformers", "pyarrow", "pydantic"):
        found = package_version(package)
        if found is not None:
            env[package] = found
    return env


def _ref_or_name(pipeline: Pipeline) -> str:
    try:
        return pipeline.ref
    except ConfigError:
        return pipeline.name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(dict(value), default=str))
    return result


def get_runner(name: str) -> Runner:
    """The runner registered as ``name`` (``local``, ``airflow``, ``kubeflow``, ``dagster``...)."""
    runner: Runner = plugins.load("runner", name)()
    return runner


def run_pipeline(
    pipeline: Pipeline | str,
    config: PipelineSettings,
    *,
    home: str | Path | None = None,
    runner: str = "local",
    run_id: str | None = None,
    use_cache: bool | None = None,
    on_step: StepCallback | None = None,
    resume: bool = False,
    quiet: bool = False,
    on_progress: ProgressCallback | None = None,
) -> PipelineRun:
    """Run ``pipeline`` with ``config`` on ``runner``: the Python API behind ``mlpipe run``."""
    return get_runner(runner).run(
        pipeline, config, home=home, run_id=run_id, use_cache=use_cache, on_step=on_step,
        resume=resume, quiet=quiet, on_progress=on_progress,
    )
