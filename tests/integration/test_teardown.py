"""A finished step's process skips the interpreter's teardown, never its exit handlers or status."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from pathlib import Path
    out = Path(sys.argv[1])
    atexit.register(lambda: out.write_text(out.read_text() + "handler\\n"))
    from mlpipe.core.execution.teardown import skip_teardown_at_exit
    out.write_text("")
    # a non-daemon thread still writing when the main thread ends: joined before exit
    threading.Thread(target=lambda: (time.sleep(0.3),
                                     out.write_text(out.read_text() + "thread\\n"))).start()
    skip_teardown_at_exit()
    skip_teardown_at_exit()  # idempotent: the handlers still run once
    class Finalized:
        def __del__(self):  # module teardown would run this; the skipped teardown does not
            out.write_text(out.read_text() + "teardown\\n")
    keep = Finalized()
    print("partial line, no newline", end="")
    if sys.argv[2] == "raise":
        raise RuntimeError("failed after arming")
""")


def _run(tmp_path: Path, how: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    out = tmp_path / f"{how}.txt"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out), how],
                          capture_output=True, text=True, timeout=60, check=False)
    return proc, out.read_text().splitlines()


def test_a_clean_exit_runs_threads_and_handlers_then_skips_teardown(tmp_path: Path) -> None:
    proc, events = _run(tmp_path, "ok")
    assert proc.returncode == 0, proc.stderr
    assert events == ["thread", "handler"]  # no "teardown": objects were not finalized
    assert proc.stdout == "partial line, no newline"  # buffered output flushed


def test_an_uncaught_exception_keeps_its_status_and_the_usual_teardown(tmp_path: Path) -> None:
    proc, events = _run(tmp_path, "raise")
    assert proc.returncode == 1 and "failed after arming" in proc.stderr
    assert events[:2] == ["thread", "handler"] and "teardown" in events


def test_the_cli_skips_it_only_after_success(tmp_path: Path) -> None:
    """``mlpipe`` arms it for a command that exited 0; a failed command keeps its status."""
    mlpipe = [sys.executable, "-m", "mlpipe"]
    ok = subprocess.run([*mlpipe, "registry", "list", "--home", str(tmp_path)],
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*mlpipe, "registry", "show", "nope", "--home", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "nope" in bad.stderr
