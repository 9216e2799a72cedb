"""Small building blocks shared by the encoder, the fusion transformer and the decoder.

Layouts: tokens are (B, N, C), maps NHWC. Parameters are float32; `dtype` is the compute dtype.
Normalisation statistics, softmax and GELU run in float32 whatever the compute dtype.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as PyTorch's `nn.GELU()`; Flax's default is the tanh approximation."""
    return jax.nn.gelu(x, approximate=False)


def layer_norm(name: str | None = None, dtype: Dtype = jnp.float32) -> nn.LayerNorm:
    # Two-pass variance: PyTorch computes E[(x - mean)²], not E[x²] - mean².
    return nn.LayerNorm(epsilon=1e-6, use_fast_variance=False, dtype=dtype, name=name)


def group_norm(name: str | None = None, dtype: Dtype = jnp.float32) -> nn.GroupNorm:
    """PyTorch `GroupNorm(1, C)`: statistics over H×W×C per sample, eps 1e-5."""
    return nn.GroupNorm(num_groups=1, epsilon=1e-5, use_fast_variance=False, dtype=dtype, name=name)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection laid out [q | k | v] × heads × head_dim."""

    dim: int
    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, _ = x.shape
        head_dim = self.dim // self.num_heads
        qkv = nn.Dense(3 * self.dim, dtype=self.dtype, name="qkv")(x)
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, head_dim), 2, 0)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * jnp.asarray(head_dim**-0.5, self.dtype)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, self.dim)
        return nn.Dense(self.dim, dtype=self.dtype, name="proj")(out)


class Mlp(nn.Module):
    """fc1 → exact GELU → fc2."""

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = gelu(nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x))
        return nn.Dense(x.shape[-1], dtype=self.dtype, name="fc2")(h)


class SwiGLU(nn.Module):
    """DINOv2 ViT-g's FFN: w12 → silu(first half) · second half → w3."""

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x1, x2 = jnp.split(nn.Dense(2 * self.hidden, dtype=self.dtype, name="w12")(x), 2, axis=-1)
        return nn.Dense(x.shape[-1], dtype=self.dtype, name="w3")(jax.nn.silu(x1) * x2)


class Block(nn.Module):
    """Pre-norm transformer block; with `layerscale` it is DINOv2's block, without it the fusion block."""

    dim: int
    num_heads: int
    hidden: int
    ffn: str = "mlp"
    layerscale: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def scaled(name: str, y: jax.Array) -> jax.Array:
            if not self.layerscale:
                return y
            gamma = self.param(name, nn.initializers.constant(1e-5), (self.dim,))
            return y * gamma.astype(y.dtype)

        y = Attention(self.dim, self.num_heads, self.dtype, name="attn")(layer_norm("norm1", self.dtype)(x))
        x = x + scaled("ls1", y)
        ffn = SwiGLU if self.ffn == "swiglu" else Mlp
        y = ffn(self.hidden, self.dtype, name="mlp")(layer_norm("norm2", self.dtype)(x))
        return x + scaled("ls2", y)


class PatchConv(nn.Module):
    """Conv with kernel = stride = `patch` and no padding (patch embeddings, the FPN's 2×2/2 conv).

    Written as a reshape plus one matmul; the kernel has nn.Conv's (k, k, C_in, C_out) layout.
    """

    features: int
    patch: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        p = self.patch
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (p, p, c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x = x.reshape(b, h // p, p, w // p, p, c).astype(self.dtype)
        y = jnp.einsum("bhpwqc,pqco->bhwo", x, kernel.astype(self.dtype))
        return y + bias.astype(self.dtype)


class ConvTranspose2x2(nn.Module):
    """PyTorch `ConvTranspose2d(C_in, C_out, 2, stride=2)`: every input pixel paints its own 2×2 block.

    y[2i+a, 2j+b, o] = bias[o] + Σ_c x[i, j, c] · kernel[a, b, c, o], with kernel[a, b, c, o] = W_torch[c, o, a, b].
    """

    features: int
    dtype: Dtype = jnp.float32
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (2, 2, c, self.features))
        y = jnp.einsum("bhwc,pqco->bhpwqo", x.astype(self.dtype), kernel.astype(self.dtype))
        y = y.reshape(b, 2 * h, 2 * w, self.features)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
        return y
