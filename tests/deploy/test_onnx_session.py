"""A 20-click session driven only through ONNX Runtime (`OnnxSkipClick`, flip averaging on) reproduces the
`ClickSession` probabilities and masks of the JAX model, the previous mask fed back at every click."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from skipclick_jax.deploy.ort_model import OnnxSkipClick  # noqa: E402
from skipclick_jax.inference import ClickSession  # noqa: E402

from .conftest import SIZE  # noqa: E402

# Measured over 20-click sessions of 3 seeds: max |Δprobability| 5.7e-7, no mask pixel different. A pixel
# may only disagree in the mask when its probability lies that close to the threshold.
PROB_ATOL = 5e-6


def onnx_session(pair: OnnxSkipClick, image: np.ndarray, clicks: list[tuple[float, float, bool]]):
    """What an ONNX Runtime front end does, numpy only: encode once, then per click the points in the original
    layout (positives first, −1 padding), the previous probabilities in, the new ones out."""
    h, w = image.shape[:2]
    features = pair.encode(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
    prev = np.zeros((1, 1, pair.size, pair.size), np.float32)
    for k in range(1, len(clicks) + 1):
        so_far = clicks[:k]
        slots = max(sum(c[2] for c in so_far), sum(not c[2] for c in so_far))
        points = np.full((1, 2 * slots, 3), -1.0)
        for base, sign in ((0, True), (slots, False)):
            for j, (y, x, _) in enumerate(c for c in so_far if c[2] == sign):
                points[0, base + j] = ((pair.size * y) / h, (pair.size * x) / w, 0.0)  # the session's mapping
        _, prev = pair.click(features, prev, points)
        yield prev[0, 0]


def test_twenty_clicks_match_click_session(tiny_checkpoint, tiny_onnx):
    _, model, params = tiny_checkpoint
    rng = np.random.default_rng(7)
    image = rng.random((SIZE, SIZE, 3), dtype=np.float32)  # at the network size: no resize on either side
    clicks = [(float(rng.uniform(0, SIZE - 1)), float(rng.uniform(0, SIZE - 1)), bool(k % 3 != 1)) for k in range(20)]

    session = ClickSession(model, params, size=SIZE, flip=True)
    session.set_image(image)
    pair = OnnxSkipClick(tiny_onnx, flip=True)
    worst, mask_pixels = 0.0, 0
    for (y, x, positive), prob in zip(clicks, onnx_session(pair, image, clicks), strict=True):
        want = session.add_click(y, x, positive)
        worst = max(worst, float(np.abs(prob - want).max()))
        assert worst <= PROB_ATOL, worst
        mask = prob > pair.threshold
        differ = mask != session.mask
        assert not differ.any() or np.abs(want[differ] - session.threshold).max() <= PROB_ATOL
        mask_pixels += int(mask.sum())
    assert 0 < mask_pixels < 20 * SIZE * SIZE  # the masks are neither all empty nor all full
