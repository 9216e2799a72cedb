"""The training click rule (SPEC 5.5, `get_next_points`) on device, inside jit.

Per sample: FN = gt ∧ (p < 0.49), FP = ¬gt ∧ (p > 0.49); both maps get a 1-pixel zero border and the
OpenCV `DIST_L2` / mask-5 distance transform; the click is positive iff max(FN dt) > max(FP dt) (ties
negative) and lands on a uniformly random pixel of the chosen map whose distance exceeds half the larger
maximum; with both maps empty no click is added. Positive click t goes to row N - t, negative to 2N - t,
as (row, col, t).

Distance transform. OpenCV's mask-5 L2 transform is the 5×5 chamfer distance with weights a = 1,
b = 1.4f, c = 2.1969f (straight, diagonal, knight move), computed by two raster passes. How OpenCV rounds
depends on the build: the reference C code works in 16.16 fixed point, the x86 wheels call Intel IPP,
which accumulates in float32 in a SIMD-dependent order. Here the float32 weights are summed *exactly*
(integers in units of 2^-23, uint32) and the result is rounded once to float32: that is the exact chamfer
distance, identical on every backend and for both algorithms below, and within a few float32 ulps (relative
difference < 1e-6) of what `cv2.distanceTransform(m, cv2.DIST_L2, 5)` returns (tested). Two algorithms
compute it:

- `"raster"`: OpenCV's two passes, rows by `lax.scan`; inside a row the recurrence
  d[x] = min(c[x], d[x-1] + a) is a (min, +) prefix scan (Hillis-Steele, log2(W) vectorised levels).
  Fixed cost of 2·H sequential steps.
- `"relax"`: Bellman-Ford relaxation of all 16 mask neighbours in parallel until nothing changes; the
  iteration count is the longest shortest path in moves (≈ the largest distance), usually far below 2·H,
  and every iteration is one fused stencil — the faster choice on accelerators.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PRED_THRESHOLD = 0.49
# OpenCV's DIST_L2 5×5 weights (getDistanceTransformMask type 52) as float32, in units of 2^-23 (exact).
_UNIT = 2.0**-23
HV_DIST = int(np.float32(1.0) / _UNIT)  # 8388608
DIAG_DIST = int(np.float32(1.4) / _UNIT)  # 11744051
KNIGHT_DIST = int(np.float32(2.1969) / _UNIT)  # 18428932
_FAR = np.uint32(2**32 - 1)  # "no zero pixel in reach"; distances must stay below 512 (= 2^32 units)
FAR = np.float32(np.finfo(np.float32).max)  # what OpenCV returns for an image without zero pixels

# (dy, dx, weight) of the causal half of the mask (rows above, and the left neighbour); the other half
# is its mirror image.
_FORWARD_MASK = (
    (-2, -1, KNIGHT_DIST), (-2, 1, KNIGHT_DIST), (-1, -2, KNIGHT_DIST), (-1, -1, DIAG_DIST),
    (-1, 0, HV_DIST), (-1, 1, DIAG_DIST), (-1, 2, KNIGHT_DIST), (0, -1, HV_DIST),
)
_FULL_MASK = _FORWARD_MASK + tuple((-dy, -dx, w) for dy, dx, w in _FORWARD_MASK)


def _add(x: jax.Array, w: int) -> jax.Array:
    """x + w in uint32, saturating at FAR (so FAR + w stays FAR)."""
    w = min(int(w), int(_FAR))
    return jnp.minimum(x, _FAR - np.uint32(w)) + np.uint32(w)


def _shift(x: jax.Array, dy: int, dx: int) -> jax.Array:
    """out[..., i, j] = x[..., i + dy, j + dx] (|dy|, |dx| <= 2), FAR outside the image."""
    h, w = x.shape[-2:]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(2, 2), (2, 2)], constant_values=_FAR)
    return padded[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]


def _shift_row(x: jax.Array, dx: int) -> jax.Array:
    """out[..., j] = x[..., j + dx] (|dx| <= 2), FAR outside the row."""
    w = x.shape[-1]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(2, 2)], constant_values=_FAR)
    return padded[..., 2 + dx : 2 + dx + w]


def _relax(fg: jax.Array) -> jax.Array:
    def step(d):
        new = d
        for dy, dx, w in _FULL_MASK:
            new = jnp.minimum(new, _add(_shift(d, dy, dx), w))
        return new

    def body(carry):
        d, _ = carry
        new = step(d)
        return new, jnp.any(new != d)

    init = jnp.where(fg, _FAR, np.uint32(0))
    d, _ = jax.lax.while_loop(lambda c: c[1], body, (init, jnp.array(True)))
    return d


def _prefix_scan(cost: jax.Array) -> jax.Array:
    """d[x] = min(cost[x], d[x-1] + a) along the last axis (Hillis-Steele: level s looks 2^s back)."""
    w = cost.shape[-1]
    shift = 1
    while shift < w:
        earlier = jnp.pad(cost[..., :-shift], [(0, 0)] * (cost.ndim - 1) + [(shift, 0)], constant_values=_FAR)
        cost = jnp.minimum(cost, _add(earlier, shift * HV_DIST))
        shift *= 2
    return cost


def _raster(fg: jax.Array) -> jax.Array:
    n, h, w = fg.shape
    rows = jnp.moveaxis(fg, 1, 0)  # (H, N, W): scan over rows
    border = jnp.full((n, w), _FAR)

    def above(far: jax.Array, near: jax.Array, s: int) -> jax.Array:
        """min over the mask neighbours in the previous two rows (mirrored for the backward pass, s = -1)."""
        out = border
        for dy, dx, wt in _FORWARD_MASK[:-1]:
            row = near if dy == -1 else far
            out = jnp.minimum(out, _add(_shift_row(row, s * dx), wt))
        return out

    def forward(carry, fg_row):
        far, near = carry
        row = _prefix_scan(jnp.where(fg_row, above(far, near, 1), np.uint32(0)))
        return (near, row), row

    _, fwd = jax.lax.scan(forward, (border, border), rows)

    def backward(carry, fwd_row):
        far, near = carry
        row = _prefix_scan(jnp.minimum(fwd_row, above(far, near, -1))[:, ::-1])[:, ::-1]
        return (near, row), row

    _, bwd = jax.lax.scan(backward, (border, border), fwd, reverse=True)
    return jnp.moveaxis(bwd, 0, 1)


def chamfer_distance_5x5(mask: jax.Array, method: str = "relax") -> jax.Array:
    """`cv2.distanceTransform(mask, cv2.DIST_L2, 5)` for (..., H, W) masks (non-zero = foreground).

    float32 distance of every pixel to the nearest zero pixel (0 on zero pixels; FAR, i.e. FLT_MAX, when
    there is none), exact chamfer distance rounded once. Valid for distances below 512 (any mask with a
    1-pixel zero border and sides up to 1000). `method`: "relax" or "raster" (same result).
    """
    mask = jnp.asarray(mask)
    *lead, h, w = mask.shape
    fg = mask.reshape(-1, h, w) != 0
    if method == "relax":
        units = _relax(fg)
    elif method == "raster":
        units = _raster(fg)
    else:
        raise ValueError(f"unknown distance transform method {method!r}; expected 'relax' or 'raster'")
    dist = jnp.where(units == _FAR, FAR, units.astype(jnp.float32) * np.float32(_UNIT))
    return dist.reshape(*lead, h, w)


def error_distances(
    prob: jax.Array, gt: jax.Array, threshold: float = PRED_THRESHOLD, method: str = "relax"
) -> tuple[jax.Array, jax.Array]:
    """(FN dt, FP dt) of (B, H, W) probabilities against (B, H, W) labels, on 1-pixel zero-padded maps."""
    gt = gt > 0.5
    fn = gt & (prob < threshold)
    fp = ~gt & (prob > threshold)
    # Stacked behind the batch axis, so a batch sharded over devices stays sharded in the transform.
    maps = jnp.pad(jnp.stack([fn, fp], axis=1), ((0, 0), (0, 0), (1, 1), (1, 1)))
    dt = chamfer_distance_5x5(maps, method)[:, :, 1:-1, 1:-1]
    return dt[:, 0], dt[:, 1]


def next_click(fn_dt: jax.Array, fp_dt: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One sample's click from its two (H, W) distance maps: (valid, is_positive, (row, col)).

    The candidate is drawn as the original does: a uniform index into the row-major list of pixels with
    distance > max(fn_max, fp_max) / 2.
    """
    fn_max, fp_max = jnp.max(fn_dt), jnp.max(fp_dt)
    positive = fn_max > fp_max
    dt = jnp.where(positive, fn_dt, fp_dt).reshape(-1)
    inner = dt > jnp.maximum(fn_max, fp_max) / 2.0
    count = jnp.sum(inner, dtype=jnp.int32)
    pick = jax.random.randint(key, (), 0, jnp.maximum(count, 1))
    flat = jnp.argmax(jnp.cumsum(inner, dtype=jnp.int32) > pick)
    w = fn_dt.shape[-1]
    return count > 0, positive, jnp.stack([flat // w, flat % w])


def add_next_points(
    prob: jax.Array, gt: jax.Array, points: jax.Array, click_index: jax.Array | int, key: jax.Array,
    method: str = "relax",
) -> jax.Array:
    """`get_next_points(prob, gt, points, click_index)`: one more simulated click per sample.

    Args:
        prob: (B, H, W) or (B, H, W, 1) probabilities of the previous prediction.
        gt: same layout, labels (> 0.5 = foreground).
        points: (B, 2N, 3) click rows; positives in rows < N.
        click_index: t >= 1 (may be traced); the click is written to row N - t or 2N - t as (row, col, t).
        key: PRNG key, each sample drawing from its own split of it; or one key per sample (B,).
        method: distance transform algorithm ("relax" or "raster"; same result).

    Returns:
        The updated points (a sample without any error pixel keeps its points unchanged).
    """
    if prob.ndim == 4:
        prob, gt = prob[..., 0], gt[..., 0]
    fn_dt, fp_dt = error_distances(prob, gt, method=method)
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    per_sample = key.ndim == (1 if typed else 2)
    keys = key if per_sample else jax.random.split(key, prob.shape[0])
    valid, positive, coords = jax.vmap(next_click)(fn_dt, fp_dt, keys)
    n = points.shape[1] // 2
    t = jnp.asarray(click_index, jnp.int32)
    slot = jnp.where(positive, n - t, 2 * n - t)
    row = jnp.concatenate([coords.astype(points.dtype), jnp.broadcast_to(t.astype(points.dtype), (len(slot), 1))], 1)
    hit = (jnp.arange(2 * n)[None, :] == slot[:, None]) & valid[:, None]
    return jnp.where(hit[..., None], row[:, None, :], points)
