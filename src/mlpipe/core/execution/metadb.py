"""An orchestrator home whose metadata database is migrated once per orchestrator version, or
copied from a template home whose database already is: where many fresh homes would each migrate
their own database, a copy takes milliseconds.

A marker file beside the database records the version it was migrated for; one lock in the home
covers the migration and a template copy, so processes sharing a home never race on either.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from mlpipe.core.errors import ConfigError
from mlpipe.core.files import exclusive

MARKER = ".mlpipe-db-migrated"
LOCK = ".mlpipe-db.lock"


def migrate_once(home: Path, version: str, migrate: Callable[[], object]) -> float:
    """``migrate()`` unless ``home``'s marker says ``version`` already; returns its seconds."""
    with exclusive(home / LOCK, what="metadata DB migration"):
        marker = home / MARKER
        if marker.is_file() and marker.read_text().strip() == version:
            return 0.0
        started = time.perf_counter()
        migrate()
        marker.write_text(version)
        return time.perf_counter() - started


def seed_home(template_env: str, home: Path, database: str) -> bool:
    """Copy ``database`` and its marker from the home ``$template_env`` names into ``home``
    unless it has a database already; returns whether it copied. The migration still checks the
    marker against its version (a stale template costs one migration)."""
    template = os.environ.get(template_env)
    if not template:
        return False
    source, files = Path(template).expanduser(), (database, MARKER)
    if not all((source / f).is_file() for f in files):
        raise ConfigError(f"{template_env}={template}: no migrated database there "
                          f"({' and '.join(files)}); point it at a home mlpipe has run in, "
                          "or unset it")
    if source.resolve() == home.resolve():
        return False
    home.mkdir(parents=True, exist_ok=True)
    with exclusive(home / LOCK, what="metadata DB migration"):
        if (home / database).exists():
            return False
        for name in files:  # the database whole before its marker says it is there
            shutil.copyfile(source / name, home / f".{name}.copy")
            os.replace(home / f".{name}.copy", home / name)
    return True
