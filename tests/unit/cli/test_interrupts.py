"""Ctrl-C raises KeyboardInterrupt in the CLI's process, and an interrupt a finaliser dropped
is raised again in the code the finaliser interrupted: the run stops instead of finishing."""

from __future__ import annotations

import subprocess
import sys

from tests.support import venv_env

# a finaliser that receives the signal (the handler runs inside it), then a loop that must stop
PROGRAM = """
import os, signal, sys
from mlpipe.cli.interrupts import Interrupts

interrupts = Interrupts()
if sys.argv[1] == "catch":
    interrupts.catch()
else:  # the handler alone, as before: the finaliser drops the interrupt
    signal.signal(signal.SIGINT, interrupts._on_signal)

class Failing:
    def __del__(self):
        raise ValueError("any other error a finaliser raises is reported as before")

Failing()

class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass

def work():
    Finaliser()
    done = 0
    for _ in range(100_000):
        done += 1
    return done

try:
    print("finished", work(), interrupts.received)
except KeyboardInterrupt:
    print("interrupted", interrupts.received, sys.gettrace())
"""


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROGRAM, mode], env=venv_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_an_interrupt_a_finaliser_drops_is_raised_again_where_the_finaliser_ran() -> None:
    dropped = _run("handler-only")
    assert dropped.stdout.strip() == "finished 100000 [2]", dropped.stderr
    assert "Exception ignored" in dropped.stderr

    caught = _run("catch")
    # raised before the loop's first line; tracing is off again once it is raised
    assert caught.stdout.strip() == "interrupted [2] None", caught.stderr
    assert caught.stderr.count("Exception ignored") == 1  # the other finaliser's error alone
    assert "ValueError: any other" in caught.stderr and caught.returncode == 0


# an exit handler (a tracker's finish) that receives Ctrl-C after the command succeeded
AFTER_SUCCESS = """
import atexit, os, signal, sys

def finish():
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(100_000):
        pass
    print("exit handler finished", flush=True)

atexit.register(finish)
sys.argv = ["mlpipe", "--version"]
from mlpipe.cli import main
main()
"""


def test_a_signal_after_the_command_succeeded_changes_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", AFTER_SUCCESS], env=venv_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "exit handler finished"
    assert done.stdout.startswith("mlpipe ") and done.stderr == ""
