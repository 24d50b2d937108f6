"""bench/core_speed.py's ONNX table: both onnx rows are measured against today's torch fp32 (the
targets' baseline), int8 also against torch's own int8."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from tests.support import ROOT, load_script


def _script() -> ModuleType:
    return load_script(ROOT / "bench" / "core_speed.py", "core_speed")


def _row(name: str, texts_per_s: float, agreement: float) -> dict[str, Any]:
    return {"name": name, "texts_per_s": texts_per_s, "cpu_texts_per_s": texts_per_s,
            "agreement": agreement, "max_score_diff": 1e-6, "threads": 2, "load": (1.0, 1.5)}


def test_int8_is_set_against_torch_fp32_and_torch_int8() -> None:
    report = {"mode": "full", "model": "minilm", "date": "d", "machine": "m", "onnx": [
        _row("torch fp32", 100.0, 1.0), _row("onnx fp32", 140.0, 1.0),
        _row("torch int8", 250.0, 0.997), _row("onnx int8", 300.0, 0.999)],
        "fresh_start": [{"backend": "onnx", "seconds": 0.5, "heavy": False},
                        {"backend": "torch", "seconds": 5.0, "heavy": True}]}
    fp32, int8, start = _script().render_onnx(report).splitlines()[-3:]
    assert "| 1.40x torch fp32 (1.40x per CPU-s; load 1.0-1.5) |" in fp32
    assert fp32.endswith("| no |")  # 1.4x: under the 1.5x target
    assert "| 3.00x torch fp32 (3.00x per CPU-s; 1.20x torch int8;" in int8
    assert "| 250.0 torch int8 (agree 99.70%) |" in int8 and int8.endswith("| yes |")
    assert "10.0x faster" in start and start.endswith("| yes |")
