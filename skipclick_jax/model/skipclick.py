"""The SkipClick model: `encode` (once per image) and `decode` (once per click); `__call__` is both.

Inputs are NHWC: `image` (B, S, S, 3) float RGB in [0, 1] (normalised inside, as the original),
`prev_mask` (B, S, S, 1) probabilities, `points` (B, 2N, 3) rows (y, x, order), positives first, −1
padding. Output: logits (B, S, S, 1) at the input size. S must be a multiple of the patch size (14).
"""

from __future__ import annotations

from typing import Any

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
from .layers import Dense, Dtype, PatchConv
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
            self.fuse = Dense(cfg.dim, dtype=dt)
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
        tokens = self.fuse_taps(taps)
        return ImageFeatures(tokens, self.skip_terms(taps), self.position_embedding(tokens.shape[1:3]))

    # The stages of `features_from_taps` (see `skipclick bench --breakdown`).
    def fuse_taps(self, taps: list[jax.Array]) -> jax.Array:
        """The image tokens entering the fusion stack: the linear fusion of the taps, or the first tap."""
        return self.fuse(jnp.concatenate(taps, axis=-1)) if self.config.fuse_taps else taps[0]

    def skip_terms(self, taps: list[jax.Array]) -> tuple[jax.Array, ...] | None:
        """The image halves of the FPN first layers (None without skip connections)."""
        return self.neck.image_terms(taps) if self.config.skip_connections else None

    def position_embedding(self, grid: tuple[int, int]) -> jax.Array | None:
        """The fusion transformer's position embedding for a token grid (None for the conv stack)."""
        return self.fusion.position_embedding(grid) if self.config.fusion_block == "transformer" else None

    def prepare(self) -> None:
        """Fill the "prepared" collection with the weight layouts the cached inference steps reuse (call with
        `mutable="prepared"`; see `prepare_variables`)."""
        self.neck.prepare()

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

        x = self.embed_clicks(features, prev_mask, offsets)
        x = self.fuse_clicks(x, features)
        logits = self.head_logits(self.neck(x, features.skip_terms), train=train)
        return self.upsample_logits(logits, (h, w))

    # The stages of `decode`, each usable on its own (`skipclick bench --breakdown` times them separately).
    def embed_clicks(self, features: ImageFeatures, prev_mask: jax.Array, offsets: ClickOffsets) -> jax.Array:
        """Click maps [prev mask, positive disks, negative disks] → patch embedding + the image tokens."""
        maps = jnp.concatenate([prev_mask.astype(jnp.float32), disk_maps(offsets, self.config.click_radius)], -1)
        return features.tokens + self.click_embed(maps)

    def fuse_clicks(self, x: jax.Array, features: ImageFeatures) -> jax.Array:
        """The fusion stack (transformer with the resized position embedding, or the conv stack) on (B, g, g, D)."""
        if self.config.fusion_block == "conv":
            return self.fusion(x)
        b, gh, gw, d = x.shape
        return self.fusion(x.reshape(b, gh * gw, d), features.pos_embed).reshape(b, gh, gw, d)

    def head_logits(self, pyramid: list[jax.Array], train: bool = False) -> jax.Array:
        """The segmentation head on the feature pyramid: float32 logits at the head's resolution."""
        return self.head(pyramid, train=train).astype(jnp.float32)

    @staticmethod
    def upsample_logits(logits: jax.Array, size: tuple[int, int]) -> jax.Array:
        """The final bilinear (align_corners=True) resize of the logits to the input size."""
        return resize_bilinear(logits, size, align_corners=True)

    def __call__(
        self, image: jax.Array, prev_mask: jax.Array, points: jax.Array | np.ndarray, train: bool = False
    ) -> jax.Array:
        """The original forward: logits (B, S, S, 1) for image + previous mask + clicks."""
        return self.decode(self.encode(image), prev_mask, points, train=train)


def prepare_variables(model: SkipClick, params: Any) -> dict[str, Any]:
    """The variables an inference engine applies the model with, built once per engine.

    Every kernel is stored in the compute dtype (the layers' casts become no-ops) and the FPN first layers'
    click / image halves in their GEMM layouts (the "prepared" collection), so a jitted step neither casts
    nor relays weights per call. `model.apply(prepare_variables(model, params), ...)` gives exactly the
    outputs of `model.apply({"params": params}, ...)`.
    """
    dtype = jnp.dtype(model.dtype)

    def cast(path: tuple, x: jax.Array) -> jax.Array:
        is_kernel = getattr(path[-1], "key", None) == "kernel"
        return x.astype(dtype) if is_kernel and x.dtype != dtype else x

    params = jax.tree_util.tree_map_with_path(cast, params)
    _, state = model.apply({"params": params}, method=SkipClick.prepare, mutable="prepared")
    return {"params": params, "prepared": state["prepared"]}


def _dummy_inputs(config: SkipClickConfig) -> tuple[jax.Array, jax.Array, jax.Array]:
    s = 2 * config.patch_size  # the smallest input every layer accepts; shapes do not depend on it
    return jnp.zeros((1, s, s, 3)), jnp.zeros((1, s, s, 1)), -jnp.ones((1, 2, 3))


def param_shapes(config: SkipClickConfig) -> dict:
    """The parameter tree of `config` as ShapeDtypeStructs (no computation)."""
    return jax.eval_shape(lambda: SkipClick(config).init(jax.random.key(0), *_dummy_inputs(config)))["params"]

