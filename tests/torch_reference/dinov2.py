"""DINOv2 ViT (facebookresearch/dinov2 ``DinoVisionTransformer``, ``block_chunks=0``) written from scratch.

Parameter names follow the hub checkpoints (``dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth``) so a state dict
moves unchanged between this module, the hub files and the ``feature_extractor.dinov2.*`` part of a SkipClick
checkpoint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Hub hyper-parameters (dinov2 hub/backbones.py, models/vision_transformer.py): (dim, depth, heads, ffn)
_ARCHS = {
    "vits14": (384, 12, 6, "mlp"),
    "vitb14": (768, 12, 12, "mlp"),
    "vitl14": (1024, 24, 16, "mlp"),
    "vitg14": (1536, 40, 24, "swiglu"),
}


def dinov2_kwargs(name: str) -> dict:
    """Constructor kwargs of :class:`ReferenceDinoV2` for a hub model name.

    ``name`` is one of ``vits14, vitb14, vitl14, vitg14``, optionally with a ``_reg`` suffix and/or a
    ``dinov2_`` prefix (e.g. ``"dinov2_vitb14_reg"``). The register variants use 4 registers and size-based
    antialiased pos-embed interpolation; the originals use no registers, no antialias and the historical
    0.1 offset.
    """
    key = name.removeprefix("dinov2_")
    reg = key.endswith("_reg")
    key = key.removesuffix("_reg")
    if key not in _ARCHS:
        raise ValueError(f"unknown DINOv2 model name {name!r}")
    dim, depth, heads, ffn = _ARCHS[key]
    return dict(
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=4.0,
        ffn=ffn,
        num_register_tokens=4 if reg else 0,
        patch_size=14,
        pos_grid=37,  # img_size 518 / patch 14
        interpolate_antialias=reg,
        interpolate_offset=0.0 if reg else 0.1,
        layerscale=True,  # hub init_values=1.0
    )


class PatchEmbed(nn.Module):
    """Non-overlapping conv patchify; tokens in row-major grid order; no norm (neither DINOv2 nor isegm)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"input {tuple(x.shape[-2:])} is not a multiple of the patch size {p}")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection laid out as [3][heads][head_dim].

    Computed with `F.scaled_dot_product_attention`, as DINOv2 does without xFormers (same math as
    softmax(q·kᵀ/√d)·v; using the same kernel keeps `skipclick bench --compare-torch` timings fair).
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> exact (erf) GELU -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLU(nn.Module):
    """DINOv2's ``SwiGLUFFNFused``: one packed w12 projection, silu(x1) * x2, then w3."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8  # dinov2 rounds the 2/3-width up to a multiple of 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    """Per-channel residual-branch scale (``ls1.gamma`` / ``ls2.gamma``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block. DINOv2 uses LayerScale; isegm's EncoderStack blocks do not."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, ffn: str = "mlp", layerscale: bool = True):
        super().__init__()
        # Attribute order = state-dict key order of the originals.
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim) if layerscale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        if ffn == "mlp":
            self.mlp = Mlp(dim, hidden)
        elif ffn == "swiglu":
            self.mlp = SwiGLU(dim, hidden)
        else:
            raise ValueError(f"unknown ffn {ffn!r}")
        self.ls2 = LayerScale(dim) if layerscale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class ReferenceDinoV2(nn.Module):
    """DINOv2 ViT as built by ``torch.hub.load('facebookresearch/dinov2', ...)`` (inference path only).

    State-dict keys: ``cls_token``, ``pos_embed`` (1, 1 + pos_grid², D), ``register_tokens`` (if any),
    ``mask_token`` (unused at inference), ``patch_embed.proj.*``, ``blocks.{i}.*``, ``norm.*``.
    """

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        ffn: str = "mlp",
        num_register_tokens: int = 4,
        patch_size: int = 14,
        pos_grid: int = 37,
        interpolate_antialias: bool = True,
        interpolate_offset: float = 0.0,
        layerscale: bool = True,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        self.hparams = dict(
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            ffn=ffn,
            num_register_tokens=num_register_tokens,
            patch_size=patch_size,
            pos_grid=pos_grid,
            interpolate_antialias=interpolate_antialias,
            interpolate_offset=interpolate_offset,
            layerscale=layerscale,
        )

        # Top-level parameters first, in the hub key order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pos_grid * pos_grid, embed_dim))
        if num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        else:
            self.register_tokens = None
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.patch_embed = PatchEmbed(3, embed_dim, patch_size)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, ffn=ffn, layerscale=layerscale) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def interpolate_pos_encoding(self, height: int, width: int) -> torch.Tensor:
        """Position table (1, 1 + h·w, D) for a ``height`` × ``width`` pixel input, as dinov2 computes it."""
        num_stored = self.pos_embed.shape[1] - 1
        gh, gw = height // self.patch_size, width // self.patch_size
        # dinov2 skips the resize only for a square input with the stored patch count.
        if gh * gw == num_stored and height == width:
            return self.pos_embed
        table = self.pos_embed.float()
        m = int(math.sqrt(num_stored))
        grid = table[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            # Historical path (non-register hub models): the scale factor, not the size, drives the sampling.
            scale = ((gh + self.interpolate_offset) / m, (gw + self.interpolate_offset) / m)
            grid = F.interpolate(
                grid, scale_factor=scale, mode="bicubic", antialias=self.interpolate_antialias
            )
        else:
            grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", antialias=self.interpolate_antialias)
        if tuple(grid.shape[-2:]) != (gh, gw):
            raise ValueError(f"pos-embed resize produced {tuple(grid.shape[-2:])}, expected {(gh, gw)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        return torch.cat([table[:, :1], grid], dim=1).to(self.pos_embed.dtype)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """cls + patch tokens plus position embedding, then the registers (no position embedding for them)."""
        b = x.shape[0]
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(x.shape[-2], x.shape[-1])
        if self.register_tokens is not None:
            regs = self.register_tokens.expand(b, -1, -1)
            tokens = torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)
        return tokens

    def forward_taps(self, x: torch.Tensor, taps=(2, 5, 8, 11)) -> list[torch.Tensor]:
        """Raw outputs (before the final norm) of blocks ``taps`` (0-based), minus cls/registers, in order.

        ``x`` is the ImageNet-normalised image (B, 3, H, W). Blocks after the last tap are skipped: their
        output is never used, so stopping early does not change the taps.
        """
        taps = list(taps)
        if not taps:
            return []
        skip = 1 + self.num_register_tokens
        x = self.prepare_tokens(x)
        outputs = {}
        for i, blk in enumerate(self.blocks[: max(taps) + 1]):
            x = blk(x)
            if i in taps:
                outputs[i] = x[:, skip:]
        return [outputs[t] for t in taps]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final-norm cls token (B, D), what the hub model returns from ``forward`` (identity head)."""
        x = self.prepare_tokens(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]
