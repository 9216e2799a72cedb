"""The fusion transformer ("EncoderStack" in the original): click tokens meet image tokens."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from .layers import Block, Dtype
from .resize import resize_bicubic


class FusionTransformer(nn.Module):
    """Learned pos-embed + `depth` pre-norm blocks; no cls token, no LayerScale, no final norm."""

    dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    grid: int  # side of the learned pos-embed grid (training size / patch)
    dtype: Dtype = jnp.float32
    attention: str = "auto"  # see layers.attention

    def setup(self) -> None:
        self.pos_embed = self.param("pos_embed", nn.initializers.normal(0.02), (1, self.grid**2, self.dim))
        hidden = int(self.dim * self.mlp_ratio)
        self.blocks = [
            Block(self.dim, self.num_heads, hidden, dtype=self.dtype, attention=self.attention, name=f"blocks_{j}")
            for j in range(self.depth)
        ]

    def position_embedding(self, grid: tuple[int, int]) -> jax.Array:
        """(1, gh·gw, D) pos-embed for a token grid; PyTorch plain bicubic (a = -0.75) off the native grid."""
        if grid == (self.grid, self.grid):
            return self.pos_embed
        table = self.pos_embed.reshape(1, self.grid, self.grid, self.dim)
        return resize_bicubic(table, grid).reshape(1, grid[0] * grid[1], self.dim)

    def __call__(self, tokens: jax.Array, pos_embed: jax.Array) -> jax.Array:
        x = tokens + pos_embed
        for block in self.blocks:
            x = block(x)
        return x
