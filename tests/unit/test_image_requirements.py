"""docker/requirements.py: the image's dependency layer depends on the dependency lists only, so
an edit elsewhere in pyproject.toml reuses the torch and dependency layers (no reinstall)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.support import ROOT, load_script


def _script() -> ModuleType:
    return load_script(ROOT / "docker" / "requirements.py", "image_requirements")


def test_the_default_extras_give_the_dependencies_and_their_own() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = _script().requirements(ROOT / "pyproject.toml", ["dagster", "wandb"])
    wanted = {*project["dependencies"], *project["optional-dependencies"]["dagster"],
              *project["optional-dependencies"]["wandb"]}
    assert set(reqs) == wanted and reqs == sorted(reqs)


def test_self_referencing_extras_expand_and_unknown_ones_are_named(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "mlpipe"\ndependencies = ["a>=1"]\n'
                         '[project.optional-dependencies]\nx = ["b"]\ny = ["c", "mlpipe[x]"]\n'
                         'all = ["mlpipe[x,y]"]\n')
    assert _script().requirements(pyproject, ["all"]) == ["a>=1", "b", "c"]
    with pytest.raises(SystemExit, match="no extra 'z'"):
        _script().requirements(pyproject, ["z"])


def test_an_edit_outside_the_dependency_lists_changes_nothing(tmp_path: Path) -> None:
    text = (ROOT / "pyproject.toml").read_text()
    edited = tmp_path / "pyproject.toml"
    edit = "[tool.pytest.ini_options]\n# an edit\nconsole_output_style = 'count'"
    edited.write_text(text.replace("[tool.pytest.ini_options]", edit))
    assert edited.read_text() != text
    script = _script()
    assert script.requirements(edited, ["dagster", "wandb"]) == script.requirements(
        ROOT / "pyproject.toml", ["dagster", "wandb"])
