"""Fresh parameters with the original's initialisation (SPEC 1.14), drawn on the host.

Drawing with numpy is both faster than compiling ~300 JAX RNG kernels and lets each rule be stated
in the original's terms:

- fusion transformer: pos-embed N(0, 0.02); Linear weights Xavier-uniform, biases 0; LayerNorm 1 / 0;
- fuse, click patch embedding, FPN convolutions, head up-convs and classifier: PyTorch's defaults
  (kaiming-uniform with a = √5, i.e. U(±1/√fan_in), bias U(±1/√fan_in)); GroupNorm 1 / 0;
- head ConvModules (`convs_k`, `fusion_conv`): kaiming-normal, fan_out, ReLU gain; bias 0;
- DINOv2 (normally replaced by pretrained weights): timm ViT init — trunc-normal(0.02) Linear weights,
  zero biases, pos-embed trunc-normal(0.02), cls and registers N(0, 1e-6), LayerScale 1.0 (hub value);
  DINOv3 likewise, with its buffers at the released values (RoPE periods, k-bias mask);
- conv-modulation stack: PyTorch's default convolutions, LayerNorm 1 / 0, layer scales 1e-6.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from ..config import SkipClickConfig
from .dinov3 import hub_periods
from .skipclick import param_shapes


def _fans(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, int]:
    """PyTorch's (fan_in, fan_out) of the original tensor behind a Flax kernel."""
    if len(shape) == 2:  # Dense kernel (in, out) ← Linear / 1×1 conv (out, in)
        return shape[0], shape[1]
    kh, kw, cin, cout = shape
    if any("deconv" in p for p in path):  # ConvTranspose2d weight (in, out, k, k): torch uses dim 1 as "in"
        return cout * kh * kw, cin * kh * kw
    return cin * kh * kw, cout * kh * kw


def _draw(rng: np.random.Generator, path: tuple[str, ...], shape: tuple[int, ...],
          kernel_shape: tuple[int, ...], config: SkipClickConfig) -> np.ndarray:
    """One parameter; `kernel_shape` is the shape of the kernel beside it (for bias bounds)."""
    name, top, owner = path[-1], path[0], path[-2] if len(path) > 1 else ""
    if name == "rope_periods":
        return hub_periods(config.encoder)
    if name == "bias_mask":
        return np.concatenate([np.ones(shape[0] // 3), np.zeros(shape[0] // 3), np.ones(shape[0] // 3)])
    if name in ("layer_scale_1", "layer_scale_2"):
        return np.full(shape, 1e-6)
    if name in ("scale", "ls1", "ls2"):
        return np.ones(shape)
    if top == "encoder" and owner != "patch_embed":
        if name in ("cls_token", "register_tokens", "storage_tokens"):
            return rng.normal(0, 1e-6, shape)
        if name in ("pos_embed", "kernel"):
            return np.clip(rng.normal(0, 0.02, shape), -2, 2)  # trunc_normal_(std=.02, a=-2, b=2)
        return np.zeros(shape)  # biases, LayerNorm biases, mask token
    if top == "fusion" and config.fusion_block == "conv":
        return np.zeros(shape) if "norm" in owner else _pytorch_default(rng, path, shape, kernel_shape)
    if top == "fusion":
        if name == "pos_embed":
            return rng.normal(0, 0.02, shape)
        if name == "kernel":
            bound = np.sqrt(6.0 / sum(_fans(path, shape)))
            return rng.uniform(-bound, bound, shape)
        return np.zeros(shape)
    if owner.startswith("convs_") or owner == "fusion_conv":
        if name == "kernel":
            return rng.normal(0, np.sqrt(2.0 / _fans(path, shape)[1]), shape)
        return np.zeros(shape)
    if "norm" in owner:
        return np.zeros(shape)  # GroupNorm bias (its scale is handled above)
    return _pytorch_default(rng, path, shape, kernel_shape)


def _pytorch_default(rng: np.random.Generator, path: tuple[str, ...], shape: tuple[int, ...],
                     kernel_shape: tuple[int, ...]) -> np.ndarray:
    """PyTorch's Linear / Conv default, bias included: U(±1/√fan_in)."""
    bound = 1.0 / np.sqrt(_fans(path, kernel_shape)[0])
    return rng.uniform(-bound, bound, shape)


def init_params(config: SkipClickConfig, seed: int = 0) -> dict[str, Any]:
    """Freshly initialised float32 parameters for `config` (deterministic in `seed`)."""
    flat: dict[tuple[str, ...], tuple[int, ...]] = {}

    def collect(tree: Any, prefix: tuple[str, ...]) -> None:
        for k, v in tree.items():
            if isinstance(v, dict):
                collect(v, (*prefix, k))
            else:
                flat[(*prefix, k)] = tuple(v.shape)

    collect(param_shapes(config), ())
    out: dict[str, Any] = {}
    for path, shape in flat.items():
        # One stream per parameter, so adding a parameter never changes the others.
        rng = np.random.default_rng([seed, zlib.crc32("/".join(path).encode())])
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        kernel_shape = flat.get((*path[:-1], "kernel"), shape)
        node[path[-1]] = np.asarray(_draw(rng, path, shape, kernel_shape, config), np.float32)
    return out
