"""Shared helpers for tests that compare the Flax model with the independent PyTorch reference."""

from __future__ import annotations

import functools

import jax
import numpy as np
import torch

from skipclick_jax import SkipClick
from tests.torch_reference import (
    ReferenceDinoV2,
    ReferenceDinoV3,
    ReferenceSkipClick,
    randomize_,
    save_original_checkpoint,
)

# A small encoder the original could have been built with: 12 blocks (it always taps 2, 5, 8, 11),
# head width 64 like every DINOv2, so the configuration is also inferable from the checkpoint alone.
SMALL_DINOV2 = dict(embed_dim=128, depth=12, num_heads=2, mlp_ratio=4.0, ffn="mlp", num_register_tokens=4,
                    patch_size=14, pos_grid=9, interpolate_antialias=True, interpolate_offset=0.0)

# Reference constructor arguments of each paper / repository configuration, at small size.
SMALL_BASE = dict(img_size=112, fusion_depth=4, fusion_heads=4, neck_out_dims=(16, 24, 32, 40), head_channels=16)
VARIANTS = {
    "skipclick": dict(use_intermediate=(2, 5, 8, 11), skip_connections=True),
    "intermediate": dict(use_intermediate=(2, 5, 8, 11), skip_connections=False),
    "frozen": dict(use_intermediate=(11,), skip_connections=False),
    "baseline": dict(use_intermediate=(11,), skip_connections=False),  # + trained_extractor in the config
    "depth2": dict(fusion_depth=2),
    "depth3": dict(fusion_depth=3),
    "depth5": dict(fusion_depth=5),
    "depth6": dict(fusion_depth=6),
    "upsample_x2": dict(upsample="x2", head_channels=8),
    "upsample_x4": dict(upsample="x4", head_channels=4),
}


# The two models of the repository's master branch, at small size: SkipClick around a DINOv3 ViT (patch 16;
# 128 px = the same 8×8 token grid as the DINOv2 variants at 112) and the conv-modulation stack.
SMALL_DINOV3 = dict(embed_dim=128, depth=12, num_heads=2, ffn="mlp", ffn_ratio=4.0, n_storage_tokens=4, patch_size=16)
NEW_VARIANTS = {
    "dinov3": dict(img_size=128),
    "convstack": dict(use_conv_stack=True),
}


def make_reference(variant: str = "skipclick", seed: int = 0, dinov2: dict | None = None) -> ReferenceSkipClick:
    if variant in NEW_VARIANTS:
        kwargs = {**SMALL_BASE, **NEW_VARIANTS[variant]}
        backbone = dict(dinov3=ReferenceDinoV3(**SMALL_DINOV3)) if variant == "dinov3" else dict(
            dinov2=ReferenceDinoV2(**(dinov2 or SMALL_DINOV2)))
        return randomize_(ReferenceSkipClick(**backbone, **kwargs), seed=seed).eval()
    kwargs = {**SMALL_BASE, **VARIANTS[variant]}
    ref = ReferenceSkipClick(dinov2=ReferenceDinoV2(**(dinov2 or SMALL_DINOV2)), **kwargs)
    return randomize_(ref, seed=seed).eval()


def write_checkpoint(ref: ReferenceSkipClick, path, variant: str = "skipclick", **overrides) -> None:
    if ref.backbone_kind == "dinov3":
        extra = {"extractor_type": "dinov3_custom"} if ref.feature_extractor.dinov3.embed_dim != 768 else {}
    else:
        extra = {"extractor_type": "dinov2_custom"} if ref.feature_extractor.dinov2.hparams["embed_dim"] != 768 else {}
    if variant == "baseline":
        extra["trained_extractor"] = True
    save_original_checkpoint(ref, path, **{**extra, **overrides})


def random_inputs(batch: int, size: int, seed: int = 0, n_points: int = 3):
    """image (B,S,S,3) in [0,1], soft prev_mask (B,S,S,1), points (B,2N,3) with fractional and padded rows."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
    prev = rng.uniform(size=(batch, size, size, 1)).astype(np.float32) ** 3
    points = np.full((batch, 2 * n_points, 3), -1.0, np.float32)
    for b in range(batch):
        for slot in (0, 1, n_points):  # two positives, one negative; the rest stay padding
            points[b, slot] = (rng.uniform(0, size - 1), rng.uniform(0, size - 1), slot)
        points[b, 1, :2] = np.round(points[b, 1, :2])  # an integer click too
    return image, prev, points


def reference_outputs(ref: ReferenceSkipClick, image, prev, points) -> dict:
    x4 = torch.from_numpy(np.concatenate([image, prev], -1).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        out = ref.intermediates(x4, torch.from_numpy(points))
    taps = [t.numpy() for t in out["taps"]]
    return {"taps": taps, "logits": out["logits"].numpy().transpose(0, 2, 3, 1)}


@functools.cache
def jitted(model: SkipClick, method: str | None = None):
    fn = getattr(SkipClick, method) if method else None
    return jax.jit(lambda params, *args: model.apply({"params": params}, *args, method=fn))


def _taps_and_logits(module: SkipClick, image, prev, points):
    taps = module.taps(image)
    return taps, module.decode(module.features_from_taps(taps), prev, points)


@functools.cache
def taps_and_logits(model: SkipClick):
    """One compiled call giving both the encoder taps and the full-forward logits (saves a compile)."""
    return jax.jit(lambda params, *args: model.apply({"params": params}, *args, method=_taps_and_logits))


# Parity tolerances (float32, matmul precision "highest"), set from the port's measured error on a 2-core
# AVX2 machine, tight enough that the plausible bugs of tests/test_bugs_fail_parity.py fail them:
# - taps: max |Δ| / max |ref| ≤ 7.2e-7 measured (every variant, 112 and 224 px; 9.3e-7 at full size);
#   LayerNorm eps 1e-5 instead of 1e-6 gives 3.1e-6, tanh GELU in the encoder 1.4e-4.
# - logits: ≤ 1.3e-5 measured (all small variants at 112 and 224 except x4, 6.0e-5: its two extra
#   up-convolutions and ~3× larger logits); tanh GELU in a single fusion block gives 2.4e-4.
TAPS_RTOL = 2e-6
LOGITS_ATOL = 3e-5
LOGITS_ATOL_BY_VARIANT = {"upsample_x4": 1.5e-4}


def assert_matches_reference(taps, logits, want: dict, taps_rtol: float = TAPS_RTOL,
                             logits_atol: float = LOGITS_ATOL) -> None:
    """The parity check: every computed tap within `taps_rtol` (relative to the tap's largest entry) and the
    logits within `logits_atol` of the reference (single-tap models compute only the first tap)."""
    assert 0 < len(taps) <= len(want["taps"])
    for k, (got, exp) in enumerate(zip(taps, want["taps"], strict=False)):
        error = max_relative(np.asarray(got).reshape(exp.shape), exp)
        assert error <= taps_rtol, f"tap {k}: relative error {error:.2e} > {taps_rtol:.0e}"
    logits = np.asarray(logits)
    assert logits.shape == want["logits"].shape
    error = float(np.max(np.abs(logits - want["logits"])))
    assert error <= logits_atol, f"logits: max abs error {error:.2e} > {logits_atol:.0e}"
    # Meaningful only if the logits vary on a scale far above the tolerance.
    assert want["logits"].std() > 5e3 * logits_atol, f"logits std {want['logits'].std():.3f}: vacuous check"


def max_relative(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: the relative error measure used for features."""
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))
