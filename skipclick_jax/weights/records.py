"""The original checkpoints' configuration record, both directions, and configurations read off shapes.

Reading: the `SkipClickConfig` of an original checkpoint comes from its stored `config` (the original's
`serialize` record of the `FeatureVitModel` constructor arguments), cross-checked against the tensor
shapes; without a stored config it is inferred from the keys and shapes alone. DINOv2 encoders are named by
their hub name or read off the shapes.

Writing: `original_record(config)` is the record the original writes for the `FeatureVitModel(...)` call
that builds `config`, so `isegm.inference.utils.load_is_model` rebuilds the model from our `.pth` files.
`extractor_type` (the torch.hub model the original builds the encoder from) is the DINOv2 hub name whose
configuration equals the encoder (`config.encoder_name` first). An encoder that is no hub model keeps its
`encoder_name` if that starts with `dinov2` and is no hub name, else becomes `dinov2_custom`: the original
can only build hub encoders, so such a file serves PyTorch users of the state dict, and `skipclick_jax`
reads it back from the shapes. The original record cannot express tap indices other than (2, 5, 8, 11)
nor non-hub encoder hyper-parameters that the shapes do not determine (`unrecorded_fields` lists them).
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..config import IMAGENET_MEAN, IMAGENET_STD, DinoV2Config, DinoV3Config, Encoder, SkipClickConfig
from .errors import CheckpointError
from .mapping import skipclick_shapes, torch_sources
from .tables.skipclick import ENCODER_PREFIXES, encoder_prefix, skipclick_entries

MODEL_CLASS = "isegm.model.is_featurevit_model.FeatureVitModel"
HUB_NAMES = tuple(f"dinov2_vit{s}14{r}" for s in "sblg" for r in ("_reg", ""))
DINOV3_HUB_NAMES = tuple(f"dinov3_vit{s}" for s in ("s16", "s16plus", "b16", "l16", "l16plus", "h16plus"))
# What an exported DINOv3 record names as the DINOv3 checkout and weights the original builds the encoder
# from (it cannot build the model without both on disk; the weights themselves are all in the state dict).
DINOV3_REPO_PATH = "dinov3"
DINOV3_WEIGHT_FILES = {"dinov3_vitb16": "dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth"}
ORIGINAL_TAPS = (2, 5, 8, 11)  # DinoV2Extractor's fixed extraction_blocks


def hub_name_from_filename(path: str | Path) -> str | None:
    """The hub model of a hub weight file name: `dinov2_vitb14_reg4_pretrain.pth` → `dinov2_vitb14_reg`,
    `dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth` → `dinov3_vitb16`; None for other names."""
    name = Path(path).name
    if m := re.match(r"(dinov2_vit[sblg]14)(_reg4?)?(_pretrain)?\.pth$", name):
        return m.group(1) + ("_reg" if m.group(2) else "")
    if m := re.match(r"(dinov3_vit(?:s16plus|s16|b16|l16plus|l16|h16plus|7b16))(_pretrain_[a-z0-9]+)?(-[0-9a-f]{8})?"
                     r"\.pth$", name):
        return m.group(1)
    return None


def encoder_family(state: dict[str, Any], prefix: str = "") -> str:
    """'dinov3' when the state dict has DINOv3's storage tokens / RoPE periods, else 'dinov2'."""
    return "dinov3" if f"{prefix}storage_tokens" in state or f"{prefix}rope_embed.periods" in state else "dinov2"


def infer_encoder(state: dict[str, np.ndarray], prefix: str, name: str | None, path: Path,
                  family: str | None = None) -> Encoder:
    """The encoder configuration of a state dict: DINOv2 or DINOv3, as its keys say (or `family` demands)."""
    found = encoder_family(state, prefix)
    named = None if name is None else "dinov3" if name.startswith("dinov3") else "dinov2"
    expected = family or named
    if expected is not None and expected != found:
        shown = {"dinov2": "DINOv2", "dinov3": "DINOv3"}
        raise CheckpointError(f"{path}: holds a {shown[found]} encoder, but a {shown[expected]} one is expected"
                              + (f" ({name})" if name else ""))
    if found == "dinov3":
        return infer_dinov3_config(state, prefix, name, path)
    return infer_encoder_config(state, prefix, name, path)


def infer_dinov3_config(state: dict[str, np.ndarray], prefix: str, name: str | None, path: Path) -> DinoV3Config:
    """DINOv3 hyper-parameters from a hub name, cross-checked against (or, unnamed, read off) the shapes."""
    try:
        d = state[f"{prefix}cls_token"].shape[-1]
        registers = state[f"{prefix}storage_tokens"].shape[1]
        patch = state[f"{prefix}patch_embed.proj.weight"].shape[-1]
        head_dim = 4 * state[f"{prefix}rope_embed.periods"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"{path}: not a DINOv3 encoder layout (missing {e.args[0]})") from None
    depth = len({int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", k))})
    ffn = "swiglu" if f"{prefix}blocks.0.mlp.w1.weight" in state else "mlp"
    hidden = state[f"{prefix}blocks.0.mlp.{'w1' if ffn == 'swiglu' else 'fc1'}.weight"].shape[0] if depth else 0
    found = dict(embed_dim=d, depth=depth, num_heads=d // head_dim, num_registers=registers, ffn=ffn,
                 patch_size=patch, qkv_bias=f"{prefix}blocks.0.attn.qkv.bias" in state,
                 local_cls_norm=f"{prefix}local_cls_norm.weight" in state)
    config = None
    if name == "dinov3_vit7b16":
        raise CheckpointError(f"{path}: dinov3_vit7b16 is not supported (128-wide heads, SwiGLU aligned to 64, "
                              "no qkv bias)")
    if name in DINOV3_HUB_NAMES:
        config = DinoV3Config.hub(name)
    elif name is not None:
        warnings.warn(f"{path}: encoder {name!r} is not a DINOv3 hub model; reading its size off the weights",
                      stacklevel=3)
    if config is not None:
        expected = {k: getattr(config, k) for k in found}
        if expected != found or config.hidden_dim != hidden:
            diff = {k: (expected[k], found[k]) for k in found if expected[k] != found[k]}
            raise CheckpointError(f"{path}: weights do not match {name} (expected, found): {diff}")
        return config
    ratio = hidden / d if ffn == "mlp" else 6.0  # the hub's SwiGLU models all use ratio 6
    config = DinoV3Config(**found, ffn_ratio=ratio)
    if config.hidden_dim != hidden:
        raise CheckpointError(f"{path}: cannot infer the FFN ratio of a {hidden}-wide SwiGLU; name the configuration")
    return config


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
    prefix = encoder_prefix(state)
    if prefix is None:
        raise CheckpointError(f"{path}: no 'feature_extractor.dinov2.*' or 'feature_extractor.dinov3.*' keys")
    default = "dinov3_vitb16" if prefix == ENCODER_PREFIXES["dinov3"] else "dinov2_vitb14_reg"
    extractor = str(p.get("extractor_type", default))
    conv = bool(p.get("use_conv_stack", False))
    _require(p.get("use_disks", True), path, "use_disks=False (tanh distance maps)")
    _require(p.get("with_prev_mask", True), path, "with_prev_mask=False")
    _require(not p.get("use_rgb_conv", False), path, "use_rgb_conv=True (RITM maps transform)")
    _require(not p.get("with_aux_output", False), path, "with_aux_output=True")

    family = "dinov3" if extractor.startswith("dinov3") else "dinov2"
    encoder = infer_encoder(state, prefix, extractor if stored is not None else None, path, family)
    d = encoder.embed_dim
    backbone = p.get("backbone_params") or {}
    neck = p.get("neck_params") or {}
    head = p.get("head_params") or {}
    _require(backbone.get("primitive_stack", True), path, "primitive_stack=False (windowed fusion blocks)")
    _require(backbone.get("qkv_bias", True), path, "qkv_bias=False")
    click_patch = state["patch_embed_coords.proj.weight"].shape[-1] if "patch_embed_coords.proj.weight" in state \
        else encoder.patch_size
    _require(click_patch == encoder.patch_size, path,
             f"click patch embedding of {click_patch} px for an encoder of {encoder.patch_size} px patches")

    fusion_depth = len({k.split(".")[2] for k in state if k.startswith("backbone_mix.blocks.")})
    pos_tokens = state["backbone_mix.pos_embed"].shape[1] if "backbone_mix.pos_embed" in state else 0
    if conv or not pos_tokens:  # the conv stack has no position table: the size comes from the record
        img = backbone.get("img_size", (448, 448))
    else:
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
        fusion_block="conv" if conv else "transformer",
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


def _int_if_integral(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def extractor_type(config: SkipClickConfig) -> str:
    """The `extractor_type` to record for `config.encoder` (see the module docstring)."""
    if isinstance(config.encoder, DinoV3Config):
        for name in DINOV3_HUB_NAMES:
            if DinoV3Config.hub(name) == config.encoder:
                return name
        return "dinov3_custom"
    candidates = (config.encoder_name, *HUB_NAMES) if config.encoder_name in HUB_NAMES else HUB_NAMES
    for name in candidates:
        if DinoV2Config.hub(name) == config.encoder:
            return name
    name = config.encoder_name
    return name if name.startswith("dinov2") and name not in HUB_NAMES else "dinov2_custom"


def original_record(config: SkipClickConfig, loss_decode: Any = None) -> dict[str, Any]:
    """The `serialize` record of the `FeatureVitModel(...)` call that builds `config`.

    Specified parameters in the call order of the repository's model configs, then the unspecified
    defaults in `get_default_params` order (FeatureVitModel, then ISModel). Values are the configs'
    literals (tuples, lists, ints), so the record equals the one the original writes.
    """
    d = config.dim
    default_mean_std = (list(IMAGENET_MEAN), list(IMAGENET_STD))
    mean_std = (list(config.mean), list(config.std))
    head_params = dict(
        in_channels=list(config.neck_dims),
        in_index=list(range(len(config.neck_dims))),
        dropout_ratio=config.head_dropout,
        num_classes=config.num_classes,
        loss_decode=loss_decode,
        align_corners=False,
        upsample=config.upsample,
        channels=config.head_channels,
    )
    backbone_params: dict[str, Any] = dict(
        img_size=(config.image_size, config.image_size),
        patch_size=(config.patch_size, config.patch_size),
        embed_dim=d,
        depth=config.fusion_depth,
    )
    if config.fusion_block == "transformer":  # the conv-stack config passes the four above only
        backbone_params.update(num_heads=config.fusion_heads, mlp_ratio=_int_if_integral(config.fusion_mlp_ratio),
                               qkv_bias=True, primitive_stack=True)
    extractor = extractor_type(config)
    specified: dict[str, Any] = dict(
        use_disks=True,
        norm_radius=_int_if_integral(config.click_radius),
        with_prev_mask=True,
        extractor_type=extractor,
        backbone_params=backbone_params,
    )
    if isinstance(config.encoder, DinoV3Config):  # the original builds DINOv3 from a local checkout + weights
        specified.update(backbone_repo_path=DINOV3_REPO_PATH,
                         backbone_weight_path=DINOV3_WEIGHT_FILES.get(extractor, f"{extractor}_pretrain.pth"))
    specified.update(
        # serialize() deep-copies the arguments before FeatureVitModel adds neck_params['skip_connections'].
        neck_params=dict(in_dim=d, out_dims=list(config.neck_dims)),
        head_params=head_params,
        random_split=False,
        trained_extractor=config.train_encoder,
        use_intermediate=list(ORIGINAL_TAPS) if config.fuse_taps else [11],
    )
    if config.skip_connections:  # only the skip configs pass it
        specified["skip_connections"] = True
    if config.fusion_block == "conv":
        specified["use_conv_stack"] = True
    if mean_std != default_mean_std:
        specified["norm_mean_std"] = mean_std
    defaults: dict[str, Any] = dict(
        backbone_weight_path=None,
        backbone_repo_path=None,
        skip_connections=False,
        use_conv_stack=False,
        with_aux_output=False,
        cpu_dist_maps=False,
        use_rgb_conv=False,
        use_leaky_relu=False,
        norm_mean_std=default_mean_std,
    )
    params = {k: {"type": "builtin", "value": v, "specified": True} for k, v in specified.items()}
    params.update({k: {"type": "builtin", "value": v, "specified": False}
                   for k, v in defaults.items() if k not in specified})
    return {"class": MODEL_CLASS, "params": params}


def _shape_state(config: SkipClickConfig) -> dict[str, Any]:
    """The original state dict as shape-only stand-ins (enough for `infer_config`)."""
    shapes = skipclick_shapes(config)
    sources = torch_sources(shapes, skipclick_entries(config), shapes)
    return {s.name: np.broadcast_to(np.empty((), np.float32), s.shape) for s in sources}


def unrecorded_fields(config: SkipClickConfig) -> list[str]:
    """Fields of `config` the original record + shapes do not determine (empty: the record is lossless)."""
    def normal(c: SkipClickConfig) -> SkipClickConfig:
        return dataclasses.replace(c, head_width=c.head_channels)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-hub names warn; that is what we are finding out
            back = infer_config(_shape_state(config), original_record(config), "<export>")
    except (CheckpointError, ValueError) as e:
        return [f"encoder ({e})"]
    a, b = normal(config), normal(back)
    fields = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    return [f"{name}: {getattr(a, name)!r} would read back as {getattr(b, name)!r}" for name in fields]


