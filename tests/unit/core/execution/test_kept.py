"""Core's kept child (mlpipe.core.execution.kept), through run_child: a real child process per
test module, reused while its module, environment, folder and key stay the same."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipe.core.execution import kept
from mlpipe.core.execution.child import run_child

BODY = '''
import json, os

SERVED = []

def stale():  # the module's own test of its state: here, a file beside it, once it has served
    return bool(SERVED) and os.path.exists(os.path.join(os.path.dirname(__file__), "stale"))

def main(request, result):
    SERVED.append(1)
    ask = json.load(open(request))
    print("ran", ask["n"], "in", os.getpid(), flush=True)
    if ask.get("fail"):
        raise RuntimeError("boom " + str(ask["n"]))
    json.dump({"pid": os.getpid(), "n": ask["n"], "version": VERSION}, open(result, "w"))

if __name__ == "__main__":  # a fresh child, as without a key
    import sys
    main(*sys.argv[1:3])
'''


@pytest.fixture
def child_module(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    source = tmp_path / "src"
    source.mkdir()
    (source / "kept_child_body.py").write_text("VERSION = 1\n" + BODY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), *sys.path[1:]])}
    yield "kept_child_body", env
    kept.close_all()


def test_the_next_request_goes_to_the_same_child_and_each_log_gets_its_own_output(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, code = run_child(module, {"n": 1}, env, tmp_path / "one.log", keep="db")
    second, code2 = run_child(module, {"n": 2}, env, tmp_path / "two.log", keep="db")
    assert code == code2 == 0 and first is not None and second is not None
    assert first["pid"] == second["pid"] != os.getpid()
    assert (tmp_path / "one.log").read_text() == f"ran 1 in {first['pid']}\n"
    assert (tmp_path / "two.log").read_text() == f"ran 2 in {first['pid']}\n"


def test_another_key_or_environment_gets_a_fresh_child_and_ends_the_old(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep="db-1")
    old = kept._kept[module].process
    other_key, _ = run_child(module, {"n": 2}, env, tmp_path / "b.log", keep="db-2")
    assert old.poll() is not None  # one kept child per module: idle ones do not pile up
    other_env, _ = run_child(module, {"n": 3}, {**env, "X": "1"}, tmp_path / "c.log", keep="db-2")
    assert first and other_key and other_env
    assert len({first["pid"], other_key["pid"], other_env["pid"]}) == 3


def test_a_failed_request_reports_its_status_and_traceback_and_its_child_is_not_reused(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep="db")
    report, code = run_child(module, {"n": 2, "fail": True}, env, tmp_path / "b.log", keep="db")
    assert report is None and code == 1
    assert "RuntimeError: boom 2" in (tmp_path / "b.log").read_text()
    after, code = run_child(module, {"n": 3}, env, tmp_path / "c.log", keep="db")
    assert code == 0 and first and after and after["pid"] != first["pid"]


def test_a_child_whose_source_changed_on_disk_is_replaced_before_it_runs_old_code(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep="db")
    source = tmp_path / "src" / "kept_child_body.py"
    source.write_text("VERSION = 2\n" + BODY)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    after, code = run_child(module, {"n": 2}, env, tmp_path / "b.log", keep="db")
    assert code == 0 and first and after
    assert after["version"] == 2 and after["pid"] != first["pid"]
    assert (tmp_path / "b.log").read_text() == f"ran 2 in {after['pid']}\n"


def test_without_a_key_every_run_is_a_fresh_process(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    one, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log")
    two, _ = run_child(module, {"n": 2}, env, tmp_path / "a.log")
    assert one and two and one["pid"] != two["pid"] and module not in kept._kept


def test_a_child_whose_module_says_it_is_stale_is_replaced(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep="db")
    (tmp_path / "src" / "stale").touch()  # say, the database file it opened was replaced
    after, code = run_child(module, {"n": 2}, env, tmp_path / "b.log", keep="db")
    assert code == 0 and first and after and after["pid"] != first["pid"]
