"""Predicting with a registry version: files in and out through the CLI, and the Python API,
for both tasks. Real models (tiny ones), real files, the real ``mlpipe`` process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import mlpipe
from mlpipe.core import TRAINING, load_config, run_pipeline
from mlpipe.core.errors import ConfigError
from mlpipe.tasks.classification.synthetic import generate_rows
from mlpipe.tasks.text_to_sql.synthetic import generate_sql_rows
from tests.support import ROOT, TINY_TRAINING, venv_env

SQL_TRAINING = ROOT / "configs" / "tiny" / "text-to-sql-training.yaml"


def _mlpipe(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpipe", *args, "--home", str(home)],
        capture_output=True, text=True, env={**venv_env(), "MLPIPE_PROGRESS": "off"},
        timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sentiment_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier trained on a csv with its own text column and label names (neg/pos)."""
    root = tmp_path_factory.mktemp("predict")
    data = root / "reviews.csv"
    rows = list(generate_rows(300, 5, 0.0))
    pa_rows = {"review": [t for t, _ in rows], "sentiment": [("neg", "pos")[y] for _, y in rows]}
    pacsv.write_csv(pa.table(pa_rows), data)
    cfg = load_config(TINY_TRAINING, [
        "data.source=files", f"data.path={data}", "data.text_column=review",
        "data.label_column=sentiment", "data.label_names=[neg, pos]", "training.epochs=1",
        "registry.model_name=reviews",
    ])  # fmt: skip
    run_pipeline(TRAINING, cfg, home=root / "home")
    return root / "home"


def _input_rows(n: int = 7) -> pa.Table:
    texts = [t for t, _ in generate_rows(n, 11, 0.0)]
    texts[1] = "a [bold] film, with \"quotes\" and commas"  # kept verbatim, never markup
    return pa.table({"id": list(range(n)), "review": texts, "note": [f"n{i}" for i in range(n)]})


@pytest.mark.parametrize("fmt_in,fmt_out", [("csv", "parquet"), ("jsonl", "csv"),
                                            ("parquet", "jsonl")])
def test_predict_file_keeps_the_users_columns(
    sentiment_home: Path, tmp_path: Path, fmt_in: str, fmt_out: str
) -> None:
    table = _input_rows()
    source, target = tmp_path / f"in.{fmt_in}", tmp_path / "sub" / f"out.{fmt_out}"
    if fmt_in == "csv":
        pacsv.write_csv(table, source)
    elif fmt_in == "parquet":
        pq.write_table(table, source)
    else:
        source.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    proc = _mlpipe("predict", "reviews:staging", "--input", str(source), "--output", str(target),
                   home=sentiment_home)
    assert proc.returncode == 0, proc.stderr
    assert str(target.resolve()) in proc.stdout and "7 rows predicted" in proc.stderr
    if fmt_out == "parquet":
        rows = pq.read_table(target).to_pylist()
    elif fmt_out == "csv":
        rows = pacsv.read_csv(target).to_pylist()
    else:
        rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert list(rows[0]) == ["id", "review", "note", "label", "score"]
    assert [r["id"] for r in rows] == list(range(7))
    assert rows[1]["review"] == table["review"][1].as_py()
    # the same labels and scores as the Python API, label names from the model
    expected = mlpipe.load_model("reviews:staging", home=sentiment_home).predict(
        table["review"].to_pylist()
    )
    assert [r["label"] for r in rows] == [p["label"] for p in expected]
    assert all(r["label"] in ("neg", "pos") for r in rows)
    assert [round(r["score"], 5) for r in rows] == [round(p["score"], 5) for p in expected]


def test_predict_rows_take_the_models_own_text_column(sentiment_home: Path) -> None:
    """A model trained on ``review`` takes ``{"review": ...}`` rows, as its files do."""
    model = mlpipe.load_model("reviews:staging", home=sentiment_home)
    texts = [t for t, _ in generate_rows(3, 11, 0.0)]
    by_task = model.predict([{"text": t} for t in texts])
    assert model.predict([{"review": t, "id": i} for i, t in enumerate(texts)]) == by_task
    assert model.predict(texts) == by_task
    with pytest.raises(ConfigError, match=r"needs text \(or review\)"):
        model.predict([{"comment": texts[0]}])


def test_predict_file_bad_input_is_exit_2_and_writes_nothing(
    sentiment_home: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("keep me\n")  # an earlier output survives a failed run untouched
    renamed = tmp_path / "renamed.csv"
    pacsv.write_csv(_input_rows().rename_columns(["id", "body", "note"]), renamed)
    proc = _mlpipe("predict", "reviews:v1", "-i", str(renamed), "-o", str(target),
                   home=sentiment_home)
    assert proc.returncode == 2 and "no column 'review' (--text-column)" in proc.stderr
    assert target.read_text() == "keep me\n"
    ok = _mlpipe("predict", "reviews:v1", "-i", str(renamed), "-o", str(tmp_path / "o.jsonl"),
                 "--text-column", "body", home=sentiment_home)
    assert ok.returncode == 0, ok.stderr

    blank = tmp_path / "blank.csv"
    blank.write_text("review\ngood film\n\"  \"\nfine\n\"\"\n")
    proc = _mlpipe("predict", "reviews:v1", "-i", str(blank), "-o", str(target),
                   home=sentiment_home)
    assert proc.returncode == 2, proc.stderr
    assert str(blank) in proc.stderr and "rows 2, 4" in proc.stderr
    assert target.read_text() == "keep me\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.csv")]  # no temp left

    one_sided = _mlpipe("predict", "reviews:v1", "-i", str(blank), home=sentiment_home)
    assert one_sided.returncode == 2 and "--input and --output go together" in one_sided.stderr
    wrong = _mlpipe("predict", "reviews:v1", "-i", str(blank), "-o", str(tmp_path / "o.txt"),
                    home=sentiment_home)
    assert wrong.returncode == 2 and "use .csv, .jsonl or .parquet" in wrong.stderr


def test_text_to_sql_predicts_from_python_and_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = load_config(SQL_TRAINING, [
        "data.generated.n_samples=200", "training.epochs=1", "model.tiny.hidden_size=32",
        "model.tiny.num_heads=2", "model.tiny.intermediate_size=64", "sql.eval_max_rows=8",
        "sql.max_new_tokens=16",
    ])  # fmt: skip
    run = run_pipeline(TRAINING, cfg, home=home)
    spec = run.outputs["upload_model"].spec  # type: ignore[attr-defined]
    model = mlpipe.load_model(spec, home=home)
    assert model.task == "text-to-sql"
    rows = [{"question": q, "context": c} for q, c, _ in generate_sql_rows(5, seed=9)]
    predicted = model.predict(rows)
    assert len(predicted) == 5 and all(set(p) == {"sql"} and isinstance(p["sql"], str)
                                       for p in predicted)
    with pytest.raises(ConfigError, match="needs question, context per row, missing context"):
        model.predict(["how many employees are there"])  # a plain string has no schema

    source = tmp_path / "questions.jsonl"
    source.write_text("".join(json.dumps({"n": i, **r}) + "\n" for i, r in enumerate(rows)))
    target = tmp_path / "sql.parquet"
    proc = _mlpipe("predict", spec, "--input", str(source), "--output", str(target), home=home)
    assert proc.returncode == 0, proc.stderr
    out = pq.read_table(target)
    assert out.column_names == ["n", "question", "context", "sql"]
    assert out["sql"].to_pylist() == [p["sql"] for p in predicted]


def test_cli_reference_lists_every_command_and_flag() -> None:
    """docs/cli.md is generated from the CLI's own -h; a new command or flag without it fails
    here (regenerate with ``python scripts/gen_cli.py``)."""
    import re

    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli.py")], capture_output=True, text=True,
        env=venv_env(), timeout=600, check=True,
    ).stdout  # fmt: skip
    doc = (ROOT / "docs" / "cli.md").read_text()
    commands = re.findall(r"^### `(mlpipe [^`]+)`", generated, flags=re.M)
    assert {"mlpipe predict", "mlpipe runs logs", "mlpipe registry list"} <= set(commands)
    for command in commands:
        assert f"### `{command}`" in doc, f"{command} missing from docs/cli.md"
    flags = set(re.findall(r"`(--[a-z][a-z0-9-]*)`", generated))
    assert {"--input", "--output", "--text-column", "--resume"} <= flags
    missing = sorted(f for f in flags if f"`{f}`" not in doc)
    assert not missing, f"flags missing from docs/cli.md: {missing} (run scripts/gen_cli.py)"
