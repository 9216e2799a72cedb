"""MultiPointSampler semantics (SPEC 5.4): count laws, merging, erosion, border ring, padding layout."""

from __future__ import annotations

import numpy as np
import pytest

from skipclick_jax.data import points_sampler as PS
from skipclick_jax.data.config import SamplerConfig
from skipclick_jax.data.sample import ObjectNode

CFG = SamplerConfig()


def _square(shape, y0, y1, x0, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def _assert_matches_law(counts, probs, offset=0):
    n = len(counts)
    freq = np.bincount(np.asarray(counts) - offset, minlength=len(probs)) / n
    assert len(freq) == len(probs)
    tol = 4.5 * np.sqrt(probs * (1 - probs) / n) + 1e-3
    assert np.all(np.abs(freq - probs) < tol), (freq, probs)


def test_generate_probs():
    p = PS.generate_probs(24, 0.8)
    assert p.shape == (24,) and np.isclose(p.sum(), 1.0)
    assert np.isclose(p[0], 0.2 / (1 - 0.8**24)) and np.isclose(p[0], 0.201, atol=5e-4)
    np.testing.assert_allclose(p[1:] / p[:-1], 0.8)


def test_positive_and_negative_count_laws():
    rng = np.random.default_rng(0)
    mask = _square((32, 32), 2, 30, 2, 30)
    negatives = {"bg": mask, "other": mask, "border": mask}
    pos = [len(PS.sample_positive_points([mask], rng, CFG)) for _ in range(12000)]
    neg = [len(PS.sample_negative_points(negatives, rng, CFG)) for _ in range(12000)]
    _assert_matches_law(pos, PS.generate_probs(24, 0.8), offset=1)  # 1 + k, k = 0..23
    _assert_matches_law(neg, PS.generate_probs(25, 0.8))  # k = 0..24
    assert min(pos) == 1 and max(pos) <= 24 and min(neg) == 0


def _layers_with_roots(n_roots, shape=(64, 64)):
    layers = np.zeros((*shape, 1), np.uint8)
    objects = {}
    for i in range(n_roots):
        layers[4 + 12 * i:14 + 12 * i, 4:40, 0] = i + 1
        objects[i] = ObjectNode(0, i + 1, area=360)
    return layers, objects


def test_merge_probability_and_merged_positives():
    rng = np.random.default_rng(1)
    layers, objects = _layers_with_roots(3)
    merged, trials = 0, 4000
    for _ in range(trials):
        target = PS.select_target(layers, objects, rng, CFG)
        assert len(target.object_ids) in (1, 2) and len(set(target.object_ids)) == len(target.object_ids)
        merged += len(target.object_ids) == 2
        expected_gt = np.isin(layers[:, :, 0], [i + 1 for i in target.object_ids])
        np.testing.assert_array_equal(target.gt, expected_gt)
    assert abs(merged / trials - 0.15) < 4.5 * np.sqrt(0.15 * 0.85 / trials)
    one_layers, one_obj = _layers_with_roots(1)
    assert all(len(PS.select_target(one_layers, one_obj, rng, CFG).object_ids) == 1 for _ in range(200))
    # Merged positives: one click in each object first, then extras anywhere in the union, at most 24.
    a, b = layers[:, :, 0] == 1, layers[:, :, 0] == 2
    for _ in range(300):
        pts = PS.sample_positive_points([a, b], rng, CFG)
        assert 2 <= len(pts) <= 24 and a[pts[0]] and b[pts[1]]
        assert all(a[p] or b[p] for p in pts)


def test_children_are_never_targets():
    rng = np.random.default_rng(2)
    layers, objects = _layers_with_roots(2)
    objects[1].parent, objects[0].children = 0, [1]
    for _ in range(100):
        assert PS.select_target(layers, objects, rng, CFG).object_ids == [0]


def test_positive_erosion_and_fallback():
    rng = np.random.default_rng(3)
    always, never = SamplerConfig(positive_erode_prob=1.0), SamplerConfig(positive_erode_prob=0.0)
    big = _square((40, 40), 10, 30, 10, 30)
    np.testing.assert_array_equal(PS.positive_erode(big, rng, always), _square((40, 40), 13, 27, 13, 27))
    assert PS.positive_erode(big, rng, never) is big
    nine = _square((40, 40), 10, 19, 10, 19)  # 9x9 -> 3x3 = 9 px <= 10: keep the uneroded mask
    assert PS.positive_erode(nine, rng, always) is nine
    ten = _square((40, 40), 10, 20, 10, 20)  # 10x10 -> 4x4 = 16 px > 10: eroded
    assert PS.positive_erode(ten, rng, always).sum() == 16
    edge = _square((40, 40), 0, 20, 0, 20)  # the image border does not erode
    np.testing.assert_array_equal(PS.positive_erode(edge, rng, always), _square((40, 40), 0, 17, 0, 17))
    eroded = sum(PS.positive_erode(big, rng, CFG).sum() < big.sum() for _ in range(3000))
    assert abs(eroded / 3000 - 0.9) < 4.5 * np.sqrt(0.09 / 3000)


@pytest.mark.parametrize("side, iterations", [(10, 1), (20, 2), (21, 3)])
def test_border_ring(side, iterations):
    gt = _square((80, 80), 30, 30 + side, 30, 30 + side)
    ring = PS.border_mask(gt, 0.1)  # ceil(0.1 * sqrt(area)) dilations of 3x3
    lo, hi = 30 - iterations, 30 + side + iterations
    outer = _square((80, 80), lo, hi, lo, hi)
    np.testing.assert_array_equal(ring, outer & ~gt)


def test_empty_negative_masks_are_skipped():
    rng = np.random.default_rng(4)
    empty = np.zeros((16, 16), bool)
    only_border = _square((16, 16), 0, 4, 0, 4)
    assert all(PS.sample_negative_points(dict.fromkeys(("bg", "other", "border"), empty), rng, CFG) == []
               for _ in range(200))
    counts = []
    for _ in range(4000):
        pts = PS.sample_negative_points({"bg": empty, "other": empty, "border": only_border}, rng, CFG)
        assert all(only_border[p] for p in pts)
        counts.append(len(pts))
    # Each of the k drawn clicks survives with probability 0.5 (the border strategy): mean 0.5 * E[k].
    p = PS.generate_probs(25, 0.8)
    assert abs(np.mean(counts) - 0.5 * (p * np.arange(25)).sum()) < 0.15


def test_output_layout_and_other_mask():
    rng = np.random.default_rng(5)
    layers, objects = _layers_with_roots(2)
    layers = np.concatenate([layers, np.zeros_like(layers)], axis=2)
    layers[50:60, 50:60, 1] = 7  # pixels of a removed small object: still "other", not background
    for _ in range(50):
        points, gt = PS.sample_points(layers, objects, rng, CFG)
        assert points.shape == (48, 3) and points.dtype == np.float32 and gt.dtype == np.float32
        for block in (points[:24], points[24:]):
            valid = block[:, 0] >= 0
            n = int(valid.sum())
            assert valid[:n].all() and not valid[n:].any()  # clicks first, then padding
            assert (block[:n, 2] == 100).all() and (block[n:] == -1).all()
        pos = points[:24][points[:24, 0] >= 0].astype(int)
        assert pos.shape[0] >= 1 and gt[pos[:, 0], pos[:, 1]].all()
        neg = points[24:][points[24:, 0] >= 0].astype(int)
        assert not gt[neg[:, 0], neg[:, 1]].any()
    target = PS.select_target(layers, {0: objects[0], 1: objects[1]}, np.random.default_rng(0),
                              SamplerConfig(merge_objects_prob=0.0))
    other = (layers.max(axis=2) != 0) & ~target.gt
    np.testing.assert_array_equal(target.negative_masks["other"], other)
    assert target.negative_masks["other"][55, 55]
    # Only the selected object exists: "other" falls back to the background strategy.
    target = PS.select_target(layers[:, :, :1], {0: objects[0]}, rng, CFG)
    np.testing.assert_array_equal(target.negative_masks["other"], ~target.gt)


def test_background_only_sample():
    rng = np.random.default_rng(6)
    layers = np.zeros((32, 32, 1), np.uint8)
    layers[:8, :8, 0] = 3  # a removed object's label: excluded from the background
    for _ in range(50):
        points, gt = PS.sample_points(layers, {}, rng, CFG)
        assert not gt.any() and (points[:24] == -1).all()
        neg = points[24:][points[24:, 0] >= 0].astype(int)
        assert (layers[neg[:, 0], neg[:, 1], 0] == 0).all()
