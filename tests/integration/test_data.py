import json
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpipe.core import DataError
from mlpipe.core.config import DataConfig
from mlpipe.core.data import read_split
from mlpipe.tasks.classification.data import prepare_inference_data, prepare_training_data
from mlpipe.tasks.classification.synthetic import generate_rows


def test_generated_data_is_deterministic_varied_and_noisy() -> None:
    rows = list(generate_rows(2000, seed=1, label_noise=0.05))
    assert rows == list(generate_rows(2000, seed=1, label_noise=0.05))
    assert rows != list(generate_rows(2000, seed=2, label_noise=0.05))
    texts = [t for t, _ in rows]
    assert any(" but " in t for t in texts)
    assert any(" not " in t for t in texts)
    assert len(set(texts)) > 1500
    assert 0.4 < sum(label for _, label in rows) / len(rows) < 0.6
    lengths = sorted(len(t.split()) for t in texts)
    assert lengths[0] <= 5 and lengths[-1] >= 40  # a few words to long reviews


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".csv":
        import csv

        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


ROWS = [
    {"sentence": f"text number {i} is {'good' if i % 2 else 'bad'}", "label": i % 2, "id": i}
    for i in range(40)
]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_local_files_load_split_and_keep_columns(tmp_path: Path, suffix: str) -> None:
    src = _write(tmp_path / f"data{suffix}", ROWS)
    cfg = DataConfig(source="files", path=src, text_column="sentence", eval_fraction=0.25)
    ref = prepare_training_data(cfg, tmp_path / "out")
    assert ref.rows == {"train": 30, "eval": 10}
    train = read_split(ref, "train")
    assert {"text", "label", "id"} <= set(train.column_names)
    assert all(c.passed for c in ref.checks if c.blocking)
    again = prepare_training_data(cfg, tmp_path / "out2")
    assert again.sha256 == ref.sha256  # same input, same split, same bytes


def test_string_labels_map_to_ids(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "label": ["negative", "Positive"][i % 2]} for i in range(10)]
    ref = prepare_training_data(
        DataConfig(source="files", path=_write(tmp_path / "d.csv", rows)), tmp_path / "o"
    )
    labels = (
        read_split(ref, "train").column("label").to_pylist()
        + read_split(ref, "eval").column("label").to_pylist()
    )
    assert sorted(set(labels)) == [0, 1]


def test_missing_label_column_names_file_and_column(tmp_path: Path) -> None:
    src = _write(tmp_path / "d.csv", [{"text": "hello"}, {"text": "world"}])
    with pytest.raises(DataError, match=r"d.csv: no label column 'label'.*data.label_column"):
        prepare_training_data(DataConfig(source="files", path=src), tmp_path / "o")


def test_bad_label_values_are_listed(tmp_path: Path) -> None:
    src = _write(tmp_path / "d.csv", [{"text": "a", "label": 0}, {"text": "b", "label": 7}])
    with pytest.raises(DataError, match=r"values outside the labels: 7"):
        prepare_training_data(DataConfig(source="files", path=src), tmp_path / "o")


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "d.xlsx"
    bad.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        prepare_training_data(DataConfig(source="files", path=bad), tmp_path / "o")
    with pytest.raises(DataError, match="not found"):
        prepare_training_data(
            DataConfig(source="files", path=tmp_path / "none.csv"), tmp_path / "o"
        )


def test_a_label_missing_from_the_train_split_is_a_blocking_check(tmp_path: Path) -> None:
    rows = [{"text": f"row {i}", "label": ("a", "b")[i % 2]} for i in range(20)]
    cfg = DataConfig(source="files", path=_write(tmp_path / "d.csv", rows),
                     label_names=["a", "b", "c"])  # fmt: skip
    ref = prepare_training_data(cfg, tmp_path / "o")
    assert {c.name for c in ref.failed_blocking_checks()} == {"label_balance"}


# -- bad input through the CLI: exit 2, the file and the first rows named ----------------------


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    import sys

    from tests.support import venv_env

    return subprocess.run(
        [sys.executable, "-m", "mlpipe", *args, "--home", str(home)],
        capture_output=True, text=True, env=venv_env(), timeout=600,
    )  # fmt: skip


def _files(path: Path) -> list[str]:
    return ["--set", "data.source=files", "--set", f"data.path={path}"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_blank_texts_and_one_class_are_exit_2_naming_file_and_rows(
    tmp_path: Path, suffix: str
) -> None:
    from tests.support import TINY_TRAINING

    home = tmp_path / "home"
    blank = {2: "   ", 6: "\t", 9: ""}  # data rows 3, 7 and 10 (1 = the first data row)
    rows = [{"text": blank.get(i, f"row {i}"), "label": i % 2, "id": i} for i in range(30)]
    path = _write(tmp_path / f"blank{suffix}", rows)
    proc = _cli("train", "-c", str(TINY_TRAINING), *_files(path), home=home)
    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stderr and "3 row(s)" in proc.stderr, proc.stderr
    assert "'text': rows 3, 7, 10 (row 1 is the first data row" in proc.stderr, proc.stderr
    assert not (home / "registry").exists()
    # inference data, streamed in chunks of 4 rows: the same rows, counted across chunks
    cfg = DataConfig(source="files", path=path)
    with pytest.raises(DataError, match=r"3 row\(s\) .* rows 3, 7, 10 \(row 1") as info:
        prepare_inference_data(cfg, tmp_path / "infer", chunk_rows=4)
    assert str(path) in str(info.value) and not (tmp_path / "infer" / "data.parquet").exists()

    one = _write(tmp_path / f"one{suffix}", [{"text": f"row {i}", "label": 1} for i in range(30)])
    proc = _cli("train", "-c", str(TINY_TRAINING), *_files(one), home=home)
    assert proc.returncode == 2, proc.stderr
    assert str(one) in proc.stderr and "all 30 rows have the label 'positive'" in proc.stderr


def test_header_only_files_and_an_empty_config_are_exit_2(tmp_path: Path) -> None:
    from tests.support import TINY_TRAINING

    home = tmp_path / "home"
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("")
    no_rows = tmp_path / "none.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())}),
                   no_rows)  # fmt: skip
    for path in (header, empty_jsonl, no_rows):
        proc = _cli("train", "-c", str(TINY_TRAINING), *_files(path), home=home)
        assert proc.returncode == 2 and str(path) in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    config = tmp_path / "empty.yaml"
    config.write_text("")
    proc = _cli("train", "-c", str(config), home=home)
    assert proc.returncode == 2 and "empty.yaml" in proc.stderr, proc.stderr
    assert not (home / "registry").exists()


def test_overlap_and_duplicates_are_measured(tmp_path: Path) -> None:
    rows = [{"text": "same text", "label": i % 2} for i in range(20)]
    ref = prepare_training_data(
        DataConfig(source="files", path=_write(tmp_path / "d.csv", rows)), tmp_path / "o"
    )
    checks = {c.name: c for c in ref.checks}
    assert not checks["duplicate_texts"].passed and not checks["train_eval_overlap"].passed
    assert not checks["duplicate_texts"].blocking


def test_inference_data_streams_without_labels(tmp_path: Path) -> None:
    rows = [{"text": f"review {i}", "id": i} for i in range(25)]
    cfg = DataConfig(source="files", path=_write(tmp_path / "d.parquet", rows))
    ref = prepare_inference_data(cfg, tmp_path / "o", chunk_rows=4)
    assert ref.rows == {"data": 25} and not ref.has_labels
    table = read_split(ref, "data")
    assert table.column("id").to_pylist() == list(range(25))  # order preserved across chunks


def test_hub_offline_fails_fast_and_clearly(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"cannot load dataset 'glue' \(sst2\).*data.source: files"):
        prepare_training_data(DataConfig(source="hub"), tmp_path / "o")
    assert time.perf_counter() - started < 30  # seconds, not minutes of retries


def test_reported_checks_are_the_declared_ones(tmp_path: Path) -> None:
    from mlpipe.core.task import get_task

    task = get_task("text-classification")
    assert task.config_section is None and task.training_options is None
    cfg = DataConfig(source="generated")
    ref = prepare_training_data(cfg, tmp_path / "train")
    assert tuple(c.name for c in ref.checks) == task.checks["load_training_data"]
    ref = prepare_inference_data(cfg, tmp_path / "infer", chunk_rows=64)
    assert tuple(c.name for c in ref.checks) == task.checks["load_inference_data"]


# -- readers do not guess: text stays text, long lines, encodings named, empty files -------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_text_column_that_looks_numeric_is_read_as_text(tmp_path: Path, suffix: str) -> None:
    rows = [{"text": f"{i:03d}", "label": i % 2} for i in range(20)]
    if suffix == ".parquet":  # a typed numeric column becomes its text
        rows = [{"text": i, "label": i % 2} for i in range(20)]
    src = _write(tmp_path / f"codes{suffix}", rows)
    ref = prepare_inference_data(DataConfig(source="files", path=src), tmp_path / "o", chunk_rows=7)
    texts = pq.read_table(Path(ref.uri) / "data.parquet").column("text").to_pylist()
    expected = [str(i) for i in range(20)] if suffix == ".parquet" else [r["text"] for r in rows]
    assert texts == expected  # "007" keeps its zeros


def test_a_jsonl_line_of_megabytes_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    big = "word " * 1_200_000  # one 6 MB line
    rows = [{"text": "short", "label": 0}, {"text": big, "label": 1}, {"text": "end", "label": 0}]
    src = _write(tmp_path / "long.jsonl", rows)
    ref = prepare_inference_data(DataConfig(source="files", path=src), tmp_path / "o", chunk_rows=2)
    texts = pq.read_table(Path(ref.uri) / "data.parquet").column("text").to_pylist()
    assert texts == ["short", big, "end"]


def test_a_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "a", "label": 1}\n{"text": 5, "label": 0}\n')
    with pytest.raises(DataError, match="line 2: 'text' holds int 5"):
        prepare_inference_data(DataConfig(source="files", path=src), tmp_path / "o", chunk_rows=9)
    src.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match="line 3 is not valid JSON"):
        prepare_inference_data(DataConfig(source="files", path=src), tmp_path / "o", chunk_rows=9)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("text,label\ncafé crème,1\nok,0\n".encode("cp1252"), "byte 0xe9 at offset 14 (line 2)"),
        ("text,label\nhé,1\n".encode("utf-16"), "the file is UTF-16-LE text"),
    ],
)
def test_text_that_is_not_utf8_names_the_encoding_and_where(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    src = tmp_path / "enc.csv"
    src.write_bytes(data)
    with pytest.raises(DataError) as info:
        prepare_inference_data(DataConfig(source="files", path=src), tmp_path / "o", chunk_rows=9)
    assert expected in str(info.value) and "UTF-8" in str(info.value)
    assert "binary" not in str(info.value)


@pytest.mark.parametrize("content", ["text,label\n", ""])
def test_a_file_with_no_rows_is_a_data_error_naming_it(tmp_path: Path, content: str) -> None:
    src = tmp_path / "empty.csv"
    src.write_text(content)
    cfg = DataConfig(source="files", path=src)
    with pytest.raises(DataError, match=r"empty\.csv"):
        prepare_training_data(cfg, tmp_path / "o")
    with pytest.raises(DataError, match=r"empty\.csv"):
        prepare_inference_data(cfg, tmp_path / "o2", chunk_rows=9)
