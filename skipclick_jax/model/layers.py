"""Small building blocks shared by the encoder, the fusion transformer and the decoder.

Layouts: tokens are (B, N, C), maps NHWC. Parameters are float32; `dtype` is the compute dtype of the
matmuls and convolutions only: their operands are cast to it and they accumulate and return float32
("bf16 compute, f32 accumulation"). Everything else (norms, softmax, GELU, the residual stream) is float32
whatever the compute dtype. In float32 every layer is the plain float32 op.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def matmul(x: jax.Array, w: jax.Array, dtype: Dtype = jnp.float32) -> jax.Array:
    """x · w over x's last axis, operands in `dtype`, accumulated and returned in float32.

    On hardware with bf16 units this is the fast mode (bf16 × bf16 → f32 is what tensor cores and AVX512-BF16 /
    AMX do natively); a bf16 *result* would add a rounding per layer and, on XLA:CPU, a slower kernel."""
    dims = (((x.ndim - 1,), (0,)), ((), ()))
    return jax.lax.dot_general(x.astype(dtype), w.astype(dtype), dims, preferred_element_type=jnp.float32)


class Dense(nn.Module):
    """`nn.Dense` (same parameters and initialisers) with `matmul`'s precision policy."""

    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        y = matmul(x, kernel, self.dtype)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as PyTorch's `nn.GELU()`; Flax's default is the tanh approximation."""
    return jax.nn.gelu(x, approximate=False)


def layer_norm(name: str | None = None, eps: float = 1e-6) -> nn.LayerNorm:
    """PyTorch's LayerNorm (eps 1e-6 in DINOv2 and the fusion blocks, 1e-5 in DINOv3), float32 in and out."""
    # Two-pass variance: PyTorch computes E[(x - mean)²], not E[x²] - mean².
    return nn.LayerNorm(epsilon=eps, use_fast_variance=False, dtype=jnp.float32, name=name)


def group_norm(name: str | None = None) -> nn.GroupNorm:
    """PyTorch `GroupNorm(1, C)`: statistics over H×W×C per sample, eps 1e-5; float32 in and out."""
    return nn.GroupNorm(num_groups=1, epsilon=1e-5, use_fast_variance=False, dtype=jnp.float32, name=name)


def _attention_per_head(q: jax.Array, k: jax.Array, v: jax.Array, dtype: Dtype) -> jax.Array:
    """Softmax attention one head at a time, (B, N, H, D) in and out; dtype as in `matmul`.

    On XLA:CPU this is ~3× faster than one batched einsum: each head's N×N score matrix stays in
    cache, and the head-major matmuls need no strided layouts. Normalising the output instead of the
    weights saves a pass over the scores.
    """
    scale = jnp.asarray(q.shape[-1] ** -0.5, q.dtype)

    def head(qkv: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        qh, kh, vh = qkv  # (B, N, D)
        logits = jnp.einsum("bqd,bkd->bqk", (qh * scale).astype(dtype), kh.astype(dtype),
                            preferred_element_type=jnp.float32)
        e = jnp.exp(logits - logits.max(-1, keepdims=True))
        out = jnp.einsum("bqk,bkd->bqd", e.astype(dtype), vh.astype(dtype), preferred_element_type=jnp.float32)
        return out / e.sum(-1, keepdims=True)

    heads_first = (jnp.moveaxis(t, 2, 0) for t in (q, k, v))
    return jnp.moveaxis(jax.lax.map(head, tuple(heads_first)), 0, 2)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, implementation: str = "auto",
              dtype: Dtype = jnp.float32) -> jax.Array:
    """Softmax(q·kᵀ/√d)·v for (B, N, H, D) float32 arrays → float32; `implementation` "per_head", "fused" or
    "auto" (per-head loop on CPU, `jax.nn.dot_product_attention` — cuDNN/flash where available — elsewhere).
    The two matmuls take `dtype` operands; the softmax runs in float32."""
    if implementation == "auto":
        implementation = "per_head" if jax.default_backend() == "cpu" else "fused"
    if implementation == "per_head":
        return _attention_per_head(q, k, v, dtype)
    q, k, v = (t.astype(dtype) for t in (q, k, v))
    return jax.nn.dot_product_attention(q, k, v).astype(jnp.float32)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection laid out [q | k | v] × heads × head_dim."""

    dim: int
    num_heads: int
    dtype: Dtype = jnp.float32
    implementation: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, _ = x.shape
        qkv = Dense(3 * self.dim, dtype=self.dtype, name="qkv")(x)
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, self.dim // self.num_heads), 2, 0)
        out = attention(q, k, v, self.implementation, self.dtype).reshape(b, n, self.dim)
        return Dense(self.dim, dtype=self.dtype, name="proj")(out)


class Mlp(nn.Module):
    """fc1 → exact GELU → fc2."""

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = gelu(Dense(self.hidden, dtype=self.dtype, name="fc1")(x))
        return Dense(x.shape[-1], dtype=self.dtype, name="fc2")(h)


class SwiGLU(nn.Module):
    """DINOv2 ViT-g's FFN: w12 → silu(first half) · second half → w3."""

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x1, x2 = jnp.split(Dense(2 * self.hidden, dtype=self.dtype, name="w12")(x), 2, axis=-1)
        return Dense(x.shape[-1], dtype=self.dtype, name="w3")(jax.nn.silu(x1) * x2)


class Block(nn.Module):
    """Pre-norm transformer block; with `layerscale` it is DINOv2's block, without it the fusion block."""

    dim: int
    num_heads: int
    hidden: int
    ffn: str = "mlp"
    layerscale: bool = False
    dtype: Dtype = jnp.float32
    attention: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def scaled(name: str, y: jax.Array) -> jax.Array:
            if not self.layerscale:
                return y
            gamma = self.param(name, nn.initializers.constant(1e-5), (self.dim,))
            return y * gamma

        attn = Attention(self.dim, self.num_heads, self.dtype, self.attention, name="attn")
        y = attn(layer_norm("norm1")(x))
        x = x + scaled("ls1", y)
        ffn = SwiGLU if self.ffn == "swiglu" else Mlp
        y = ffn(self.hidden, self.dtype, name="mlp")(layer_norm("norm2")(x))
        return x + scaled("ls2", y)


def patch_rows(x: jax.Array, k: int) -> jax.Array:
    """(B, H, W, C) → (B, H/k, W/k, k·k·C): each k×k patch as one row, in the (ky, kx, c) order of
    `kernel.reshape(k·k·C, O)`. A last partial patch row / column is dropped, as by PyTorch's strided conv."""
    b, h, w, c = x.shape
    h, w = h - h % k, w - w % k
    x = x[:, :h, :w]
    return x.reshape(b, h // k, k, w // k, k, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // k, w // k, k * k * c)


def deconv_matrix(kernel: jax.Array) -> jax.Array:
    """ConvT 2×2/2 kernel (2, 2, C_in, C_out) as the (C_in, 4·C_out) matrix `deconv_interleave` expects."""
    c, o = kernel.shape[2], kernel.shape[3]
    return kernel.transpose(2, 0, 1, 3).reshape(c, 4 * o)


def deconv_interleave(y: jax.Array) -> jax.Array:
    """(B, h, w, 4·O) per-pixel outputs [a, b, o] → the (B, 2h, 2w, O) map, y[2i+a, 2j+b]."""
    b, h, w, c = y.shape
    o = c // 4
    return y.reshape(b, h, w, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, o)


def patch_conv(x: jax.Array, kernel: jax.Array, dtype: Dtype = jnp.float32) -> jax.Array:
    """Conv with kernel = stride = k and no padding, kernel (k, k, C_in, C_out): patches → one matmul.
    An input side that is not a multiple of k loses its last partial patch, as in PyTorch.

    Gathering each patch contiguously first lets XLA:CPU run a single plain GEMM (faster than a
    strided einsum or `conv_general_dilated` here).
    """
    k = kernel.shape[0]
    return matmul(patch_rows(x, k), kernel.reshape(-1, kernel.shape[-1]), dtype)


def deconv2x2(x: jax.Array, kernel: jax.Array, dtype: Dtype = jnp.float32) -> jax.Array:
    """PyTorch `ConvTranspose2d(k=2, stride=2)` without bias; kernel (2, 2, C_in, C_out).

    y[2i+a, 2j+b, o] = Σ_c x[i, j, c] · kernel[a, b, c, o]: one matmul to (…, 2, 2, C_out), then interleave.
    """
    return deconv_interleave(matmul(x, deconv_matrix(kernel), dtype))


class PatchConv(nn.Module):
    """Conv with kernel = stride = `patch` and no padding (patch embeddings). nn.Conv's kernel layout."""

    features: int
    patch: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p, c = self.patch, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (p, p, c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return patch_conv(x, kernel, self.dtype) + bias


class ConvTranspose2x2(nn.Module):
    """PyTorch `ConvTranspose2d(C_in, C_out, 2, stride=2)`; kernel[a, b, c, o] = W_torch[c, o, a, b]."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (2, 2, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return deconv2x2(x, kernel, self.dtype) + bias
