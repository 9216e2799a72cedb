"""Flax SkipClick vs the independent PyTorch reference, from the same original-format checkpoint.

Tolerances (float32, matmul precision 'highest'): `tests.parity.TAPS_RTOL` / `LOGITS_ATOL`, set from the
measured error and checked against injected bugs in tests/test_bugs_fail_parity.py.
"""

import numpy as np
import pytest

pytest.importorskip("torch")

from skipclick_jax import SkipClick, SkipClickConfig, load_checkpoint  # noqa: E402
from tests.parity import (  # noqa: E402
    LOGITS_ATOL,
    LOGITS_ATOL_BY_VARIANT,
    VARIANTS,
    assert_matches_reference,
    jitted,
    make_reference,
    random_inputs,
    reference_outputs,
    taps_and_logits,
    write_checkpoint,
)

EXPECTED = {
    "skipclick": dict(fuse_taps=True, skip_connections=True, fusion_depth=4),
    "intermediate": dict(fuse_taps=True, skip_connections=False),
    "frozen": dict(fuse_taps=False, skip_connections=False, train_encoder=False),
    "baseline": dict(fuse_taps=False, skip_connections=False, train_encoder=True),
    "depth2": dict(fusion_depth=2),
    "depth3": dict(fusion_depth=3),
    "depth5": dict(fusion_depth=5),
    "depth6": dict(fusion_depth=6),
    "upsample_x2": dict(upsample="x2", head_channels=8),
    "upsample_x4": dict(upsample="x4", head_channels=4),
}


_CONVERTED: dict = {}


def _convert(variant, tmp_path_factory):
    """Reference model of `variant`, written as an original checkpoint and loaded (once per variant)."""
    if variant not in _CONVERTED:
        ref = make_reference(variant, seed=sum(map(ord, variant)) % 1000)
        path = tmp_path_factory.mktemp(variant) / "checkpoint.pth"
        write_checkpoint(ref, path, variant)
        model, params = load_checkpoint(path)
        _CONVERTED[variant] = (variant, ref, model, params)
    return _CONVERTED[variant]


@pytest.fixture(scope="module", params=list(VARIANTS))
def converted(request, tmp_path_factory):
    return _convert(request.param, tmp_path_factory)


# One variant with skips and fuse, one without: what the cache split depends on.
@pytest.fixture(scope="module", params=["skipclick", "frozen"])
def converted_split(request, tmp_path_factory):
    return _convert(request.param, tmp_path_factory)


def test_detected_configuration(converted):
    variant, _, model, _ = converted
    cfg = model.config
    for key, want in EXPECTED[variant].items():
        assert getattr(cfg, key) == want, key
    assert cfg.taps == (2, 5, 8, 11)
    assert (cfg.encoder.embed_dim, cfg.encoder.num_heads, cfg.encoder.num_registers) == (128, 2, 4)
    assert cfg.image_size == 112 and cfg.neck_dims == (16, 24, 32, 40)


# 112 is the native grid of both pos-embeds' callers here: DINOv2 resizes 9→8 (antialiased downsampling);
# 224 upsamples DINOv2's table 9→16 and the fusion pos-embed 8→16 (PyTorch bicubic, a = -0.75).
@pytest.mark.parametrize("size", [112, 224])
def test_logits_and_taps_match_reference(converted, size):
    variant, ref, model, params = converted
    image, prev, points = random_inputs(2, size, seed=size)
    want = reference_outputs(ref, image, prev, points)

    taps, logits = taps_and_logits(model)(params, image, prev, points)
    assert np.asarray(logits).shape == (2, size, size, 1)
    assert_matches_reference(taps, logits, want, logits_atol=LOGITS_ATOL_BY_VARIANT.get(variant, LOGITS_ATOL))


def test_encode_then_decode_equals_forward(converted_split):
    _, _, model, params = converted_split
    image, prev, points = random_inputs(2, 112, seed=7)
    full = np.asarray(jitted(model)(params, image, prev, points))
    features = jitted(model, "encode")(params, image)
    split = np.asarray(jitted(model, "decode")(params, features, prev, points))
    # The same operations in two compiled programs: measured identical; 1e-6 allows a reordered reduction.
    np.testing.assert_allclose(split, full, atol=1e-6, rtol=0)


def test_decode_broadcasts_one_image_over_several_objects(tmp_path_factory):
    _, _, model, params = _convert("skipclick", tmp_path_factory)
    image, prev, points = random_inputs(3, 112, seed=9)
    features = jitted(model, "encode")(params, image[:1])
    together = np.asarray(jitted(model, "decode")(params, features, prev, points))
    for k in range(3):
        alone = np.asarray(jitted(model, "decode")(params, features, prev[k : k + 1], points[k : k + 1]))
        np.testing.assert_allclose(together[k : k + 1], alone, atol=1e-5, rtol=0)  # measured 2.0e-6


def test_float64_points_follow_the_original_float64_disk_test(tmp_path):
    """Evaluation clicks arrive as float64; the disk test must subtract in float64 before rounding."""
    import torch

    from skipclick_jax.model import click_offsets, disk_maps
    from tests.torch_reference import click_disk_maps

    rng = np.random.default_rng(0)
    size = 448
    # Coordinates as the evaluation produces them: 448·y/H for integer y of an original image.
    heights = rng.integers(200, 2000, size=160)
    ys = 448 * rng.integers(0, heights) / heights
    xs = 448 * rng.integers(0, heights) / heights
    pts = np.stack([ys, xs, np.arange(160.0)], -1).reshape(40, 4, 3)  # 2 positive + 2 negative slots
    want = click_disk_maps(torch.from_numpy(pts), size, size).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(disk_maps(click_offsets(pts, size, size), 5.0))
    np.testing.assert_array_equal(got, want)
    # and the float32 path differs on some of these clicks, so the float64 path is not a no-op
    want32 = click_disk_maps(torch.from_numpy(pts.astype(np.float32)), size, size).numpy().transpose(0, 2, 3, 1)
    got32 = np.asarray(disk_maps(click_offsets(pts.astype(np.float32), size, size), 5.0))
    np.testing.assert_array_equal(got32, want32)
    assert (want32 != want).any()


def test_bad_inputs_get_clear_errors():
    """Shape and dtype errors are raised while tracing, before any computation."""
    import jax

    model = SkipClick(SkipClickConfig.tiny())

    def init(image, prev, points):
        return jax.eval_shape(model.init, jax.random.key(0), image, prev, points)

    f32 = np.float32
    points = -np.ones((1, 2, 3), f32)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        init(np.zeros((1, 100, 100, 3), f32), np.zeros((1, 100, 100, 1), f32), points)
    with pytest.raises(TypeError, match="float array"):
        init(np.zeros((1, 112, 112, 3), np.uint8), np.zeros((1, 112, 112, 1), f32), points)
    with pytest.raises(ValueError, match=r"shape \(B, S, S, 1\)"):
        init(np.zeros((1, 112, 112, 3), f32), np.zeros((1, 112, 112), f32), points)
    with pytest.raises(ValueError, match="image features are for 112"):
        init(np.zeros((1, 112, 112, 3), f32), np.zeros((1, 126, 126, 1), f32), points)
