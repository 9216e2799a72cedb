"""`skipclick bench --onnx DIR`: the ONNX pair in ONNX Runtime in the same table as the JAX engine and PyTorch."""

import json

import pytest

from skipclick_jax.cli import main as cli


def test_bench_times_onnx_runtime_beside_jax_and_pytorch(tiny_checkpoint, tiny_onnx, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    argv = ["bench", "--checkpoint", str(tiny_checkpoint[0]), "--sizes", "112", "--calls", "2", "--compare-torch",
            "--onnx", str(tiny_onnx), "--json", str(out)]
    assert cli(argv) == 0
    assert "ONNX Runtime float32" in capsys.readouterr().out
    backends = {b["backend"]: b for b in json.loads(out.read_text())["backends"]}
    assert set(backends) == {"JAX float32", "PyTorch float32 (original semantics)", "ONNX Runtime float32"}
    onnx = backends["ONNX Runtime float32"]
    assert onnx["size"] == 112 and onnx["encode_ms"] > 0 and onnx["click_ms"] > 0
    # the ratio to PyTorch is computed against the PyTorch row of the same run
    torch_row = backends["PyTorch float32 (original semantics)"]
    assert onnx["click_vs_torch"] == pytest.approx(onnx["click_ms"] / torch_row["click_ms"])
