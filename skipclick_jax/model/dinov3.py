"""DINOv3 ViT (`facebookresearch/dinov3`), returning its block outputs at chosen blocks through the final norm.

Follows `DinoVisionTransformer.get_intermediate_layers(x, n=taps)` with its defaults, as SkipClick's DINOv3
extractor calls it: patch embed, [cls, 4 storage tokens, patches] (no position table), blocks with RoPE
on the patch tokens of q and k, and each tapped block's output passed through the final LayerNorm
(eps 1e-5), patch tokens only. RoPE (`dinov3/layers/rope_position_encoding.py`):

- patch (i, j) of a gh×gw grid has coordinates ((i + ½)/gh, (j + ½)/gw) mapped to (−1, 1) by 2c − 1;
- angle = (fl32(2π) · c) / period for each of the F = head_dim/4 stored periods, laid out [y (F), x (F)]
  and tiled twice over the head dimension;
- x ↦ x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁] (halves, not interleaved).

In training mode the original multiplies the coordinates by a random factor per block call (see
`rope_scales`). The periods and the k-bias mask are buffers of the original; here they are parameters
read through `stop_gradient`, so training never changes them.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..config import DinoV3Config
from .layers import Dense, Dtype, Mlp, PatchConv, attention, layer_norm, matmul

TWO_PI = np.float32(2 * np.pi)  # the original multiplies by float(2π) rounded to float32


def hub_periods(config: DinoV3Config) -> np.ndarray:
    """The RoPE periods the released weights hold: base^(k/F), k < F, rounded to bfloat16 (as float32)."""
    import ml_dtypes

    f = config.head_dim // 4
    periods = np.float32(config.rope_base) ** (np.arange(f, dtype=np.float32) / np.float32(f))
    return periods.astype(ml_dtypes.bfloat16).astype(np.float32)


def rope_coordinates(gh: int, gw: int) -> np.ndarray:
    """(gh·gw, 2) float32 patch-centre coordinates in (−1, 1), rows then columns, row-major tokens."""
    cy = np.arange(0.5, gh, dtype=np.float32) / np.float32(gh)
    cx = np.arange(0.5, gw, dtype=np.float32) / np.float32(gw)
    grid = np.stack(np.meshgrid(cy, cx, indexing="ij"), axis=-1).reshape(-1, 2)
    return np.float32(2) * grid - np.float32(1)


def rope_tables(periods: jax.Array, gh: int, gw: int, scale: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
    """(sin, cos), each (gh·gw, head_dim) float32, for the stored `periods`; `scale` multiplies the coordinates."""
    coords = jnp.asarray(rope_coordinates(gh, gw))
    if scale is not None:
        coords = coords * scale
    angles = (TWO_PI * coords[:, :, None]) / periods[None, None, :]  # (HW, 2, F)
    angles = jnp.tile(angles.reshape(gh * gw, -1), (1, 2))
    return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array, prefix: int) -> jax.Array:
    """Rotate the patch tokens of (B, N, H, D) `x` (the first `prefix` tokens are left as they are)."""
    head, patches = x[:, :prefix], x[:, prefix:].astype(jnp.float32)
    half = patches.shape[-1] // 2
    rotated = jnp.concatenate([-patches[..., half:], patches[..., :half]], axis=-1)
    patches = patches * cos[None, :, None, :] + rotated * sin[None, :, None, :]
    return jnp.concatenate([head, patches.astype(x.dtype)], axis=1)


class MaskedBiasDense(nn.Module):
    """DINOv3's `LinearKMaskedBias`: y = x·W + bias ⊙ bias_mask (the stored mask zeroes the k part)."""

    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        y = matmul(x, kernel, self.dtype)
        if not self.use_bias:
            return y
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        d = self.features // 3
        mask = self.param("bias_mask", lambda _, s: jnp.ones(s).at[d:2 * d].set(0.0), (self.features,))
        return y + bias * jax.lax.stop_gradient(mask)


class RopeAttention(nn.Module):
    """Self-attention with RoPE on q and k of the patch tokens; qkv laid out [q | k | v] × heads × head_dim."""

    dim: int
    num_heads: int
    qkv_bias: bool = True
    dtype: Dtype = jnp.float32
    implementation: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
        b, n, _ = x.shape
        qkv = MaskedBiasDense(3 * self.dim, self.qkv_bias, self.dtype, name="qkv")(x)
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, self.dim // self.num_heads), 2, 0)
        prefix = n - sin.shape[0]
        q, k = apply_rope(q, sin, cos, prefix), apply_rope(k, sin, cos, prefix)
        out = attention(q, k, v, self.implementation, self.dtype).reshape(b, n, self.dim)
        return Dense(self.dim, dtype=self.dtype, name="proj")(out)


class SwiGLU3(nn.Module):
    """DINOv3's SwiGLU FFN: w3(silu(w1·x) ⊙ w2·x), three separate projections."""

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gate = Dense(self.hidden, dtype=self.dtype, name="w1")(x)
        value = Dense(self.hidden, dtype=self.dtype, name="w2")(x)
        return Dense(x.shape[-1], dtype=self.dtype, name="w3")(jax.nn.silu(gate) * value)


class Block(nn.Module):
    """x + γ₁·attn(LN(x)), then x + γ₂·ffn(LN(x)); LayerNorm eps 1e-5."""

    config: DinoV3Config
    dtype: Dtype = jnp.float32
    attention: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
        cfg, d = self.config, self.config.embed_dim
        ls1 = self.param("ls1", nn.initializers.constant(1e-5), (d,))
        ls2 = self.param("ls2", nn.initializers.constant(1e-5), (d,))
        attn = RopeAttention(d, cfg.num_heads, cfg.qkv_bias, self.dtype, self.attention, name="attn")
        y = attn(layer_norm("norm1", eps=1e-5)(x), sin, cos)
        x = x + y * ls1
        ffn = SwiGLU3 if cfg.ffn == "swiglu" else Mlp
        y = ffn(cfg.hidden_dim, self.dtype, name="mlp")(layer_norm("norm2", eps=1e-5)(x))
        return x + y * ls2


class DinoV3(nn.Module):
    """DINOv3 encoder. `__call__(x, taps, rope_scales)` maps a normalised (B, H, W, 3) image to the tapped
    blocks' outputs through the final norm, as (B, H/16, W/16, D) patch-token maps.

    `rope_scales`: None (evaluation), or (depth,) factors multiplying the RoPE coordinates of each block
    (the original's training-mode augmentation; `rope_rescale_factors` draws them).
    """

    config: DinoV3Config
    dtype: Dtype = jnp.float32
    attention: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, taps: tuple[int, ...], rope_scales: jax.Array | None = None
                 ) -> list[jax.Array]:
        cfg = self.config
        b, h, w, _ = x.shape
        p, d = cfg.patch_size, cfg.embed_dim
        if h % p or w % p:
            raise ValueError(f"image size {h}×{w} is not a multiple of the patch size {p}")
        gh, gw = h // p, w // p
        normal = nn.initializers.normal(0.02)
        cls_token = self.param("cls_token", normal, (1, 1, d))
        storage = self.param("storage_tokens", normal, (1, cfg.num_registers, d))
        self.param("mask_token", nn.initializers.zeros, (1, d))  # masked pre-training only (0·mask_token)
        periods = self.param("rope_periods", lambda _, s: jnp.asarray(hub_periods(cfg)), (cfg.head_dim // 4,))
        periods = jax.lax.stop_gradient(periods)

        patches = PatchConv(d, p, self.dtype, name="patch_embed")(x).reshape(b, gh * gw, d)
        prefix = jnp.broadcast_to(jnp.concatenate([cls_token, storage], axis=1),
                                  (b, 1 + cfg.num_registers, d))
        tokens = jnp.concatenate([prefix, patches], axis=1)
        final_norm = layer_norm("norm", eps=1e-5)
        if cfg.local_cls_norm and self.is_initializing():  # carried for lossless conversion; unused here
            layer_norm("local_cls_norm", eps=1e-5)(tokens)

        fixed = rope_tables(periods, gh, gw) if rope_scales is None else None
        outputs = {}
        for i in range(cfg.depth):
            block = Block(cfg, self.dtype, self.attention, name=f"blocks_{i}")
            sin, cos = fixed if fixed is not None else rope_tables(periods, gh, gw, rope_scales[i])
            if i > max(taps):  # blocks past the last tap cannot change the taps: create, skip the work
                if self.is_initializing():
                    block(tokens, sin, cos)
                continue
            tokens = block(tokens, sin, cos)
            if i in taps:
                outputs[i] = tokens
        if self.is_initializing() and not outputs:
            final_norm(tokens)
        skip = 1 + cfg.num_registers
        return [final_norm(outputs[t])[:, skip:].reshape(b, gh, gw, d) for t in taps]


def rope_rescale_factors(config: DinoV3Config, key: jax.Array) -> jax.Array:
    """The original's training-mode RoPE factors, one per block: exp(U(−ln r, ln r)), r = `rope_rescale`."""
    bound = float(np.log(config.rope_rescale))
    return jnp.exp(jax.random.uniform(key, (config.depth,), jnp.float32, -bound, bound))


def encoder_param_shapes(config: DinoV3Config) -> dict:
    """The `DinoV3` parameter tree of `config` as ShapeDtypeStructs (no computation)."""
    s = 2 * config.patch_size
    module = DinoV3(config)
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, s, s, 3)), (0,)))["params"]
