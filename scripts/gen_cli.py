"""Regenerate the reference part of docs/cli.md from the real ``mlpipe ... -h`` output.

    .venv/bin/python scripts/gen_cli.py > /tmp/ref.md   # then paste it under "## Reference"

Every command and flag comes from the installed CLI's own help; nothing is written by hand.
"""

from __future__ import annotations

import os
import re

ENV = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}


def help_text(*words: str) -> str:
    """What ``mlpipe WORDS -h`` prints, from the real app (in this process: fast)."""
    from typer.testing import CliRunner

    from mlpipe.cli import app

    result = CliRunner().invoke(app, [*words, "-h"], env=ENV, prog_name="mlpipe")
    if result.exit_code != 0:
        raise SystemExit(f"mlpipe {' '.join(words)} -h failed: {result.output}")
    return result.output


def boxes(text: str) -> tuple[str, str, dict[str, list[list[str]]]]:
    """(usage, summary, {box title: rows of fields}) from one help screen."""
    usage = summary = ""
    found: dict[str, list[list[str]]] = {}
    title = None
    for line in text.splitlines():
        if line.strip().startswith("Usage:"):
            usage = line.strip().removeprefix("Usage:").strip()
        elif line.startswith("╭─"):
            title = line.strip("╭─╮ ").split(" ─")[0].strip()
            found[title] = []
        elif line.startswith("╰"):
            title = None
        elif title and line.startswith("│"):
            inner = line.strip().strip("│").rstrip()
            fields = re.split(r"\s{2,}", inner.strip())
            indent = len(inner) - len(inner.lstrip())
            wrapped = indent > 2 if title == "Commands" else indent >= 10
            if wrapped and found[title]:  # a wrapped help line
                found[title][-1][-1] += " " + inner.strip()
            else:
                found[title].append(fields)
        elif usage and not summary and line.strip() and not found:
            summary = line.strip()
    return usage, summary, found


def option_row(fields: list[str]) -> str:
    flags, metavar, rest = [], "", []
    for field in fields:
        if field == "*":
            continue
        if field.startswith("-") and not rest and not metavar:
            flags.append(field.lstrip("* "))
        elif field.startswith("<") and not metavar and not rest:
            metavar = field
        else:
            rest.append(field)
    names = ", ".join(f"`{f}`" for f in flags)
    value = f"`{metavar}`" if metavar and metavar != "<bool>" else ""
    return f"| {names} | {value} | {' '.join(rest).replace('|', '/')} |"


def section(words: list[str]) -> list[str]:
    usage, summary, found = boxes(help_text(*words))
    out = [f"### `mlpipe {' '.join(words)}`", "", summary, "", f"`{usage}`", ""]
    for title in ("Arguments", "Options"):
        rows = found.get(title, [])
        if title == "Options":
            rows = [r for r in rows if not any(f.startswith("--help") for f in r)]
        if not rows:
            continue
        out += [f"| {title.lower()[:-1]} | value | what |", "|---|---|---|"]
        if title == "Arguments":
            for r in rows:
                r = [f for f in r if f != "*"]
                out.append(f"| `{r[0]}` | `{r[1]}` | {' '.join(r[2:]).replace('|', '/')} |")
        else:
            out += [option_row(r) for r in rows]
        out.append("")
    return out


def commands(words: list[str]) -> list[str]:
    return [r[0] for r in boxes(help_text(*words))[2].get("Commands", []) if r and r[0]]


def main() -> None:
    lines: list[str] = []
    for name in commands([]):
        subs = commands([name])
        if subs:
            for sub in subs:
                lines += section([name, sub])
        else:
            lines += section([name])
    print("\n".join(lines).rstrip())


if __name__ == "__main__":
    main()
