"""A run's warm server runs a task body in a worker forked for the task, with the task process's
streams, folder, environment and exit code; with no server, or from another import path, the
task runs the body itself."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

from mlpipe.core.config import load_config
from mlpipe.core.warm import STARTING_WAIT_S, WARM_ENV, WarmTasks, warm_tasks
from tests.support import ROOT, TINY_TRAINING

CLIENT = ("import os; from mlpipe.core.warm import delegate; print('client', os.getpid()); "
          "print(repr(delegate('tests.support.warm_body:{0}', {1})))")


def _server(pipeline: str) -> tuple[str, dict[str, str], AbstractContextManager[WarmTasks]]:
    """The import path (this checkout first, for ``tests.support``), the tasks' environment
    (no server yet) and a warm server for ``pipeline`` with the tiny training config."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop(WARM_ENV, None)
    config = load_config(TINY_TRAINING).model_dump_json()
    return path, env, warm_tasks(["tests.support.warm_body"], pipeline, config, env)


def _task(env: dict[str, str], body: str, kwargs: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLIENT.format(body, kwargs)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_task_body_runs_in_a_warm_worker_as_if_in_the_task_process(tmp_path: Path) -> None:
    path, env, warm = _server("training")
    with warm as server:
        task_env = {**env, WARM_ENV: server.address, "WARM_TEST_VALUE": "the task's"}
        done = _task(task_env, "echo", "text='hi'", tmp_path)
        failed = _task(task_env, "fail", "code=3", tmp_path)
        elsewhere = _task({**task_env, "PYTHONPATH": path + os.pathsep + str(tmp_path)}, "echo",
                          "text='cold'", tmp_path)
        served = server.served
    no_server = _task(env, "echo", "text='alone'", tmp_path)

    assert done.returncode == 0, done.stderr
    client, said, result = done.stdout.splitlines()
    warm, answer = ast.literal_eval(result)
    assert warm is True and answer["text"] == "hi" and said == "worker says hi"
    assert answer["pid"] != int(client.split()[1])  # a process of its own, forked for the task
    assert answer["cwd"] == str(tmp_path) and answer["value"] == "the task's"
    assert "worker warns" in done.stderr  # the task's own stderr
    assert failed.returncode == 3 and "worker fails" in failed.stderr
    assert elsewhere.returncode == 0 and elsewhere.stdout.splitlines()[-1] == "(False, None)"
    assert served == 2  # the refused task was not served
    assert no_server.returncode == 0 and no_server.stdout.splitlines()[-1] == "(False, None)"
    assert not Path(server.address).exists()  # stopped and cleaned up


def test_a_server_that_cannot_warm_up_leaves_each_task_to_run_its_body(tmp_path: Path) -> None:
    _, env, warm = _server("no_such_module:PIPELINE")
    with warm as server:
        started = time.monotonic()
        task = _task({**env, WARM_ENV: server.address}, "echo", "text='alone'", tmp_path)
        waited = time.monotonic() - started
        served = server.served
    assert task.returncode == 0 and task.stdout.splitlines()[-1] == "(False, None)"
    assert waited < STARTING_WAIT_S / 2  # it saw the server fail, it did not wait it out
    assert served == 0


def test_the_server_imports_the_data_layer_for_the_tasks_after_the_first(tmp_path: Path) -> None:
    """The first task is forked at once, before the server imports pyarrow (and the pandas
    pyarrow loads on its first conversion); the tasks after it find them imported."""
    _, env, warm = _server("training")
    names = "names=['pyarrow', 'pandas', 'mlpipe.core.data']"
    with warm as server:
        task_env = {**env, WARM_ENV: server.address}
        first, second = (_task(task_env, "loaded", names, tmp_path) for _ in range(2))
    for task in (first, second):
        assert task.returncode == 0, task.stderr
    assert ast.literal_eval(first.stdout.splitlines()[-1]) == (True, {
        "pyarrow": False, "pandas": False, "mlpipe.core.data": False})
    assert ast.literal_eval(second.stdout.splitlines()[-1]) == (True, {
        "pyarrow": True, "pandas": True, "mlpipe.core.data": True})
