"""Deployed mode of the runner comparison (``mlpipe bench --deployed``).

The in-process figures run each pipeline the way mlpipe's runners do (``dag.test()``, Dagster's
``execute_in_process``). A deployed orchestrator adds a scheduler loop, a run queue and a process
per task, so here the same pipelines (the built-ins: training, then inference on the model it
published; a user's own through ``MLPIPE_PIPELINES``) run through each orchestrator's own
long-running service, started for the purpose and stopped
after it, driven over its HTTP API the way a user's CI or UI would drive it:

- Airflow: what ``airflow standalone`` runs (scheduler with the LocalExecutor, DAG processor,
  triggerer, API server) on sqlite; DAGs unpaused, triggered and polled over the REST API v2.
- Dagster: ``dagster dev`` (webserver + daemon) with the multiprocess executor; jobs launched and
  polled over GraphQL.

Each service gets its own home under the benchmark's output folder, a free port on 127.0.0.1, and
its own process group, which is always stopped as a whole (``finally`` and ``atexit``; a watchdog
stops it when this process dies without either, e.g. SIGKILLed by a timeout). Figures
come from the orchestrator's own metadata (task and step start/end times), on the same clock as
the trigger: service start-up to healthy, trigger to first task, each task's start after its
upstream ended, trigger to run end; plus the peak RSS of the service's whole process tree.
This module imports no orchestrator: it talks HTTP (stdlib ``urllib``) and runs their CLIs.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mlpipe.core.errors import MlpipeError

#: Runners that have a deployed mode, and the service behind each.
DEPLOYED = {"airflow": "airflow standalone (scheduler, LocalExecutor, API server)",
            "dagster": "dagster dev (webserver, daemon, multiprocess executor)"}
#: The built-ins, whose headline outputs (weights, predictions) the summary names.
PIPELINES = ("training", "inference")
HEALTH_TIMEOUT_S = 240.0  # a cold start on a loaded 2-core machine takes up to a minute
POLL_S = 0.25
RUN_POLL_S = 1.0  # figures come from the orchestrator's timestamps, not the poll


class ServiceError(MlpipeError):
    """A service did not become healthy, or a run through it failed; the message names its log."""


# -- a service in its own process group ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Run by the watchdog: wait for EOF on stdin (the benchmark process is gone, however it ended),
#: then TERM the service's group and KILL what is left after the grace.
WATCHDOG = """
import os, signal, sys, time
sys.stdin.buffer.read()
pgid, grace = int(sys.argv[1]), float(sys.argv[2])
for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        break
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            sys.exit(0)
        time.sleep(0.2)
"""


class Service:
    """A command started in its own process group, its output in ``log``, its process tree's
    RSS sampled in a thread; :meth:`stop` ends the whole group (also at interpreter exit, and
    from a watchdog process if this one is killed)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path,
                 cwd: Path) -> None:
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log.open("wb") as out:
                self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        except OSError as exc:  # not installed: say which extra brings it
            raise ServiceError(f"{name}: cannot start {cmd[0]} ({exc}); install "
                               "mlpipe[airflow] / mlpipe[dagster]") from exc
        self.started = time.perf_counter()
        self.pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        self._watchdog = _watch(self.pgid)
        self.peak_rss = 0
        self.killed = False  # whether stop() needed SIGKILL
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        atexit.register(self.stop)

    def _sample(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(self.proc.pid)
            while self._sampling and self.proc.poll() is None:
                total = 0
                with contextlib.suppress(psutil.Error):
                    for p in [leader, *leader.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            total += int(p.memory_info().rss)
                self.peak_rss = max(self.peak_rss, total)
                time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float,
                 every: float = POLL_S) -> Any:
        """Poll ``check`` until it returns something truthy; a clear error naming the log if the
        service exits or ``timeout`` passes first (connection errors count as not yet)."""
        deadline = time.perf_counter() + timeout
        last: BaseException | None = None
        while time.perf_counter() < deadline:
            if not self.alive():
                raise ServiceError(f"{self.name} exited (code {self.proc.returncode}) while "
                                   f"waiting for {what}; log {self.log}:\n{self.tail()}")
            try:
                value = check()
                if value:
                    return value
            except (OSError, ValueError) as exc:  # not listening yet, 5xx while starting
                last = exc
            time.sleep(every)
        reason = f" (last error: {last})" if last else ""
        raise ServiceError(f"{self.name}: no {what} within {timeout:.0f}s{reason}; "
                           f"log {self.log}:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 30.0) -> float:
        """TERM the whole group, KILL what is left after ``grace``; returns seconds taken."""
        started = time.perf_counter()
        self._sampling = False
        atexit.unregister(self.stop)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = started + grace
        while time.perf_counter() < deadline and group_alive(self.pgid, self.proc):
            time.sleep(0.2)
        if group_alive(self.pgid, self.proc):
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            deadline = time.perf_counter() + 10  # until init has reaped the orphans
            while time.perf_counter() < deadline and group_alive(self.pgid, self.proc):
                time.sleep(0.1)
        if self._watchdog.stdin is not None:  # the group is gone: the watchdog's EOF ends it
            self._watchdog.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._watchdog.wait(timeout=10)
        return time.perf_counter() - started


def _watch(pgid: int, grace: float = 30.0) -> subprocess.Popen[bytes]:
    """A process in its own session holding the read end of a pipe only this process writes:
    when this process ends, even by SIGKILL, the kernel closes the pipe and the watchdog stops
    group ``pgid``."""
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(pgid), str(grace)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def group_alive(pgid: int, leader: subprocess.Popen[bytes] | None = None) -> bool:
    """Whether any process of group ``pgid`` is left (reaping ``leader`` if it has exited)."""
    if leader is not None:
        leader.poll()
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- HTTP --------------------------------------------------------------------------------------


def http_json(method: str, url: str, body: Any = None, token: str = "",
              timeout: float = 15) -> Any:
    """One JSON request; HTTP errors raise ``ServiceError`` with the server's answer."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        if exc.code >= 500 or exc.code == 404:
            raise OSError(f"{method} {url}: HTTP {exc.code} {detail}") from exc
        raise ServiceError(f"{method} {url}: HTTP {exc.code} {detail}") from exc


def _epoch(value: Any) -> float | None:
    """An ISO timestamp (Airflow) or epoch seconds (Dagster) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def run_figures(trigger: float, end: float | None, tasks: dict[str, dict[str, float | None]],
                upstream: dict[str, list[str]]) -> dict[str, Any]:
    """Trigger to first task, per task start latency (start - latest upstream end; roots: none),
    trigger to the run's end, from epoch timestamps of one clock (this machine's)."""
    starts = [t["start"] for t in tasks.values() if t["start"] is not None]
    latency: dict[str, float] = {}
    for name, t in tasks.items():
        ends = [tasks[u]["end"] for u in upstream.get(name, []) if u in tasks]
        if t["start"] is not None and ends and all(e is not None for e in ends):
            latency[name] = t["start"] - max(e for e in ends if e is not None)
    return {
        "trigger_to_first_task_s": min(starts) - trigger if starts else None,
        "end_to_end_s": (end - trigger) if end is not None else None,
        "task_latency_s": latency,
        "task_latency_median_s": statistics.median(latency.values()) if latency else None,
        "task_latency_sum_s": sum(latency.values()),
        "tasks": tasks,
    }


# -- Airflow: standalone's components, REST API v2 -----------------------------------------------

SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
DAGS_FILE = '''"""mlpipe's DAGs for the deployed benchmark (configured from the environment)."""
from mlpipe.adapters.airflow.dags import dags_from_environment

globals().update(dags_from_environment())
'''


class AirflowService:
    """What ``airflow standalone`` runs (a migrated sqlite DB, then scheduler with the
    LocalExecutor, DAG processor, triggerer and API server), one process group, own
    ``AIRFLOW_HOME``. Started component by component rather than through ``standalone`` only to
    pass ``--skip-serve-logs``: Airflow's log servers bind every interface, with no setting to
    change that, and nothing here may listen beyond 127.0.0.1 (task logs stay in files)."""

    name = "airflow"

    def __init__(self, service_dir: Path, env: dict[str, str], pipelines: list[str]) -> None:
        from mlpipe.adapters.airflow.runner import airflow_env

        af_home = service_dir / "airflow_home"
        dags = af_home / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        (dags / "mlpipe_dags.py").write_text(DAGS_FILE)
        self.home, self.port, self.pipelines = af_home, free_port(), pipelines
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = ""
        full = airflow_env(af_home, env)
        full.update({
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "mlpipe:admin",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af_home}/airflow.db",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            # a task's first call to the execution API waits for sqlite's lock behind the
            # scheduler; on a loaded 2-core machine the default 5 s fails tasks before they run
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        })
        airflow = shlex.quote(str(Path(sys.executable).parent / "airflow"))
        script = (f"{airflow} db migrate || exit 1\n"
                  f"{airflow} scheduler --skip-serve-logs &\n"
                  f"{airflow} dag-processor &\n"
                  f"{airflow} triggerer --skip-serve-logs &\n"
                  f"{airflow} api-server &\n"
                  "wait\n")
        self.service = Service("airflow (standalone components)", ["/bin/sh", "-c", script],
                               full, service_dir / "airflow.log", service_dir)

    def healthy(self) -> bool:
        health = http_json("GET", f"{self.base}/api/v2/monitor/health", timeout=5)
        parts = [health.get(k) for k in ("metadatabase", "scheduler", "dag_processor")]
        return all((p or {}).get("status") == "healthy" for p in parts if p is not None) \
            and (health.get("scheduler") or {}).get("status") == "healthy"

    def ready(self, timeout: float) -> None:
        """A JWT from the simple auth manager's generated password, and every DAG parsed."""
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        self.service.wait_for("generated password file", passwords.is_file, timeout)
        password = json.loads(passwords.read_text())["mlpipe"]
        self.token = http_json("POST", f"{self.base}/auth/token",
                               {"username": "mlpipe", "password": password})["access_token"]
        for pipeline in self.pipelines:
            dag_id = f"mlpipe_{pipeline}"
            try:
                self.service.wait_for(f"DAG {dag_id} parsed",
                                      functools.partial(self._get, f"/api/v2/dags/{dag_id}"),
                                      timeout)
            except ServiceError as exc:
                errors = self._get("/api/v2/importErrors").get("import_errors", [])
                detail = "; ".join(e.get("stack_trace", "")[-400:] for e in errors)
                raise ServiceError(f"{exc}\nDAG import errors: {detail or 'none'}") from None

    def _get(self, path: str) -> Any:
        return http_json("GET", self.base + path, token=self.token)

    def run(self, pipeline: str, run_id: str, timeout: float) -> dict[str, Any]:
        from mlpipe.adapters.airflow.spec import CONF_RUN_ID

        dag_id = f"mlpipe_{pipeline}"
        http_json("PATCH", f"{self.base}/api/v2/dags/{dag_id}", {"is_paused": False},
                  token=self.token)
        trigger = time.time()
        created = http_json("POST", f"{self.base}/api/v2/dags/{dag_id}/dagRuns",
                            {"logical_date": None, "conf": {CONF_RUN_ID: run_id}},
                            token=self.token)
        path = f"/api/v2/dags/{dag_id}/dagRuns/{created['dag_run_id']}"

        def finished() -> dict[str, Any] | None:
            state = self._get(path)
            return state if state["state"] in ("success", "failed") else None

        run = self.service.wait_for(f"{dag_id} run to finish", finished, timeout,
                                      RUN_POLL_S)
        seen = time.time()
        tis = self._get(f"{path}/taskInstances?limit=1000")["task_instances"]
        tasks: dict[str, dict[str, float | None]] = {}
        for ti in tis:  # a mapped task's instances: its first start, its last end
            t = tasks.setdefault(ti["task_id"], {"start": None, "end": None})
            start, end = _epoch(ti.get("start_date")), _epoch(ti.get("end_date"))
            if start is not None:
                t["start"] = start if t["start"] is None else min(t["start"], start)
            if end is not None:
                t["end"] = end if t["end"] is None else max(t["end"], end)
        upstream: dict[str, list[str]] = {}
        for task in self._get(f"/api/v2/dags/{dag_id}/tasks")["tasks"]:
            for down in task.get("downstream_task_ids") or []:
                upstream.setdefault(down, []).append(task["task_id"])
        states = {ti["task_id"]: ti["state"] for ti in tis}
        return {"state": "success" if run["state"] == "success" else "failed",
                "orchestrator_run_id": created["dag_run_id"], "task_states": states,
                "poll_lag_s": seen - (_epoch(run.get("end_date")) or seen),
                **run_figures(trigger, _epoch(run.get("end_date")), tasks, upstream)}


# -- Dagster: dagster dev, GraphQL ---------------------------------------------------------------

_Q_LOCATION = """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name
  location { name } jobs { name } } } ... on PythonError { message } } }"""
_Q_DAEMONS = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
_M_LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on Error { message } } }"""
_Q_RUN = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status
  creationTime startTime endTime stepStats { stepKey status startTime endTime }
  executionPlan { steps { key inputs { dependsOn { key } } } } } } }"""


class DagsterService:
    """``dagster dev`` (webserver + daemon) on 127.0.0.1 on mlpipe's code location, with its
    own ``DAGSTER_HOME`` and the multiprocess executor (a process per step, as deployed)."""

    name = "dagster"

    def __init__(self, service_dir: Path, env: dict[str, str], pipelines: list[str]) -> None:
        from mlpipe.adapters.dagster.assets import job_name
        from mlpipe.adapters.dagster.build import EXECUTOR_ENV

        dagster_home = service_dir / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.location = self.repository = ""
        self.jobs = {p: job_name(p) for p in pipelines}
        full = dict(env)
        full.update({"DAGSTER_HOME": str(dagster_home), EXECUTOR_ENV: "multiprocess"})
        full["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full.get("PATH", "")
        paths = [os.path.abspath(p or os.curdir) for p in sys.path]
        full["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(os.path.isdir, paths)))
        dagster = str(Path(sys.executable).parent / "dagster")
        cmd = [dagster, "dev", "-m", "mlpipe.adapters.dagster.definitions",
               "-h", "127.0.0.1", "-p", str(self.port)]
        self.service = Service("dagster dev", cmd, full, service_dir / "dagster-dev.log",
                               service_dir)

    def _query(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        data = http_json("POST", self.url, {"query": query, "variables": variables or {}})
        if data.get("errors"):
            raise ServiceError(f"dagster GraphQL error: {data['errors']}")
        return data["data"]

    def healthy(self) -> bool:
        """The webserver answers and every required daemon (the run queue's) heartbeats."""
        statuses = self._query(_Q_DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return bool(statuses) and all(s["healthy"] for s in statuses if s["required"])

    def ready(self, timeout: float) -> None:
        def loaded() -> bool:
            repos = self._query(_Q_LOCATION)["repositoriesOrError"]
            if repos["__typename"] == "PythonError":
                raise ServiceError(f"dagster could not load mlpipe's definitions: "
                                   f"{repos['message'][:1000]}; log {self.service.log}")
            for node in repos.get("nodes", []):
                jobs = {j["name"] for j in node["jobs"]}
                if set(self.jobs.values()) <= jobs:
                    self.location, self.repository = node["location"]["name"], node["name"]
                    return True
            return False

        self.service.wait_for("mlpipe's code location loaded", loaded, timeout)

    def run(self, pipeline: str, run_id: str, timeout: float) -> dict[str, Any]:
        from mlpipe.adapters.dagster.assets import RUN_ID_TAG

        params = {"selector": {"repositoryLocationName": self.location,
                               "repositoryName": self.repository,
                               "jobName": self.jobs[pipeline]},
                  "runConfigData": {},
                  "executionMetadata": {"tags": [{"key": RUN_ID_TAG, "value": run_id}]}}
        trigger = time.time()
        launched = self._query(_M_LAUNCH, {"p": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise ServiceError(f"dagster: launching {self.jobs[pipeline]} failed: {launched}")
        dagster_run = launched["run"]["runId"]

        def finished() -> dict[str, Any] | None:
            run = self._query(_Q_RUN, {"id": dagster_run})["runOrError"]
            done = run.get("status") in ("SUCCESS", "FAILURE", "CANCELED")
            return run if done and run.get("endTime") else None

        run = self.service.wait_for(f"{self.jobs[pipeline]} run to finish", finished, timeout,
                                      RUN_POLL_S)
        seen = time.time()
        plan = {s["key"]: [u["key"] for i in s["inputs"] for u in i["dependsOn"]]
                for s in (run.get("executionPlan") or {}).get("steps", [])}
        tasks = {s["stepKey"]: {"start": s["startTime"], "end": s["endTime"]}
                 for s in run["stepStats"]}
        upstream = {key: [u for dep in plan.get(key) or plan.get(_unresolved(key), [])
                          for u in _resolved(dep, tasks)] for key in tasks}
        return {"state": "success" if run["status"] == "SUCCESS" else "failed",
                "orchestrator_run_id": dagster_run,
                "task_states": {s["stepKey"]: s["status"] for s in run["stepStats"]},
                "poll_lag_s": seen - run["endTime"],
                **run_figures(trigger, run["endTime"], tasks, upstream)}


def _unresolved(step_key: str) -> str:
    """A mapped step's key (``op[shard_0000]``) as the execution plan names it (``op[?]``)."""
    return step_key.split("[", 1)[0] + "[?]" if "[" in step_key else step_key


def _resolved(plan_key: str, tasks: dict[str, Any]) -> list[str]:
    """The step keys that ran for a plan key: itself, or each mapped copy of ``op[?]``."""
    if plan_key.endswith("[?]"):
        return [k for k in tasks if k.startswith(plan_key[:-2])]
    return [plan_key]


# -- one deployed runner: start, every pipeline, stop ----------------------------------------------


def run_deployed(runner: str, home: Path, service_dir: Path,
                 pipelines: list[tuple[str, str]], run_timeout: float = 1800.0,
                 health_timeout: float = HEALTH_TIMEOUT_S) -> dict[str, Any]:
    """Start ``runner``'s service, run each pipeline through it in order, stop it.

    ``pipelines``: ``(reference, config JSON)`` pairs, as the in-process children take them. The
    service serves them as a deployment would (:mod:`mlpipe.core.served`): ``MLPIPE_PIPELINES``
    names each (a user's ``module:PIPELINE`` too) and each config is a file it reads
    (``MLPIPE_<NAME>_CONFIG``), next to ``MLPIPE_HOME``. Returns the figures; raises
    ``ServiceError`` (naming the log) when the service is unhealthy or a run fails. Outputs'
    sha256 (shards too) come from the steps' own records in ``home``.
    """
    from mlpipe.core.pipeline import resolve_pipeline
    from mlpipe.core.served import PIPELINES_ENV, config_env

    home, service_dir = home.resolve(), service_dir.resolve()  # the services run elsewhere
    service_dir.mkdir(parents=True, exist_ok=True)  # (and Airflow refuses a relative sqlite)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["MLPIPE_HOME"] = str(home)
    env[PIPELINES_ENV] = ",".join(ref for ref, _ in pipelines)
    names = []
    for ref, raw in pipelines:
        config = json.loads(raw)
        config["runtime"]["cache"] = False  # as every benchmark run: no step cache
        name = resolve_pipeline(ref).name
        path = service_dir / f"{name}.yaml"
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        env[config_env(name)] = str(path)
        names.append(name)
    out: dict[str, Any] = {"runner": runner, "service": DEPLOYED[runner], "pipelines": names}
    kind = AirflowService if runner == "airflow" else DagsterService
    svc: AirflowService | DagsterService = kind(service_dir, env, names)
    service = svc.service
    try:
        out.update(log=str(service.log), pgid=service.pgid, port=getattr(svc, "port", None))
        service.wait_for(f"{runner} healthy", svc.healthy, health_timeout)
        out["startup_s"] = time.perf_counter() - service.started
        svc.ready(health_timeout)
        out["ready_s"] = time.perf_counter() - service.started
        for (ref, _), pipeline in zip(pipelines, names, strict=True):
            run_id = f"deployed-{runner}-{pipeline}"
            figures = svc.run(pipeline, run_id, run_timeout)
            if figures["state"] != "success":
                raise ServiceError(
                    f"{runner} (deployed): {pipeline} run {figures['orchestrator_run_id']} "
                    f"failed ({_failed(figures['task_states'])}); "
                    f"{_step_error(home, pipeline, run_id)}log {service.log}")
            figures["sha256"] = _hashes(home, resolve_pipeline(ref), run_id)
            out[pipeline] = figures
        out["peak_rss_mib"] = service.peak_rss / 2**20
    finally:
        out["stop_s"] = service.stop()
    out["left_running"] = group_alive(service.pgid, service.proc)
    out["stop_needed_kill"] = service.killed
    for key, pipe, step in (("weights_sha256", "training", "train_model"),
                            ("predictions_sha256", "inference", "save_results")):
        if pipe in out:  # the built-ins' headline outputs, named
            out[key] = out[pipe]["sha256"][step]
    return out


def _hashes(home: Path, pipeline: Any, run_id: str) -> dict[str, str]:
    """Every output reference's sha256 as the steps recorded them (``step[i]``: a shard's), the
    same keys as the in-process run's (:func:`mlpipe.bench.child.output_hashes`)."""
    from mlpipe.bench.child import output_hashes
    from mlpipe.core.execution import load_step_result

    steps = [load_step_result(home, pipeline.name, run_id, s) for s in pipeline.step_names]
    return output_hashes(type("Run", (), {"steps": steps})())


def _failed(states: dict[str, Any]) -> str:
    bad = {k: v for k, v in states.items() if str(v).lower() not in ("success", "succeeded")}
    return ", ".join(f"{k}={v}" for k, v in bad.items()) or "no task failed"


def _step_error(home: Path, pipeline: str, run_id: str) -> str:
    """The first step error the run recorded (error.json), if any."""
    for path in sorted((home / "runs" / pipeline / run_id).glob("**/error.json")):
        with contextlib.suppress(OSError, ValueError):
            error = json.loads(path.read_text()).get("error", {})
            return f"step {path.parent.name}: {error.get('message', '')[:300]}; "
    return ""


def summarize_deployed(raw: list[dict[str, Any]], local: dict[int, dict[str, Any]]
                       ) -> dict[str, Any]:
    """Per deployed runner: medians over repetitions, identical outputs against ``local``."""
    summary: dict[str, Any] = {}
    for runner in dict.fromkeys(r["runner"] for r in raw):
        runs = [r for r in raw if r["runner"] == runner]
        ok = [r for r in runs if r.get("ok")]
        entry: dict[str, Any] = {"service": DEPLOYED[runner], "ok": len(ok),
                                 "failed": len(runs) - len(ok),
                                 "errors": [r["error"] for r in runs if not r.get("ok")]}
        if ok:
            entry["startup_s"] = statistics.median(r["startup_s"] for r in ok)
            entry["ready_s"] = statistics.median(r["ready_s"] for r in ok)
            entry["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
            entry["left_running"] = any(r["left_running"] for r in ok)
            entry["pipelines"] = ok[0]["pipelines"]
            for pipe in entry["pipelines"]:
                entry[pipe] = {
                    key: statistics.median(r[pipe][key] for r in ok)
                    for key in ("end_to_end_s", "trigger_to_first_task_s",
                                "task_latency_median_s", "task_latency_sum_s")
                    if all(r[pipe].get(key) is not None for r in ok)
                }
                entry[pipe]["task_latency_s"] = {
                    task: statistics.median(r[pipe]["task_latency_s"].get(task, 0.0) for r in ok)
                    for task in ok[0][pipe]["task_latency_s"]
                }
            pairs = [(r, local[r["repetition"]]) for r in ok if r["repetition"] in local]
            for key in ("weights", "predictions"):
                if all(f"{key}_sha256" in r for r in ok):
                    entry[f"identical_{key}"] = bool(pairs) and all(
                        r[f"{key}_sha256"] == ref.get(f"{key}_sha256") for r, ref in pairs)
            different = sorted({f"{pipe}/{step}" for r, ref in pairs for pipe in r["pipelines"]
                                for step, sha in r[pipe]["sha256"].items()
                                if (ref.get(pipe) or {}).get("sha256", {}).get(step) != sha})
            entry["identical_outputs"] = bool(pairs) and not different
            entry["different_outputs"] = different
        summary[runner] = entry
    return summary


def render_deployed(deployed: dict[str, Any], in_process: dict[str, Any]) -> list[str]:
    """The "Deployed" section of bench.md: each service's figures next to the in-process run."""
    lines = [
        "",
        "### Deployed",
        "",
        "The same pipelines through each orchestrator's own service (`airflow standalone`: "
        "scheduler + LocalExecutor on sqlite; `dagster dev`: webserver + daemon, multiprocess "
        "executor), triggered and polled over its HTTP API; times from the orchestrator's task "
        "metadata (median seconds; in-process = the table above).",
        "",
        "| runner | service | start-up s (healthy / pipelines loaded) | peak RSS MiB | pipeline "
        "| trigger to first task s | task start latency s (median / sum) | end-to-end s "
        "| in-process s | same outputs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for runner, e in deployed.items():
        if not e["ok"]:
            lines.append(f"| {runner} | {e['service']} | failed: {e['errors'][0][:100]} "
                         "| | | | | | | |")
            continue
        for pipe in e["pipelines"]:
            differs = [d.split("/", 1)[1] for d in e["different_outputs"]
                       if d.startswith(f"{pipe}/")]
            d = e[pipe]
            inproc = (in_process.get(runner) or {}).get(pipe, {}).get("median_s")
            lines.append(
                f"| {runner} | {e['service']} | {e['startup_s']:.1f} / {e['ready_s']:.1f} | "
                f"{e['peak_rss_mib']:.0f} | {pipe} | {_s(d.get('trigger_to_first_task_s'))} | "
                f"{_s(d.get('task_latency_median_s'))} / {_s(d.get('task_latency_sum_s'))} | "
                f"{_s(d.get('end_to_end_s'))} | {_s(inproc)} | "
                f"{'**no**: ' + ', '.join(differs) if differs else 'yes'} |")
    return lines


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
