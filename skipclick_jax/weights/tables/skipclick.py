"""The original SkipClick state dict (isegm `FeatureVitModel`) ↔ the `SkipClick` module, for any
configuration; the encoder part is the encoder's hub table under `feature_extractor.dinov2.` or
`feature_extractor.dinov3.`."""

from __future__ import annotations

from ...config import SkipClickConfig
from . import Entry, linear, norm, transformer_block
from .encoders import encoder_entries

#: Key prefix of each encoder family inside a SkipClick checkpoint.
ENCODER_PREFIXES = {"dinov2": "feature_extractor.dinov2.", "dinov3": "feature_extractor.dinov3."}
ENCODER_PREFIX = ENCODER_PREFIXES["dinov2"]


def encoder_prefix(state_keys) -> str | None:
    """The encoder key prefix found among `state_keys` (None: not a SkipClick state dict)."""
    for prefix in ENCODER_PREFIXES.values():
        if any(k.startswith(prefix) for k in state_keys):
            return prefix
    return None


def _conv_block(tp: str, fp: tuple[str, ...]) -> list[Entry]:
    """One block of the conv-modulation stack (`models_conv.Block`), in the original's key order."""
    entries = [Entry(f"{tp}.layer_scale_{k}", (*fp, f"layer_scale_{k}")) for k in (1, 2)]
    entries += norm(f"{tp}.attn.norm", (*fp, "attn_norm"))
    for torch_name, flax_name, kind in (("attn.a.0", "attn_a", "conv1x1"), ("attn.a.2", "attn_a_dw", "conv"),
                                        ("attn.v", "attn_v", "conv1x1"), ("attn.proj", "attn_proj", "conv1x1")):
        entries += linear(f"{tp}.{torch_name}", (*fp, flax_name), kind)
    entries += norm(f"{tp}.mlp.norm", (*fp, "mlp_norm"))
    for torch_name, flax_name, kind in (("mlp.fc1", "mlp_fc1", "conv1x1"), ("mlp.pos", "mlp_pos", "conv"),
                                        ("mlp.fc2", "mlp_fc2", "conv1x1")):
        entries += linear(f"{tp}.{torch_name}", (*fp, flax_name), kind)
    return entries


def skipclick_entries(config: SkipClickConfig) -> list[Entry]:
    """The original `FeatureVitModel` state dict ↔ the `SkipClick` module, for any configuration."""
    # Order of the original state dict (module registration order), so exports compare byte for byte.
    entries = linear("patch_embed_coords.proj", ("click_embed",), "conv")
    entries += encoder_entries(config.encoder, ENCODER_PREFIXES[config.encoder.family], ("encoder",))
    if config.fusion_block == "conv":
        for j in range(config.fusion_depth):
            entries += _conv_block(f"backbone_mix.blocks.{j}", ("fusion", f"blocks_{j}"))
    else:
        entries.append(Entry("backbone_mix.pos_embed", ("fusion", "pos_embed")))
        for j in range(config.fusion_depth):
            entries += transformer_block(f"backbone_mix.blocks.{j}", ("fusion", f"blocks_{j}"), "mlp",
                                         layerscale=False)

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
    "feature_extractor.dinov{2,3}.mask_token": "masked-image-modelling token (pre-training only)",
    "feature_extractor.dinov2.norm.*": "DINOv2's final LayerNorm: SkipClick taps the raw block outputs "
                                       "(DINOv3's final norm is used: its taps go through it)",
    "head.up_conv1.*, head.up_conv2.*": "head up-convolutions, only used with upsample 'x2'/'x4'",
    "feature_extractor.dinov{2,3}.blocks.{i}.* for i > max(taps)": "blocks after the last tap",
}
