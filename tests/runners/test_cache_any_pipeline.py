"""The step cache and ``--resume`` are right for a user pipeline on every runner: inputs keyed by
content in a user section, package versions, local helper modules, ``cache explain``, resume
after fixing a bad setting, directory outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlpipe.core import plugins
from mlpipe.core.execution import get_runner
from mlpipe.core.explain import explain
from tests.support import venv_env

PIPELINE_SOURCE = '''
"""A tiny user pipeline: a CSV in a ``batch:`` section, a helper module, a folder output."""
import csv
import json
from pathlib import Path
from typing import Literal

import cachefake_dep
import cachepipe_helpers

from mlpipe.core import Pipeline, Step, StepContext
from pydantic import BaseModel

from mlpipe.core.config import PipelineSettings
from mlpipe.core.hashing import file_hashes, sha256_file, sha256_json
from mlpipe.core.inputs import InputFile
from mlpipe.core.refs import Ref


class Batch(BaseModel):
    path: InputFile
    column: str = "x"


class Report(BaseModel):
    scale: int = 1


class CacheConfig(PipelineSettings):
    pipeline: Literal["cachepipe"] = "cachepipe"
    batch: Batch
    report: Report = Report()


class RowsRef(Ref):
    kind: Literal["cachepipe_rows"] = "cachepipe_rows"


class ReportRef(Ref):
    kind: Literal["cachepipe_report"] = "cachepipe_report"


def load_batch(config, ctx: StepContext) -> RowsRef:
    with open(config.batch.path) as f:
        rows = [float(r[config.batch.column]) for r in csv.DictReader(f)]
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    out = ctx.out_dir / "rows.json"
    out.write_text(json.dumps(cachepipe_helpers.clean(rows)))
    return RowsRef(uri=str(out), sha256=sha256_file(out))


def report(config, ctx: StepContext, rows: RowsRef) -> ReportRef:
    if config.report.scale < 1:
        raise ValueError("report.scale must be >= 1")
    values = json.loads(Path(rows.uri).read_text())
    folder = ctx.out_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sum.txt").write_text(str(sum(values) * config.report.scale))
    (folder / "count.txt").write_text(str(len(values)) + cachefake_dep.TAG)
    return ReportRef(uri=str(folder), sha256=sha256_json(file_hashes(folder)))


PIPELINE = Pipeline("cachepipe", CacheConfig, (
    Step("load_batch", load_batch, "rows", "Rows of the batch", config_sections=("batch",)),
    Step("report", report, "report", "A folder report", inputs={"rows": "load_batch"},
         config_sections=("report",)),
))
'''

HELPERS_SOURCE = '''
def clean(rows):
    return [r for r in rows if r == r]
'''


def _dist(site: Path, name: str, version: str) -> None:
    """A (fake) installed distribution ``name`` at ``version`` with a top-level package."""
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (site / name).mkdir(exist_ok=True)
    (site / name / "__init__.py").write_text('TAG = ""\n')


@pytest.fixture
def userpipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "cachepipe.py").write_text(textwrap.dedent(PIPELINE_SOURCE))
    (site / "cachepipe_helpers.py").write_text(textwrap.dedent(HELPERS_SOURCE))
    _dist(site, "cachefake_dep", "1.0")
    _dist(site, "cachefake_other", "1.0")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    for name in ("cachepipe", "cachepipe_helpers", "cachefake_dep"):
        sys.modules.pop(name, None)
    return site


def _why(home: Path, run_id: str, step: str) -> dict[str, Any]:
    (record,) = explain(home, run_id, step)
    return record


@pytest.mark.slow
@pytest.mark.parametrize("runner", plugins.names("runner"))
def test_cache_and_resume_for_a_user_pipeline(
    runner: str, userpipe: Path, tmp_path: Path, home: Path
) -> None:
    import cachepipe  # type: ignore[import-not-found]

    from mlpipe.core.config import load_config

    data = tmp_path / "cfg" / "batch.csv"
    data.parent.mkdir()
    data.write_text("x\n" + "\n".join(str(i) for i in range(300)) + "\n")
    cfg_file = data.parent / "cfg.yaml"
    cfg_file.write_text("pipeline: cachepipe\nbatch:\n  path: batch.csv\n")
    os.chdir(tmp_path)  # relative paths come from the config file's folder, not from here
    cfg = load_config(cfg_file, config_type=cachepipe.CacheConfig)
    assert cfg.batch.path == data  # resolved against the config file's folder
    adapter = get_runner(runner)

    def run(config: Any = cfg, **kw: Any) -> Any:
        return adapter.run(cachepipe.PIPELINE, config, home=home, **kw)

    def cached(result: Any) -> list[bool]:
        return [s.cached for s in result.steps]

    first = run()
    assert cached(first) == [False, False]
    assert Path(first.outputs["report"].uri).is_dir()

    # an unrelated file and an unrelated package: hits, the folder output served too
    (data.parent / "notes.txt").write_text("unrelated")
    _dist(userpipe, "cachefake_other", "2.0")
    unrelated = run()
    assert cached(unrelated) == [True, True], explain(home, unrelated.run_id)

    # in one run (each change is named on its own in the step's reasons): an in-place edit of
    # the CSV named in a user section, a version change of a package the pipeline imports, an
    # edit of a local helper module
    data.write_text("x\n" + "\n".join(str(i) for i in range(150)) + "\n")
    _dist(userpipe, "cachefake_dep", "1.1")
    helpers = userpipe / "cachepipe_helpers.py"
    helpers.write_text(helpers.read_text() + "\n# reviewed\n")
    edited = run()
    assert cached(edited) == [False, False]
    assert (Path(edited.outputs["report"].uri) / "count.txt").read_text() == "150"
    why = _why(home, edited.run_id, "load_batch")
    assert why["status"] == "miss", why
    for change in ("input batch.path changed", "package cachefake_dep: '1.0' -> '1.1'",
                   "code module cachepipe_helpers changed"):
        assert change in why["reason"], (change, why)

    # a bad setting fails the second step; resume with it fixed reruns only that step
    bad = cfg.model_copy(update={"report": cfg.report.model_copy(update={"scale": 0})})
    with pytest.raises(Exception, match=r"report\.scale"):
        run(bad)
    failed = sorted((home / "runs" / "cachepipe").iterdir(), key=lambda p: p.stat().st_mtime)[-1]
    fixed = bad.model_copy(update={"report": cfg.report.model_copy(update={"scale": 2})})
    resumed = run(fixed, run_id=failed.name, resume=True)
    assert resumed.run_id == failed.name and cached(resumed) == [True, False]
    assert (Path(resumed.outputs["report"].uri) / "sum.txt").read_text() == str(
        float(sum(range(150)) * 2))
    why = _why(home, failed.name, "report")
    assert "config field report.scale: 0 -> 2" in why["reason"], why


def test_cli_resume_with_set_fixes_a_bad_setting_and_says_why(
    userpipe: Path, tmp_path: Path, home: Path
) -> None:
    data = tmp_path / "batch.csv"
    data.write_text("x\n1\n2\n")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("pipeline: cachepipe\nbatch:\n  path: batch.csv\nreport:\n  scale: 0\n")

    def mlpipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlpipe", *args, "--home", str(home)],
                              capture_output=True, text=True, env=venv_env(), timeout=300,
                              check=False, cwd=userpipe)

    failed = mlpipe("run", "cachepipe:PIPELINE", "-c", str(cfg_file))
    assert failed.returncode == 1, failed.stderr
    (run_dir,) = (home / "runs" / "cachepipe").iterdir()
    resumed = mlpipe("run", "cachepipe:PIPELINE", "--resume", run_dir.name,
                     "--set", "report.scale=3")
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: reused load_batch" in resumed.stderr
    assert "resume: reran report: config field report.scale: 0 -> 3" in resumed.stderr
    assert (run_dir / "report" / "report" / "sum.txt").read_text() == "9.0"
    shown = mlpipe("cache", "explain", run_dir.name, "--json")
    assert shown.returncode == 0, shown.stderr
    report = {r["step"]: r for r in json.loads(shown.stdout)}
    assert report["load_batch"]["status"] == "hit" and report["report"]["status"] == "miss"
    assert report["report"]["changes"][0]["name"] == "report.scale"


def test_a_missing_input_file_is_named_by_its_dotted_path(
    userpipe: Path, tmp_path: Path, home: Path
) -> None:
    import cachepipe  # type: ignore[import-not-found]

    from mlpipe.core import run_pipeline
    from mlpipe.core.config import load_config

    cfg_file = tmp_path / "conf" / "cfg.yaml"
    cfg_file.parent.mkdir()
    cfg_file.write_text("pipeline: cachepipe\nbatch:\n  path: missing.csv\n")
    cfg = load_config(cfg_file, config_type=cachepipe.CacheConfig)
    assert cfg.batch.path == cfg_file.parent / "missing.csv"  # the file's folder, not the cwd
    with pytest.raises(Exception, match=r"batch\.path: file not found") as info:
        run_pipeline(cachepipe.PIPELINE, cfg, home=home)
    assert getattr(info.value, "exit_code", None) == 2
