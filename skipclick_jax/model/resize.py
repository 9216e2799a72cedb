"""The three PyTorch resizes SkipClick depends on, reproduced index for index.

JAX's `jax.image.resize` differs from PyTorch in the cases that matter here (align_corners=True, the
a = -0.75 bicubic, antialiased bicubic's support rule), so each resize is written out: the source
indices and weights are computed on the host once per (in, out) size, with PyTorch's arithmetic, and
applied on device as a small gather (bilinear) or a matrix product (bicubic, used on parameter tables).

All functions take NHWC arrays and resize axes 1 and 2.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

# ---------------------------------------------------------------------------------------------
# 1-D weight tables (host side, cached)
# ---------------------------------------------------------------------------------------------


_f32 = np.float32


def _fma(a, b, c) -> np.float32:
    """float32 fused multiply-add (exact product, one rounding), as PyTorch's vectorised CPU and CUDA
    kernels compute `a * b + c` after compiler contraction."""
    return _f32(np.float64(a) * np.float64(b) + np.float64(c))


def _cubic(x: np.float32, a: np.float32) -> np.float32:
    """Keys' cubic kernel in PyTorch's float32 arithmetic (`cubic_convolution1/2`)."""
    x = _f32(abs(x))
    if x < 1:
        return _fma(_f32(_fma(a + _f32(2), x, -(a + _f32(3))) * x), x, 1.0)
    if x < 2:
        return _fma(_fma(_fma(a, x, _f32(-5) * a), x, _f32(8) * a), x, _f32(-4) * a)
    return _f32(0)


@functools.cache
def bicubic_aa_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of PyTorch's `interpolate(mode='bicubic', antialias=True, size=...)`.

    PIL-style separable filter: support 2·max(scale, 1), Keys a = -0.5, weights renormalised over the
    taps that fall inside the input (this is what DINOv2's register models use for the pos-embed).
    """
    scale = _f32(n_in) / _f32(n_out)
    support = _f32(2.0 * scale) if scale >= 1 else _f32(2.0)
    inv = _f32(1.0 / scale) if scale >= 1 else _f32(1.0)
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        center = _f32(np.float64(scale) * (i + 0.5))
        lo = max(int(np.float64(center - support) + 0.5), 0)
        hi = min(int(np.float64(center + support) + 0.5), n_in)
        w = [_cubic(_f32((np.float64(_f32(j) - center) + 0.5) * np.float64(inv)), _f32(-0.5)) for j in range(lo, hi)]
        total = _f32(0)
        for v in w:
            total = _f32(total + v)
        m[i, lo:hi] = [_f32(v / total) for v in w]
    return m


@functools.cache
def bicubic_matrix(n_in: int, n_out: int, scale_factor: float | None = None) -> np.ndarray:
    """(n_out, n_in) weights of PyTorch's plain `interpolate(mode='bicubic', align_corners=False)`.

    Keys a = -0.75, source coordinate s·(i + 0.5) - 0.5 (not clamped), taps clamped to the border.
    `scale_factor` reproduces calls made with `scale_factor=` instead of `size=` (then s = 1/scale_factor).
    """
    s = _f32(1.0 / scale_factor) if scale_factor else _f32(n_in) / _f32(n_out)
    a = _f32(-0.75)
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        u = _fma(s, _f32(i) + _f32(0.5), -0.5)
        i0 = min(int(np.floor(u)), n_in - 1)
        t = min(max(_f32(u - _f32(i0)), _f32(0)), _f32(1))
        x2 = _f32(1.0 - t)
        weights = (_cubic(_f32(t + 1.0), a), _cubic(t, a), _cubic(x2, a), _cubic(_f32(x2 + 1.0), a))
        for k, w in enumerate(weights):
            m[i, min(max(i0 - 1 + k, 0), n_in - 1)] += w
    return m


@functools.cache
def bilinear_taps(n_in: int, n_out: int, align_corners: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (i0, i1) and weight λ of PyTorch's bilinear interpolation, in its float32 arithmetic."""
    i0 = np.zeros(n_out, np.int32)
    lam = np.zeros(n_out, np.float32)
    for i in range(n_out):
        if align_corners:
            scale = _f32(n_in - 1) / _f32(n_out - 1) if n_out > 1 else _f32(0)
            real = _f32(scale * _f32(i))
        else:
            real = max(_fma(_f32(n_in) / _f32(n_out), _f32(i) + _f32(0.5), -0.5), _f32(0))
        i0[i] = min(int(np.floor(real)), n_in - 1)
        lam[i] = min(max(_f32(real - _f32(i0[i])), _f32(0)), _f32(1))
    return i0, np.minimum(i0 + 1, n_in - 1).astype(np.int32), lam


# ---------------------------------------------------------------------------------------------
# Device-side application
# ---------------------------------------------------------------------------------------------


def _lerp_axis(x: jnp.ndarray, axis: int, n_out: int, align_corners: bool) -> jnp.ndarray:
    i0, i1, lam = bilinear_taps(x.shape[axis], n_out, align_corners)
    shape = [1] * x.ndim
    shape[axis] = n_out
    lam = jnp.asarray(lam, x.dtype).reshape(shape)
    x0 = jnp.take(x, jnp.asarray(i0), axis=axis)
    x1 = jnp.take(x, jnp.asarray(i1), axis=axis)
    return x0 * (1 - lam) + x1 * lam


def resize_bilinear(x: jnp.ndarray, size: tuple[int, int], align_corners: bool) -> jnp.ndarray:
    """`F.interpolate(x, size, mode='bilinear', align_corners=...)` without antialiasing (NHWC)."""
    h, w = size
    # Width first, then height: the order in which PyTorch's kernels combine the four taps.
    if x.shape[2] != w:
        x = _lerp_axis(x, 2, w, align_corners)
    if x.shape[1] != h:
        x = _lerp_axis(x, 1, h, align_corners)
    return x


def _apply_matrices(x: jnp.ndarray, mh: np.ndarray, mw: np.ndarray) -> jnp.ndarray:
    mh = jnp.asarray(mh, jnp.float32)
    mw = jnp.asarray(mw, jnp.float32)
    x = x.astype(jnp.float32)
    return jnp.einsum("hH,wW,bHWc->bhwc", mh, mw, x, precision="highest")


def resize_bicubic_antialias(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
    """`F.interpolate(x, size, mode='bicubic', antialias=True)` (NHWC, float32)."""
    return _apply_matrices(
        x, bicubic_aa_matrix(x.shape[1], size[0]), bicubic_aa_matrix(x.shape[2], size[1])
    )


def resize_bicubic(
    x: jnp.ndarray, size: tuple[int, int], scale_factor: tuple[float, float] | None = None
) -> jnp.ndarray:
    """`F.interpolate(x, size | scale_factor, mode='bicubic', align_corners=False)` (NHWC, float32)."""
    sh, sw = scale_factor if scale_factor else (None, None)
    return _apply_matrices(
        x, bicubic_matrix(x.shape[1], size[0], sh), bicubic_matrix(x.shape[2], size[1], sw)
    )
