"""SkipClick as PyTorch modules, built from a `SkipClickConfig`, with the original's state-dict keys.

The same computation as the Flax model (SPEC §1), split the same way: `image_features` once per image
(encoder taps → fused tokens, the image halves of the FPN's first layers, the resized fusion pos-embed)
and `decode` per click. `set_image` / `apply_click` reproduce the original's fast path instead, which
redoes the fuse and the whole FPN first layers at every click: that is what `skipclick bench
--compare-torch` times as the original's cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DinoV2Config, DinoV3Config, SkipClickConfig

Features = dict[str, object]  # "tokens" (B, N, D), "terms" (4 maps or None), "pos_embed" (1, N, D), "grid"


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # [q | k | v] × heads × head_dim → three (B, heads, N, head_dim) tensors
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, PyTorch's default


class _SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)


class _Scale(nn.Module):
    """DINOv2 LayerScale (parameter name `gamma`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _EncoderBlock(nn.Module):
    """DINOv2 block: x + γ₁·attn(LN(x)), then x + γ₂·ffn(LN(x)). LayerNorm eps 1e-6."""

    def __init__(self, cfg: DinoV2Config):
        super().__init__()
        d = cfg.embed_dim
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(d, eps=1e-6), _Attention(d, cfg.num_heads), _Scale(d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = (_SwiGLU if cfg.ffn == "swiglu" else _Mlp)(d, cfg.hidden_dim)
        self.ls2 = _Scale(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _FusionBlock(nn.Module):
    """Fusion transformer block: pre-norm, no LayerScale (both norms registered first, as the original)."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = _Attention(dim, heads), _Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, g·g, D), row-major tokens


class DinoV2Encoder(nn.Module):
    """DINOv2 as the hub builds it; `forward` returns the raw outputs of the tapped blocks (patch tokens)."""

    def __init__(self, cfg: DinoV2Config):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_grid**2, d))
        if cfg.num_registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_registers, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # pre-training only
        self.patch_embed = _PatchEmbed(3, d, cfg.patch_size)
        self.blocks = nn.ModuleList(_EncoderBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)  # not used by SkipClick's raw taps

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        cfg, m = self.cfg, self.cfg.pos_grid
        if gh == gw == m:
            return self.pos_embed
        table = self.pos_embed[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2).float()
        if cfg.interpolate_offset:  # hub models without registers: plain bicubic at a scale factor
            scale = ((gh + cfg.interpolate_offset) / m, (gw + cfg.interpolate_offset) / m)
            table = F.interpolate(table, scale_factor=scale, mode="bicubic", antialias=cfg.interpolate_antialias)
        else:
            table = F.interpolate(table, size=(gh, gw), mode="bicubic", antialias=cfg.interpolate_antialias)
        return torch.cat([self.pos_embed[:, :1], table.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def forward(self, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
        gh, gw = x.shape[-2] // self.cfg.patch_size, x.shape[-1] // self.cfg.patch_size
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embedding(gh, gw)
        prefix = 1 + self.cfg.num_registers
        if self.cfg.num_registers:
            tokens = torch.cat([tokens[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), tokens[:, 1:]], dim=1)
        out = {}
        for i, block in enumerate(self.blocks[: max(taps) + 1]):
            tokens = block(tokens)
            if i in taps:
                out[i] = tokens[:, prefix:]
        return [out[t] for t in taps]


class _MaskedBiasLinear(nn.Linear):
    """DINOv3's qkv: y = x·Wᵀ + bias ⊙ bias_mask (the stored mask zeroes the k part)."""

    def __init__(self, dim: int, out: int):
        super().__init__(dim, out)
        self.register_buffer("bias_mask", torch.cat([torch.ones(dim), torch.zeros(dim), torch.ones(dim)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias * self.bias_mask)


class _RopeAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = _MaskedBiasLinear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        first = n - sin.shape[0]  # cls and storage tokens are not rotated

        def rotate(t: torch.Tensor) -> torch.Tensor:
            head, patches = t[:, :, :first], t[:, :, first:]
            x1, x2 = patches.chunk(2, dim=-1)
            return torch.cat([head, patches * cos + torch.cat([-x2, x1], dim=-1) * sin], dim=2)

        out = F.scaled_dot_product_attention(rotate(q), rotate(k), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _SwiGLU3(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(dim, hidden), nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class _RopeBlock(nn.Module):
    def __init__(self, cfg: DinoV3Config):
        super().__init__()
        d = cfg.embed_dim
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(d, eps=1e-5), _RopeAttention(d, cfg.num_heads), _Scale(d)
        self.norm2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = (_SwiGLU3 if cfg.ffn == "swiglu" else _Mlp)(d, cfg.hidden_dim)
        self.ls2 = _Scale(d)

    def forward(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), sin, cos))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _Periods(nn.Module):
    def __init__(self, count: int):
        super().__init__()
        self.register_buffer("periods", torch.ones(count))


class DinoV3Encoder(nn.Module):
    """DINOv3 as the hub builds it; `forward` returns the tapped blocks' outputs through the final norm."""

    def __init__(self, cfg: DinoV3Config):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.storage_tokens = nn.Parameter(torch.zeros(1, cfg.num_registers, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.patch_embed = _PatchEmbed(3, d, cfg.patch_size)
        self.rope_embed = _Periods(cfg.head_dim // 4)
        self.blocks = nn.ModuleList(_RopeBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=1e-5)
        if cfg.local_cls_norm:
            self.local_cls_norm = nn.LayerNorm(d, eps=1e-5)

    def rope(self, gh: int, gw: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(sin, cos) (gh·gw, head_dim): centre coordinates in (−1, 1), angle (fl32(2π)·c) / period."""
        device = self.rope_embed.periods.device
        cy = torch.arange(0.5, gh, device=device) / gh
        cx = torch.arange(0.5, gw, device=device) / gw
        coords = 2.0 * torch.stack(torch.meshgrid(cy, cx, indexing="ij"), dim=-1).flatten(0, 1) - 1.0
        angles = (2 * torch.pi * coords[:, :, None]) / self.rope_embed.periods  # (HW, 2, F): rows, then columns
        angles = angles.flatten(1).tile(2)
        return torch.sin(angles), torch.cos(angles)

    def forward(self, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
        gh, gw = x.shape[-2] // self.cfg.patch_size, x.shape[-1] // self.cfg.patch_size
        prefix = torch.cat([self.cls_token, self.storage_tokens], dim=1).expand(x.shape[0], -1, -1)
        tokens = torch.cat([prefix, self.patch_embed(x)], dim=1)
        sin, cos = self.rope(gh, gw)
        out = {}
        for i, block in enumerate(self.blocks[: max(taps) + 1]):
            tokens = block(tokens, sin, cos)
            if i in taps:
                out[i] = self.norm(tokens)[:, prefix.shape[1]:]
        return [out[t] for t in taps]


class _Extractor(nn.Module):
    def __init__(self, cfg: DinoV2Config | DinoV3Config):
        super().__init__()
        if isinstance(cfg, DinoV3Config):
            self.dinov3 = DinoV3Encoder(cfg)
        else:
            self.dinov2 = DinoV2Encoder(cfg)

    @property
    def encoder(self) -> nn.Module:
        return self.dinov3 if hasattr(self, "dinov3") else self.dinov2


class _FusionStack(nn.Module):
    def __init__(self, cfg: SkipClickConfig):
        super().__init__()
        self.grid = cfg.fusion_grid
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid**2, cfg.dim))
        hidden = int(cfg.dim * cfg.fusion_mlp_ratio)
        self.blocks = nn.ModuleList(_FusionBlock(cfg.dim, cfg.fusion_heads, hidden) for _ in range(cfg.fusion_depth))

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        if (gh, gw) == (self.grid, self.grid):
            return self.pos_embed
        table = self.pos_embed.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(gh, gw), mode="bicubic", align_corners=False)  # a = -0.75
        return table.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)

    def forward(self, x: torch.Tensor, pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = x + pos_embed
        for block in self.blocks:
            x = block(x)
        return x


class _ChannelNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map, computed as the original's `models_conv.LayerNorm`:
    (x − mean) / sqrt(var + 1e-6), variance biased (a division, not a multiplication by rsqrt)."""

    def __init__(self, c: int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - mean) / torch.sqrt(var + 1e-6)) + self.bias[:, None, None]


class _ConvMod(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.norm = _ChannelNorm(d)
        self.a = nn.Sequential(nn.Conv2d(d, d, 1), _Gelu(), nn.Conv2d(d, d, 11, padding=5, groups=d))
        self.v, self.proj = nn.Conv2d(d, d, 1), nn.Conv2d(d, d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm(x)
        return self.proj(self.a(n) * self.v(n))


class _ConvMlp(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.norm, self.fc1 = _ChannelNorm(d), nn.Conv2d(d, hidden, 1)
        self.pos, self.fc2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.Conv2d(hidden, d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc1(self.norm(x)))
        return self.fc2(h + F.gelu(self.pos(h)))


class _ModulationBlock(nn.Module):
    def __init__(self, d: int, mlp_ratio: float):
        super().__init__()
        self.layer_scale_1 = nn.Parameter(torch.ones(d))
        self.layer_scale_2 = nn.Parameter(torch.ones(d))
        self.attn, self.mlp = _ConvMod(d), _ConvMlp(d, int(d * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1[:, None, None] * self.attn(x)
        return x + self.layer_scale_2[:, None, None] * self.mlp(x)


class _ConvStack(nn.Module):
    """The conv-modulation stack on (B, N, D) tokens of a gh×gw grid; no position embedding."""

    def __init__(self, cfg: SkipClickConfig):
        super().__init__()
        self.blocks = nn.Sequential(*(_ModulationBlock(cfg.dim, cfg.fusion_mlp_ratio) for _ in range(cfg.fusion_depth)))

    def position_embedding(self, gh: int, gw: int) -> None:
        return None

    def forward(self, x: torch.Tensor, pos_embed: None, grid: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        y = self.blocks(x.transpose(1, 2).reshape(b, c, *grid))
        return y.reshape(b, c, n).transpose(1, 2)


class _Gelu(nn.Module):  # a parameter-free slot, so Sequential indices match the original's keys
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(1, c)  # eps 1e-5


class _Neck(nn.Module):
    """SimpleFPN branches `down_4/8/16/32`; the first layer of each is split into click and image halves."""

    def __init__(self, cfg: SkipClickConfig):
        super().__init__()
        self.dim = cfg.dim
        d_in = 2 * cfg.dim if cfg.skip_connections else cfg.dim
        o4, o8, o16, o32 = cfg.neck_dims
        c4, c8, c32 = max(2 * o4, d_in // 2), max(o8, d_in // 2), max(o32, 2 * d_in)
        convt = lambda i, o: nn.ConvTranspose2d(i, o, 2, stride=2)  # noqa: E731
        conv1 = lambda i, o: nn.Conv2d(i, o, 1)  # noqa: E731
        self.down_4 = nn.Sequential(convt(d_in, c4), _gn(c4), _Gelu(), convt(c4, c4 // 2), _gn(c4 // 2),
                                    conv1(c4 // 2, o4), _gn(o4), _Gelu())
        self.down_8 = nn.Sequential(convt(d_in, c8), _gn(c8), conv1(c8, o8), _gn(o8), _Gelu())
        self.down_16 = nn.Sequential(conv1(d_in, o16), _gn(o16), _Gelu())
        self.down_32 = nn.Sequential(nn.Conv2d(d_in, c32, 2, stride=2), _gn(c32), conv1(c32, o32), _gn(o32),
                                     _Gelu())

    def _branches(self) -> tuple[nn.Sequential, ...]:
        return self.down_4, self.down_8, self.down_16, self.down_32

    @staticmethod
    def _first(layer: nn.Module, x: torch.Tensor, channels: slice, bias: bool) -> torch.Tensor:
        """The branch's first layer applied to input channels `channels` only."""
        if isinstance(layer, nn.ConvTranspose2d):  # weight (C_in, C_out, 2, 2)
            return F.conv_transpose2d(x, layer.weight[channels], layer.bias if bias else None, stride=2)
        return F.conv2d(x, layer.weight[:, channels], layer.bias if bias else None, stride=layer.stride)

    def image_terms(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The tap halves of the four first layers, bias included: once per image."""
        half = slice(self.dim, 2 * self.dim)
        return [self._first(b[0], t, half, True) for b, t in zip(self._branches(), taps, strict=True)]

    def forward(self, x: torch.Tensor, terms: list[torch.Tensor] | None = None,
                taps: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """`x` (B, D, g, g); with skips give `terms` (cached halves) or `taps` (full first layers, as the
        original computes them at every click)."""
        out = []
        for k, branch in enumerate(self._branches()):
            if taps is not None:
                y = branch[0](torch.cat([x, taps[k]], dim=1))
            elif terms is not None:
                y = self._first(branch[0], x, slice(0, self.dim), False) + terms[k]
            else:
                y = branch[0](x)
            out.append(branch[1:](y))
        return out


class _ConvModule(nn.Module):  # mmcv ConvModule: a 1×1 conv (with bias) + ReLU, under `.conv`
    def __init__(self, i: int, o: int):
        super().__init__()
        self.conv = nn.Conv2d(i, o, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class _Head(nn.Module):
    def __init__(self, cfg: SkipClickConfig):
        super().__init__()
        self.upsample = cfg.upsample
        width = cfg.head_out_channels
        up = lambda c: nn.Sequential(nn.ConvTranspose2d(c, c // 2, 2, stride=2), _gn(c // 2),  # noqa: E731
                                     nn.Conv2d(c // 2, c // 2, 1), _gn(c // 2), _Gelu())
        self.conv_seg = nn.Conv2d(cfg.head_channels, cfg.num_classes, 1)
        self.dropout = nn.Dropout2d(cfg.head_dropout)
        self.convs = nn.ModuleList(_ConvModule(c, width) for c in cfg.neck_dims)
        self.fusion_conv = _ConvModule(width * len(cfg.neck_dims), width)
        self.up_conv1, self.up_conv2 = up(width), up(width // 2)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        size = levels[0].shape[-2:]
        x = torch.cat([F.interpolate(conv(f), size=size, mode="bilinear", align_corners=False)
                       for conv, f in zip(self.convs, levels, strict=True)], dim=1)
        x = self.fusion_conv(x)
        if self.upsample in ("x2", "x4"):
            x = self.up_conv1(x)
        if self.upsample == "x4":
            x = self.up_conv2(x)
        return self.conv_seg(self.dropout(x))


def click_maps(points: torch.Tensor, height: int, width: int, radius: float) -> torch.Tensor:
    """(B, 2N, 3) points (y, x, order; positives first; (-1, -1, -1) padding) → (B, 2, H, W) disk maps.

    A pixel is lit when (r − y)² + (c − x)² ≤ radius²; the differences are taken in the points' precision
    (float64 for the evaluation's fractional clicks) and rounded once to float32, as the original does.
    """
    b, rows, _ = points.shape
    wide = torch.promote_types(points.dtype, torch.float32)
    y, x = points[..., 0:1].to(wide), points[..., 1:2].to(wide)
    dy = (torch.arange(height, device=points.device).to(wide) - y).float()  # (B, 2N, H)
    dx = (torch.arange(width, device=points.device).to(wide) - x).float()
    inside = (dy * dy)[..., :, None] + (dx * dx)[..., None, :] <= float(radius) ** 2
    inside &= (points[..., :2].amax(-1) >= 0)[..., None, None]  # padding rows light nothing
    return inside.view(b, 2, rows // 2, height, width).any(dim=2).float()


class TorchSkipClick(nn.Module):
    """SkipClick (`config`) in PyTorch. NCHW: image (B, 3, S, S) in [0, 1], prev_mask (B, 1, S, S),
    points (B, 2N, 3); logits (B, 1, S, S). Load weights with `from_params` or `load_state_dict`."""

    def __init__(self, config: SkipClickConfig):
        super().__init__()
        cfg = self.config = config
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)
        self.patch_embed_coords = _PatchEmbed(3, cfg.dim, cfg.patch_size)
        self.feature_extractor = _Extractor(cfg.encoder)
        self.backbone_mix = _ConvStack(cfg) if cfg.fusion_block == "conv" else _FusionStack(cfg)
        self.neck = _Neck(cfg)
        self.head = _Head(cfg)
        if cfg.fuse_taps:
            self.fuse = nn.Linear(len(cfg.taps) * cfg.dim, cfg.dim)
        self._cached_taps: list[torch.Tensor] | None = None

    # --- per image ------------------------------------------------------------------------------
    def taps(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Raw encoder outputs (B, g·g, D) at the taps (the single-tap configurations need the first only)."""
        cfg = self.config
        needed = cfg.taps if (cfg.fuse_taps or cfg.skip_connections) else cfg.taps[:1]
        return self.feature_extractor.encoder((image - self.mean) / self.std, needed)

    def _grid_maps(self, taps: list[torch.Tensor], gh: int, gw: int) -> list[torch.Tensor]:
        return [t.transpose(1, 2).reshape(t.shape[0], -1, gh, gw) for t in taps]

    def image_features(self, image: torch.Tensor) -> Features:
        """Everything the click step needs that depends on the image only (once per image)."""
        gh, gw = (s // self.config.patch_size for s in image.shape[-2:])
        taps = self.taps(image)
        terms = self.neck.image_terms(self._grid_maps(taps, gh, gw)) if self.config.skip_connections else None
        return {"tokens": self._tokens(taps), "terms": terms, "grid": (gh, gw),
                "pos_embed": self.backbone_mix.position_embedding(gh, gw)}

    def _tokens(self, taps: list[torch.Tensor]) -> torch.Tensor:
        return self.fuse(torch.cat(taps, dim=-1)) if self.config.fuse_taps else taps[0]

    # --- per click ------------------------------------------------------------------------------
    def decode(self, features: Features, prev_mask: torch.Tensor, points: torch.Tensor,
               taps: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits (B, 1, S, S). With `taps`, the FPN's first layers run on [fusion output, tap] in full."""
        gh, gw = features["grid"]
        h, w = prev_mask.shape[-2:]
        maps = torch.cat([prev_mask, click_maps(points, h, w, self.config.click_radius)], dim=1)
        x = self.backbone_mix(features["tokens"] + self.patch_embed_coords(maps), features["pos_embed"], (gh, gw))
        x = x.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        if taps is not None:
            levels = self.neck(x, taps=self._grid_maps(taps, gh, gw))
        else:
            levels = self.neck(x, terms=features.get("terms"))
        return F.interpolate(self.head(levels), size=(h, w), mode="bilinear", align_corners=True)

    def forward(self, image: torch.Tensor, prev_mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return self.decode(self.image_features(image), prev_mask, points)

    # --- the original's fast path (isegm FeatureVitModel.set_image / apply_click) -----------------
    def set_image(self, image: torch.Tensor) -> None:
        """Cache the encoder taps only."""
        self._cached_taps = self.taps(image)
        self._cached_grid = tuple(s // self.config.patch_size for s in image.shape[-2:])

    def apply_click(self, prev_mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Fuse, click step and the full FPN first layers, all recomputed per click, as the original does."""
        if self._cached_taps is None:
            raise RuntimeError("set_image first")
        taps, (gh, gw) = self._cached_taps, self._cached_grid
        features = {"tokens": self._tokens(taps), "grid": (gh, gw),
                    "pos_embed": self.backbone_mix.position_embedding(gh, gw)}
        return self.decode(features, prev_mask, points, taps=taps if self.config.skip_connections else None)
