"""SimpleFPN with skip connections: four branches from one token map to four resolutions.

With skips, branch k sees concat[fusion output, encoder tap k] (2·D channels). The first layer of every
branch is linear in that concatenation, so it splits into a click-dependent half (applied to the fusion
output) and an image-only half (applied to the tap) that `image_terms` computes once per image; the
per-click path (`__call__`) only adds the cached image half. The sum is the original layer exactly.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from .layers import (
    ConvTranspose2x2,
    Dense,
    Dtype,
    deconv_interleave,
    deconv_matrix,
    gelu,
    group_norm,
    matmul,
    patch_rows,
)


class _FirstLayer(nn.Module):
    """The first layer of a branch over `in_dim` input channels, applicable to a channel slice.

    The layer is one GEMM (patch rows × matrix, or pixels × matrix then a 2×2 interleave). Its matrix for a
    channel slice comes from the "prepared" collection when an engine has stored it there (`prepare`), so
    the per-click step does not slice, relayout and cast the kernel on every call; otherwise it is built
    from the kernel (training, the plain forward). Both give the same numbers.
    """

    kind: str  # "deconv" (ConvT 2×2/2), "conv1" (1×1) or "conv2" (2×2/2)
    features: int
    in_dim: int
    dtype: Dtype = jnp.float32

    def setup(self) -> None:
        shape = {"deconv": (2, 2), "conv1": (1, 1), "conv2": (2, 2)}[self.kind]
        self.kernel = self.param("kernel", nn.initializers.lecun_normal(), (*shape, self.in_dim, self.features))
        self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

    def matrix(self, start: int, count: int) -> jax.Array:
        """The GEMM matrix of input channels [start, start + count)."""
        name = f"matrix_{start}_{count}"
        if self.has_variable("prepared", name):
            return self.get_variable("prepared", name)
        k = self.kernel[:, :, start : start + count]
        return deconv_matrix(k) if self.kind == "deconv" else k.reshape(-1, self.features)

    def prepare(self, count: int) -> None:
        """Store the matrices of the `count`-channel slices (the click and image halves) in the compute dtype."""
        for start in range(0, self.in_dim, count):
            self.put_variable("prepared", f"matrix_{start}_{count}", self.matrix(start, count).astype(self.dtype))

    def apply_slice(self, x: jax.Array, start: int, with_bias: bool) -> jax.Array:
        """The layer applied to input channels [start, start + C) only (C = x's channel count)."""
        m = self.matrix(start, x.shape[-1])
        if self.kind == "deconv":
            y = deconv_interleave(matmul(x, m, self.dtype))
        else:
            y = matmul(patch_rows(x, self.kernel.shape[0]), m, self.dtype)
        return y + self.bias if with_bias else y

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.apply_slice(x, 0, with_bias=True)


class SimpleFPN(nn.Module):
    """Branches (original `neck.down_4/8/16/32`) producing maps at 4g, 2g, g and g/2.

    The missing activations after some GroupNorms are the original's and are intentional.
    """

    dim: int
    out_dims: tuple[int, int, int, int]
    skip_connections: bool
    dtype: Dtype = jnp.float32

    def setup(self) -> None:
        in_dim = 2 * self.dim if self.skip_connections else self.dim
        c4 = max(2 * self.out_dims[0], in_dim // 2)
        c8 = max(self.out_dims[1], in_dim // 2)
        c32 = max(self.out_dims[3], 2 * in_dim)
        dt = self.dtype
        self.down_4_deconv1 = _FirstLayer("deconv", c4, in_dim, dt)
        self.down_8_deconv = _FirstLayer("deconv", c8, in_dim, dt)
        self.down_16_conv = _FirstLayer("conv1", self.out_dims[2], in_dim, dt)
        self.down_32_conv2 = _FirstLayer("conv2", c32, in_dim, dt)
        self.down_4_norm1 = group_norm()
        self.down_4_deconv2 = ConvTranspose2x2(c4 // 2, dt)
        self.down_4_norm2 = group_norm()
        self.down_4_conv = Dense(self.out_dims[0], dtype=dt)
        self.down_4_norm3 = group_norm()
        self.down_8_norm1 = group_norm()
        self.down_8_conv = Dense(self.out_dims[1], dtype=dt)
        self.down_8_norm2 = group_norm()
        self.down_16_norm = group_norm()
        self.down_32_norm1 = group_norm()
        self.down_32_conv = Dense(self.out_dims[3], dtype=dt)
        self.down_32_norm2 = group_norm()

    def image_terms(self, taps: list[jax.Array]) -> tuple[jax.Array, ...]:
        """Image-only halves of the four first layers (tap channels, bias folded in): once per image."""
        if not self.skip_connections:
            raise ValueError("image_terms only exists with skip connections")
        pairs = zip(self._firsts(), taps, strict=True)
        return tuple(layer.apply_slice(t, self.dim, with_bias=True) for layer, t in pairs)

    def prepare(self) -> None:
        """Store the first layers' per-slice matrices (see `_FirstLayer`): click and image halves with skip
        connections, the whole layer without."""
        for layer in self._firsts():
            layer.prepare(self.dim)

    def _firsts(self) -> tuple[_FirstLayer, ...]:
        return (self.down_4_deconv1, self.down_8_deconv, self.down_16_conv, self.down_32_conv2)

    def _first(self, k: int, x: jax.Array, term: jax.Array | None) -> jax.Array:
        layer = self._firsts()[k]
        if term is None:
            return layer(x)
        return layer.apply_slice(x, 0, with_bias=False) + term

    def __call__(self, x: jax.Array, terms: tuple[jax.Array, ...] | None = None) -> list[jax.Array]:
        """`x`: (B, g, g, D) fusion output; `terms`: `image_terms(taps)` when skip connections are on."""
        if self.skip_connections != (terms is not None):
            raise ValueError("pass image terms exactly when the FPN has skip connections")
        t = terms if terms is not None else (None,) * 4
        y4 = gelu(self.down_4_norm1(self._first(0, x, t[0])))
        y4 = self.down_4_norm2(self.down_4_deconv2(y4))
        y4 = gelu(self.down_4_norm3(self.down_4_conv(y4)))
        y8 = self.down_8_norm1(self._first(1, x, t[1]))
        y8 = gelu(self.down_8_norm2(self.down_8_conv(y8)))
        y16 = gelu(self.down_16_norm(self._first(2, x, t[2])))
        y32 = self.down_32_norm1(self._first(3, x, t[3]))
        y32 = gelu(self.down_32_norm2(self.down_32_conv(y32)))
        return [y4, y8, y16, y32]
