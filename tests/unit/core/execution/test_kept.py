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

def main(request, result):
    ask = json.load(open(request))
    print("ran", ask["n"], "in", os.getpid(), flush=True)
    if ask.get("fail"):
        raise RuntimeError("boom " + str(ask["n"]))
    if ask.get("create"):  # a file this request makes, as a migration makes a new home's DB
        open(ask["create"], "w").write("made")
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
    first, code = run_child(module, {"n": 1}, env, tmp_path / "one.log", keep=[])
    second, code2 = run_child(module, {"n": 2}, env, tmp_path / "two.log", keep=[])
    assert code == code2 == 0 and first is not None and second is not None
    assert first["pid"] == second["pid"] != os.getpid()
    assert (tmp_path / "one.log").read_text() == f"ran 1 in {first['pid']}\n"
    assert (tmp_path / "two.log").read_text() == f"ran 2 in {first['pid']}\n"


def test_other_bound_files_or_environment_get_a_fresh_child_and_end_the_old(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep=[tmp_path / "1.db"])
    old = kept._kept[module].process
    other_key, _ = run_child(module, {"n": 2}, env, tmp_path / "b.log", keep=[tmp_path / "2.db"])
    assert old.poll() is not None  # one kept child per module: idle ones do not pile up
    other_env, _ = run_child(module, {"n": 3}, {**env, "X": "1"}, tmp_path / "c.log",
                             keep=[tmp_path / "2.db"])
    assert first and other_key and other_env
    assert len({first["pid"], other_key["pid"], other_env["pid"]}) == 3


def test_a_failed_request_reports_its_status_and_traceback_and_its_child_is_not_reused(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep=[])
    report, code = run_child(module, {"n": 2, "fail": True}, env, tmp_path / "b.log", keep=[])
    assert report is None and code == 1
    assert "RuntimeError: boom 2" in (tmp_path / "b.log").read_text()
    after, code = run_child(module, {"n": 3}, env, tmp_path / "c.log", keep=[])
    assert code == 0 and first and after and after["pid"] != first["pid"]


def test_a_child_whose_source_changed_on_disk_is_replaced_before_it_runs_old_code(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep=[])
    source = tmp_path / "src" / "kept_child_body.py"
    source.write_text("VERSION = 2\n" + BODY)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    after, code = run_child(module, {"n": 2}, env, tmp_path / "b.log", keep=[])
    assert code == 0 and first and after
    assert after["version"] == 2 and after["pid"] != first["pid"]
    assert (tmp_path / "b.log").read_text() == f"ran 2 in {after['pid']}\n"


def test_without_a_key_every_run_is_a_fresh_process(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    one, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log")
    two, _ = run_child(module, {"n": 2}, env, tmp_path / "a.log")
    assert one and two and one["pid"] != two["pid"] and module not in kept._kept


def test_a_child_whose_bound_file_was_replaced_is_replaced(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    database = tmp_path / "meta.db"
    database.write_text("one")
    first, _ = run_child(module, {"n": 1}, env, tmp_path / "a.log", keep=[database])
    database.write_text("one, written to")  # the same file: the same child
    same, _ = run_child(module, {"n": 2}, env, tmp_path / "b.log", keep=[database])
    (tmp_path / "copy.db").write_text("two")
    os.replace(tmp_path / "copy.db", database)  # another file under its name: its connections
    after, code = run_child(module, {"n": 3}, env, tmp_path / "c.log", keep=[database])  # are old
    assert code == 0 and first and same and after
    assert first["pid"] == same["pid"] != after["pid"]


def test_a_bound_file_the_first_request_creates_keeps_its_child(
        child_module: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    module, env = child_module
    database = tmp_path / "created.db"
    first, _ = run_child(module, {"n": 1, "create": str(database)}, env, tmp_path / "a.log",
                         keep=[database])
    assert database.is_file()
    again, _ = run_child(module, {"n": 2}, env, tmp_path / "b.log", keep=[database])
    assert first and again and first["pid"] == again["pid"]
