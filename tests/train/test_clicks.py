"""Training click rule (SPEC 5.5): OpenCV's mask-5 distance transform on device, candidates, ties, slots."""

from __future__ import annotations

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skipclick_jax.train.clicks import FAR, add_next_points, chamfer_distance_5x5, error_distances, next_click

N = 24  # click slots per sign


def _random_masks(seed: int, shape: tuple[int, int], count: int) -> np.ndarray:
    """`count` masks of one shape (one compilation per shape), cycling through five kinds."""
    rng = np.random.default_rng(seed)
    h, w = shape
    out = []
    for k in range(count):
        kind = k % 5
        if kind == 0:  # salt and pepper
            m = (rng.random((h, w)) < rng.uniform(0.5, 0.999)).astype(np.uint8)
        elif kind == 1:  # blobs on background
            m = cv2.dilate((rng.random((h, w)) < 0.01).astype(np.uint8), np.ones((15, 15), np.uint8))
        elif kind == 2:  # holes in foreground
            m = 1 - cv2.dilate((rng.random((h, w)) < 0.003).astype(np.uint8), np.ones((5, 5), np.uint8))
        elif kind == 3:  # one zero pixel: long chains of additions
            m = np.ones((h, w), np.uint8)
            m[rng.integers(h), rng.integers(w)] = 0
        else:  # as the trainer uses it: zero-padded error maps
            m = np.pad(cv2.dilate((rng.random((h - 2, w - 2)) < 0.02).astype(np.uint8), np.ones((9, 9), np.uint8)), 1)
        out.append(m)
    return np.stack(out)


@pytest.fixture(scope="module")
def dt_fns():
    return {m: jax.jit(lambda x, m=m: chamfer_distance_5x5(x, m)) for m in ("relax", "raster")}


def test_distance_transform_matches_opencv(dt_fns):
    worst = 0.0
    for seed, shape in enumerate([(5, 7), (37, 61), (80, 80), (114, 114)]):
        masks = _random_masks(seed, shape, 10)
        relax = np.asarray(dt_fns["relax"](masks))
        raster = np.asarray(dt_fns["raster"](masks))
        np.testing.assert_array_equal(relax, raster)  # exact arithmetic: both algorithms agree bit for bit
        for mask, dt in zip(masks, relax, strict=True):
            ref = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
            np.testing.assert_array_equal(dt == 0, ref == 0)
            np.testing.assert_array_equal(dt == FAR, ref >= np.finfo(np.float32).max)
            finite = ref < FAR
            if finite.any():
                # OpenCV (IPP) accumulates in float32; we round the exact sum once: a few ulps apart.
                np.testing.assert_allclose(dt[finite], ref[finite], rtol=1e-6, atol=0)
                worst = max(worst, float(np.max(np.abs(dt[finite] - ref[finite]) / np.maximum(ref[finite], 1))))
    assert 0 < worst < 1e-6  # not bit-identical to IPP's float32 accumulation, but within a few ulps


def test_distance_transform_weights_and_shapes(dt_fns):
    # A single zero pixel at the origin: straight 1, diagonal 1.4f, knight 2.1969f, and their sums.
    mask = np.ones((4, 5), np.uint8)
    mask[0, 0] = 0
    dt = np.asarray(dt_fns["relax"](mask))
    f32 = np.float32
    assert dt[0, 1] == 1 and dt[1, 0] == 1 and dt[0, 2] == 2
    assert dt[1, 1] == f32(1.4) and dt[1, 2] == f32(2.1969) and dt[2, 1] == f32(2.1969)
    assert dt[2, 2] == f32(float(f32(1.4)) * 2) and dt[1, 3] == f32(float(f32(2.1969)) + 1)
    np.testing.assert_array_equal(dt, cv2.distanceTransform(mask, cv2.DIST_L2, 5))
    # Leading batch dimensions, and an image without zero pixels.
    batch = np.stack([mask, np.ones_like(mask)])[None]
    out = np.asarray(jax.jit(chamfer_distance_5x5)(batch))
    assert out.shape == (1, 2, 4, 5)
    np.testing.assert_array_equal(out[0, 0], dt)
    assert np.all(out[0, 1] == FAR)
    with pytest.raises(ValueError, match="method"):
        chamfer_distance_5x5(mask, "exact")


def _reference_click(prob: np.ndarray, gt: np.ndarray):
    """SPEC 5.5 with cv2: (is_positive, candidate mask) or None when both error maps are empty."""
    gt = gt > 0.5
    fn = np.pad(gt & (prob < 0.49), 1).astype(np.uint8)
    fp = np.pad(~gt & (prob > 0.49), 1).astype(np.uint8)
    fn_dt = cv2.distanceTransform(fn, cv2.DIST_L2, 5)[1:-1, 1:-1]
    fp_dt = cv2.distanceTransform(fp, cv2.DIST_L2, 5)[1:-1, 1:-1]
    positive = fn_dt.max() > fp_dt.max()
    inner = (fn_dt if positive else fp_dt) > max(fn_dt.max(), fp_dt.max()) / 2.0
    return (positive, inner) if inner.any() else None


def _blobs(rng, shape, count, radius):
    m = np.zeros(shape, np.uint8)
    for _ in range(count):
        cv2.circle(m, (int(rng.integers(shape[1])), int(rng.integers(shape[0]))), int(rng.integers(2, radius)), 1, -1)
    return m.astype(bool)


def test_click_rule_matches_the_original_rule():
    """Sign and candidate set against SPEC 5.5 evaluated with cv2 on random predictions."""
    rng = np.random.default_rng(3)
    b, s = 16, 48
    gt = np.stack([_blobs(rng, (s, s), 2, 14) for _ in range(b)]).astype(np.float32)
    pred = np.stack([_blobs(rng, (s, s), 3, 12) for _ in range(b)])
    prob = np.where(pred, 0.9, 0.1).astype(np.float32)
    prob[0] = np.where(gt[0] > 0.5, 0.9, 0.1)  # perfect: no click
    prob[1, 0, 0] = 0.49  # exactly at the threshold: neither FN nor FP
    fn_dt, fp_dt = jax.jit(error_distances)(jnp.asarray(prob), jnp.asarray(gt))
    agree = clicking = 0
    for i in range(b):
        ref = _reference_click(prob[i], gt[i])
        fn, fp = np.asarray(fn_dt[i]), np.asarray(fp_dt[i])
        positive = fn.max() > fp.max()
        inner = (fn if positive else fp) > max(fn.max(), fp.max()) / 2
        if ref is None:
            assert not inner.any()
            continue
        clicking += 1
        agree += positive == ref[0] and np.array_equal(inner, ref[1])
    # All agree here (15 of 15); the transform's ulp-level differences from IPP (whose rounding depends on
    # the CPU's SIMD width) could in principle move a pixel lying exactly at max/2, so allow one.
    assert clicking == b - 1 and agree >= clicking - 1, (agree, clicking)


def _one_sample(fn_region, fp_region, shape=(12, 12)):
    gt = np.zeros(shape, np.float32)
    prob = np.zeros(shape, np.float32)
    for r0, r1, c0, c1 in fn_region:
        gt[r0:r1, c0:c1] = 1  # foreground predicted 0: false negative
    for r0, r1, c0, c1 in fp_region:
        prob[r0:r1, c0:c1] = 1  # background predicted 1: false positive
    return prob, gt


def test_hand_cases_sign_ties_candidates_and_slots():
    points = -np.ones((3, 2 * N, 3), np.float32)
    points[:, 0] = [5, 5, 100]
    # 0: FN square 5×5 (max 3 at its centre) beats FP 3×3 (max 2) → positive; candidates dt > 1.5.
    # 1: FN 3×3 vs FP 3×3 → tie (2 == 2) → negative.
    # 2: nothing wrong → no click.
    cases = [_one_sample([(2, 7, 2, 7)], [(8, 11, 8, 11)]), _one_sample([(1, 4, 1, 4)], [(6, 9, 6, 9)]),
             _one_sample([], [])]
    prob = jnp.asarray(np.stack([c[0] for c in cases]))
    gt = jnp.asarray(np.stack([c[1] for c in cases]))
    step = jax.jit(add_next_points, static_argnames="method")
    seen = set()
    for k in range(60):
        for t in (1, 2, 3):
            out = np.asarray(step(prob, gt, jnp.asarray(points), t, jax.random.key(k)))
            # Positive click t in row N - t, negative in 2N - t, as (row, col, t); nothing else changes.
            r, c, order = out[0, N - t]
            assert order == t and 3 <= r <= 5 and 3 <= c <= 5  # dt > 1.5 inside the 5×5 square
            seen.add((int(r), int(c)))
            np.testing.assert_array_equal(np.delete(out[0], N - t, 0), np.delete(points[0], N - t, 0))
            assert out[1, 2 * N - t, 2] == t and tuple(out[1, 2 * N - t, :2]) == (7, 7)  # the only dt 2 pixel
            np.testing.assert_array_equal(np.delete(out[1], 2 * N - t, 0), np.delete(points[1], 2 * N - t, 0))
            np.testing.assert_array_equal(out[2], points[2])
    assert len(seen) == 9  # every candidate gets drawn


def test_candidate_draw_is_uniform():
    fn_dt = jnp.zeros((6, 6)).at[1:5, 1:5].set(1.0).at[2:4, 2:4].set(2.0)  # 4 pixels above max/2
    draws = jax.vmap(lambda k: next_click(fn_dt, jnp.zeros((6, 6)), k))(jax.random.split(jax.random.key(0), 4000))
    valid, positive, coords = (np.asarray(x) for x in draws)
    assert valid.all() and positive.all()
    flat = coords[:, 0] * 6 + coords[:, 1]
    counts = np.bincount(flat, minlength=36)
    assert set(np.flatnonzero(counts)) == {14, 15, 20, 21}
    assert np.all(np.abs(counts[[14, 15, 20, 21]] - 1000) < 5 * np.sqrt(1000 * 0.75))
