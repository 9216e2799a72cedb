"""Deterministic random weights for parity tests.

Every tensor gets non-trivial values (no exact ones/zeros), so a transposed, swapped or skipped weight in a
port shows up as a numeric mismatch instead of hiding behind an identity init. Scales keep activations O(1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .convstack import ChannelsFirstLayerNorm
from .dinov2 import LayerScale

# Buffers that are fixed constants of the architecture (DINOv3 RoPE periods, canonical k-bias mask): kept.
_CONSTANT_BUFFERS = ("periods", "bias_mask")


def _fan_in(module: nn.Module, weight: torch.Tensor) -> int:
    if isinstance(module, nn.ConvTranspose2d):
        # weight is [in, out, kh, kw]; with kernel == stride each output pixel sees one tap per input channel.
        k = weight.shape[2] * weight.shape[3] // (module.stride[0] * module.stride[1])
        return weight.shape[0] * max(k, 1)
    return weight[0].numel()  # Linear [out, in], Conv2d [out, in, kh, kw]


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every float parameter and buffer of ``model`` in place, deterministically from ``seed``.

    - Linear/ConvTranspose weights: N(0, 1/fan_in); Conv2d weights: N(0, 2/fan_in) (mostly followed by
      ReLU/GELU); the ``conv_seg`` classifier: N(0, 9/fan_in). All biases: 0.1·N(0, 1).
    - LayerNorm/GroupNorm (also channels-first LayerNorm) weights: 1 + 0.2·N(0, 1).
    - LayerScale gammas and the conv stack's ``layer_scale_1/2``: U(0.2, 1.2).
    - Anything else (pos-embeds, cls/register/storage/mask tokens, float buffers): 0.5·N(0, 1), except the
      DINOv3 buffers ``rope_embed.periods`` and ``attn.qkv.bias_mask``, which keep their (canonical) values.
      The qkv biases are random like every bias, so their k part is non-zero and the k-bias mask matters.
    Returns ``model``.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float32) * std + mean)

    for mod_name, module in model.named_modules():
        # ReLU-fed convs get the He gain; the classifier a larger one so that logits are O(1..10), not O(0.1).
        gain = (
            3.0 if mod_name.endswith("conv_seg") else math.sqrt(2.0) if isinstance(module, nn.Conv2d) else 1.0
        )
        for name, p in module.named_parameters(recurse=False):
            if not p.is_floating_point():
                continue
            if name == "bias":
                normal(p, 0.1)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, ChannelsFirstLayerNorm)):
                normal(p, 0.2, mean=1.0)
            elif isinstance(module, LayerScale) or name.startswith("layer_scale_"):
                p.copy_(0.2 + torch.rand(p.shape, generator=gen, dtype=torch.float32))
            elif isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                normal(p, gain / math.sqrt(_fan_in(module, p)))
            else:
                normal(p, 0.5)
        for name, buf in module.named_buffers(recurse=False):
            if buf.is_floating_point() and name not in _CONSTANT_BUFFERS:
                normal(buf, 0.5)
    return model
