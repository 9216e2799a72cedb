"""The released configuration (ViT-B/14-reg SkipClick at 448, random weights) through the original .pth layout:
exported to ONNX, run by ONNX Runtime, equal to the JAX model within 1e-4 on logits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("torch")

import jax  # noqa: E402

from skipclick_jax import SkipClickConfig, load_checkpoint  # noqa: E402
from skipclick_jax.deploy.ort_model import OnnxSkipClick  # noqa: E402
from skipclick_jax.model.init import init_params  # noqa: E402
from skipclick_jax.model.skipclick import SkipClick  # noqa: E402
from skipclick_jax.weights import export_checkpoint, save_original_pth  # noqa: E402

# Measured: max |Δlogits| 3.8e-5 to 4.2e-5 over 6 click states (logits up to ~2.5, init_params weights): ONNX
# Runtime's float32 GEMM order over ViT-B's 768/3072-wide sums. The bound, 1e-4, holds with a 2.4× margin.
LOGITS_ATOL = 1e-4


@pytest.mark.slow
def test_released_configuration(tmp_path):
    config = SkipClickConfig.skipclick_vitb14_448()
    save_original_pth(tmp_path / "skipclick.pth", config, init_params(config, seed=0))
    out = export_checkpoint(tmp_path / "skipclick.pth", tmp_path / "onnx", fmt="onnx").out
    assert sorted(p.name for p in out.iterdir()) == ["click.onnx", "encoder.onnx", "metadata.json"]

    model, params = load_checkpoint(tmp_path / "skipclick.pth")
    rng = np.random.default_rng(0)
    image = rng.random((1, 448, 448, 3), dtype=np.float32)
    prev = rng.random((1, 448, 448, 1), dtype=np.float32)
    points = np.full((1, 6, 3), -1.0)
    points[0, :2] = ((100.25, 200.5, 0.0), (300.0, 50.75, 1.0))
    points[0, 3] = (400.5, 420.125, 0.0)

    features = jax.jit(lambda p, x: model.apply({"params": p}, x, method=SkipClick.encode))(params, image)
    want = np.asarray(jax.jit(lambda p, f, m: model.apply({"params": p}, f, m, points, method=SkipClick.decode))(
        params, features, prev))
    pair = OnnxSkipClick(out)
    logits, _ = pair.click(pair.encode(np.ascontiguousarray(image.transpose(0, 3, 1, 2))),
                           np.ascontiguousarray(prev.transpose(0, 3, 1, 2)), points)
    assert np.abs(logits.transpose(0, 2, 3, 1) - want).max() <= LOGITS_ATOL
