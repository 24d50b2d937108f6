"""``mlpipe cache explain``: per step of a run, hit or miss, and what changed for a miss."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlpipe.cli.common import HomeOpt, JsonOpt, out

app = typer.Typer(help="The step cache: why a step was or was not served from it.",
                  no_args_is_help=True)


@app.command("explain")
def explain(
    run_id: Annotated[str, typer.Argument(help="The run (see mlpipe runs list)")],
    step: Annotated[str | None, typer.Argument(help="Only this step")] = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Per step: hit or miss, and for a miss the part of its key that changed (a config field,
    an input file, a code module, a package version) against the closest earlier entry."""
    from mlpipe.core.explain import explain as explain_run
    from mlpipe.core.paths import resolve_home

    report = explain_run(resolve_home(home), run_id, step)
    if json_:
        out.print_json(json.dumps(report, default=str))
        return
    for record in report:
        line = f"{record['step']}: {record['status']}"
        if record.get("reason"):
            line += f" ({record['reason']})"
        out.print(line, highlight=False, markup=False)
