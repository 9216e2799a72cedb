"""Evaluation clicker (SPEC §3.5): hand-built cases and a cross-check against scipy's exact EDT."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from skipclick_jax.eval.clicker import Click, Clicker, error_masks, next_click, padded_distance


def _gt(shape: tuple[int, int], *boxes: tuple[int, int, int, int], value: int = 1) -> np.ndarray:
    gt = np.zeros(shape, np.int32)
    for y0, y1, x0, x1 in boxes:
        gt[y0:y1, x0:x1] = value
    return gt


def _none(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape, bool)


def reference_click(gt: np.ndarray, pred: np.ndarray, not_clicked: np.ndarray):
    """Independent float64 implementation with scipy: (click, FN tie set, FP tie set, maps)."""
    valid = gt != -1
    fn = (gt == 1) & ~pred & valid
    fp = (gt != 1) & pred & valid
    d_fn = ndimage.distance_transform_edt(np.pad(fn, 1))[1:-1, 1:-1] * not_clicked
    d_fp = ndimage.distance_transform_edt(np.pad(fp, 1))[1:-1, 1:-1] * not_clicked
    positive = d_fn.max() > d_fp.max()
    d = d_fn if positive else d_fp
    ys, xs = np.nonzero(d == d.max())  # row-major order
    return Click(int(ys[0]), int(xs[0]), bool(positive)), d_fn, d_fp


def test_first_click_is_positive_at_object_centre():
    gt = _gt((10, 12), (2, 8, 3, 9))  # 6×6 square: distance 3 on its central 2×2
    click = next_click(gt, _none(gt.shape))
    assert click == Click(4, 5, True)  # first of the central 2×2 in row-major order


def test_tie_between_fn_and_fp_gives_negative_click():
    # FN: missed 3×3 object (max distance 2); FP: predicted 3×3 background block (max distance 2).
    gt = _gt((9, 14), (3, 6, 1, 4))
    pred = _gt((9, 14), (3, 6, 8, 11)).astype(bool)
    assert next_click(gt, pred) == Click(4, 9, False)


def test_strictly_larger_fn_gives_positive_click():
    gt = _gt((11, 16), (2, 7, 1, 6))  # 5×5: max 3
    pred = _gt((11, 16), (3, 6, 9, 12)).astype(bool)  # 3×3 FP: max 2
    assert next_click(gt, pred) == Click(4, 3, True)


def test_first_maximum_in_row_major_order():
    # Two equal squares side by side on the same rows: the left one wins; stacked: the upper one wins.
    gt = _gt((12, 20), (3, 8, 11, 16), (3, 8, 2, 7))
    assert next_click(gt, _none(gt.shape)) == Click(5, 4, True)
    gt = _gt((20, 12), (11, 16, 1, 6), (2, 7, 5, 10))
    assert next_click(gt, _none(gt.shape)) == Click(4, 7, True)
    # A 2×2 object: all four pixels have distance 1 → its top-left pixel.
    assert next_click(_gt((6, 6), (2, 4, 3, 5)), _none((6, 6))) == Click(2, 3, True)


def test_image_border_counts_as_background():
    # Object touching the top, bottom and left borders: with the 1-px zero padding the border acts as
    # background, so the click is pushed inwards instead of sitting on column 0.
    gt = _gt((7, 12), (0, 7, 0, 6))
    dist = padded_distance(gt == 1)
    assert dist[3, 0] == 1.0 and dist[0, 2] == 1.0
    assert dist.max() == 3.0
    assert next_click(gt, _none(gt.shape)) == Click(2, 2, True)
    # Without padding the distance would ignore the border and the click would hug column 0.
    unpadded = ndimage.distance_transform_edt(gt == 1)
    assert np.unravel_index(np.argmax(unpadded), gt.shape)[1] == 0


def test_whole_image_object_and_corner_pixel():
    gt = np.ones((5, 7), np.int32)  # distance 3 at (2, 2), (2, 3), (2, 4): the first one wins
    assert next_click(gt, _none(gt.shape)) == Click(2, 2, True)
    corner = _gt((5, 7), (0, 1, 0, 1))
    assert next_click(corner, _none(corner.shape)) == Click(0, 0, True)
    corner = _gt((5, 7), (4, 5, 6, 7))
    assert next_click(corner, _none(corner.shape)) == Click(4, 6, True)


def test_ignore_pixels_are_neither_fn_nor_fp():
    gt = _gt((12, 12), (1, 11, 1, 11))
    gt[4:7, 4:7] = -1  # ignore hole in the middle of the object
    fn, fp = error_masks(gt, _none(gt.shape))
    assert not fn[5, 5] and fn.sum() == 100 - 9 and not fp.any()
    click = next_click(gt, _none(gt.shape))
    assert gt[click.y, click.x] == 1 and click.is_positive
    assert click == reference_click(gt, _none(gt.shape), np.ones(gt.shape, bool))[0]
    # A large predicted ignore region produces no false positives: the click stays positive.
    gt2 = _gt((12, 20), (4, 7, 2, 5))
    gt2[:, 8:] = -1
    pred = np.zeros(gt2.shape, bool)
    pred[:, 8:] = True
    assert next_click(gt2, pred) == Click(5, 3, True)


def test_empty_prediction_and_empty_object():
    # Nothing to correct at all: 0 = 0 is a tie → negative click at the first pixel.
    assert next_click(np.zeros((4, 5), np.int32), _none((4, 5))) == Click(0, 0, False)
    # Perfect prediction: same degenerate negative click.
    gt = _gt((6, 6), (1, 4, 1, 4))
    assert next_click(gt, gt == 1) == Click(0, 0, False)


def test_not_clicked_map_moves_the_next_click():
    gt = _gt((8, 8), (3, 5, 3, 5))  # 2×2 object, all distances 1
    clicker = Clicker(gt)
    pred = _none(gt.shape)
    seen = [clicker.next_click(pred) for _ in range(5)]
    assert seen[:4] == [Click(3, 3, True), Click(3, 4, True), Click(4, 3, True), Click(4, 4, True)]
    assert seen[4] == Click(0, 0, False)  # every error pixel clicked → degenerate negative click
    assert len(clicker) == 5 and clicker.clicks == seen
    nc = clicker.not_clicked_map
    assert not nc[3, 3] and not nc[0, 0] and nc.sum() == 64 - 5


def test_pure_function_respects_not_clicked_map():
    gt = _gt((10, 12), (2, 8, 3, 9))
    not_clicked = np.ones(gt.shape, bool)
    not_clicked[4, 5] = False
    assert next_click(gt, _none(gt.shape), not_clicked) == Click(4, 6, True)


def test_undo_and_reset():
    gt = _gt((8, 8), (3, 5, 3, 5))
    clicker = Clicker(gt)
    a = clicker.next_click(_none(gt.shape))
    b = clicker.next_click(_none(gt.shape))
    assert clicker.undo() == b
    assert clicker.next_click(_none(gt.shape)) == b  # the pixel is free again
    assert clicker.clicks == [a, b]
    clicker.reset()
    assert clicker.clicks == [] and clicker.not_clicked_map.all()
    with pytest.raises(IndexError):
        clicker.undo()


def test_undo_keeps_pixel_clicked_twice_marked():
    clicker = Clicker(np.zeros((3, 3), np.int32))
    first = clicker.next_click(_none((3, 3)))
    second = clicker.next_click(_none((3, 3)))
    assert first == second == Click(0, 0, False)
    clicker.undo()
    assert not clicker.not_clicked_map[0, 0]


def test_shape_errors():
    with pytest.raises(ValueError):
        next_click(np.zeros((4, 4), np.int32), np.zeros((4, 5), bool))
    with pytest.raises(ValueError):
        Clicker(np.zeros((4, 4, 1), np.int32))


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = rng.integers(3, 48, size=2)
    gt = (ndimage.gaussian_filter(rng.standard_normal((h, w)), rng.uniform(0.5, 3)) > rng.uniform(-0.3, 0.3))
    gt = gt.astype(np.int32)
    if rng.random() < 0.4:
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y:y + rng.integers(1, 8), x:x + rng.integers(1, 8)] = -1
    pred = ndimage.gaussian_filter(rng.standard_normal((h, w)), rng.uniform(0.5, 3)) > rng.uniform(-0.5, 0.5)
    if rng.random() < 0.2:
        pred = gt == 1  # exact prediction
    not_clicked = rng.random((h, w)) > rng.choice([0.0, 0.05, 0.3])
    return gt, pred, not_clicked


def test_matches_scipy_edt_on_random_masks():
    rng = np.random.default_rng(1234)
    for _ in range(300):
        gt, pred, not_clicked = _random_case(rng)
        click, d_fn, d_fp = reference_click(gt, pred, not_clicked)
        fn, fp = error_masks(gt, pred)
        ours_fn = padded_distance(fn) * not_clicked
        ours_fp = padded_distance(fp) * not_clicked
        np.testing.assert_allclose(ours_fn, d_fn, rtol=0, atol=1e-5)
        np.testing.assert_allclose(ours_fp, d_fp, rtol=0, atol=1e-5)
        # Same tie sets (the click choice depends on them).
        for ours, ref in ((ours_fn, d_fn), (ours_fp, d_fp)):
            np.testing.assert_array_equal(ours == ours.max(), ref == ref.max())
        assert next_click(gt, pred, not_clicked) == click


def test_deterministic():
    rng = np.random.default_rng(7)
    gt, pred, nc = _random_case(rng)
    assert next_click(gt, pred, nc) == next_click(gt.copy(), pred.copy(), nc.copy())
