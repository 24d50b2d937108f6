"""Task bodies for tests/unit/core/test_warm.py: what a warm worker runs, and where it runs."""

from __future__ import annotations

import os
import sys
from typing import Any


def echo(text: str) -> dict[str, Any]:
    print(f"worker says {text}", flush=True)
    print("worker warns", file=sys.stderr, flush=True)
    return {"text": text, "pid": os.getpid(), "cwd": os.getcwd(),
            "value": os.environ.get("WARM_TEST_VALUE")}


def fail(code: int) -> None:
    print("worker fails", file=sys.stderr, flush=True)
    raise SystemExit(code)


def loaded(names: list[str]) -> dict[str, bool]:
    return {name: name in sys.modules for name in names}
