"""isegm ``SimpleModulationStack`` (``use_conv_stack=True``, Conv2Former-style blocks) written from scratch.

From /work/notes/dinov3_convstack_spec.md §D. Module names reproduce the ``backbone_mix.*`` keys of the
conv-stack checkpoint (``blocks.{j}.layer_scale_1``, ``layer_scale_2``, ``attn.norm``, ``attn.a.0``,
``attn.a.2``, ``attn.v``, ``attn.proj``, ``mlp.norm``, ``mlp.fc1``, ``mlp.pos``, ``mlp.fc2``). No position
embedding: the stack works on any token grid.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelsFirstLayerNorm(nn.Module):
    """ConvNeXt-style LayerNorm over the channel axis of NCHW maps: (x − mean) / sqrt(biased var + eps)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)  # a division by the root, not an rsqrt multiply
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvModulation(nn.Module):
    """``ConvMod``: n = LN(x); proj( DW11(GELU(conv1x1_a(n))) ⊙ conv1x1_v(n) )."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = ChannelsFirstLayerNorm(dim)
        self.a = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 11, padding=5, groups=dim),
        )
        self.v = nn.Conv2d(dim, dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm(x)
        return self.proj(self.a(n) * self.v(n))


class ConvMlp(nn.Module):
    """h = GELU(fc1(LN(x))); h = h + GELU(DW3(h)) (inner residual); fc2(h). All convs with bias."""

    def __init__(self, dim: int, mlp_ratio: int = 4):
        super().__init__()
        hidden = dim * mlp_ratio
        self.norm = ChannelsFirstLayerNorm(dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.pos = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(self.norm(x)))
        h = h + self.act(self.pos(h))
        return self.fc2(h)


class ModulationBlock(nn.Module):
    """x += layer_scale_1·ConvMod(x); x += layer_scale_2·MLP(x) (per-channel scales, init 1e-6; no drop-path)."""

    def __init__(self, dim: int, mlp_ratio: int = 4):
        super().__init__()
        self.attn = ConvModulation(dim)
        self.mlp = ConvMlp(dim, mlp_ratio)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), 1e-6))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1[:, None, None] * self.attn(x)
        return x + self.layer_scale_2[:, None, None] * self.mlp(x)


class ReferenceModulationStack(nn.Module):
    """``SimpleModulationStack``: tokens (B, gh·gw, C) -> NCHW map -> ``depth`` blocks -> tokens. No pos-embed,
    no final norm. Click tokens are added by the caller (the original adds them in place to its input)."""

    def __init__(self, embed_dim: int = 768, depth: int = 4, mlp_ratio: int = 4):
        super().__init__()
        self.embed_dim = embed_dim
        self.blocks = nn.Sequential(*(ModulationBlock(embed_dim, mlp_ratio) for _ in range(depth)))

    def forward(self, tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        b, n, c = tokens.shape
        if n != gh * gw:
            raise ValueError(f"{n} tokens do not form a {gh}x{gw} grid")
        x = tokens.transpose(1, 2).reshape(b, c, gh, gw)
        x = self.blocks(x)
        return x.reshape(b, c, gh * gw).transpose(1, 2)
