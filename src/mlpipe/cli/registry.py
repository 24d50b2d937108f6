"""``mlpipe registry``: list, show, diff and delete model versions, move aliases, verify and
repair, on any registry backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlpipe.cli.common import ConfigOpt, HomeOpt, JsonOpt, out
from mlpipe.core.errors import ConfigError, MlpipeError

app = typer.Typer(
    help="List, show, diff and delete model versions; move aliases.", no_args_is_help=True
)


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

    if name is not None:
        names.model_name(name)
    registry = open_from_cli(config, home)
    versions = registry.versions(name)
    _warn_damage(registry, name)
    if json_:
        out.print_json(json.dumps([v.model_dump(mode="json") for v in versions]))
        return
    out.print(version_table(versions, out.width))


def version_table(versions: list[Any], width: int) -> Table:
    """Names, versions, run ids and hashes never fold mid-word: aliases wrap between aliases,
    and the columns that do not fit ``width`` (the hash, the run, the date) are left out."""
    rows = [(v.name, f"v{v.version}", ", ".join(v.aliases) or "-",
             f"{v.metrics.get('eval_accuracy', float('nan')):.4f}",
             (v.created_at or "-").replace("T", " ")[:16], v.run_id or "-", v.sha256[:12])
            for v in versions]
    heads = ("model", "version", "aliases", "eval acc", "created (UTC)", "run", "sha256")
    need = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(heads)]
    need[2] = max([len("aliases"), *(len(a) + 1 for r in rows for a in r[2].split(", "))])
    shown = list(range(len(heads)))
    for dropped in (6, 5, 4):  # what `registry show` and --json still have
        if sum(need[i] + 2 for i in shown) <= width:
            break
        shown.remove(dropped)
    table = Table(title="model registry", box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for i in shown:
        table.add_column(heads[i], no_wrap=i != 2, overflow="ellipsis" if i != 2 else "fold",
                         min_width=need[i] if i == 2 else None)
    for r in rows:
        table.add_row(*(r[i] for i in shown))
    return table


def _warn_damage(registry: Any, name: str | None) -> None:
    """One stderr line per damaged thing a quick look finds (no hashing): list still works."""
    from mlpipe.cli.common import err

    check = getattr(registry, "verify", None)
    if check is None:
        return
    try:
        damaged = [f for f in check(name, deep=False) if f.damage]
    except MlpipeError:
        return
    for f in damaged:
        err.print(f"warning: {f.model}: {f.problem}", markup=False, highlight=False, soft_wrap=True)
    if damaged:
        err.print("run `mlpipe registry verify` for the details", markup=False, soft_wrap=True)


def _version_number(version: str) -> int:
    try:
        return int(version.lstrip("vV"))
    except ValueError:
        raise ConfigError(f"version {version!r}: expected a number like 3 or v3") from None


@app.command("show")
def registry_show(
    spec: Annotated[str, typer.Argument(help="NAME:alias or NAME:vN (bare NAME: latest)")],
    config: ConfigOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show one version: its lineage (run, runner, data, config, base model, metrics) and the
    history of the aliases of its model."""
    from mlpipe.core import names
    from mlpipe.core.registry import parse_spec

    name, _ = parse_spec(spec)
    names.model_name(name)
    registry = open_from_cli(config, home)
    ref = registry.resolve(spec)
    history = registry.history(name) if hasattr(registry, "history") else []
    if json_:
        out.print_json(json.dumps({**ref.model_dump(mode="json"), "alias_history": history}))
        return
    out.print(f"[bold]{ref.spec}[/bold]  aliases: {', '.join(ref.aliases) or '-'}")
    rows: list[tuple[str, Any]] = [
        ("backend", ref.backend),
        ("files", ref.uri),
        ("manifest sha256", ref.sha256),
    ]
    shown_once = ("metrics", "manifest_sha256")  # the hash is the row above
    rows += [(k, v) for k, v in sorted(ref.lineage.items()) if k not in shown_once]
    rows += [(f"metric {k}", f"{v:.4f}") for k, v in sorted(ref.metrics.items())]
    table = Table(show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)
    if history:
        moves = Table(title=f"alias history of {name}")
        for col in ("when (UTC)", "alias", "from", "to", "run"):
            moves.add_column(col, overflow="fold")
        for e in history:
            moves.add_row(
                str(e.get("at", "")),
                str(e.get("alias", "")),
                "-" if e.get("from") is None else f"v{e['from']}",
                "-" if e.get("to") is None else f"v{e['to']}",
                str(e.get("run_id") or "-"),
            )
        out.print(moves)


@app.command("diff")
def registry_diff(
    a: Annotated[str, typer.Argument(help="NAME:vN or NAME:alias")],
    b: Annotated[str, typer.Argument(help="NAME:vN or NAME:alias")],
    config: ConfigOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Compare two versions: metrics, the config fields that differ, the data hash."""
    from mlpipe.core.registry import diff_versions

    registry = open_from_cli(config, home)
    diff = diff_versions(registry.resolve(a), registry.resolve(b))
    if json_:
        out.print_json(json.dumps(diff, default=str))
        return
    table = Table(title=f"{diff['a']} -> {diff['b']}")
    for col in ("", diff["a"], diff["b"], "change"):
        table.add_column(col, overflow="fold")
    for key, m in diff["metrics"].items():
        fmt = [("-" if x is None else f"{x:.4f}") for x in (m["a"], m["b"])]
        delta = "-" if m["delta"] is None else f"{m['delta']:+.4f}"
        table.add_row(f"metric {key}", *fmt, delta)
    for key, c in diff["config"].items():
        table.add_row(f"config {key}", str(c["a"]), str(c["b"]), "changed")
    for key, c in diff["lineage"].items():
        table.add_row(key, str(c["a"]), str(c["b"]), "changed")
    out.print(table)
    out.print("same data" if diff["same_data"] else "different data (data_sha256 differs)")
    if not diff["config_compared"]:
        out.print("config fields not compared: the files are not on this machine", style="dim")


@app.command("delete")
def registry_delete(
    name: str,
    version: Annotated[str, typer.Argument(help="Version number, e.g. 3 or v3")],
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Delete VERSION of model NAME (refused while an alias points at it)."""
    from mlpipe.core import names

    names.model_name(name)
    number = _version_number(version)
    open_from_cli(config, home).delete(name, number)
    out.print(f"deleted {name}:v{number}", highlight=False)


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

    names.model_name(name)
    names.alias(alias)
    number = _version_number(version)
    ref = open_from_cli(config, home).promote(name, number, alias)
    out.print(f"{ref.spec} now has aliases: {', '.join(ref.aliases)}", highlight=False)


def _check(command: str, name: str | None, config: Path | None, home: Path | None) -> list[Any]:
    """Run the backend's ``verify`` or ``repair``; backends whose server keeps its own
    integrity have neither, which is bad input here (exit 2)."""
    from mlpipe.core import names

    if name is not None:
        names.model_name(name)
    registry = open_from_cli(config, home)
    method = getattr(registry, command, None)
    if method is None:
        raise ConfigError(
            f"registry backend '{registry.backend}' has no `{command}`: its server keeps "
            f"its own integrity (the local backend has both)"
        )
    found: list[Any] = method(name)
    return found


def _print_findings(findings: list[Any], json_: bool, empty: str) -> None:
    if json_:
        out.print_json(json.dumps([f.as_json() for f in findings]))
        return
    if not findings:
        out.print(empty, highlight=False)
    for f in findings:
        label = "damaged" if f.damage else "note"
        out.print(f"{label}: {f.model}: {f.problem}", markup=False, highlight=False, soft_wrap=True)
        out.print(f"  {f.path}", markup=False, highlight=False, soft_wrap=True)
        if f.fix:
            out.print(f"  fix: {f.fix}", markup=False, highlight=False, soft_wrap=True)


@app.command("verify")
def registry_verify(
    name: Annotated[str | None, typer.Argument(help="Model name (default: all)")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Check every file of every version against its manifest, and the aliases; exit 1 if
    anything is damaged (leftovers of interrupted writes are listed but harmless)."""
    findings = _check("verify", name, config, home)
    _print_findings(findings, json_, "every version verifies; every alias points at one")
    if any(f.damage for f in findings):
        raise typer.Exit(1)


@app.command("repair")
def registry_repair(
    name: Annotated[str | None, typer.Argument(help="Model name (default: all)")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Remove what interrupted writes left and rebuild a damaged state file; damaged versions
    are reported (by `verify`), never deleted here."""
    _print_findings(_check("repair", name, config, home), json_, "nothing to repair")
