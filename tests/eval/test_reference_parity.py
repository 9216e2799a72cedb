"""The whole evaluation against an independent PyTorch one (same weights, real images).

Reference: ``tests/torch_reference`` — the model, the evaluation predictor (resize → flip TTA → inverse) and
``eval_reference`` (the original's clicker, IoU, float32 storage, NoC and zoom-in), sharing no code with
``skipclick_jax``. Ours: the batched evaluator (exact mode) and the zoom-in predictor. Clicks, per-click IoUs
and NoC must agree. (On this model they agree bit for bit; the IoU tolerance below only allows a probability
within float rounding of the threshold to flip a pixel on another machine.)
"""

from __future__ import annotations

import numpy as np
import pytest

from skipclick_jax.eval.batched import BatchedEvaluator
from skipclick_jax.eval.loop import evaluate_dataset
from skipclick_jax.eval.metrics import NOC_KEYS, NOF_KEYS, summarize
from skipclick_jax.eval.zoom_in import ZoomInPredictor

from .conftest import SIZE

torch = pytest.importorskip("torch")
from tests.torch_reference import ReferencePredictor  # noqa: E402
from tests.torch_reference.eval_reference import (  # noqa: E402
    ReferenceZoomInPredictor,
    reference_evaluate,
    reference_noc,
)

N_CLICKS = 8


def _compare(samples, metrics, theirs) -> None:
    for o, (clicks, ious, _) in zip(samples, theirs, strict=True):
        assert [tuple(c) for c in o.clicks] == clicks, o.id
        np.testing.assert_allclose(o.ious, ious, rtol=0, atol=1e-4, err_msg=o.id)
    stored = [t[2] for t in theirs]
    ref = reference_noc(stored, max_clicks=N_CLICKS)
    for j, key in enumerate(NOC_KEYS):
        assert metrics[key] == ref[j][0], key
    for j, key in enumerate(NOF_KEYS, start=1):
        assert metrics[key] == ref[j][1], key


def test_batched_evaluation_equals_pytorch_reference(eval_model, eval_reference, real_samples, torch_one_thread):
    ours = BatchedEvaluator(eval_model.engine(SIZE), 3, max_clicks=N_CLICKS, target_iou=1.01).evaluate(
        real_samples, progress=False)
    theirs = [reference_evaluate(ReferencePredictor(eval_reference, SIZE), s.image, s.gt, max_clicks=N_CLICKS,
                                 target_iou=1.01) for s in real_samples]
    _compare(ours.samples, ours.metrics, theirs)
    kinds = {c[2] for s in ours.samples for c in s.clicks}
    assert kinds == {True, False}, "the sessions should exercise both click kinds"
    assert max(max(s.ious) for s in ours.samples) > 0.3


def test_zoom_in_evaluation_equals_pytorch_reference(eval_model, eval_reference, real_samples, torch_one_thread):
    predictor = ZoomInPredictor(eval_model.engine(SIZE))
    ours, rois = [], []
    for s in real_samples:
        ours += evaluate_dataset(predictor, [s], max_clicks=N_CLICKS, target_iou=1.01, progress=False).samples
        rois.append(list(predictor.rois))
    theirs, their_rois = [], []
    for s in real_samples:
        reference = ReferenceZoomInPredictor(eval_reference, SIZE)
        theirs.append(reference_evaluate(reference, s.image, s.gt, max_clicks=N_CLICKS, target_iou=1.01))
        their_rois.append(reference.rois)
    assert rois == their_rois
    # The first click sees the whole image; later ROIs are real crops (not the full image) for every object.
    for s, r in zip(real_samples, rois, strict=True):
        h, w = s.gt.shape
        assert r[0] == (0, h - 1, 0, w - 1)
        assert any(roi != r[0] for roi in r[1:])
    _compare(ours, summarize([o.ious for o in ours], max_clicks=N_CLICKS, target_iou=1.01), theirs)


def test_early_stop_and_noc_match_reference(eval_model, eval_reference, real_samples, torch_one_thread):
    """With a reachable target the loops stop at the same click; NoC/NoF agree with the reference's."""
    target = 0.3
    ours = BatchedEvaluator(eval_model.engine(SIZE), 3, max_clicks=N_CLICKS, target_iou=target).evaluate(
        real_samples, progress=False)
    theirs = [reference_evaluate(ReferencePredictor(eval_reference, SIZE), s.image, s.gt, max_clicks=N_CLICKS,
                                 target_iou=target) for s in real_samples]
    lengths = [len(s.ious) for s in ours.samples]
    assert min(lengths) < N_CLICKS  # some objects stopped early
    for o, (clicks, ious, _) in zip(ours.samples, theirs, strict=True):
        assert [tuple(c) for c in o.clicks] == clicks
        np.testing.assert_allclose(o.ious, ious, rtol=0, atol=1e-4)
