"""Every wait in the test suite has its own deadline, so a hang fails in seconds to minutes with
the call that hung named, not at the suite's 900 s timeout with a thread dump.

Checked on the source of every test file: a ``subprocess`` call, a ``Popen`` ``wait`` or
``communicate`` and a future's ``result`` pass ``timeout``; ``multiprocessing.Pool`` is not used
(its exit terminates workers and can hang on one caught mid-shutdown: seen in CI; a
``ProcessPoolExecutor`` with ``timeout=`` on ``map``/``result`` joins finished workers instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SUBPROCESS_CALLS = {"run", "check_output", "check_call", "call"}
WAITS = {"wait", "communicate", "result"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, owner = node.func.attr, node.func.value
        keywords = {k.arg for k in node.keywords}
        where = f"{path.name}:{node.lineno}"
        if name == "Pool":
            found.append(f"{where}: multiprocessing Pool (use ProcessPoolExecutor + timeout)")
        elif (name in SUBPROCESS_CALLS and isinstance(owner, ast.Name)
              and owner.id == "subprocess" and "timeout" not in keywords):
            found.append(f"{where}: subprocess.{name}(...) without timeout=")
        elif name in WAITS and "timeout" not in keywords and not node.args:
            found.append(f"{where}: .{name}() without timeout=")
    return found


def test_every_wait_in_the_tests_has_a_deadline() -> None:
    found = [f"{path.parent.relative_to(TESTS.parent)}/{v}"
             for path in sorted(TESTS.rglob("*.py")) for v in _violations(path)]
    assert not found, "waits without a deadline:\n" + "\n".join(found)


def test_the_check_sees_each_kind_of_wait(tmp_path: Path) -> None:
    source = tmp_path / "t.py"
    source.write_text(
        "import subprocess, multiprocessing as mp\n"
        "subprocess.run(['x'])\n"
        "subprocess.run(['x'], timeout=5)\n"
        "p = subprocess.Popen(['x'])\n"
        "p.wait()\n"
        "p.wait(timeout=5)\n"
        "p.communicate()\n"
        "f.result()\n"
        "mp.get_context('spawn').Pool(2)\n"
    )
    lines = sorted(int(v.split(":")[1]) for v in _violations(source))
    assert lines == [2, 5, 7, 8, 9]
