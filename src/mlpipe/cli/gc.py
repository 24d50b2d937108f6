"""``mlpipe gc``: remove old runs and stale cache entries; never what a version or alias needs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlpipe.cli.common import HomeOpt, JsonOpt, out


def gc(
    keep_last: Annotated[
        int, typer.Option("--keep-last", help="Runs kept per pipeline, newest first")
    ] = 5,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would go", show_default=False)
    ] = False,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Remove old runs (all but the newest --keep-last per pipeline) and stale cache entries.

    Never removes a registry version, a running run, or the run behind a version an alias
    points at."""
    from mlpipe.core.gc import collect, du
    from mlpipe.core.paths import resolve_home

    root = resolve_home(home)
    before = du(root) if root.exists() else 0
    report = collect(root, keep_last=keep_last, dry_run=dry_run)
    after = du(root) if root.exists() else 0
    if json_:
        out.print_json(json.dumps({**report.as_json(), "home_bytes_before": before,
                                   "home_bytes_after": after}))
        return
    verb = "would remove" if dry_run else "removed"
    for path in report.runs:
        out.print(f"{verb} run {path}", highlight=False)
    for path in report.cache_entries:
        out.print(f"{verb} cache entry {path}", highlight=False)
    for path in report.leftovers:
        out.print(f"{verb} leftover {path}", highlight=False)
    for path in report.kept_for_aliases:
        out.print(f"kept run {path}: it published a version an alias points at", highlight=False)
    for path in report.kept_for_runs:
        out.print(f"kept run {path}: a newer run uses its cached outputs", highlight=False)
    mb = report.bytes_freed / 1e6
    out.print(
        f"{verb} {len(report.runs)} run(s), {len(report.cache_entries)} cache entr(ies), "
        f"{len(report.leftovers)} leftover(s); {mb:.1f} MB {'to free' if dry_run else 'freed'}; "
        f"home {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB",
        highlight=False,
    )
