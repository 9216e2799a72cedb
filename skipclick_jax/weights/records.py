"""Original SkipClick checkpoints (`{'state_dict', 'config'}` .pth) → `SkipClickConfig` + Flax params.

The configuration is read from the stored `config` (the original's `serialize` record of the
`FeatureVitModel` constructor arguments) and cross-checked against the tensor shapes; without a stored
config it is inferred from the keys and shapes alone.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..config import IMAGENET_MEAN, IMAGENET_STD, DinoV2Config, SkipClickConfig
from ..model.skipclick import param_shapes
from .mapping import skipclick_entries
from .strict import torch_to_flax
from .torch_io import CheckpointError, read_pth, state_dict_of

_ENC = "feature_extractor.dinov2."


def _stored_params(config: Any, path: Path) -> dict[str, Any]:
    """The constructor arguments recorded by the original `serialize` decorator (values only)."""
    if config is None:
        return {}
    if not isinstance(config, dict) or "params" not in config:
        raise CheckpointError(f"{path}: 'config' entry is not an isegm serialised model config")
    cls = str(config.get("class", ""))
    if not cls.endswith("FeatureVitModel"):
        raise CheckpointError(f"{path}: a {cls or 'unknown'} checkpoint, not a SkipClick FeatureVitModel")
    return {k: v.get("value") if isinstance(v, dict) else v for k, v in config["params"].items()}


def infer_encoder_config(state: dict[str, np.ndarray], prefix: str, name: str | None, path: Path) -> DinoV2Config:
    """DINOv2 hyper-parameters from a hub name, cross-checked against (or, unnamed, read off) the shapes."""
    try:
        d = state[f"{prefix}cls_token"].shape[-1]
        pos_tokens = state[f"{prefix}pos_embed"].shape[1] - 1
        patch = state[f"{prefix}patch_embed.proj.weight"].shape[-1]
    except KeyError as e:
        raise CheckpointError(f"{path}: not a DINOv2 encoder layout (missing {e.args[0]})") from None
    depth = len({int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", k))})
    registers = state[f"{prefix}register_tokens"].shape[1] if f"{prefix}register_tokens" in state else 0
    ffn = "swiglu" if f"{prefix}blocks.0.mlp.w12.weight" in state else "mlp"
    hidden = state[f"{prefix}blocks.0.mlp.{'w3' if ffn == 'swiglu' else 'fc2'}.weight"].shape[1] if depth else 0
    grid = math.isqrt(pos_tokens)
    if grid * grid != pos_tokens:
        raise CheckpointError(f"{path}: {prefix}pos_embed has {pos_tokens} patch entries, not a square grid")
    found = dict(embed_dim=d, depth=depth, num_registers=registers, ffn=ffn, patch_size=patch, pos_grid=grid)

    try:
        config = DinoV2Config.hub(name) if name is not None else None
    except ValueError:
        warnings.warn(f"{path}: encoder {name!r} is not a DINOv2 hub model; reading its size off the weights",
                      stacklevel=3)
        config = None
    if config is not None:
        expected = {k: getattr(config, k) for k in found}
        if expected != found:
            diff = {k: (expected[k], found[k]) for k in found if expected[k] != found[k]}
            raise CheckpointError(f"{path}: weights do not match {name} (expected, found): {diff}")
        return config
    if d % 64:
        raise CheckpointError(f"{path}: cannot infer the head count of a {d}-wide encoder; name its configuration")
    mlp_ratio = hidden / d if ffn == "mlp" else 4.0
    aa = dict(interpolate_antialias=True, interpolate_offset=0.0) if registers else dict(
        interpolate_antialias=False, interpolate_offset=0.1)
    return DinoV2Config(**found, num_heads=d // 64, mlp_ratio=mlp_ratio, **aa)


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise CheckpointError(f"{path}: unsupported SkipClick variant: {what}")


def infer_config(state: dict[str, np.ndarray], stored: Any, path: str | Path) -> SkipClickConfig:
    """The `SkipClickConfig` of an original checkpoint (stored constructor arguments + shapes)."""
    path = Path(path)
    p = _stored_params(stored, path)
    extractor = p.get("extractor_type", "dinov2_vitb14_reg")
    _require(not str(extractor).startswith("dinov3"), path, f"extractor {extractor} (DINOv3 / RoPE) is not ported")
    _require(not p.get("use_conv_stack", False), path, "use_conv_stack=True (conv modulation stack)")
    _require(p.get("use_disks", True), path, "use_disks=False (tanh distance maps)")
    _require(p.get("with_prev_mask", True), path, "with_prev_mask=False")
    _require(not p.get("use_rgb_conv", False), path, "use_rgb_conv=True (RITM maps transform)")
    _require(not p.get("with_aux_output", False), path, "with_aux_output=True")

    encoder = infer_encoder_config(state, _ENC, extractor if stored is not None else None, path)
    d = encoder.embed_dim
    backbone = p.get("backbone_params") or {}
    neck = p.get("neck_params") or {}
    head = p.get("head_params") or {}
    _require(backbone.get("primitive_stack", True), path, "primitive_stack=False (windowed fusion blocks)")
    _require(backbone.get("qkv_bias", True), path, "qkv_bias=False")

    fusion_depth = len({k.split(".")[2] for k in state if k.startswith("backbone_mix.blocks.")})
    pos_tokens = state["backbone_mix.pos_embed"].shape[1] if "backbone_mix.pos_embed" in state else 0
    img = backbone.get("img_size", (math.isqrt(pos_tokens) * encoder.patch_size,) * 2)
    img = tuple(img) if isinstance(img, (list, tuple)) else (img, img)
    _require(img[0] == img[1], path, f"non-square training size {img}")
    fc1 = state.get("backbone_mix.blocks.0.mlp.fc1.weight")
    fusion_mlp = backbone.get("mlp_ratio", fc1.shape[0] / d if fc1 is not None else 4.0)

    use_intermediate = p.get("use_intermediate", [2, 5, 8, 11] if "fuse.weight" in state else [11])
    first_layer = state.get("neck.down_16.0.weight")
    skip = p.get("skip_connections", first_layer is not None and first_layer.shape[1] == 2 * d)
    neck_dims = tuple(neck.get("out_dims") or [state[f"neck.{b}.weight"].shape[0]
                                               for b in ("down_4.6", "down_8.3", "down_16.1", "down_32.3")
                                               if f"neck.{b}.weight" in state] or (128, 256, 512, 1024))
    upsample = head.get("upsample", "x1")
    conv_seg = state.get("head.conv_seg.weight")
    channels = head.get("channels", conv_seg.shape[1] if conv_seg is not None else None)
    default_channels = {"x1": 256, "x2": 128, "x4": 64}.get(upsample)
    mean_std = p.get("norm_mean_std") or (IMAGENET_MEAN, IMAGENET_STD)

    return SkipClickConfig(
        encoder=encoder,
        encoder_name=str(extractor),
        fuse_taps=len(use_intermediate) > 1,
        skip_connections=bool(skip),
        train_encoder=bool(p.get("trained_extractor", False)),
        image_size=int(img[0]),
        fusion_depth=fusion_depth or int(backbone.get("depth", 4)),
        fusion_heads=int(backbone.get("num_heads", d // 64)),
        fusion_mlp_ratio=float(fusion_mlp),
        neck_dims=tuple(int(x) for x in neck_dims),
        upsample=upsample,
        head_width=None if channels in (None, default_channels) else int(channels),
        head_dropout=float(head.get("dropout_ratio", 0.1)),
        num_classes=int(head.get("num_classes", conv_seg.shape[0] if conv_seg is not None else 1)),
        click_radius=float(p.get("norm_radius", 5)),
        mean=tuple(float(x) for x in mean_std[0]),
        std=tuple(float(x) for x in mean_std[1]),
    )


def params_from_state(
    state: dict[str, np.ndarray], config: SkipClickConfig, source: str | Path
) -> dict[str, Any]:
    """Strictly map an original state dict onto the Flax parameters of `config`."""
    return torch_to_flax(state, skipclick_entries(config), param_shapes(config), source)


def read_skipclick_pth(
    path: str | Path, config: SkipClickConfig | None = None
) -> tuple[SkipClickConfig, dict[str, Any]]:
    """Read an original SkipClick `.pth`: (config, Flax params as numpy arrays).

    `config` overrides detection (useful for encoders that are not hub models); the weights must still
    match it exactly.
    """
    obj = read_pth(path)
    state, stored = state_dict_of(obj, path)
    if not any(k.startswith(_ENC) for k in state):
        raise CheckpointError(
            f"{path}: no '{_ENC}*' keys — not a SkipClick checkpoint"
            + (" (it looks like a DINOv2 hub checkpoint; use it as an encoder)" if "cls_token" in state else "")
        )
    if config is None:
        if stored is None:
            warnings.warn(f"{path}: no stored config; inferring the configuration from the shapes", stacklevel=2)
        config = infer_config(state, stored, path)
    return config, params_from_state(state, config, path)
