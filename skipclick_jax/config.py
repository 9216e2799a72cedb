"""Model configurations: frozen dataclasses with one named preset per paper / repository configuration.

A configuration fully determines the parameter tree and the forward computation, so a run is
reproducible from its config. The JSON form (`to_dict`/`from_dict`) is what `skipclick convert` writes
next to the Orbax checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DinoV2Config:
    """A DINOv2 ViT as built by `facebookresearch/dinov2` (hub variants, block_chunks=0)."""

    family: Literal["dinov2"] = "dinov2"
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    ffn: Literal["mlp", "swiglu"] = "mlp"
    patch_size: int = 14
    num_registers: int = 4
    # Side of the learned position-embedding grid (518 / 14 = 37 for every hub checkpoint).
    pos_grid: int = 37
    # The register ("_reg") hub models resize the pos-embed with antialiased bicubic at the exact size;
    # the older ones use plain bicubic with a 0.1 offset on the scale factor.
    interpolate_antialias: bool = True
    interpolate_offset: float = 0.0
    layerscale: bool = True

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        """Width of the FFN hidden layer (SwiGLU shrinks it to 2/3, rounded up to a multiple of 8)."""
        hidden = int(self.embed_dim * self.mlp_ratio)
        if self.ffn == "swiglu":
            hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        return hidden

    @classmethod
    def hub(cls, name: str) -> DinoV2Config:
        """The configuration of a torch.hub model, e.g. `dinov2_vitb14_reg` or `dinov2_vits14`."""
        base = name.removeprefix("dinov2_")
        registers = base.endswith("_reg")
        base = base.removesuffix("_reg")
        sizes = {
            "vits14": dict(embed_dim=384, depth=12, num_heads=6),
            "vitb14": dict(embed_dim=768, depth=12, num_heads=12),
            "vitl14": dict(embed_dim=1024, depth=24, num_heads=16),
            "vitg14": dict(embed_dim=1536, depth=40, num_heads=24, ffn="swiglu"),
        }
        if base not in sizes:
            raise ValueError(f"unknown DINOv2 hub model {name!r}; expected dinov2_vit{{s,b,l,g}}14[_reg]")
        if registers:
            extra = dict(num_registers=4, interpolate_antialias=True, interpolate_offset=0.0)
        else:
            extra = dict(num_registers=0, interpolate_antialias=False, interpolate_offset=0.1)
        return cls(**sizes[base], **extra)


@dataclass(frozen=True)
class DinoV3Config:
    """A DINOv3 ViT as built by `facebookresearch/dinov3` (`dinov3/hub/backbones.py`).

    RoPE position encoding (no absolute table), 4 "storage" tokens after cls, LayerScale, LayerNorm eps 1e-5,
    a qkv bias whose k part is masked by a stored `bias_mask`. The RoPE periods are a stored buffer (the
    released files hold them rounded to bfloat16); `rope_rescale` is the train-mode coordinate rescaling
    (log-uniform in [1/rope_rescale, rope_rescale], one factor per block call; 2 for every hub ViT).
    """

    family: Literal["dinov3"] = "dinov3"
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    ffn: Literal["mlp", "swiglu"] = "mlp"
    ffn_ratio: float = 4.0
    patch_size: int = 16
    num_registers: int = 4  # DINOv3 calls them storage tokens
    rope_base: float = 100.0
    rope_rescale: float = 2.0
    qkv_bias: bool = True
    # ViT-L (SAT-493M) and ViT-7B carry a second cls norm (`local_cls_norm`, unused by the taps).
    local_cls_norm: bool = False

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        """FFN width: embed·ratio, for SwiGLU then 2/3 of it rounded up to a multiple of 8."""
        hidden = int(self.embed_dim * self.ffn_ratio)
        if self.ffn == "swiglu":
            hidden = -(-int(hidden * 2 / 3) // 8) * 8
        return hidden

    @classmethod
    def hub(cls, name: str) -> DinoV3Config:
        """The configuration of a DINOv3 hub ViT, e.g. `dinov3_vitb16` or `dinov3_vith16plus`."""
        sizes = {
            "dinov3_vits16": dict(embed_dim=384, depth=12, num_heads=6),
            "dinov3_vits16plus": dict(embed_dim=384, depth=12, num_heads=6, ffn="swiglu", ffn_ratio=6.0),
            "dinov3_vitb16": dict(embed_dim=768, depth=12, num_heads=12),
            "dinov3_vitl16": dict(embed_dim=1024, depth=24, num_heads=16),
            "dinov3_vitl16plus": dict(embed_dim=1024, depth=24, num_heads=16, ffn="swiglu", ffn_ratio=6.0),
            "dinov3_vith16plus": dict(embed_dim=1280, depth=32, num_heads=20, ffn="swiglu", ffn_ratio=6.0),
        }
        if name == "dinov3_vit7b16":
            raise ValueError("dinov3_vit7b16 is not supported (128-wide heads, SwiGLU aligned to 64, no qkv bias); "
                             "use one of " + ", ".join(sizes))
        if name not in sizes:
            raise ValueError(f"unknown DINOv3 hub model {name!r}; expected one of {', '.join(sizes)}")
        return cls(**sizes[name])


Encoder = DinoV2Config | DinoV3Config


def encoder_from_dict(d: dict[str, Any]) -> Encoder:
    """A `DinoV2Config` or `DinoV3Config` from its `dataclasses.asdict` form (no `family`: DINOv2)."""
    d = dict(d)
    family = d.pop("family", "dinov2")
    if family not in ("dinov2", "dinov3"):
        raise ValueError(f"unknown encoder family {family!r}")
    return DinoV3Config(**d) if family == "dinov3" else DinoV2Config(**d)


@dataclass(frozen=True)
class SkipClickConfig:
    """SkipClick: frozen encoder taps → fuse → click tokens + fusion stack → SimpleFPN → SegFormer head."""

    # DINOv2 (taps = raw block outputs) or DINOv3 (taps = block outputs through the final LayerNorm).
    encoder: Encoder = field(default_factory=DinoV2Config)
    # Encoder blocks tapped (0-based block indices).
    taps: tuple[int, ...] = (2, 5, 8, 11)
    # True: concatenate all taps and fuse them with one linear layer ("+ intermediate features").
    # False: the original's single-tap configs use the *first* tap (block 2), not the last (SPEC 1.15).
    fuse_taps: bool = True
    skip_connections: bool = True
    # Training only: whether the encoder receives gradients (the "baseline" row trains it).
    train_encoder: bool = False
    # Training crop size; fixes the fusion transformer's learned pos-embed grid (448 / 14 = 32).
    image_size: int = 448
    # "transformer": the original EncoderStack; "conv": the conv-modulation stack (`use_conv_stack=True`).
    fusion_block: Literal["transformer", "conv"] = "transformer"
    fusion_depth: int = 4
    fusion_heads: int = 12
    fusion_mlp_ratio: float = 4.0
    neck_dims: tuple[int, int, int, int] = (128, 256, 512, 1024)
    upsample: Literal["x1", "x2", "x4"] = "x1"
    # The head's `channels`; None = the original training script's choice {x1: 256, x2: 128, x4: 64}.
    head_width: int | None = None
    head_dropout: float = 0.1
    num_classes: int = 1
    click_radius: float = 5.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # Name of the DINOv2 hub model the encoder comes from (informational; used for export).
    encoder_name: str = "dinov2_vitb14_reg"

    def __post_init__(self) -> None:
        enc = self.encoder
        if self.skip_connections and not self.fuse_taps:
            # The original adds the click tokens in place into the single tap, which is also skip 0;
            # no released configuration does this, and the port does not reproduce the aliasing.
            raise ValueError("skip_connections=True needs fuse_taps=True")
        if self.skip_connections and len(self.taps) != 4:
            raise ValueError("skip connections need exactly 4 taps (one per FPN branch)")
        if any(not 0 <= t < enc.depth for t in self.taps):
            raise ValueError(f"taps {self.taps} out of range for an encoder of depth {enc.depth}")
        if self.image_size % enc.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of {enc.patch_size}")
        if enc.embed_dim % self.fusion_heads:
            raise ValueError("embed_dim must be divisible by fusion_heads")
        if self.fusion_block not in ("transformer", "conv"):
            raise ValueError(f"fusion_block must be 'transformer' or 'conv', got {self.fusion_block!r}")

    # --- derived sizes -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    @property
    def fusion_grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def head_channels(self) -> int:
        """`channels` of the original head: 256 / 128 / 64 for x1 / x2 / x4."""
        if self.head_width is not None:
            return self.head_width
        return {"x1": 256, "x2": 128, "x4": 64}[self.upsample]

    @property
    def head_out_channels(self) -> int:
        """Width of the per-level convs and fusion conv (`channels` × upsampling factor)."""
        return self.head_channels * {"x1": 1, "x2": 2, "x4": 4}[self.upsample]

    # --- presets: one per paper / repository configuration -------------------------------------
    @classmethod
    def skipclick_vitb14_448(cls, **overrides: Any) -> SkipClickConfig:
        """Full SkipClick (paper "+ Skip Connections"; released DINOv2 checkpoint)."""
        return cls(**overrides)

    @classmethod
    def intermediate_vitb14_448(cls, **overrides: Any) -> SkipClickConfig:
        """"+ Intermediate Features": fused taps, no skip connections."""
        return cls(**{"skip_connections": False, **overrides})

    @classmethod
    def frozen_vitb14_448(cls, **overrides: Any) -> SkipClickConfig:
        """"+ Frozen Backbone": a single tap (block 2, as the original code does), no fuse, no skips."""
        return cls(**{"fuse_taps": False, "skip_connections": False, **overrides})

    @classmethod
    def baseline_vitb14_448(cls, **overrides: Any) -> SkipClickConfig:
        """"Baseline": as `frozen_vitb14_448`, but the encoder is trained."""
        return cls(**{"fuse_taps": False, "skip_connections": False, "train_encoder": True, **overrides})

    @classmethod
    def skipclick_depth_vitb14_448(cls, depth: int, **overrides: Any) -> SkipClickConfig:
        """Paper Tab. 6: full SkipClick with a fusion transformer of `depth` blocks (2, 3, 5, 6)."""
        return cls(**{"fusion_depth": depth, **overrides})

    @classmethod
    def intermediate_vitg14_448(cls, **overrides: Any) -> SkipClickConfig:
        """Repository config `featurevit_giant448_..._intermediate`: DINOv2 ViT-g/14-reg, fused, no skips."""
        base = dict(
            encoder=DinoV2Config.hub("dinov2_vitg14_reg"),
            encoder_name="dinov2_vitg14_reg",
            skip_connections=False,
            fusion_heads=12,
            neck_dims=(240, 480, 960, 1920),
        )
        return cls(**{**base, **overrides})

    @classmethod
    def skipclick_dinov3_vitb16_448(cls, **overrides: Any) -> SkipClickConfig:
        """Repository config `featurevit_dinov3_base448_..._intermediate_skip`: SkipClick around DINOv3 ViT-B/16
        (the README's "SkipClick (DINOv3)", its best released model)."""
        base = dict(encoder=DinoV3Config.hub("dinov3_vitb16"), encoder_name="dinov3_vitb16")
        return cls(**{**base, **overrides})

    @classmethod
    def convstack_vitb14_448(cls, **overrides: Any) -> SkipClickConfig:
        """Repository config `featureconv_base448_..._intermediate_skip`: the conv-modulation stack instead of
        the fusion transformer (DINOv2 backbone; no released weights)."""
        return cls(**{"fusion_block": "conv", **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> SkipClickConfig:
        """A few-hundred-kilobyte model with every code path of the full one, for tests and examples."""
        base = dict(
            encoder=DinoV2Config(embed_dim=48, depth=4, num_heads=4, pos_grid=9),
            encoder_name="tiny",
            taps=(0, 1, 2, 3),
            image_size=112,
            fusion_depth=2,
            fusion_heads=4,
            neck_dims=(16, 24, 32, 40),
            head_width=16,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def tiny_dinov3(cls, **overrides: Any) -> SkipClickConfig:
        """`tiny` around a small DINOv3 encoder (patch 16: 7×7 tokens at 112 px)."""
        encoder = DinoV3Config(embed_dim=48, depth=4, num_heads=4)
        return cls.tiny(**{"encoder": encoder, "encoder_name": "tiny_dinov3", **overrides})

    @classmethod
    def tiny_convstack(cls, **overrides: Any) -> SkipClickConfig:
        """`tiny` with the conv-modulation stack."""
        return cls.tiny(**{"fusion_block": "conv", **overrides})

    # --- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SkipClickConfig:
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown SkipClickConfig fields: {sorted(unknown)}")
        enc = encoder_from_dict(d.pop("encoder", {}))
        tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
        d = {k: tuple(v) if k in tuples else v for k, v in d.items()}
        return cls(encoder=enc, **d)


PRESETS: dict[str, Any] = {
    "skipclick_vitb14_448": SkipClickConfig.skipclick_vitb14_448,
    "intermediate_vitb14_448": SkipClickConfig.intermediate_vitb14_448,
    "frozen_vitb14_448": SkipClickConfig.frozen_vitb14_448,
    "baseline_vitb14_448": SkipClickConfig.baseline_vitb14_448,
    "skipclick_depth2_vitb14_448": lambda **kw: SkipClickConfig.skipclick_depth_vitb14_448(2, **kw),
    "skipclick_depth3_vitb14_448": lambda **kw: SkipClickConfig.skipclick_depth_vitb14_448(3, **kw),
    "skipclick_depth5_vitb14_448": lambda **kw: SkipClickConfig.skipclick_depth_vitb14_448(5, **kw),
    "skipclick_depth6_vitb14_448": lambda **kw: SkipClickConfig.skipclick_depth_vitb14_448(6, **kw),
    "intermediate_vitg14_448": SkipClickConfig.intermediate_vitg14_448,
    "skipclick_dinov3_vitb16_448": SkipClickConfig.skipclick_dinov3_vitb16_448,
    "convstack_vitb14_448": SkipClickConfig.convstack_vitb14_448,
    "tiny": SkipClickConfig.tiny,
    "tiny_dinov3": SkipClickConfig.tiny_dinov3,
    "tiny_convstack": SkipClickConfig.tiny_convstack,
}


def preset(name: str, **overrides: Any) -> SkipClickConfig:
    """Look up a named preset (see `PRESETS`)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](**overrides)
