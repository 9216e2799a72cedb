"""The original SkipClick state dict (isegm `FeatureVitModel`) ↔ the `SkipClick` module, for any
configuration; the encoder part is the DINOv2 hub table under `feature_extractor.dinov2.`."""

from __future__ import annotations

from ...config import SkipClickConfig
from . import Entry, linear, norm, transformer_block
from .dinov2 import dinov2_entries

#: Key prefix of the encoder inside a SkipClick checkpoint.
ENCODER_PREFIX = "feature_extractor.dinov2."


def skipclick_entries(config: SkipClickConfig) -> list[Entry]:
    """The original `FeatureVitModel` state dict ↔ the `SkipClick` module, for any configuration."""
    # Order of the original state dict (module registration order), so exports compare byte for byte.
    entries = linear("patch_embed_coords.proj", ("click_embed",), "conv")
    entries += dinov2_entries(config.encoder, ENCODER_PREFIX, ("encoder",))
    entries.append(Entry("backbone_mix.pos_embed", ("fusion", "pos_embed")))
    for j in range(config.fusion_depth):
        entries += transformer_block(f"backbone_mix.blocks.{j}", ("fusion", f"blocks_{j}"), "mlp", layerscale=False)

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
        entries += norm(tp, fp) if kind is None else linear(tp, fp, kind)

    entries += linear("head.conv_seg", ("head", "conv_seg"), "conv1x1")
    for k in range(4):
        entries += linear(f"head.convs.{k}.conv", ("head", f"convs_{k}"), "conv1x1")
    entries += linear("head.fusion_conv.conv", ("head", "fusion_conv"), "conv1x1")
    for up in ("up_conv1", "up_conv2"):
        entries += linear(f"head.{up}.0", ("head", up, "deconv"), "deconv")
        entries += norm(f"head.{up}.1", ("head", up, "norm1"))
        entries += linear(f"head.{up}.2", ("head", up, "conv"), "conv1x1")
        entries += norm(f"head.{up}.3", ("head", up, "norm2"))
    if config.fuse_taps:
        entries += linear("fuse", ("fuse",))
    return entries


# Keys the original checkpoint carries but its forward never reads. They are converted (so the export
# back to PyTorch is exact) and documented here for users who wonder why they exist.
UNUSED_BY_FORWARD = {
    "feature_extractor.dinov2.mask_token": "DINOv2 masked-image-modelling token (pre-training only)",
    "feature_extractor.dinov2.norm.*": "DINOv2's final LayerNorm: SkipClick taps the raw block outputs",
    "head.up_conv1.*, head.up_conv2.*": "head up-convolutions, only used with upsample 'x2'/'x4'",
    "feature_extractor.dinov2.blocks.{i}.* for i > max(taps)": "blocks after the last tap",
}
