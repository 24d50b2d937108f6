"""A child process kept between runs: the next request with the same module, environment and
folder goes to the child that served the last one, already warm.

A runner whose orchestrator fixes its home, database or logging when first imported runs each
pipeline in a child (:func:`~mlpipe.core.execution.child.run_child`). A fresh child pays the
orchestrator's imports and first-run set-up every time; a kept one pays them once per process,
as an in-process runner (local, Dagster) does. The child serves one request at a time
(``python -m mlpipe.core.execution.kept MODULE``: ``MODULE.main(request, result)`` per request,
its output appended to that request's log) and is left, for a fresh one, when:

- a request names another module, environment or folder: one kept child per module, so idle
  ones never pile up;
- a file its state is bound to (the runner's ``bound`` files: its database) was replaced since
  its last request: deleted, copied again, made again with its folder;
- ``main`` ended with a non-zero status or the child died: its state is unknown;
- a source file it imported from outside the installed packages changed (a user's pipeline or
  an editable mlpipe, edited between runs): it would run the old code;
- this process exits (the child ends when its stdin closes).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from mlpipe.core.execution.teardown import exit_now, flush_streams

_kept: dict[str, _Kept] = {}  # module -> its kept child
_lock = threading.Lock()


class _Kept:
    """The parent's handle on one kept child."""

    def __init__(self, module: str, env: dict[str, str], key: object,
                 bound: Sequence[Path]) -> None:
        self.module, self.key, self.bound = module, key, tuple(bound)
        self.files = _identities(self.bound)  # the bound files as its last request left them
        self.busy = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, module], env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def ask(self, request: dict[str, str]) -> dict[str, Any] | None:
        """Send one request; its reply, or None when the child ended without one."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            line = stdout.readline()
        except OSError:
            return None
        return json.loads(line) if line else None

    def close(self) -> None:
        """End the child: its stdin closes, it exits; killed if it does not."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def run_kept(module: str, request_path: Path, result_path: Path, env: dict[str, str],
             log_path: Path, bound: Sequence[Path]) -> int | None:
    """``module.main(request_path, result_path)`` in the kept child for (module, env, folder),
    started if there is none or its ``bound`` files were replaced since its last request; its
    output appended to ``log_path``. Returns its exit status, or None when no kept child could
    take it (another thread's run holds it: run a fresh child)."""
    identity = (tuple(sorted(env.items())), os.getcwd(), tuple(bound))
    with _lock:
        child = _kept.get(module)
        if child is not None and child.busy:
            return None
        if child is not None and (child.key != identity or child.process.poll() is not None
                                  or child.files != _identities(child.bound)):
            child.close()
            child = None
        if child is None:
            child = _kept[module] = _Kept(module, env, identity, bound)
        child.busy = True
    request = {"request": str(request_path), "result": str(result_path), "log": str(log_path)}
    reply: dict[str, Any] | None = None
    try:
        reply = child.ask(request)
        if reply is not None and reply.get("stale"):  # its code changed on disk: a fresh one
            child.close()
            child = _Kept(module, env, identity, bound)
            with _lock:
                _kept[module] = child
            child.busy = True
            reply = child.ask(request)
    finally:
        child.busy = False
        child.files = _identities(child.bound)  # what this request made of them (a new DB)
        if reply is None or reply.get("code") != 0:  # died, failed or interrupted: not reused
            with _lock:
                if _kept.get(module) is child:
                    del _kept[module]
            child.process.kill()
            child.close()
    if reply is None:
        return child.process.returncode or 1
    return int(reply["code"])


@atexit.register
def close_all() -> None:
    """End every kept child (also what happens when this process ends without exit handlers:
    each child's stdin closes)."""
    with _lock:
        children = list(_kept.values())
        _kept.clear()
    for child in children:
        child.close()


def serve(module: str) -> None:
    """The child: one request per stdin line, one reply per stdout line, until stdin closes."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.close(quiet)
    main = importlib.import_module(module).main
    sources: dict[str, int] = {}
    for line in sys.stdin:
        ask = json.loads(line)
        if any(_mtime(path) != seen for path, seen in sources.items()):
            _reply(replies, {"stale": True})
            break
        code = _serve_one(main, ask)
        sources = _own_sources()
        _reply(replies, {"code": code})
        if code != 0:
            break
    exit_now(0)


def _serve_one(main: Any, ask: dict[str, str]) -> int:
    """``main`` on one request, this process's output (its fds 1 and 2) in the request's log."""
    import traceback

    log = os.open(ask["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    saved = os.dup(2)
    flush_streams()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    try:
        result = main(ask["request"], ask["result"])
        code = 0 if result is None else int(result)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # reported in the run's log, as a fresh child's would be
        traceback.print_exc()
        code = 1
    finally:
        flush_streams()
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.close(quiet)
        os.dup2(saved, 2)
        os.close(saved)
    return code


def _own_sources() -> dict[str, int]:
    """The imported modules' files outside the installed packages and the standard library,
    with their modification times: the code that can change between two requests."""
    installed = tuple({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix,
                                                      sys.exec_prefix, sys.base_exec_prefix)})
    found: dict[str, int] = {}
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if isinstance(path, str) and not path.startswith(installed):
            found[path] = _mtime(path)
    return found


def _identities(paths: Sequence[Path]) -> tuple[tuple[int, int] | None, ...]:
    """Each file's (device, inode), None when absent: a file replaced is another file."""
    found: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((info.st_dev, info.st_ino))
    return tuple(found)


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _reply(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
