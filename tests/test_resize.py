"""The three resizes against PyTorch's own `F.interpolate`, on random data (float32)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from skipclick_jax.model.resize import (  # noqa: E402
    resize_bicubic,
    resize_bicubic_antialias,
    resize_bilinear,
)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _nhwc(t):
    return t.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("n_in,out", [(37, (32, 32)), (37, (48, 48)), (37, (64, 64)), (37, (16, 40)), (9, (8, 12))])
def test_antialiased_bicubic_matches_torch(n_in, out):
    x = np.random.default_rng(0).normal(size=(1, n_in, n_in, 5)).astype(np.float32)
    want = _nhwc(F.interpolate(_nchw(x), size=out, mode="bicubic", antialias=True))
    got = np.asarray(resize_bicubic_antialias(x, out))
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("n_in,out", [(32, (48, 48)), (32, (64, 64)), (32, (20, 40)), (8, (12, 12))])
def test_bicubic_matches_torch(n_in, out):
    x = np.random.default_rng(1).normal(size=(2, n_in, n_in, 3)).astype(np.float32)
    want = _nhwc(F.interpolate(_nchw(x), size=out, mode="bicubic", align_corners=False))
    got = np.asarray(resize_bicubic(x, out))
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("g", [16, 32, 48, 64])
def test_bicubic_with_scale_factor_matches_torch(g):
    """DINOv2 without registers resizes with scale_factor (g + 0.1) / 37 (not with a size)."""
    x = np.random.default_rng(2).normal(size=(1, 37, 37, 4)).astype(np.float32)
    s = (g + 0.1) / 37
    want = _nhwc(F.interpolate(_nchw(x), scale_factor=(s, s), mode="bicubic", antialias=False))
    assert want.shape[1:3] == (g, g)
    got = np.asarray(resize_bicubic(x, (g, g), scale_factor=(s, s)))
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("shape,out", [((16, 16), (128, 128)), ((128, 128), (448, 448)), ((375, 500), (448, 448)),
                                       ((448, 448), (333, 517)), ((1080, 1920), (448, 448))])
def test_bilinear_matches_torch(shape, out, align_corners):
    x = np.random.default_rng(3).uniform(size=(1, *shape, 2)).astype(np.float32)
    want = _nhwc(F.interpolate(_nchw(x), size=out, mode="bilinear", align_corners=align_corners))
    got = np.asarray(resize_bilinear(x, out, align_corners))
    np.testing.assert_allclose(got, want, atol=3e-7, rtol=0)
