"""The conv-modulation stack (`isegm/model/modeling/models_conv.py: SimpleModulationStack`), the original's
`use_conv_stack=True` alternative to the fusion transformer: Conv2Former-style blocks on the token map,
no position embedding (so nothing to resize at other input sizes).

Block: x + γ₁·ConvMod(x), then x + γ₂·MLP(x), where (LN = LayerNorm over channels, eps 1e-6)

    ConvMod(x) = proj( DW11(GELU(a0(LN x))) ⊙ v(LN x) )       DW11: depthwise 11×11, zero padding 5
    MLP(x)     = fc2( h + GELU(DW3(h)) ),  h = GELU(fc1(LN x))  DW3: depthwise 3×3, zero padding 1

with 1×1 convolutions a0, v, proj (C→C), fc1 (C→4C), fc2 (4C→C), all with bias; GELU exact.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from .layers import Dense, Dtype, gelu, layer_norm


class DepthwiseConv(nn.Module):
    """Depthwise k×k convolution, stride 1, zero padding k // 2 (output size = input size), with bias.

    Written as a sum of k² shifted, per-channel-scaled copies of the padded input: XLA:CPU runs a grouped
    `conv_general_dilated` 15–30× slower (measured at 32×32×768, 11×11: 204 ms vs 14 ms), and the sum is a
    single fused elementwise loop on any backend.
    """

    size: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c, k = x.shape[-1], self.size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, c))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        h, w, pad = x.shape[1], x.shape[2], k // 2
        # Operands rounded to the compute dtype, products and sums in float32 (as `matmul`): a product of
        # two bf16 values is exact in float32, so this is bf16 × bf16 → f32 accumulation.
        as_operand = lambda t: t.astype(self.dtype).astype(jnp.float32)  # noqa: E731
        padded = jnp.pad(as_operand(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        kernel = as_operand(kernel)
        y = sum(padded[:, i:i + h, j:j + w] * kernel[i, j, 0] for i in range(k) for j in range(k))
        return y + bias


class ModulationBlock(nn.Module):
    dim: int
    mlp_ratio: float = 4.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d, dt = self.dim, self.dtype
        ls1 = self.param("layer_scale_1", nn.initializers.constant(1e-6), (d,))
        ls2 = self.param("layer_scale_2", nn.initializers.constant(1e-6), (d,))
        dense = lambda n, name: Dense(n, dtype=dt, name=name)  # noqa: E731 - 1×1 convolutions

        n = layer_norm("attn_norm")(x)
        a = DepthwiseConv(11, dt, name="attn_a_dw")(gelu(dense(d, "attn_a")(n)))
        y = dense(d, "attn_proj")(a * dense(d, "attn_v")(n))
        x = x + y * ls1

        h = gelu(dense(int(d * self.mlp_ratio), "mlp_fc1")(layer_norm("mlp_norm")(x)))
        h = h + gelu(DepthwiseConv(3, dt, name="mlp_pos")(h))
        y = dense(d, "mlp_fc2")(h)
        return x + y * ls2


class ModulationStack(nn.Module):
    """`depth` modulation blocks on (B, g, g, D) maps; no position embedding, no final norm."""

    dim: int
    depth: int
    mlp_ratio: float = 4.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for j in range(self.depth):
            x = ModulationBlock(self.dim, self.mlp_ratio, self.dtype, name=f"blocks_{j}")(x)
        return x
