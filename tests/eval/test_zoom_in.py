"""Zoom-in ROI rules on hand-checked cases, the host resize, and the predictor's first click."""

from __future__ import annotations

import numpy as np
import pytest

from skipclick_jax.eval.zoom_in import Box, ZoomInPredictor, candidate_roi, resize_bilinear_np

from .conftest import SIZE


def test_box_grow_rounds_half_to_even_and_clips():
    mask = np.zeros((375, 500), bool)
    mask[3, 4] = mask[10, 7] = True
    box = Box.covering(mask)
    assert box == (3, 10, 4, 7) and (box.height, box.width) == (8, 4)
    # centre (6.5, 5.5), size 1.4·(8, 4) = (11.2, 5.6): 0.9 → 1, 12.1 → 12, 2.7 → 3, 8.3 → 8
    assert box.grown(1.4) == (1, 12, 3, 8)
    # at least 200 px: 6.5 ∓ 100 = −93.5, 106.5 and 5.5 ∓ 100 = −94.5, 105.5 — halves go to the even neighbour
    assert box.grown(1.4, 200) == (-94, 106, -94, 106)
    assert Box(-94, 106, -94, 106).clipped(375, 500) == (0, 106, 0, 106)
    assert Box.whole(375, 500) == (0, 374, 0, 499)
    with pytest.raises(ValueError):
        Box.covering(np.zeros((4, 4), bool))


def test_candidate_roi_adds_positive_clicks_only():
    mask = np.zeros((600, 800), bool)
    mask[300:320, 400:430] = True  # 20×30 box → 28×42 after ×1.4 → 200×200 minimum
    assert candidate_roi(mask, []) == (210, 410, 314, 514)
    # A positive click far to the right widens the box; a negative one does not.
    rmin, rmax, cmin, cmax = candidate_roi(mask, [(310, 700, True), (10, 10, False)])
    assert (rmin, rmax) == (210, 410)
    assert cmin == round(550 - 0.5 * 1.4 * 301) and cmax == min(799, round(550 + 0.5 * 1.4 * 301))
    assert not mask[310, 700]  # the caller's mask is not modified


def test_box_similarity_and_click_containment():
    assert Box(0, 9, 0, 9).similarity(Box(5, 14, 0, 9)) == pytest.approx(5 / 15)
    assert Box(0, 9, 0, 9).similarity(Box(20, 29, 0, 9)) == 0
    roi = Box(10, 50, 20, 60)
    assert roi.keeps([(49, 59, True), (5, 5, False)])
    assert not roi.keeps([(50, 30, True)])  # the last row counts as outside (>=)
    assert not roi.keeps([(30, 60, True)])
    assert not roi.keeps([(9, 30, True)])


def test_host_resize_matches_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    for (h, w), (oh, ow) in [((37, 53), (112, 112)), ((375, 500), (112, 112)), ((112, 112), (201, 77))]:
        x = rng.uniform(size=(h, w, 2)).astype(np.float32)
        want = F.interpolate(torch.from_numpy(x.transpose(2, 0, 1).copy())[None], size=(oh, ow), mode="bilinear",
                             align_corners=True)[0].numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(resize_bilinear_np(x, (oh, ow)), want, rtol=0, atol=2e-7)
    same = rng.uniform(size=(5, 6, 1)).astype(np.float32)
    np.testing.assert_array_equal(resize_bilinear_np(same, (5, 6)), same)


def test_first_click_is_the_full_image_session_step(eval_model, real_samples):
    """At click 1 the ROI is the whole image: the zoom-in predictor gives the plain session's map."""
    from skipclick_jax.inference import ClickSession

    engine = eval_model.engine(SIZE)
    sample = real_samples[0]
    zoom, session = ZoomInPredictor(engine), ClickSession(engine=engine)
    zoom.set_image(sample.image)
    session.set_image(sample.image)
    a, b = zoom.add_click(150, 200, True), session.add_click(150, 200, True)
    assert zoom.rois == [(0, 374, 0, 499)]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    zoom.add_click(160, 210, True)
    assert len(zoom.clicks) == 2 and zoom.rois[1] != zoom.rois[0]
    zoom.reset()
    assert zoom.clicks == [] and zoom.roi is None
    with pytest.raises(RuntimeError, match="set_image"):
        ZoomInPredictor(engine).add_click(1, 1, True)
