"""DINOv3 ViT (facebookresearch/dinov3 ``DinoVisionTransformer`` as built by the hub functions) from scratch.

Inference path plus the train-mode RoPE coordinate rescale, written from
/work/notes/dinov3_convstack_spec.md §B. Parameter and buffer names follow the hub checkpoints
(``dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth``), so a state dict moves unchanged between this module, the hub
files and the ``feature_extractor.dinov3.*`` part of a SkipClick checkpoint.

Numerics (float32): LayerNorm eps 1e-5; exact GELU; qkv bias multiplied by the stored ``bias_mask``; axial RoPE
with 'separate' coordinate normalisation, angle = (fp32(2π)·coord) / period, layout [y-freqs, x-freqs] tiled
twice, split-halves rotation, applied to the patch tokens of q and k only (cls + storage tokens unrotated),
recomputed for every block; ``get_intermediate_layers`` normalises the tapped block outputs with the final norm
and returns the patch tokens.

Train mode (``model.train()``): before every block one factor s = exp(U[-ln r, ln r)) (r = ``rescale_coords``,
2 for the hub models) is drawn with ``torch.empty(1).uniform_`` on the buffers' device and multiplies both
coordinate axes of that block's RoPE (shared by the whole batch). Setting :attr:`ReferenceDinoV3.rope_rescale_factors`
to a list of ``depth`` floats replaces the draws (block i uses factor i), for deterministic tests; the factors
used by the last train-mode forward are kept in :attr:`ReferenceDinoV3.last_rope_rescale_factors`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .dinov2 import LayerScale

# Hub constructors (dinov3 hub/backbones.py): (dim, depth, heads, ffn, ffn_ratio, qkv_bias, untie_global_local)
_ARCHS = {
    "vits16": (384, 12, 6, "mlp", 4.0, True, False),
    "vits16plus": (384, 12, 6, "swiglu", 6.0, True, False),
    "vitb16": (768, 12, 12, "mlp", 4.0, True, False),
    "vitl16": (1024, 24, 16, "mlp", 4.0, True, False),
    "vitl16plus": (1024, 24, 16, "swiglu", 6.0, True, False),
    "vith16plus": (1280, 32, 20, "swiglu", 6.0, True, False),
    "vit7b16": (4096, 40, 32, "swiglu64", 3.0, False, True),
}
_SWIGLU_ALIGN = {"swiglu": 8, "swiglu64": 64}


def dinov3_kwargs(name: str, weights: str = "LVD1689M") -> dict:
    """Constructor kwargs of :class:`ReferenceDinoV3` for a hub model name.

    ``name`` is one of ``vits16, vits16plus, vitb16, vitl16, vitl16plus, vith16plus, vit7b16``, optionally with
    the ``dinov3_`` prefix (e.g. ``"dinov3_vitb16"``). ``weights`` ('LVD1689M' or 'SAT493M') only matters for
    ``vitl16``, whose SAT-493M weights carry the extra ``local_cls_norm``.
    """
    key = name.removeprefix("dinov3_")
    if key not in _ARCHS:
        raise ValueError(f"unknown DINOv3 model name {name!r}")
    if weights.upper() not in ("LVD1689M", "SAT493M"):
        raise ValueError(f"unknown DINOv3 weights {weights!r}")
    dim, depth, heads, ffn, ratio, qkv_bias, untie = _ARCHS[key]
    if key == "vitl16" and weights.upper() == "SAT493M":
        untie = True
    return dict(
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        ffn=ffn,
        ffn_ratio=ratio,
        n_storage_tokens=4,
        patch_size=16,
        qkv_bias=qkv_bias,
        layerscale_init=1e-5,
        untie_global_and_local_cls_norm=untie,
        mask_k_bias=True,
        rope_base=100.0,
        rope_rescale_coords=2.0,
    )


def ffn_hidden(embed_dim: int, ffn: str, ffn_ratio: float) -> int:
    """Hidden width of the FFN: int(C·ratio) for 'mlp'; for SwiGLU 2/3 of it rounded up to the alignment."""
    hidden = int(embed_dim * ffn_ratio)
    if ffn == "mlp":
        return hidden
    if ffn not in _SWIGLU_ALIGN:
        raise ValueError(f"unknown ffn {ffn!r}")
    d = int(hidden * 2 / 3)
    align = _SWIGLU_ALIGN[ffn]
    return -(-d // align) * align


def default_periods(head_dim: int, base: float = 100.0) -> torch.Tensor:
    """RoPE periods as stored in the released weights: base^(2k/(D/2)), k < D/4, rounded to bfloat16 (§B.9).

    Returned as float32 (the buffer's dtype in the fp32 hub models).
    """
    exponents = 2 * torch.arange(head_dim // 4, dtype=torch.float32) / (head_dim // 2)
    return (base**exponents).to(torch.bfloat16).to(torch.float32)


class RopeEmbedding(nn.Module):
    """Axial RoPE tables (``rope_embed``; persistent buffer ``periods`` of length head_dim/4).

    :meth:`forward` is deterministic: it applies a given coordinate scale; :meth:`draw_scale` draws the
    train-mode factor. Coordinates: 'separate' normalisation, ((i + 0.5)/h)·2 − 1 per axis, float32.
    """

    def __init__(self, embed_dim: int, num_heads: int, base: float = 100.0, rescale_coords: float | None = 2.0):
        super().__init__()
        if embed_dim % (4 * num_heads):
            raise ValueError("embed_dim must be a multiple of 4 * num_heads for axial RoPE")
        self.head_dim = embed_dim // num_heads
        self.base = base
        self.rescale_coords = rescale_coords
        self.register_buffer("periods", default_periods(self.head_dim, base), persistent=True)

    def draw_scale(self) -> torch.Tensor:
        """One log-uniform factor in [1/r, r] (shape (1,), float32), as the original draws it in train mode."""
        log_max = float(math.log(self.rescale_coords))
        u = torch.empty(1, dtype=torch.float32, device=self.periods.device).uniform_(-log_max, log_max)
        return u.exp()

    def angles(self, h: int, w: int, scale: torch.Tensor | float | None = None) -> torch.Tensor:
        """Angle table (h·w, head_dim) float32 for an h × w patch grid; ``scale`` multiplies the coordinates."""
        dev = self.periods.device
        ys = torch.arange(0.5, h, dtype=torch.float32, device=dev) / h
        xs = torch.arange(0.5, w, dtype=torch.float32, device=dev) / w
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords = torch.stack([grid_y, grid_x], dim=-1).reshape(h * w, 2)
        coords = 2.0 * coords - 1.0
        if scale is not None:
            if not isinstance(scale, torch.Tensor):
                scale = torch.tensor([scale], dtype=torch.float32, device=dev)
            coords = coords * scale
        # (2π·c) first, then the division by the period (not a reciprocal multiply); [HW, 2, F] -> [HW, 2F].
        angles = (2 * math.pi) * coords[:, :, None] / self.periods[None, None, :]
        return angles.reshape(h * w, -1).repeat(1, 2)  # [y (F), x (F), y (F), x (F)]

    def forward(self, h: int, w: int, scale: torch.Tensor | float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(sin, cos), each (h·w, head_dim) float32, of :meth:`angles`."""
        angles = self.angles(h, w, scale)
        return torch.sin(angles), torch.cos(angles)


def rope_rotate(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """x·cos + rotate_half(x)·sin with rotate_half([a, b]) = [−b, a] (split halves, not interleaved)."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


class MaskedBiasLinear(nn.Linear):
    """``LinearKMaskedBias``: the qkv projection whose bias is multiplied by the stored ``bias_mask`` buffer.

    ``bias_mask`` defaults to the canonical mask (1 on q and v, 0 on the k slice [C, 2C)); the original
    constructs it as NaN and gets the values from the weight file or ``init_weights``.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=True)
        if out_features % 3:
            raise ValueError("a k-masked qkv projection needs 3·C outputs")
        third = out_features // 3
        mask = torch.ones(out_features, dtype=torch.float32)
        mask[third : 2 * third] = 0.0
        self.register_buffer("bias_mask", mask.to(self.bias.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias * self.bias_mask.to(self.bias.dtype))


class RopeAttention(nn.Module):
    """Self-attention with fused qkv ([3][heads][head_dim] rows), RoPE on the patch tokens of q and k."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, mask_k_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        if qkv_bias and mask_k_bias:
            self.qkv = MaskedBiasLinear(dim, 3 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # B, heads, N, D
        if rope is not None:
            sin, cos = rope
            prefix = n - sin.shape[0]  # cls + storage tokens stay unrotated
            q = torch.cat([q[:, :, :prefix], rope_rotate(q[:, :, prefix:], sin, cos)], dim=2)
            k = torch.cat([k[:, :, :prefix], rope_rotate(k[:, :, prefix:], sin, cos)], dim=2)
        out = F.scaled_dot_product_attention(q, k, v)  # default scale 1/√D, as the original
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
    """DINOv3 ``SwiGLUFFN``: separate w1 (gate), w2 (value), w3 (out), all with bias: w3(silu(w1 x)·w2 x)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(dim, hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class Block(nn.Module):
    """Pre-norm block: x += ls1·attn(norm1(x), rope); x += ls2·ffn(norm2(x)); LayerNorm eps 1e-5."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn: str,
        ffn_ratio: float,
        qkv_bias: bool,
        mask_k_bias: bool,
        layerscale_init: float | None,
    ):
        super().__init__()
        # Attribute order = state-dict key order of the original.
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = RopeAttention(dim, num_heads, qkv_bias=qkv_bias, mask_k_bias=mask_k_bias)
        self.ls1 = _layer_scale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        hidden = ffn_hidden(dim, ffn, ffn_ratio)
        self.mlp = Mlp(dim, hidden) if ffn == "mlp" else SwiGLU(dim, hidden)
        self.ls2 = _layer_scale(dim, layerscale_init)

    def forward(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


def _layer_scale(dim: int, init: float | None) -> nn.Module:
    if not init:
        return nn.Identity()
    ls = LayerScale(dim)
    with torch.no_grad():
        ls.gamma.fill_(init)
    return ls


class PatchEmbed(nn.Module):
    """Conv patchify (``patch_embed.proj``), row-major tokens. Like the original, a size that is not a
    multiple of the patch size is floored silently by the strided conv."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), h, w


class ReferenceDinoV3(nn.Module):
    """DINOv3 ViT as built by ``torch.hub.load(<dinov3 repo>, 'dinov3_vit*16*', source='local', ...)``.

    State-dict keys: ``cls_token`` (1, 1, C), ``storage_tokens`` (1, n, C) if n > 0, ``mask_token`` (1, C),
    ``patch_embed.proj.*``, buffer ``rope_embed.periods`` (head_dim/4), ``blocks.{i}.{norm1, attn.qkv
    (+ buffer bias_mask), attn.proj, ls1.gamma, norm2, mlp.fc1|fc2 or mlp.w1|w2|w3, ls2.gamma}``, ``norm.*``,
    ``local_cls_norm.*`` (only with ``untie_global_and_local_cls_norm``; unused at inference).
    """

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        ffn: str = "mlp",
        ffn_ratio: float = 4.0,
        n_storage_tokens: int = 4,
        patch_size: int = 16,
        qkv_bias: bool = True,
        layerscale_init: float | None = 1e-5,
        untie_global_and_local_cls_norm: bool = False,
        mask_k_bias: bool = True,
        rope_base: float = 100.0,
        rope_rescale_coords: float | None = 2.0,
    ):
        super().__init__()
        if ffn != "mlp" and ffn not in _SWIGLU_ALIGN:
            raise ValueError(f"unknown ffn {ffn!r}")
        self.embed_dim = embed_dim
        self.depth = depth
        self.patch_size = patch_size
        self.n_storage_tokens = n_storage_tokens
        self.hparams = dict(
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            ffn=ffn,
            ffn_ratio=ffn_ratio,
            n_storage_tokens=n_storage_tokens,
            patch_size=patch_size,
            qkv_bias=qkv_bias,
            layerscale_init=layerscale_init,
            untie_global_and_local_cls_norm=untie_global_and_local_cls_norm,
            mask_k_bias=mask_k_bias,
            rope_base=rope_base,
            rope_rescale_coords=rope_rescale_coords,
        )
        #: Train mode only: ``depth`` factors replacing the random RoPE rescale draws (block i uses entry i).
        self.rope_rescale_factors: Sequence[float] | None = None
        #: Factors used by the last train-mode forward (floats), or None after an eval-mode forward.
        self.last_rope_rescale_factors: list[float] | None = None

        # Own parameters in the hub key order (cls, storage, mask), then the submodules.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if n_storage_tokens:
            self.storage_tokens = nn.Parameter(torch.zeros(1, n_storage_tokens, embed_dim))
        else:
            self.storage_tokens = None
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.patch_embed = PatchEmbed(3, embed_dim, patch_size)
        self.rope_embed = RopeEmbedding(embed_dim, num_heads, base=rope_base, rescale_coords=rope_rescale_coords)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, ffn, ffn_ratio, qkv_bias, mask_k_bias, layerscale_init)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)
        if untie_global_and_local_cls_norm:
            self.local_cls_norm = nn.LayerNorm(embed_dim, eps=1e-5)  # only used for training local crops
        else:
            self.local_cls_norm = None

    def prepare_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """[cls + 0·mask_token, storage tokens, patch tokens]; no position embedding. Returns (tokens, h, w)."""
        patches, h, w = self.patch_embed(x)
        b = patches.shape[0]
        parts = [(self.cls_token + 0 * self.mask_token).expand(b, -1, -1)]
        if self.storage_tokens is not None:
            parts.append(self.storage_tokens.expand(b, -1, -1))
        parts.append(patches)
        return torch.cat(parts, dim=1), h, w

    def _block_rope_scale(self, index: int) -> torch.Tensor | None:
        """Coordinate scale of block ``index``: None in eval mode; the injected or a freshly drawn factor in
        train mode (drawn right before the block runs, as in the original)."""
        if not self.training or self.rope_embed.rescale_coords is None:
            return None
        if self.rope_rescale_factors is None:
            return self.rope_embed.draw_scale()
        factor = float(self.rope_rescale_factors[index])
        return torch.tensor([factor], dtype=torch.float32, device=self.rope_embed.periods.device)

    def run_blocks(self, x: torch.Tensor, keep=None) -> list[torch.Tensor]:
        """Run every block (RoPE recomputed per block); returns the raw outputs of the blocks in ``keep``."""
        if self.rope_rescale_factors is not None and len(self.rope_rescale_factors) != self.depth:
            raise ValueError(f"rope_rescale_factors needs {self.depth} entries, got {len(self.rope_rescale_factors)}")
        x, h, w = self.prepare_tokens(x)
        keep = set(range(self.depth)) if keep is None else set(keep)
        used, outputs = [], []
        for i, blk in enumerate(self.blocks):
            scale = self._block_rope_scale(i)
            if scale is not None:
                used.append(scale.item())
            x = blk(x, self.rope_embed(h, w, scale))
            if i in keep:
                outputs.append(x)
        self.last_rope_rescale_factors = used if used else None
        return outputs

    def get_intermediate_layers(
        self, x: torch.Tensor, n: int | Sequence[int] = 1, reshape: bool = False, norm: bool = True
    ) -> tuple[torch.Tensor, ...]:
        """Patch tokens (B, h·w, C) of blocks ``n`` (a list of 0-based indices, or an int = the last n blocks),
        each passed through the final ``norm`` when ``norm``; (B, C, h, w) maps when ``reshape``.

        As in the original, all blocks run and outputs come in block order.
        """
        wanted = range(self.depth - n, self.depth) if isinstance(n, int) else list(n)
        outputs = self.run_blocks(x, keep=wanted)
        if len(outputs) != len(wanted):
            raise ValueError(f"only {len(outputs)} / {len(wanted)} blocks found")
        if norm:
            outputs = [self.norm(out) for out in outputs]
        skip = 1 + self.n_storage_tokens
        outputs = [out[:, skip:] for out in outputs]
        if reshape:
            b, _, height, width = x.shape
            gh, gw = height // self.patch_size, width // self.patch_size
            outputs = [out.reshape(b, gh, gw, -1).permute(0, 3, 1, 2).contiguous() for out in outputs]
        return tuple(outputs)

    def forward_taps(self, x: torch.Tensor, taps=(2, 5, 8, 11)) -> list[torch.Tensor]:
        """SkipClick's ``DinoV3Extractor``: ``get_intermediate_layers(x, n=list(taps))`` as a list (normed)."""
        return list(self.get_intermediate_layers(x, n=list(taps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final-norm cls token (B, C), what the hub model's ``forward`` returns (identity head)."""
        return self.norm(self.run_blocks(x, keep=[self.depth - 1])[0])[:, 0]
