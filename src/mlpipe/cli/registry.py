"""``mlpipe registry``: list model versions and move aliases, on any registry backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlpipe.cli.common import ConfigOpt, HomeOpt, JsonOpt, fail, out
from mlpipe.core.errors import ConfigError, MlpipeError

app = typer.Typer(help="List model versions and move aliases.", no_args_is_help=True)


def open_from_cli(config: Path | None, home: Path | None) -> Any:
    """The registry a config's ``registry:`` section names, else the local one under the home."""
    from mlpipe.core.config import load_config, plugin_section
    from mlpipe.core.paths import resolve_home
    from mlpipe.core.registry import open_registry

    cfg: Any = (
        load_config(config).registry if config else plugin_section("registry", {}, "registry")
    )
    return open_registry(cfg, resolve_home(home))


@app.command("list")
def registry_list(
    name: Annotated[str | None, typer.Argument(help="Model name (default: all)")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List model versions with their aliases and metrics."""
    from mlpipe.core import names

    try:
        if name is not None:
            names.model_name(name)
        versions = open_from_cli(config, home).versions(name)
    except MlpipeError as exc:
        raise fail(exc) from exc
    if json_:
        out.print_json(json.dumps([v.model_dump(mode="json") for v in versions]))
        return
    table = Table(title="model registry")
    for col in ("model", "version", "aliases", "eval accuracy", "sha256"):
        table.add_column(col, overflow="fold")
    for v in versions:
        table.add_row(
            v.name,
            f"v{v.version}",
            ", ".join(v.aliases),
            f"{v.metrics.get('eval_accuracy', float('nan')):.4f}",
            v.sha256[:12],
        )
    out.print(table)


@app.command("promote")
def registry_promote(
    name: str,
    version: Annotated[str, typer.Argument(help="Version number, e.g. 3 or v3")],
    alias: str,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Point ALIAS (e.g. production) at VERSION of model NAME."""
    from mlpipe.core import names

    try:
        names.model_name(name)
        names.alias(alias)
        try:
            number = int(version.lstrip("vV"))
        except ValueError:
            raise ConfigError(f"version {version!r}: expected a number like 3 or v3") from None
        ref = open_from_cli(config, home).promote(name, number, alias)
    except MlpipeError as exc:
        raise fail(exc) from exc
    out.print(f"{ref.spec} now has aliases: {', '.join(ref.aliases)}", highlight=False)
