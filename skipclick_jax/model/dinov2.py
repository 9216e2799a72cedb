"""DINOv2 ViT (with or without registers), returning raw block outputs at chosen blocks.

Follows `facebookresearch/dinov2` `DinoVisionTransformer.prepare_tokens_with_masks` + blocks: patch
embed, prepend cls, add the (resized) position embedding, insert the registers after cls, run blocks.
The final LayerNorm and the mask token are parameters of the checkpoint but are not used for the taps;
they are kept in the tree so that weights convert both ways without loss.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..config import DinoV2Config
from .layers import Block, Dtype, PatchConv, layer_norm
from .resize import resize_bicubic, resize_bicubic_antialias


def resized_pos_embed(pos_embed: jax.Array, config: DinoV2Config, grid: tuple[int, int]) -> jax.Array:
    """DINOv2's `interpolate_pos_encoding` for a (gh, gw) patch grid; returns (1, 1 + gh·gw, D) in float32.

    Register models: antialiased bicubic at the exact size. Older models: plain bicubic with the
    scale factor (g + offset) / M. Skipped (as in DINOv2) only when the grid is the native square one.
    """
    pos_embed = pos_embed.astype(jnp.float32)
    m = config.pos_grid
    gh, gw = grid
    if gh * gw == m * m and gh == gw:
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].reshape(1, m, m, -1)
    if config.interpolate_offset:
        scale = ((gh + config.interpolate_offset) / m, (gw + config.interpolate_offset) / m)
        patch_pos = resize_bicubic(patch_pos, (gh, gw), scale_factor=scale)
    elif config.interpolate_antialias:
        patch_pos = resize_bicubic_antialias(patch_pos, (gh, gw))
    else:
        patch_pos = resize_bicubic(patch_pos, (gh, gw))
    return jnp.concatenate([cls_pos, patch_pos.reshape(1, gh * gw, -1)], axis=1)


class DinoV2(nn.Module):
    """DINOv2 encoder. `__call__(x, taps)` maps a normalised (B, H, W, 3) image to raw patch tokens
    (B, H/p, W/p, D) at each block index in `taps` (cls and register tokens dropped)."""

    config: DinoV2Config
    dtype: Dtype = jnp.float32
    attention: str = "auto"  # see layers.attention

    @nn.compact
    def __call__(self, x: jax.Array, taps: tuple[int, ...]) -> list[jax.Array]:
        cfg = self.config
        b, h, w, _ = x.shape
        p = cfg.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}×{w} is not a multiple of the patch size {p}")
        gh, gw = h // p, w // p
        d = cfg.embed_dim
        normal = nn.initializers.normal(0.02)

        cls_token = self.param("cls_token", normal, (1, 1, d))
        pos_embed = self.param("pos_embed", normal, (1, 1 + cfg.pos_grid**2, d))
        # Unused by the forward; carried so conversions are lossless (see the module docstring).
        self.param("mask_token", nn.initializers.zeros, (1, d))

        tokens = PatchConv(d, p, self.dtype, name="patch_embed")(x).reshape(b, gh * gw, d)
        tokens = jnp.concatenate([jnp.broadcast_to(cls_token, (b, 1, d)), tokens], 1)
        tokens = tokens + resized_pos_embed(pos_embed, cfg, (gh, gw))
        if cfg.num_registers:
            registers = self.param("register_tokens", normal, (1, cfg.num_registers, d))
            registers = jnp.broadcast_to(registers, (b, cfg.num_registers, d))
            tokens = jnp.concatenate([tokens[:, :1], registers, tokens[:, 1:]], axis=1)

        skip = 1 + cfg.num_registers
        outputs = {}
        for i in range(cfg.depth):
            block = Block(d, cfg.num_heads, cfg.hidden_dim, cfg.ffn, cfg.layerscale, self.dtype, self.attention,
                          name=f"blocks_{i}")
            # Blocks past the last tap cannot change the taps: create their parameters, skip the work.
            if i > max(taps):
                if self.is_initializing():
                    block(tokens)
                continue
            tokens = block(tokens)
            if i in taps:
                outputs[i] = tokens[:, skip:].reshape(b, gh, gw, d)
        if self.is_initializing():
            layer_norm("norm")(tokens)
        return [outputs[t] for t in taps]


def encoder_param_shapes(config: DinoV2Config) -> dict:
    """The `DinoV2` parameter tree of `config` as ShapeDtypeStructs (no computation)."""
    s = 2 * config.patch_size
    module = DinoV2(config)
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, s, s, 3)), (0,)))["params"]
