"""Click encoding: points → disk maps, with the original's exact floating-point behaviour.

Points are (B, 2N, 3) rows `(y, x, order)`, positives in rows 0..N-1 and negatives in rows N..2N-1,
unused rows `(-1, -1, -1)`; a row is unused iff max(y, x) < 0. A pixel (r, q) lies in the disk of a
point iff (r - y)² + (q - x)² ≤ radius², evaluated like the original's DistMaps: the offsets r - y are
rounded once to float32, squared in float32, and the two squares summed in float32.

Because the test is separable, a point is encoded by its two rows of squared offsets
`dy2[r] = fl32(r - y)²` and `dx2[q] = fl32(q - x)²` (`ClickOffsets`). The original evaluation passes
float64 click coordinates and subtracts them in float64 before the float32 rounding (SPEC trap 42);
`click_offsets` reproduces that on the host when it is given float64 numpy points, and computes the
float32 version on device otherwise (e.g. inside a jitted training step, whose clicks are integers).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Squared offset given to unused point slots: no pixel can be within any radius of them.
_FAR = np.float32(1e12)


class ClickOffsets(NamedTuple):
    """Per-point squared row and column offsets; the first half of the points are positive clicks."""

    dy2: jax.Array  # (B, 2N, H) float32
    dx2: jax.Array  # (B, 2N, W) float32


def check_points(points) -> None:
    """Raise a clear error unless `points` is a (B, 2N, 3) array of real numbers (rows y, x, order)."""
    dtype = np.dtype(points.dtype if hasattr(points, "dtype") else np.asarray(points).dtype)
    shape = tuple(np.shape(points))
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"points must have shape (B, 2N, 3) — rows (y, x, order), positives first — got {shape}")
    if shape[1] % 2:
        raise ValueError(f"points must have an even number of rows (N positive then N negative slots; pad with "
                         f"(-1, -1, -1)), got {shape[1]}")
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"points must be a real-valued (float or int) array, got dtype {dtype}")


def click_offsets(points, height: int, width: int) -> ClickOffsets:
    """Encode (B, 2N, 3) points for an H×W input (see the module docstring for the arithmetic)."""
    check_points(points)
    if isinstance(points, np.ndarray) and points.dtype == np.float64:
        return _click_offsets_float64(points, height, width)
    points = jnp.asarray(points, jnp.float32)
    yx = points[..., :2]
    valid = jnp.max(yx, axis=-1) >= 0
    dy = jnp.arange(height, dtype=jnp.float32) - yx[..., 0:1]
    dx = jnp.arange(width, dtype=jnp.float32) - yx[..., 1:2]
    # The barrier keeps XLA from fusing square and sum into an FMA, which rounds differently.
    dy2, dx2 = jax.lax.optimization_barrier((dy * dy, dx * dx))
    far = jnp.float32(_FAR)
    return ClickOffsets(jnp.where(valid[..., None], dy2, far), jnp.where(valid[..., None], dx2, far))


def _click_offsets_float64(points: np.ndarray, height: int, width: int) -> ClickOffsets:
    valid = points[..., :2].max(axis=-1) >= 0
    dy = (np.arange(height, dtype=np.float64) - points[..., 0:1]).astype(np.float32)
    dx = (np.arange(width, dtype=np.float64) - points[..., 1:2]).astype(np.float32)
    dy2 = np.where(valid[..., None], dy * dy, _FAR)
    dx2 = np.where(valid[..., None], dx * dx, _FAR)
    return ClickOffsets(jax.device_put(dy2), jax.device_put(dx2))


def disk_maps(offsets: ClickOffsets, radius: float) -> jax.Array:
    """(B, H, W, 2) float maps [positive disks, negative disks] from encoded clicks."""
    dy2, dx2 = offsets
    n = dy2.shape[1] // 2
    inside = (dy2[:, :, :, None] + dx2[:, :, None, :]) <= jnp.float32(radius) ** 2  # (B, 2N, H, W)
    pos = jnp.any(inside[:, :n], axis=1)
    neg = jnp.any(inside[:, n:], axis=1)
    return jnp.stack([pos, neg], axis=-1).astype(jnp.float32)
