"""``task: text-to-sql``: generated data, SQL matching, loss masking, and both pipelines end to end
through the local runner and every orchestrator adapter (tiny GPT-2, generated data, no download).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlpipe.core import (
    INFERENCE,
    TRAINING,
    ConfigError,
    InferenceConfig,
    StepFailedError,
    TrainingConfig,
    config_from_json,
    load_config,
    plugins,
    run_pipeline,
)
from mlpipe.core.config import ModelConfig, TinyModelConfig
from mlpipe.core.execution import get_runner
from mlpipe.core.task import check_model_task, get_task
from mlpipe.tasks.text_to_sql.config import SqlTrainOptions
from mlpipe.tasks.text_to_sql.match import (
    Limits,
    SqlMatchCounter,
    exact_match,
    execution_match,
    normalize_sql,
)
from mlpipe.tasks.text_to_sql.synthetic import generate_sql_rows

ROOT = Path(__file__).resolve().parents[2]
SQL_TRAINING = ROOT / "configs" / "tiny" / "text-to-sql-training.yaml"
SQL_INFERENCE = ROOT / "configs" / "tiny" / "text-to-sql-inference.yaml"
# Shrunk for the adapter runs: the point there is the plumbing, not the model's quality.
SMALL_TRAINING = [
    "data.generated.n_samples=200",
    "training.epochs=1",
    "model.tiny.hidden_size=32",
    "model.tiny.num_heads=2",
    "model.tiny.intermediate_size=64",
    "sql.eval_max_rows=8",
    "sql.max_new_tokens=16",
]
SMALL_INFERENCE = ["data.generated.n_samples=24", "sql.max_new_tokens=16"]
EMPLOYEES = (
    "CREATE TABLE employees (id INTEGER, name TEXT, department TEXT, salary INTEGER, city TEXT)"
)


def _training(sets: list[str] | None = None) -> TrainingConfig:
    cfg = load_config(SQL_TRAINING, sets or [])
    assert isinstance(cfg, TrainingConfig)
    return cfg


def _inference(sets: list[str] | None = None) -> InferenceConfig:
    cfg = load_config(SQL_INFERENCE, sets or [])
    assert isinstance(cfg, InferenceConfig)
    return cfg


# -- generated data -----------------------------------------------------------------------------


def test_generated_set_is_deterministic_varied_and_runs() -> None:
    rows = list(generate_sql_rows(400, seed=3))
    assert rows == list(generate_sql_rows(400, seed=3))
    assert rows != list(generate_sql_rows(400, seed=4))
    assert len({(q, c) for q, c, _ in rows}) == len(rows)  # unique questions per context
    answers = " ".join(a for _, _, a in rows)
    for needle in (
        "COUNT(*)",
        "WHERE",
        "= '",
        " > ",
        "ORDER BY",
        "LIMIT",
        "AVG(",
        "MAX(",
        "SUM(",
        "DISTINCT",
        "GROUP BY",
    ):
        assert needle in answers, needle
    assert any(";" in c for _, c, _ in rows)  # some contexts carry a second table
    assert all(c.startswith("CREATE TABLE") for _, c, _ in rows)
    assert all(execution_match(a, a, c) is True for _, c, a in rows)  # every gold query runs


# -- exact and execution match ------------------------------------------------------------------


def test_exact_match_ignores_case_spacing_and_semicolon_but_not_literals() -> None:
    gold = "SELECT name FROM employees WHERE city = 'Paris'"
    assert exact_match("select  name from employees where city='Paris';", gold)
    assert normalize_sql(" SELECT COUNT( * ) FROM t ") == normalize_sql("select count(*) from t")
    assert not exact_match("SELECT name FROM employees WHERE city = 'paris'", gold)
    assert not exact_match("SELECT name FROM employees", gold)


def test_execution_match_edge_cases(tmp_path: Path) -> None:
    gold = "SELECT name FROM employees WHERE city = 'Paris'"
    # Equivalent SQL counts right.
    assert execution_match(
        "SELECT e.name FROM employees AS e WHERE 'Paris' = e.city", gold, EMPLOYEES
    )
    assert execution_match(
        "SELECT count(1) FROM employees", "SELECT COUNT(*) FROM employees", EMPLOYEES
    )
    assert execution_match("SELECT name FROM employees WHERE city IN ('Paris')", gold, EMPLOYEES)
    # Wrong SQL counts wrong: other literal, other column, syntax error, unknown table.
    assert (
        execution_match("SELECT name FROM employees WHERE city = 'Rome'", gold, EMPLOYEES) is False
    )
    assert (
        execution_match("SELECT city FROM employees WHERE city = 'Paris'", gold, EMPLOYEES) is False
    )
    assert execution_match("SELEC name FROM", gold, EMPLOYEES) is False
    assert execution_match("SELECT name FROM nowhere", gold, EMPLOYEES) is False
    assert execution_match("", gold, EMPLOYEES) is False
    # ORDER BY in the gold makes row order matter; without it rows compare as multisets.
    top = "SELECT name FROM employees ORDER BY salary DESC LIMIT 3"
    assert execution_match(top, top, EMPLOYEES)
    assert not execution_match(
        "SELECT name FROM employees ORDER BY salary ASC LIMIT 3", top, EMPLOYEES
    )
    assert execution_match(
        "SELECT name FROM employees ORDER BY id", "SELECT name FROM employees", EMPLOYEES
    )
    # Never crashes, never writes: several statements, writes, ATTACH, runaway queries.
    target = tmp_path / "attached.db"
    for bad in (
        "SELECT 1; SELECT 2",
        "DROP TABLE employees",
        "INSERT INTO employees (id) VALUES (1)",
        f"ATTACH DATABASE '{target}' AS x",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c",
        "SELECT name FROM employees WHERE salary > 99999999999999999999999999999",
        "\x00",
    ):
        assert execution_match(bad, gold, EMPLOYEES, Limits(timeout_s=0.2)) is False, bad
    assert not target.exists()
    # A gold query or a context that cannot run is the data's fault: None, counted apart.
    assert execution_match(gold, "SELECT nope FROM employees", EMPLOYEES) is None
    assert execution_match(gold, gold, "CREATE TABLE (") is None
    # Hub-style contexts: VARCHAR columns, several statements.
    hub = "CREATE TABLE head (age INTEGER, name VARCHAR); CREATE TABLE dept (name VARCHAR)"
    assert execution_match(
        "SELECT COUNT(*) FROM head WHERE age > 56",
        "SELECT count(*) FROM head WHERE age  >  56",
        hub,
    )


def test_match_counter_accumulates() -> None:
    counter = SqlMatchCounter()
    gold = "SELECT COUNT(*) FROM employees"
    counter.update(
        [gold, "select count(1) from employees", "nonsense"], [gold] * 3, [EMPLOYEES] * 3
    )
    counter.update(["SELECT 1"], ["SELECT broken FROM employees"], [EMPLOYEES])
    m = counter.metrics()
    assert m["exact_match"] == pytest.approx(1 / 4)
    assert m["execution_match"] == pytest.approx(2 / 4)  # a failing gold counts as wrong
    assert m["gold_sql_errors"] == 1.0


# -- tokenizer, loss masking, collator ----------------------------------------------------------


def test_loss_masking_and_collator() -> None:
    from mlpipe.tasks.text_to_sql.model import IGNORE, build_sql_model, collate, encode

    rows = list(generate_sql_rows(60, seed=1))
    q, c, a = (list(x) for x in zip(*rows, strict=True))
    model_cfg = ModelConfig(base="tiny", max_length=128, tiny=TinyModelConfig(hidden_size=16))
    sql_cfg = SqlTrainOptions(tokenizer_vocab_size=400)
    texts = [f"{ci}\n{qi}\n{ai}" for qi, ci, ai in rows]
    _, tokenizer, info = build_sql_model(model_cfg, sql_cfg, texts)
    _, again, _ = build_sql_model(model_cfg, sql_cfg, texts)
    assert tokenizer.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()  # same data
    encoded = encode(tokenizer, info, q, c, a)
    eos = tokenizer.eos_token_id
    for e, answer in zip(encoded, a, strict=True):
        n_prompt = sum(1 for x in e.labels if x == IGNORE)
        assert n_prompt > 0 and e.labels[:n_prompt] == [IGNORE] * n_prompt  # prompt: no loss
        assert e.labels[n_prompt:] == e.input_ids[n_prompt:]  # answer tokens: loss
        assert e.labels[-1] == eos
        assert tokenizer.decode(e.labels[n_prompt:-1]) == answer  # SQL round-trips exactly
    batch = collate(encoded[:4], tokenizer.pad_token_id, "causal")
    width = max(len(e.input_ids) for e in encoded[:4])
    assert batch["input_ids"].shape == batch["labels"].shape == (4, width)
    for row, e in enumerate(encoded[:4]):
        assert batch["attention_mask"][row].sum() == len(e.input_ids)
        assert (batch["labels"][row, len(e.input_ids) :] == IGNORE).all()  # padding: no loss
    # Over-long rows keep the whole answer and lose the start of the prompt.
    short = info.__class__(info.architecture, info.prompt, 24)
    cut = encode(tokenizer, short, q[:1], c[:1], a[:1])[0]
    assert len(cut.input_ids) <= 24 and cut.truncated
    assert tokenizer.decode([x for x in cut.labels if x != IGNORE][:-1]) == a[0]


# -- configs and errors -------------------------------------------------------------------------


def test_configs_round_trip_and_refuse_mixed_settings() -> None:
    train, infer = _training(), _inference()
    assert train.task == infer.task == "text-to-sql"
    assert config_from_json(train.model_dump_json()) == train
    assert config_from_json(infer.model_dump_json()) == infer
    assert TrainingConfig().task == "text-classification"
    with pytest.raises(ConfigError, match="task"):
        _training(["task=translation"])
    with pytest.raises(ConfigError, match=r"sql\.lora\.rank: unknown field"):
        _training(["sql.lora.rank=4"])
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("translation")


@pytest.mark.skipif(importlib.util.find_spec("peft") is not None, reason="peft is installed")
def test_lora_without_peft_names_the_extra(home: Path) -> None:
    cfg = _training([*SMALL_TRAINING, "sql.lora.r=4"])
    with pytest.raises(StepFailedError, match=r"mlpipe\[peft\]") as info:
        run_pipeline(TRAINING, cfg, home=home)
    assert info.value.step == "train_model" and info.value.exit_code == 2


def test_execution_accuracy_floor_blocks_publishing(home: Path) -> None:
    """``training.min_eval_accuracy`` is the floor on eval execution accuracy for text-to-sql."""
    from mlpipe.registries.local import LocalRegistry

    cfg = _training([*SMALL_TRAINING, "training.min_eval_accuracy=1.0"])
    with pytest.raises(StepFailedError, match="min_eval_accuracy") as info:
        run_pipeline(TRAINING, cfg, home=home)
    assert info.value.step == "train_model" and "execution accuracy" in str(info.value)
    assert LocalRegistry(home / "registry").versions() == []


def test_minilm_is_refused_for_text_to_sql(home: Path) -> None:
    with pytest.raises(StepFailedError, match="language-model head") as info:
        run_pipeline(TRAINING, _training([*SMALL_TRAINING, "model.base=minilm"]), home=home)
    assert info.value.step == "train_model"


def test_files_with_own_column_names_and_bad_rows(home: Path, tmp_path: Path) -> None:
    rows = list(generate_sql_rows(80, seed=5))
    path = tmp_path / "sql.jsonl"
    path.write_text(
        "".join(
            json.dumps({"q": q, "schema": c, "gold": a, "id": i}) + "\n"
            for i, (q, c, a) in enumerate(rows)
        )
    )
    sets = [
        f"data.path={path}",
        "data.source=files",
        "sql.question_column=q",
        "sql.context_column=schema",
        "sql.answer_column=gold",
    ]
    cfg = _training(sets)
    from mlpipe.core.pipeline import StepContext

    ctx = StepContext(
        home=home,
        run_id="r",
        pipeline="training",
        step="load_training_data",
        out_dir=tmp_path / "out",
    )
    ref = get_task("text-to-sql").load_training_data(cfg, ctx.out_dir)
    assert ref.rows == {"train": 72, "eval": 8} and ref.has_labels and ref.label_names == ()
    assert {"question", "context", "answer", "id"} <= set(ref.columns)
    assert {c.name: c.passed for c in ref.checks}["gold_sql_runs"]

    with pytest.raises(StepFailedError, match=r"sql\.question_column") as info:
        run_pipeline(TRAINING, _training(sets[:2]), home=home)
    assert info.value.exit_code == 2

    blank = tmp_path / "blank.jsonl"
    blank.write_text(path.read_text() + json.dumps({"q": "x", "schema": EMPLOYEES, "gold": " "}))
    with pytest.raises(StepFailedError, match=r"1 row\(s\) with an empty or whitespace-only "
                       r"'q' or 'schema' or 'gold': rows 81 ") as info:
        run_pipeline(TRAINING, _training([f"data.path={blank}", *sets[1:]]), home=home)
    assert info.value.exit_code == 2 and str(blank) in str(info.value)


def test_model_task_mismatch_is_refused(tmp_path: Path) -> None:
    check_model_task(tmp_path, "text-classification")  # no task file: a classifier
    with pytest.raises(ConfigError, match="set task: text-classification"):
        check_model_task(tmp_path, "text-to-sql")
    (tmp_path / "mlpipe_task.json").write_text(json.dumps({"task": "text-to-sql"}))
    with pytest.raises(ConfigError, match="trained for 'text-to-sql'"):
        check_model_task(tmp_path, "text-classification")


def test_predict_texts_gives_sql_per_row_like_the_batch_path(home: Path) -> None:
    """``Task.predict_texts``: ``{"sql": ...}`` per row, in order, as the generator writes it."""
    from mlpipe.tasks.text_to_sql.model import SqlGenerator

    run = run_pipeline(TRAINING, _training(SMALL_TRAINING), home=home)
    model_dir = Path(run.outputs["upload_model"].uri)  # type: ignore[attr-defined]
    rows = [{"question": q, "context": c} for q, c, _ in generate_sql_rows(6, seed=9)]
    out = get_task("text-to-sql").predict_texts(model_dir, rows, batch_size=4)
    assert len(out) == len(rows) and all(set(o) == {"sql"} for o in out)
    assert all(isinstance(o["sql"], str) for o in out)
    generator = SqlGenerator.load(model_dir, batch_size=4, max_new_tokens=128)
    expected = generator.generate([r["question"] for r in rows], [r["context"] for r in rows])
    assert [o["sql"] for o in out] == expected
    assert get_task("text-to-sql").predict_texts(model_dir, []) == []
    with pytest.raises(ConfigError, match="trained for 'text-to-sql'"):
        get_task("text-classification").predict_texts(model_dir, [{"text": "a film"}])


def test_declared_checks_are_the_reported_ones(home: Path) -> None:
    """Text-to-sql declares the checks its steps really report (no faked label_balance)."""
    task = get_task("text-to-sql")
    assert task.config_section == "sql"
    run = run_pipeline(TRAINING, _training(SMALL_TRAINING), home=home)
    for step in ("load_training_data", "train_model"):
        reported = {c.name for c in run.outputs[step].checks}  # type: ignore[union-attr]
        assert reported == set(task.checks[step])
    assert "label_balance" not in task.checks["load_training_data"]


# -- end to end ---------------------------------------------------------------------------------


def _check_results(results: object, rows: int, inputs_uri: Path) -> dict[str, float]:
    assert results.kind == "results" and results.rows == rows  # type: ignore[attr-defined]
    table = pq.read_table(results.predictions_uri)  # type: ignore[attr-defined]
    assert {"question", "context", "answer", "prediction"} <= set(table.column_names)
    data = pq.read_table(inputs_uri / "data.parquet")
    assert table.column("question").to_pylist() == data.column("question").to_pylist()  # order
    metrics = json.loads((Path(results.uri) / "metrics.json").read_text())  # type: ignore[attr-defined]
    assert {"exact_match", "execution_match", "rows"} <= set(metrics)
    assert 0.0 <= metrics["exact_match"] <= 1.0 and 0.0 <= metrics["execution_match"] <= 1.0
    return metrics


@pytest.mark.slow
def test_tiny_configs_end_to_end_local(home: Path) -> None:
    """The shipped tiny configs as they are: the model must actually learn some SQL."""
    train = run_pipeline(TRAINING, _training(), home=home)
    version = train.final
    assert version.kind == "model_version" and version.name == "tiny-sql"  # type: ignore[attr-defined]
    names = {p.name for p in Path(version.uri).iterdir()}  # type: ignore[attr-defined]
    assert {"model.safetensors", "tokenizer.json", "mlpipe_task.json", "manifest.json"} <= names
    metrics = train.outputs["train_model"].metrics  # type: ignore[union-attr]
    assert {"eval_loss", "eval_exact_match", "eval_execution_match"} <= set(metrics)
    infer = run_pipeline(INFERENCE, _inference(), home=home)
    uri = Path(infer.outputs["load_inference_data"].uri)
    scores = _check_results(infer.final, 100, uri)
    assert scores["execution_match"] >= 0.15, scores  # about 0.4; chance is ~0
    # A second run is served from the cache (load_model always resolves the alias again).
    again = run_pipeline(INFERENCE, _inference(), home=home)
    assert {s.step: s.cached for s in again.steps} == {
        s.name: s.name != "load_model" for s in INFERENCE.steps}


ADAPTERS = [r for r in plugins.names("runner") if r != "local"]


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_both_pipelines_through_adapter(
    adapter: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    os.makedirs(tmp_path / "dagster", exist_ok=True)
    runner = get_runner(adapter)
    train = runner.run(TRAINING, _training(SMALL_TRAINING), home=home)
    assert train.runner == adapter
    assert [s.step for s in train.steps] == list(TRAINING.step_names)
    assert train.final.spec == "tiny-sql:v1"
    infer = runner.run(INFERENCE, _inference(SMALL_INFERENCE), home=home)
    assert infer.runner == adapter
    uri = Path(infer.outputs["load_inference_data"].uri)
    _check_results(infer.final, 24, uri)
