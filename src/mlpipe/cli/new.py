"""``mlpipe new``: start a pipeline of your own from a template that runs as generated."""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated

import typer

from mlpipe.cli.common import err, out
from mlpipe.core.errors import ConfigError

app = typer.Typer(help="Start a pipeline of your own from a template.", no_args_is_help=True)

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
#: template -> the file it becomes (``{name}``: the pipeline's name)
_FILES = {
    "pipeline.py.tmpl": "{name}.py",
    "config.yaml.tmpl": "{name}.yaml",
    "test_pipeline.py.tmpl": "test_{name}.py",
}


@app.command("pipeline")
def new_pipeline(
    name: Annotated[str, typer.Argument(help="The pipeline's name, also its module: my_scoring")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the three files go (created if missing)")
    ] = Path("."),
) -> None:
    """Write NAME.py (a two-step pipeline), NAME.yaml (its config) and test_NAME.py (runs it on
    every installed runner); each passes as generated."""
    written = write_pipeline(name, directory)
    err.print(f"wrote the {name} pipeline:", highlight=False, markup=False)
    for path in written:
        out.print(str(path), markup=False, highlight=False, soft_wrap=True)
    err.print(f"next: cd {directory} && mlpipe run {name}:PIPELINE --config {name}.yaml "
              f"[--runner dagster]; pytest test_{name}.py", markup=False, highlight=False,
              soft_wrap=True)


def write_pipeline(name: str, directory: Path) -> list[Path]:
    """The three files from the templates; refuses (exit 2, nothing written) a name that is not
    a module name or a file that already exists."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ConfigError(f"pipeline name {name!r}: use lower-case letters, digits and '_', "
                          "starting with a letter (it is also the module's name)")
    targets = {template: directory / file.format(name=name) for template, file in _FILES.items()}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise ConfigError(f"{', '.join(existing)}: already exists; pick another name or --dir")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--dir {directory}: is a file, not a directory")
    camel = "".join(part.capitalize() for part in name.split("_"))
    texts = {template: Template(resources.files("mlpipe").joinpath("templates", template)
                                .read_text()).substitute(name=name, Name=camel)
             for template in targets}  # every template read before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    for template, path in targets.items():
        path.write_text(texts[template])
    return [path.resolve() for path in targets.values()]
