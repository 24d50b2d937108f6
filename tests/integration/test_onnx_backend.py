"""The ONNX Runtime backend: export at save_artifacts, torch-free inference, int8, refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlpipe.core import (
    INFERENCE,
    TRAINING,
    InferenceConfig,
    TrainingConfig,
    load_config,
    run_pipeline,
)
from mlpipe.core.artifacts import verify
from mlpipe.core.errors import ConfigError
from mlpipe.tasks.classification.onnx_backend import OnnxPredictor
from mlpipe.tasks.classification.predict import Predictor
from mlpipe.tasks.classification.synthetic import generate_rows
from tests.support import ROOT, TINY_INFERENCE, TINY_TRAINING, venv_env

TEXTS = [t for t, _ in generate_rows(150, seed=5)] + ["ok", "word " * 700]  # 1 token .. truncated


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("onnx") / "home"
    cfg = load_config(
        TINY_TRAINING, ["data.generated.n_samples=300", "training.epochs=1", "artifacts.onnx=true"]
    )
    assert isinstance(cfg, TrainingConfig)
    run_pipeline(TRAINING, cfg, home=home)
    return home


def _version(home: Path) -> Path:
    return home / "registry" / "tiny-sentiment" / "v1"


def test_export_is_published_and_covered_by_the_manifest(onnx_home: Path) -> None:
    files = verify(_version(onnx_home))["files"]
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json"} <= set(files)
    import onnx

    graph = onnx.load(str(_version(onnx_home) / "model.onnx"))
    assert graph.opset_import[0].version == 17
    dims = [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]  # any batch size, any length


def test_onnx_labels_match_torch_and_int8_stays_close(onnx_home: Path) -> None:
    model = _version(onnx_home)
    torch_labels, torch_scores = Predictor(model, batch_size=16).predict(TEXTS)
    labels, scores = OnnxPredictor(model, batch_size=16).predict(TEXTS)
    assert labels == torch_labels
    assert max(abs(a - b) for a, b in zip(scores, torch_scores, strict=True)) < 1e-4
    int8 = OnnxPredictor(model, batch_size=16, quantize="int8", fallback_gap=0.0)
    int8_labels, _ = int8.predict(TEXTS)
    agree = sum(a == b for a, b in zip(int8_labels, torch_labels, strict=True)) / len(TEXTS)
    assert agree >= 0.95 and int8.rescored == 0
    full = OnnxPredictor(model, batch_size=16, quantize="int8", fallback_gap=1.0)
    assert full.predict(TEXTS) == (labels, scores)  # every row re-scored by the fp32 graph


def test_onnx_inference_pipeline_imports_neither_torch_nor_transformers(
    onnx_home: Path,
) -> None:
    """The whole inference pipeline, in a fresh interpreter, with the onnx backend."""
    code = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from mlpipe.core import INFERENCE, load_config, run_pipeline
        cfg = load_config({str(TINY_INFERENCE)!r},
                          ["data.generated.n_samples=100", "inference.backend=onnx"])
        run = run_pipeline(INFERENCE, cfg, home=Path({str(onnx_home)!r}))
        heavy = [m for m in ("torch", "transformers") if m in sys.modules]
        print(json.dumps({{"sha": run.outputs["run_inference"].sha256, "heavy": heavy}}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=venv_env(),
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    # the same backend in this process (torch already loaded here) writes the same bytes
    cfg = load_config(TINY_INFERENCE, ["data.generated.n_samples=100", "inference.backend=onnx"])
    assert isinstance(cfg, InferenceConfig)
    run = run_pipeline(INFERENCE, cfg, home=onnx_home)
    assert run.outputs["run_inference"].sha256 == result["sha"]


def test_a_fresh_task_process_imports_only_what_its_step_needs(onnx_home: Path) -> None:
    """``run_inference``'s shard task, as a kfp or Airflow task runs it (a fresh interpreter,
    ``execute(job)``): none of the runners, the YAML parser, pandas, torch or transformers get
    imported, and it writes the same bytes as the shard run in this process."""
    from mlpipe.core.execution.plan import plan

    cfg = load_config(TINY_INFERENCE, ["data.generated.n_samples=90", "inference.backend=onnx",
                                       "runtime.cache=false"])
    assert isinstance(cfg, InferenceConfig)
    run = run_pipeline(INFERENCE, cfg, home=onnx_home)
    shard = next((onnx_home / "runs" / "inference" / run.run_id / "run_inference").glob("shard-*"))
    before = (shard / "predictions.parquet").read_bytes()
    job = plan(INFERENCE, cfg).task("run_inference__shard").job(
        run.run_id, home=str(onnx_home), runner="test", shard=0, use_cache=False)
    code = textwrap.dedent("""
        import json, sys
        from mlpipe.core.execution.execute import execute
        execute(json.loads(sys.argv[1]))
        unwanted = ("torch", "transformers", "pandas", "yaml", "mlpipe.core.execution.runner",
                    "kfp", "dagster", "airflow")
        print(json.dumps([m for m in unwanted if m in sys.modules]))
    """)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True,
                          text=True, env=venv_env(), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert (shard / "predictions.parquet").read_bytes() == before


def test_predict_cli_backend_onnx_and_missing_export_is_exit_2(
    onnx_home: Path, tmp_path: Path
) -> None:
    def mlpipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlpipe", *args, "--home", str(onnx_home)],
            capture_output=True,
            text=True,
            env=venv_env(),
            timeout=300,
        )

    both = [json.loads(mlpipe("predict", "tiny-sentiment:v1", "a great film", "--json",
                              "--backend", b).stdout) for b in ("onnx", "torch")]  # fmt: skip
    assert both[0][0]["label"] == both[1][0]["label"]
    assert abs(both[0][0]["score"] - both[1][0]["score"]) < 1e-4
    bad = mlpipe("predict", "tiny-sentiment:v1", "x", "--backend", "tensorrt")
    assert bad.returncode == 2 and "tensorrt" in bad.stderr
    # a model published without artifacts.onnx: the error says how to get one
    bare = tmp_path / "bare"
    shutil.copytree(_version(onnx_home), bare)
    (bare / "model.onnx").unlink()
    with pytest.raises(ConfigError, match=r"artifacts\.onnx: true"):
        OnnxPredictor(bare)


def test_text_to_sql_refuses_the_onnx_backend_by_name() -> None:
    path = ROOT / "configs" / "tiny" / "text-to-sql-inference.yaml"
    with pytest.raises(ConfigError, match="'onnx' is not supported by the text-to-sql task"):
        load_config(path, ["inference.backend=onnx"])
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", "infer", "--config", str(path),
         "--set", "inference.backend=onnx"],
        capture_output=True, text=True, env=venv_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "text-to-sql" in proc.stderr and "onnx" in proc.stderr
    training = ROOT / "configs" / "tiny" / "text-to-sql-training.yaml"
    with pytest.raises(ConfigError, match="text-to-sql task has no ONNX export"):
        load_config(training, ["artifacts.onnx=true"])


def test_cluster_runs_onnx_inference_in_the_slim_image() -> None:
    from mlpipe.core.cluster import step_image

    sets = ["cluster.image=mlpipe:1", "cluster.inference_image=mlpipe-inference:1"]
    onnx = load_config(TINY_INFERENCE, [*sets, "inference.backend=onnx"])
    torch = load_config(TINY_INFERENCE, sets)
    assert step_image(onnx, "run_inference") == "mlpipe-inference:1"
    assert step_image(onnx, "load_model") == "mlpipe:1"  # only the step that needs no torch
    assert step_image(torch, "run_inference") == "mlpipe:1"
