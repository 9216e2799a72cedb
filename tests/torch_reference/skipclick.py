"""SkipClick (isegm ``FeatureVitModel``) written from scratch in PyTorch, for parity tests.

Module names reproduce the original state-dict keys (``patch_embed_coords``, ``feature_extractor.dinov2`` or
``feature_extractor.dinov3``, ``backbone_mix``, ``neck``, ``head``, ``fuse``), so an original checkpoint's
``state_dict`` loads with ``strict=True`` and vice versa. Covers the DINOv2 models, the DINOv3 ViT-B/16 model
and the conv-modulation-stack variant (``use_conv_stack=True``) of isegm ``FeatureVitModel``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .convstack import ReferenceModulationStack
from .dinov2 import Attention, Mlp, PatchEmbed, ReferenceDinoV2
from .dinov3 import ReferenceDinoV3

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def click_disk_maps(points: torch.Tensor, rows: int, cols: int, radius: float = 5.0) -> torch.Tensor:
    """isegm ``DistMaps`` with ``use_disks=True``: (B, 2N, 3) clicks -> (B, 2, rows, cols) float32 {0,1} maps.

    Rows of ``points`` are (y, x, order); the first N are positive, the last N negative clicks. A click is
    padding iff max(y, x) < 0. Pixel (r, q) is lit iff (r - y)² + (q - x)² <= radius² for some valid click.
    """
    b, two_n, _ = points.shape
    n = two_n // 2
    yx = points[..., :2].reshape(-1, 2)
    invalid = yx.amax(dim=1) < 0
    # isegm subtracts the clicks in place from a float32 pixel grid: the subtraction runs in the promoted
    # dtype (float64 for evaluation clicks), rounded once to float32; squares and sum in float32 (trap 42).
    work = torch.promote_types(torch.float32, yx.dtype)
    ys = torch.arange(rows, dtype=torch.float32, device=points.device).to(work)
    xs = torch.arange(cols, dtype=torch.float32, device=points.device).to(work)
    dy = (ys[None, :] - yx[:, :1].to(work)).float()
    dx = (xs[None, :] - yx[:, 1:].to(work)).float()
    dist2 = (dy * dy)[:, :, None] + (dx * dx)[:, None, :]
    dist2[invalid] = 1e6
    dist2 = dist2.view(b, 2, n, rows, cols).amin(dim=2)
    return (dist2 <= float(radius) ** 2).float()


class EncoderBlock(nn.Module):
    """isegm ``models_vit.Block``: pre-norm, no LayerScale; both norms registered before attn (key order)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EncoderStack(nn.Module):
    """isegm ``EncoderStack``, ``primitive_stack=True``: pos-embed + plain blocks, no cls, no final norm."""

    def __init__(self, grid: tuple[int, int], embed_dim: int, depth: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.grid = grid
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1], embed_dim))
        self.blocks = nn.ModuleList(EncoderBlock(embed_dim, num_heads, mlp_ratio) for _ in range(depth))

    def pos_embed_for(self, gh: int, gw: int) -> torch.Tensor:
        """Table for a gh × gw token grid; resized with plain PyTorch bicubic (a = -0.75, no antialias)."""
        if (gh, gw) == tuple(self.grid):
            return self.pos_embed
        grid = self.pos_embed.reshape(1, self.grid[0], self.grid[1], -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic")
        return grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)

    def forward(self, tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        x = tokens + self.pos_embed_for(gh, gw)
        for blk in self.blocks:
            x = blk(x)
        return x


class SimpleFPN(nn.Module):
    """The second ``SimpleFPN`` of is_featurevit_model.py (the one in effect), with optional skip concat."""

    def __init__(self, in_dim: int, out_dims, skip_connections: bool):
        super().__init__()
        self.skip_connections = skip_connections
        c = 2 * in_dim if skip_connections else in_dim
        c4, c8, c32 = max(2 * out_dims[0], c // 2), max(out_dims[1], c // 2), max(out_dims[3], 2 * c)
        # Missing activations (down_4 after the 2nd norm, down_8/down_32 after the 1st) are the original's.
        self.down_4 = nn.Sequential(
            nn.ConvTranspose2d(c, c4, 2, stride=2),
            nn.GroupNorm(1, c4),
            nn.GELU(),
            nn.ConvTranspose2d(c4, c4 // 2, 2, stride=2),
            nn.GroupNorm(1, c4 // 2),
            nn.Conv2d(c4 // 2, out_dims[0], 1),
            nn.GroupNorm(1, out_dims[0]),
            nn.GELU(),
        )
        self.down_8 = nn.Sequential(
            nn.ConvTranspose2d(c, c8, 2, stride=2),
            nn.GroupNorm(1, c8),
            nn.Conv2d(c8, out_dims[1], 1),
            nn.GroupNorm(1, out_dims[1]),
            nn.GELU(),
        )
        self.down_16 = nn.Sequential(nn.Conv2d(c, out_dims[2], 1), nn.GroupNorm(1, out_dims[2]), nn.GELU())
        self.down_32 = nn.Sequential(
            nn.Conv2d(c, c32, 2, stride=2),
            nn.GroupNorm(1, c32),
            nn.Conv2d(c32, out_dims[3], 1),
            nn.GroupNorm(1, out_dims[3]),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor, skips=None) -> list[torch.Tensor]:
        branches = (self.down_4, self.down_8, self.down_16, self.down_32)
        if not self.skip_connections:
            return [branch(x) for branch in branches]
        return [branch(torch.cat([x, s], dim=1)) for branch, s in zip(branches, skips, strict=True)]


class ConvModule(nn.Module):
    """mmcv ``ConvModule`` without norm: 1x1 conv with bias, then ReLU (also for ``fusion_conv``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


def _up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 2, stride=2),
        nn.GroupNorm(1, cout),
        nn.Conv2d(cout, cout, 1),
        nn.GroupNorm(1, cout),
        nn.GELU(),
    )


class SegHead(nn.Module):
    """``SwinTransfomerSegHead`` (SegFormer-style all-MLP head) with ``multiple_select`` inputs."""

    def __init__(self, in_channels, channels: int, upsample: str, dropout_ratio: float, num_classes: int):
        super().__init__()
        if upsample not in ("x1", "x2", "x4"):
            raise ValueError(f"upsample must be 'x1', 'x2' or 'x4', got {upsample!r}")
        self.upsample = upsample
        out = channels * {"x1": 1, "x2": 2, "x4": 4}[upsample]
        # conv_seg/dropout come from BaseDecodeHead.__init__, hence first in the key order; conv_seg reads
        # `channels`, which is what the up-convs bring `out` back to for x2/x4.
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None
        self.convs = nn.ModuleList(ConvModule(c, out) for c in in_channels)
        self.fusion_conv = ConvModule(out * len(in_channels), out)
        self.up_conv1 = _up_block(out, out // 2)
        self.up_conv2 = _up_block(out // 2, out // 4)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        outs = [
            F.interpolate(conv(f), size=size, mode="bilinear", align_corners=False)
            for conv, f in zip(self.convs, feats, strict=True)
        ]
        x = self.fusion_conv(torch.cat(outs, dim=1))
        if self.upsample == "x2":
            x = self.up_conv1(x)
        elif self.upsample == "x4":
            x = self.up_conv2(self.up_conv1(x))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.conv_seg(x)


class DinoV2Extractor(nn.Module):
    """Frozen DINOv2 returning raw patch-token taps (the ``feature_extractor`` of the original)."""

    def __init__(self, dinov2: ReferenceDinoV2, taps):
        super().__init__()
        self.dinov2 = dinov2
        self.taps = tuple(taps)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return [t.detach() for t in self.dinov2.forward_taps(image, self.taps)]


class DinoV3Extractor(nn.Module):
    """Frozen DINOv3 returning its patch-token taps passed through the final norm (``get_intermediate_layers``).

    The module's train/eval flag reaches DINOv3 (train mode = random RoPE rescale per block, as the original).
    """

    def __init__(self, dinov3: ReferenceDinoV3, taps):
        super().__init__()
        self.dinov3 = dinov3
        self.taps = tuple(taps)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return [t.detach() for t in self.dinov3.forward_taps(image, self.taps)]


class ReferenceSkipClick(nn.Module):
    """isegm ``FeatureVitModel`` (frozen DINOv2, fuse, click patch-embed, EncoderStack, SimpleFPN, head).

    Defaults give the released main configuration (ViT-B/14-reg, taps 2/5/8/11 fused, skip connections,
    448 training size, upsample 'x1'). ``use_intermediate`` only matters through its length, as in the
    original: more than one entry -> concatenate all extractor taps and ``fuse``; one entry -> use the first
    tap (block ``taps[0]``), whatever the entry says (SPEC 1.15). The model starts in eval mode.

    Backbone: ``dinov2`` (a :class:`ReferenceDinoV2`, its kwargs, or None for ViT-B/14-reg) or, instead,
    ``dinov3`` (a :class:`ReferenceDinoV3` or its kwargs; stored as ``feature_extractor.dinov3``; normed taps).
    The patch size of ``patch_embed_coords`` and of the token grid is the backbone's. ``use_conv_stack``
    replaces the EncoderStack by the conv modulation stack (``fusion_depth`` blocks; no position embedding, so
    ``fusion_heads``/``fusion_mlp_ratio`` are unused and any input size works without resizing).
    """

    def __init__(
        self,
        dinov2: ReferenceDinoV2 | dict | None = None,
        taps=(2, 5, 8, 11),
        use_intermediate=(2, 5, 8, 11),
        skip_connections: bool = True,
        img_size: int | tuple[int, int] = 448,
        fusion_depth: int = 4,
        fusion_heads: int = 12,
        fusion_mlp_ratio: float = 4,
        neck_out_dims=(128, 256, 512, 1024),
        head_channels: int = 256,
        upsample: str = "x1",
        dropout_ratio: float = 0.1,
        num_classes: int = 1,
        norm_radius: float = 5,
        dinov3: ReferenceDinoV3 | dict | None = None,
        use_conv_stack: bool = False,
    ):
        super().__init__()
        if isinstance(dinov2, ReferenceDinoV3):
            raise TypeError("pass a ReferenceDinoV3 as dinov3=, not dinov2=")
        if dinov3 is not None:
            if dinov2 is not None:
                raise ValueError("give either dinov2 or dinov3, not both")
            backbone = ReferenceDinoV3(**dinov3) if isinstance(dinov3, dict) else dinov3
            extractor = DinoV3Extractor(backbone, taps)
        else:
            if dinov2 is None:
                dinov2 = ReferenceDinoV2()
            elif isinstance(dinov2, dict):
                dinov2 = ReferenceDinoV2(**dinov2)
            backbone = dinov2
            extractor = DinoV2Extractor(dinov2, taps)
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        taps, use_intermediate, neck_out_dims = tuple(taps), list(use_intermediate), tuple(neck_out_dims)
        if not use_intermediate:
            raise ValueError("use_intermediate must not be empty")
        if len(use_intermediate) > 1 and len(use_intermediate) != len(taps):
            # The original sizes `fuse` by len(use_intermediate) but feeds it all extractor taps.
            raise ValueError("a fused use_intermediate must have one entry per tap")
        if skip_connections and len(taps) != 4:
            raise ValueError("skip connections need exactly 4 taps (one per FPN branch)")
        dim, patch = backbone.embed_dim, backbone.patch_size
        self.patch_size = patch
        self.backbone_kind = "dinov3" if dinov3 is not None else "dinov2"
        self.use_conv_stack = use_conv_stack
        self.norm_radius = norm_radius
        self.skip_connections = skip_connections
        self.config = dict(
            taps=taps,
            use_intermediate=use_intermediate,
            skip_connections=skip_connections,
            img_size=img_size,
            fusion_depth=fusion_depth,
            fusion_heads=fusion_heads,
            fusion_mlp_ratio=fusion_mlp_ratio,
            neck_out_dims=neck_out_dims,
            head_channels=head_channels,
            upsample=upsample,
            dropout_ratio=dropout_ratio,
            num_classes=num_classes,
            norm_radius=norm_radius,
            embed_dim=dim,
            patch_size=patch,
            backbone=self.backbone_kind,
            use_conv_stack=use_conv_stack,
        )

        # Registration order = the original's state-dict key order.
        self.patch_embed_coords = PatchEmbed(3, dim, patch)
        self.feature_extractor = extractor
        if use_conv_stack:
            self.backbone_mix = ReferenceModulationStack(dim, fusion_depth)
        else:
            self.backbone_mix = EncoderStack(
                (img_size[0] // patch, img_size[1] // patch), dim, fusion_depth, fusion_heads, fusion_mlp_ratio
            )
        self.neck = SimpleFPN(dim, neck_out_dims, skip_connections)
        self.head = SegHead(neck_out_dims, head_channels, upsample, dropout_ratio, num_classes)
        self.fuse = nn.Linear(dim * len(use_intermediate), dim) if len(use_intermediate) > 1 else None
        self._cache = None
        self.eval()

    @staticmethod
    def normalize(rgb: torch.Tensor) -> torch.Tensor:
        """ImageNet mean/std normalisation of an RGB batch in [0, 1]."""
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=rgb.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=rgb.device).view(1, 3, 1, 1)
        return (rgb - mean) / std

    def click_maps(self, prev_mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """[prev_mask, positive disks, negative disks] at the mask's resolution, (B, 3, H, W)."""
        disks = click_disk_maps(points, prev_mask.shape[-2], prev_mask.shape[-1], self.norm_radius)
        return torch.cat([prev_mask, disks], dim=1)

    def _decode(self, taps: list[torch.Tensor], click_maps: torch.Tensor) -> dict:
        """Everything after the backbone, shared by the full forward and the per-click path."""
        h, w = click_maps.shape[-2:]
        gh, gw = h // self.patch_size, w // self.patch_size
        fused = self.fuse(torch.cat(taps, dim=2)) if self.fuse is not None else taps[0]
        mixed = fused + self.patch_embed_coords(click_maps)
        skips = list(taps)
        if self.fuse is None:
            # Original quirk: EncoderStack (and the conv stack) add the click tokens *in place* into their input,
            # which for a single tap is the very tensor reused as skip 0, so down_4 sees tap0 + click tokens.
            skips[0] = mixed
        enc = self.backbone_mix(mixed, gh, gw)

        def to_map(t):
            return t.transpose(1, 2).reshape(t.shape[0], -1, gh, gw)

        if self.skip_connections:
            fpn = self.neck(to_map(enc), [to_map(s) for s in skips])
        else:
            fpn = self.neck(to_map(enc))
        head_logits = self.head(fpn)
        logits = F.interpolate(head_logits, size=(h, w), mode="bilinear", align_corners=True)
        return dict(
            taps=list(taps),
            fused=fused,
            click_maps=click_maps,
            encoder_stack=enc,
            fpn=fpn,
            head_logits=head_logits,
            logits=logits,
        )

    def intermediates(self, x4: torch.Tensor, points: torch.Tensor) -> dict:
        """Stage outputs of :meth:`forward`: taps, fused, click_maps, encoder_stack, fpn, head_logits, logits.

        ``fused`` is the fuse output (or the single tap), before the click tokens are added.
        """
        image = self.normalize(x4[:, :3])
        taps = self.feature_extractor(image)
        return self._decode(taps, self.click_maps(x4[:, 3:], points))

    def forward(self, x4: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """``ISModel.forward``: x4 = [RGB in [0, 1], prev-mask] (B, 4, H, W), points (B, 2N, 3) (y, x, order).

        Returns logits (B, 1, H, W) (no sigmoid).
        """
        return self.intermediates(x4, points)["logits"]

    def set_image(self, image: torch.Tensor) -> None:
        """Run the backbone once on an RGB batch in [0, 1] (B, 3, H, W); cache its taps for :meth:`apply_click`."""
        self._cache = (tuple(image.shape[-2:]), self.feature_extractor(self.normalize(image)))

    def apply_click(self, prev_mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Per-click path on cached taps: prev_mask (B, 1, H, W), points (B, 2N, 3) -> logits (B, 1, H, W).

        Recomputes fuse, click maps, click embedding, EncoderStack, FPN, head and the final resize.
        """
        if self._cache is None:
            raise RuntimeError("call set_image first")
        image_hw, taps = self._cache
        if tuple(prev_mask.shape[-2:]) != image_hw:
            raise ValueError(f"prev_mask is {tuple(prev_mask.shape[-2:])}, the cached image {image_hw}")
        return self._decode(taps, self.click_maps(prev_mask, points))["logits"]
