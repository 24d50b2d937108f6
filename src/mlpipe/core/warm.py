"""Warm task processes: one server per run imports core, the pipeline and a task body once
(core's data layer too, once the first task is under way), then forks a worker for each task
that asks.

An orchestrator that starts a fresh Python for every task (kfp.local's SubprocessRunner) has
each task import pydantic and mlpipe and validate its config again before its step: most of a
short task's time, and what the orchestrator's own no-op tasks never pay. While a run lasts, its
runner keeps a server (:func:`warm_tasks`) whose address is in ``MLPIPE_WARM_TASKS``; a task
body calls :func:`delegate`, and the server forks a worker, warm already, that runs the body
with the task process's standard streams, working folder and environment, and sends back what
it returned (or the exit code it ended with). The worker is a process created for that task, so
the step's records, output and exit code are the task's own. Where no server answers (a pod,
another interpreter or import path, a server not up yet), ``delegate`` says so and the body
runs in the task's own process. The socket is in a folder only this user can enter: a worker
runs what its caller names, as the caller could itself.

Only the standard library and core's liveness rule (itself stdlib only) are imported here: the
task process must stay as light as the orchestrator's own no-op task.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpipe.core.liveness import held, hold

#: the server's socket, set for the processes a run starts while its server is up
WARM_ENV = "MLPIPE_WARM_TASKS"
_SERVED = "served"  # the server appends one line per task it forked a worker for
_STARTING = "starting"  # there while the server warms up: a task waits for it
#: how long a task waits for a server that is still warming up before it runs on its own
STARTING_WAIT_S = 30.0


class WarmTasks:
    """A server: its address, and how many tasks it served (so far; all, once stopped)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.address = str(folder / "sock")
        self._served: int | None = None

    @property
    def served(self) -> int:
        if self._served is not None:
            return self._served
        try:
            return len((self.folder / _SERVED).read_text().splitlines())
        except OSError:
            return 0

    def stopped(self) -> None:
        self._served = self.served


@contextlib.contextmanager
def warm_tasks(imports: Sequence[str], pipeline: str, config_json: str,
               env: Mapping[str, str]) -> Iterator[WarmTasks]:
    """A server for the ``with`` block: it imports ``imports`` (the task body's module), resolves
    ``pipeline`` (a portable ref), validates ``config_json`` and plans it once, in a process
    with ``env`` (the tasks' environment: their import path); its address is in this process's
    environment, which the tasks inherit. It starts in the background: a task that asks while
    it warms up waits for it (at most ``STARTING_WAIT_S``; not once it has failed or died).
    Stopped (TERM) when the block ends; workers still running finish."""
    folder = Path(tempfile.mkdtemp(prefix="mlpipe-warm-"))
    server = WarmTasks(folder)
    (folder / _STARTING).touch()  # the server removes it once it listens, or fails
    request = folder / "request.json"  # in the folder only this user enters, not in argv
    request.write_text(json.dumps({"imports": list(imports), "pipeline": pipeline,
                                   "config": config_json}))
    lock = hold(folder)  # the server's for as long as it lives: what a waiting task watches
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlpipe.core.warm", server.address, str(request)],
            env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(lock,))
    finally:
        os.close(lock)
    before = os.environ.get(WARM_ENV)
    os.environ[WARM_ENV] = server.address
    try:
        yield server
    finally:
        if before is None:
            os.environ.pop(WARM_ENV, None)
        else:
            os.environ[WARM_ENV] = before
        server.stopped()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def delegate(target: str, **kwargs: Any) -> tuple[bool, Any]:
    """Have a warm worker call ``target`` (``module:function``) with ``kwargs`` (JSON), with this
    process's standard streams, folder and environment: ``(True, its JSON result)``;
    ``(False, None)`` when no server takes it (run it here). A worker that ended with an exit
    code ends this process with the same code (``SystemExit``)."""
    address = os.environ.get(WARM_ENV)
    if not address:
        return False, None
    folder = os.path.dirname(address)
    deadline = time.monotonic() + STARTING_WAIT_S
    while not os.path.exists(address) and _warming(folder) and time.monotonic() < deadline:
        time.sleep(0.01)  # warming up: the worker it forks is faster than importing here
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(address)
    except OSError:  # not up yet, or gone
        conn.close()
        return False, None
    request = json.dumps({"target": target, "kwargs": kwargs, "cwd": os.getcwd(),
                          "env": dict(os.environ), "argv": sys.argv, "path": sys.path,
                          "executable": sys.executable}).encode()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    with conn:
        try:
            socket.send_fds(conn, [struct.pack("!Q", len(request))], [0, 1, 2])
        except OSError:  # a standard stream closed here, or the server gone: nothing was sent
            return False, None
        conn.sendall(request)
        reply = _receive(conn)
    if reply is None:
        print(f"mlpipe: the warm worker running {target} ended without a reply",
              file=sys.stderr, flush=True)
        raise SystemExit(1)
    if reply["status"] == "refused":
        return False, None
    if reply["status"] == "exit":
        raise SystemExit(reply["code"])
    return True, reply["result"]


def run_warm(body: Callable[..., Any], **kwargs: Any) -> Any:
    """``body(**kwargs)`` (JSON in and out) in the run's warm worker when one takes it, else
    here: then this process, a task's own, ends without tearing the interpreter down. Core's
    execution is imported only then (a warm task's process stays as light as a no-op's)."""
    warm, result = delegate(f"{body.__module__}:{body.__qualname__}", **kwargs)
    if warm:
        return result
    from mlpipe.core.execution.teardown import skip_teardown_at_exit

    result = body(**kwargs)
    skip_teardown_at_exit()
    return result


def _warming(folder: str) -> bool:
    """Whether the server is still warming up: its marker is there and the folder's lock is
    held (core's liveness rule: the kernel drops it when the server dies, zombie or not)."""
    return os.path.exists(os.path.join(folder, _STARTING)) and held(Path(folder)) is True


def _receive(conn: socket.socket, fds: list[int] | None = None) -> Any:
    """One length-prefixed JSON message (and the file descriptors sent with its length, into
    ``fds``); None when the peer closed first."""
    head = b""
    while len(head) < 8:
        data, received, _flags, _addr = socket.recv_fds(conn, 8 - len(head), 3)
        if fds is not None:
            fds.extend(received)
        if not data:
            return None
        head += data
    (size,) = struct.unpack("!Q", head)
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None
        body += chunk
    return json.loads(body)


def _send(conn: socket.socket, message: Any) -> None:
    data = json.dumps(message).encode()
    conn.sendall(struct.pack("!Q", len(data)) + data)


def serve(address: str, request: Mapping[str, Any]) -> None:
    """The server: warm up, then fork a worker per connection, until terminated."""
    import threading

    starting = Path(address).with_name(_STARTING)
    try:
        for name in request["imports"]:
            importlib.import_module(name)
        _warm_up(request["pipeline"], request["config"])
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(f"{address}.new")
        listener.listen(64)
        os.replace(f"{address}.new", address)  # there only once it listens
    except Exception as exc:  # the tasks run on their own, and say what is wrong
        print(f"mlpipe: no warm task server ({type(exc).__name__}: {exc}); each task starts "
              "cold", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        starting.unlink(missing_ok=True)
    served = Path(address).with_name(_SERVED)
    later, forked = [_warm_up_data_layer], False  # for the tasks after the first one
    while True:
        if forked and later and not select.select([listener], [], [], 0)[0]:  # none waits
            with contextlib.suppress(Exception):  # then each worker imports what it needs
                later.pop()()
            continue
        conn, _ = listener.accept()
        fds: list[int] = []
        try:
            ask = _receive(conn, fds)
            # the same interpreter and import path (the task's own extra folders, such as its
            # script's, aside: the worker imports with the task's), and a single thread here:
            # a fork copies only the thread that calls it
            if ask is None or ask["executable"] != sys.executable or \
                    not set(sys.path[1:]) <= set(ask["path"]) or \
                    (ask["env"].get("PYTHONPATH") or "") != os.environ.get("PYTHONPATH", "") or \
                    threading.active_count() != 1:
                if ask is not None:
                    _send(conn, {"status": "refused"})
                continue
            with served.open("a") as log:
                log.write(f"{ask['target']}\n")
            if os.fork() == 0:
                listener.close()
                _work(conn, fds, ask)  # never returns
            forked = True
        except OSError:
            pass  # this task's connection broke: it ends with its own error
        finally:
            conn.close()
            for fd in fds:
                os.close(fd)
            _reap()


def _warm_up(pipeline: str, config_json: str) -> None:
    """What every task does first, done once: the pipeline, its validated config (plugins
    imported), the plan, the step module's code hash and the task entry point."""
    from mlpipe.core import plugins
    from mlpipe.core.cache import BASE_PACKAGES, code_version, module_version, package_version
    from mlpipe.core.config import config_from_json
    from mlpipe.core.execution.execute import execute  # noqa: F401 (imported for the workers)
    from mlpipe.core.execution.plan import plan
    from mlpipe.core.pipeline import resolve_pipeline

    pipe = resolve_pipeline(pipeline)
    config = config_from_json(config_json, pipe.config_type)
    plan(pipe, config)
    code_version()
    for module in {step.fn.__module__ for step in pipe.steps}:  # the sources each key hashes
        module_version(module)
    task = getattr(config, "task", None)
    if isinstance(task, str):
        module_version(plugins.load("task", task).__module__)
    for dist in BASE_PACKAGES:
        package_version(dist)


def _warm_up_data_layer() -> None:
    """Core's data layer (pyarrow, numpy), through which the steps read and write their rows,
    and pandas, which pyarrow imports on its first conversion from Python objects when it is
    installed: otherwise each worker that touches a table imports them again. Imported once the
    first task's worker is forked, while no task waits: that one never waits for it."""
    import pyarrow as pa

    from mlpipe.core import data  # noqa: F401 (imported for the workers)

    pa.array([])


def _reap() -> None:
    """Collect the workers that ended (they report to their task, not to the server)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _work(conn: socket.socket, fds: list[int], ask: Mapping[str, Any]) -> None:
    """The worker: the task's streams, folder and environment, the call, its exit handlers,
    the reply, then the end of this process (no interpreter teardown)."""
    import atexit
    import traceback

    for target, fd in zip((0, 1, 2), fds, strict=False):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(ask["cwd"])
    os.environ.clear()
    os.environ.update(ask["env"])
    sys.argv = list(ask["argv"])
    sys.path[:] = ask["path"]
    reply: dict[str, Any]
    try:
        module, _, name = ask["target"].partition(":")
        result = getattr(importlib.import_module(module), name)(**ask["kwargs"])
        reply = {"status": "ok", "result": result}
    except SystemExit as exc:
        code = exc.code
        if not isinstance(code, int):
            if code is not None:
                print(code, file=sys.stderr)
            code = 0 if code is None else 1
        reply = {"status": "exit", "code": code}
    except BaseException:  # reported as the task process would report it
        traceback.print_exc()
        reply = {"status": "exit", "code": 1}
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    # the task's streams are done with: an orchestrator reading them to their end (kfp.local)
    # need not wait for this process's exit, which frees all its memory first
    quiet = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)
    with contextlib.suppress(OSError):
        _send(conn, reply)
    os._exit(0)


if __name__ == "__main__":
    serve(sys.argv[1], json.loads(Path(sys.argv[2]).read_text()))
