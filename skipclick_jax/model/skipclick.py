"""The SkipClick model: `encode` (once per image) and `decode` (once per click); `__call__` is both.

Inputs are NHWC: `image` (B, S, S, 3) float RGB in [0, 1] (normalised inside, as the original),
`prev_mask` (B, S, S, 1) probabilities, `points` (B, 2N, 3) rows (y, x, order), positives first, −1
padding. Output: logits (B, S, S, 1) at the input size. S must be a multiple of the patch size (14).
"""

from __future__ import annotations

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from ..config import DinoV3Config, SkipClickConfig
from .clicks import ClickOffsets, click_offsets, disk_maps
from .convstack import ModulationStack
from .dinov2 import DinoV2
from .dinov3 import DinoV3
from .fpn import SimpleFPN
from .fusion import FusionTransformer
from .head import SegHead
from .layers import Dtype, PatchConv
from .resize import resize_bilinear


@flax.struct.dataclass
class ImageFeatures:
    """Everything the per-click decoder needs that depends only on the image (and the weights).

    tokens:     (B, g, g, D) image tokens entering the fusion stack (fused taps, or the single tap)
    skip_terms: the image-only halves of the four FPN first layers (see `SimpleFPN.image_terms`), or None
    pos_embed:  (1, g·g, D) fusion-transformer position embedding resized to this grid (None: conv stack)
    """

    tokens: jax.Array
    skip_terms: tuple[jax.Array, ...] | None
    pos_embed: jax.Array | None


def _check_float(name: str, x, ndim: int, channels: int) -> None:
    shape = tuple(x.shape)
    if len(shape) != ndim or shape[-1] != channels:
        raise ValueError(f"{name} must have shape (B, S, S, {channels}), got {shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a float array (RGB / probabilities in [0, 1]), got dtype {x.dtype}")


class SkipClick(nn.Module):
    """SkipClick (Flax linen). See the module docstring for the input/output conventions."""

    config: SkipClickConfig
    dtype: Dtype = jnp.float32
    # "auto" (per-head loop on CPU, fused elsewhere), "per_head" or "fused": same math (see layers.attention).
    attention: str = "auto"

    def setup(self) -> None:
        cfg, dt = self.config, self.dtype
        encoder = DinoV3 if isinstance(cfg.encoder, DinoV3Config) else DinoV2
        self.encoder = encoder(cfg.encoder, dt, self.attention)
        if cfg.fuse_taps:
            self.fuse = nn.Dense(cfg.dim, dtype=dt)
        self.click_embed = PatchConv(cfg.dim, cfg.patch_size, dt)
        if cfg.fusion_block == "conv":
            self.fusion = ModulationStack(cfg.dim, cfg.fusion_depth, cfg.fusion_mlp_ratio, dt)
        else:
            self.fusion = FusionTransformer(cfg.dim, cfg.fusion_depth, cfg.fusion_heads, cfg.fusion_mlp_ratio,
                                            cfg.fusion_grid, dt, self.attention)
        self.neck = SimpleFPN(cfg.dim, cfg.neck_dims, cfg.skip_connections, dt)
        self.head = SegHead(cfg.head_channels, cfg.upsample, cfg.num_classes, cfg.head_dropout, dt)

    # --- image-only work ----------------------------------------------------------------------
    def _needed_taps(self) -> tuple[int, ...]:
        cfg = self.config
        # The single-tap configs only read the first tap (block 2), so later blocks need not run.
        return cfg.taps if (cfg.fuse_taps or cfg.skip_connections) else cfg.taps[:1]

    def taps(self, image: jax.Array, rope_scales: jax.Array | None = None) -> list[jax.Array]:
        """Encoder outputs (B, g, g, D) at `config.taps`: DINOv2's raw block outputs, DINOv3's through its
        final norm. `rope_scales` (DINOv3 only): the training-mode RoPE factors, one per encoder block."""
        _check_float("image", image, 4, 3)
        cfg = self.config
        mean = jnp.asarray(cfg.mean, jnp.float32)
        std = jnp.asarray(cfg.std, jnp.float32)
        x = (image.astype(jnp.float32) - mean) / std
        if isinstance(cfg.encoder, DinoV3Config):
            taps = self.encoder(x, self._needed_taps(), rope_scales)
        elif rope_scales is not None:
            raise ValueError("rope_scales apply to DINOv3 encoders only")
        else:
            taps = self.encoder(x, self._needed_taps())
        if not cfg.train_encoder:
            taps = [jax.lax.stop_gradient(t) for t in taps]
        return taps

    def encode(self, image: jax.Array) -> ImageFeatures:
        """Run the encoder once for an image batch and cache the image-only parts of the decoder."""
        return self.features_from_taps(self.taps(image))

    def features_from_taps(self, taps: list[jax.Array]) -> ImageFeatures:
        """The image-only decoder work on precomputed taps (`encode` = `features_from_taps` ∘ `taps`)."""
        cfg = self.config
        tokens = self.fuse(jnp.concatenate(taps, axis=-1)) if cfg.fuse_taps else taps[0]
        grid = tokens.shape[1:3]
        skip_terms = self.neck.image_terms(taps) if cfg.skip_connections else None
        pos_embed = self.fusion.position_embedding(grid) if cfg.fusion_block == "transformer" else None
        return ImageFeatures(tokens, skip_terms, pos_embed)

    # --- per-click work -----------------------------------------------------------------------
    def decode(
        self,
        features: ImageFeatures,
        prev_mask: jax.Array,
        points: jax.Array | np.ndarray | ClickOffsets,
        train: bool = False,
    ) -> jax.Array:
        """Logits (B, S, S, 1) for one click state; `points` may also be pre-encoded `ClickOffsets`.

        float64 numpy points are encoded on the host with the original's float64 arithmetic.
        """
        _check_float("prev_mask", prev_mask, 4, 1)
        b, h, w, _ = prev_mask.shape
        gh, gw = features.tokens.shape[1:3]
        p = self.config.patch_size
        if (h, w) != (gh * p, gw * p):
            raise ValueError(f"prev_mask is {h}×{w} but the image features are for {gh * p}×{gw * p}")
        offsets = points if isinstance(points, ClickOffsets) else click_offsets(points, h, w)
        if offsets.dy2.shape[-1] != h or offsets.dx2.shape[-1] != w:
            raise ValueError("click offsets were encoded for another input size")
        if offsets.dy2.shape[0] != b:
            raise ValueError(f"points are for a batch of {offsets.dy2.shape[0]}, prev_mask for a batch of {b}")
        if features.tokens.shape[0] not in (1, b):
            raise ValueError(f"features of {features.tokens.shape[0]} images for a batch of {b} (give 1 or {b})")

        maps = jnp.concatenate([prev_mask.astype(jnp.float32), disk_maps(offsets, self.config.click_radius)], -1)
        x = features.tokens + self.click_embed(maps)
        b = x.shape[0]
        if self.config.fusion_block == "conv":
            x = self.fusion(x)
        else:
            x = self.fusion(x.reshape(b, gh * gw, -1), features.pos_embed).reshape(b, gh, gw, -1)
        pyramid = self.neck(x, features.skip_terms)
        logits = self.head(pyramid, train=train).astype(jnp.float32)
        return resize_bilinear(logits, (h, w), align_corners=True)

    def __call__(
        self, image: jax.Array, prev_mask: jax.Array, points: jax.Array | np.ndarray, train: bool = False
    ) -> jax.Array:
        """The original forward: logits (B, S, S, 1) for image + previous mask + clicks."""
        return self.decode(self.encode(image), prev_mask, points, train=train)


def _dummy_inputs(config: SkipClickConfig) -> tuple[jax.Array, jax.Array, jax.Array]:
    s = 2 * config.patch_size  # the smallest input every layer accepts; shapes do not depend on it
    return jnp.zeros((1, s, s, 3)), jnp.zeros((1, s, s, 1)), -jnp.ones((1, 2, 3))


def param_shapes(config: SkipClickConfig) -> dict:
    """The parameter tree of `config` as ShapeDtypeStructs (no computation)."""
    return jax.eval_shape(lambda: SkipClick(config).init(jax.random.key(0), *_dummy_inputs(config)))["params"]

