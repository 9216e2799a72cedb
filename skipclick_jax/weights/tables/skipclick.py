"""The one table between PyTorch state-dict keys and Flax parameter paths.

Each `Entry` names a PyTorch key, the Flax path of the same tensor and the layout transform between them.
Transforms are exact permutations (no arithmetic), so conversions are bit-exact in both directions.
The table is generated from a `SkipClickConfig`; `convert.strict` applies it with full checking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import DinoV2Config, SkipClickConfig

# name: (torch → flax, flax → torch)
TRANSFORMS = {
    "copy": (lambda a: a, lambda a: a),
    # nn.Linear weight (out, in) ↔ Dense kernel (in, out)
    "linear": (lambda a: a.T, lambda a: a.T),
    # Conv2d weight (out, in, kh, kw) ↔ (kh, kw, in, out)
    "conv": (lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)),
    # ConvTranspose2d weight (in, out, kh, kw) ↔ (kh, kw, in, out)
    "deconv": (lambda a: a.transpose(2, 3, 0, 1), lambda a: a.transpose(2, 3, 0, 1)),
    # 1×1 Conv2d weight (out, in, 1, 1) ↔ Dense kernel (in, out)
    "conv1x1": (lambda a: a[:, :, 0, 0].T, lambda a: a.T[:, :, None, None]),
}


@dataclass(frozen=True)
class Entry:
    torch_key: str
    flax_path: tuple[str, ...]
    transform: str = "copy"

    def to_flax(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(TRANSFORMS[self.transform][0](array))

    def to_torch(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(TRANSFORMS[self.transform][1](array))


def _linear(torch_prefix: str, flax_path: tuple[str, ...], kind: str = "linear") -> list[Entry]:
    return [Entry(f"{torch_prefix}.weight", (*flax_path, "kernel"), kind),
            Entry(f"{torch_prefix}.bias", (*flax_path, "bias"))]


def _norm(torch_prefix: str, flax_path: tuple[str, ...]) -> list[Entry]:
    return [Entry(f"{torch_prefix}.weight", (*flax_path, "scale")),
            Entry(f"{torch_prefix}.bias", (*flax_path, "bias"))]


def _block(tp: str, fp: tuple[str, ...], ffn: str, layerscale: bool) -> list[Entry]:
    """One transformer block, in the original's state-dict order (DINOv2 and EncoderStack differ)."""
    names = ("w12", "w3") if ffn == "swiglu" else ("fc1", "fc2")
    attn = _linear(f"{tp}.attn.qkv", (*fp, "attn", "qkv")) + _linear(f"{tp}.attn.proj", (*fp, "attn", "proj"))
    mlp = [e for name in names for e in _linear(f"{tp}.mlp.{name}", (*fp, "mlp", name))]
    norm1, norm2 = _norm(f"{tp}.norm1", (*fp, "norm1")), _norm(f"{tp}.norm2", (*fp, "norm2"))
    if layerscale:  # DINOv2 block: norm1, attn, ls1, norm2, mlp, ls2
        return (norm1 + attn + [Entry(f"{tp}.ls1.gamma", (*fp, "ls1"))] + norm2 + mlp
                + [Entry(f"{tp}.ls2.gamma", (*fp, "ls2"))])
    return norm1 + norm2 + attn + mlp  # EncoderStack block registers both norms first


def dinov2_entries(config: DinoV2Config, torch_prefix: str = "", flax_path: tuple[str, ...] = ()) -> list[Entry]:
    """DINOv2 hub layout (`cls_token`, `blocks.{i}.…`, `norm.…`) ↔ the `DinoV2` module."""
    tp = torch_prefix
    entries = [
        Entry(f"{tp}cls_token", (*flax_path, "cls_token")),
        Entry(f"{tp}pos_embed", (*flax_path, "pos_embed")),
    ]
    if config.num_registers:
        entries.append(Entry(f"{tp}register_tokens", (*flax_path, "register_tokens")))
    entries.append(Entry(f"{tp}mask_token", (*flax_path, "mask_token")))
    entries += _linear(f"{tp}patch_embed.proj", (*flax_path, "patch_embed"), "conv")
    for i in range(config.depth):
        entries += _block(f"{tp}blocks.{i}", (*flax_path, f"blocks_{i}"), config.ffn, config.layerscale)
    entries += _norm(f"{tp}norm", (*flax_path, "norm"))
    return entries


def skipclick_entries(config: SkipClickConfig) -> list[Entry]:
    """The original `FeatureVitModel` state dict ↔ the `SkipClick` module, for any configuration."""
    # Order of the original state dict (module registration order), so exports compare byte for byte.
    entries = _linear("patch_embed_coords.proj", ("click_embed",), "conv")
    entries += dinov2_entries(config.encoder, "feature_extractor.dinov2.", ("encoder",))
    entries.append(Entry("backbone_mix.pos_embed", ("fusion", "pos_embed")))
    for j in range(config.fusion_depth):
        entries += _block(f"backbone_mix.blocks.{j}", ("fusion", f"blocks_{j}"), "mlp", layerscale=False)

    neck = [
        ("down_4.0", "down_4_deconv1", "deconv"), ("down_4.1", "down_4_norm1", None),
        ("down_4.3", "down_4_deconv2", "deconv"), ("down_4.4", "down_4_norm2", None),
        ("down_4.5", "down_4_conv", "conv1x1"), ("down_4.6", "down_4_norm3", None),
        ("down_8.0", "down_8_deconv", "deconv"), ("down_8.1", "down_8_norm1", None),
        ("down_8.2", "down_8_conv", "conv1x1"), ("down_8.3", "down_8_norm2", None),
        ("down_16.0", "down_16_conv", "conv"), ("down_16.1", "down_16_norm", None),
        ("down_32.0", "down_32_conv2", "conv"), ("down_32.1", "down_32_norm1", None),
        ("down_32.2", "down_32_conv", "conv1x1"), ("down_32.3", "down_32_norm2", None),
    ]
    for torch_name, flax_name, kind in neck:
        tp, fp = f"neck.{torch_name}", ("neck", flax_name)
        entries += _norm(tp, fp) if kind is None else _linear(tp, fp, kind)

    entries += _linear("head.conv_seg", ("head", "conv_seg"), "conv1x1")
    for k in range(4):
        entries += _linear(f"head.convs.{k}.conv", ("head", f"convs_{k}"), "conv1x1")
    entries += _linear("head.fusion_conv.conv", ("head", "fusion_conv"), "conv1x1")
    for up in ("up_conv1", "up_conv2"):
        entries += _linear(f"head.{up}.0", ("head", up, "deconv"), "deconv")
        entries += _norm(f"head.{up}.1", ("head", up, "norm1"))
        entries += _linear(f"head.{up}.2", ("head", up, "conv"), "conv1x1")
        entries += _norm(f"head.{up}.3", ("head", up, "norm2"))
    if config.fuse_taps:
        entries += _linear("fuse", ("fuse",))
    return entries


# Keys the original checkpoint carries but its forward never reads. They are converted (so the export
# back to PyTorch is exact) and documented here for users who wonder why they exist.
UNUSED_BY_FORWARD = {
    "feature_extractor.dinov2.mask_token": "DINOv2 masked-image-modelling token (pre-training only)",
    "feature_extractor.dinov2.norm.*": "DINOv2's final LayerNorm: SkipClick taps the raw block outputs",
    "head.up_conv1.*, head.up_conv2.*": "head up-convolutions, only used with upsample 'x2'/'x4'",
    "feature_extractor.dinov2.blocks.{i}.* for i > max(taps)": "blocks after the last tap",
}
