"""The other model families export too: DINOv3 (RoPE tables frozen at S), the conv-modulation stack (no
position embedding) and a single-tap model without skip connections (no FPN image terms)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("torch")

from skipclick_jax.config import SkipClickConfig  # noqa: E402
from skipclick_jax.deploy.ort_model import OnnxSkipClick  # noqa: E402
from skipclick_jax.deploy.to_onnx import export_onnx  # noqa: E402
from skipclick_jax.model.init import init_params  # noqa: E402
from skipclick_jax.model.skipclick import SkipClick  # noqa: E402

# Measured: max |Δlogits| 2.1e-6 (DINOv3), 2.6e-6 (conv stack), 2.1e-6 (no skips), logits up to ~3.
LOGITS_ATOL = 1e-5

VARIANTS = {
    "tiny_dinov3": SkipClickConfig.tiny_dinov3,
    "tiny_convstack": SkipClickConfig.tiny_convstack,
    "tiny_frozen": lambda: SkipClickConfig.tiny(fuse_taps=False, skip_connections=False),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_parity(name, tmp_path):
    config = VARIANTS[name]()
    params = init_params(config, seed=1)
    pair = OnnxSkipClick(export_onnx(config, params, tmp_path / name))
    assert pair.feature_names == (["tokens", "skip0", "skip1", "skip2", "skip3"] if config.skip_connections
                                  else ["tokens"])
    s = config.image_size
    rng = np.random.default_rng(1)
    images, prev = rng.random((2, s, s, 3), dtype=np.float32), rng.random((2, s, s, 1), dtype=np.float32)
    points = np.full((2, 4, 3), -1.0)
    points[:, 0] = (30.3, 40.7, 0.0)
    points[:, 2] = (s - 3.5, 5.25, 0.0)
    want = np.asarray(SkipClick(config).apply({"params": params}, images, prev, points))
    logits, _ = pair.click(pair.encode(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
                           np.ascontiguousarray(prev.transpose(0, 3, 1, 2)), points)
    assert np.abs(logits.transpose(0, 2, 3, 1) - want).max() <= LOGITS_ATOL
