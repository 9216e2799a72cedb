"""Checkpoints in the original PyTorch layouts: SkipClick `{'state_dict', 'config'}` and DINOv2 hub `.pth`.

The SkipClick file is what `isegm` writes (SPEC 6): `state_dict` with the original keys, order, shapes
and float32 tensors, and `config`, the record `isegm.utils.serialization.serialize` makes of the
`FeatureVitModel(...)` call in the repository's model configs, so `isegm.inference.utils.load_is_model`
rebuilds the model and loads the weights with `strict=True` unchanged.

That record holds `head_params['loss_decode']`, a pickled *instance* of
`isegm.model.modeling.transformer_helper.cross_entropy_loss.CrossEntropyLoss`. isegm is not a dependency:
while pickling, placeholder modules of those names are put into `sys.modules` (and removed afterwards)
with a `CrossEntropyLoss(nn.Module)` whose attributes are those the original constructor gives with its
defaults, so the pickle refers to the real class and the original code restores a real, equal instance.

`extractor_type` (the torch.hub model the original builds the encoder from) is the DINOv2 hub name whose
configuration equals the encoder (`config.encoder_name` first). An encoder that is no hub model keeps its
`encoder_name` if that starts with `dinov2` and is no hub name, else becomes `dinov2_custom`: the original
can only build hub encoders, so such a file serves PyTorch users of the state dict, and `skipclick_jax`
reads it back from the shapes. The original record cannot express tap indices other than (2, 5, 8, 11)
nor non-hub encoder hyper-parameters that the shapes do not determine; exporting such a configuration
warns (the tensors are still exact; pass `config=` when loading it back, or use safetensors, which stores
the configuration verbatim).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import types
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..atomic import atomic_file, check_writable
from ..config import IMAGENET_MEAN, IMAGENET_STD, DinoV2Config, SkipClickConfig
from ..convert.mapping import dinov2_entries, skipclick_entries
from ..convert.strict import flax_to_torch
from ..convert.torch_io import CheckpointError, require_torch
from .tensors import dinov2_shapes, skipclick_shapes, torch_sources

MODEL_CLASS = "isegm.model.is_featurevit_model.FeatureVitModel"
LOSS_MODULE = "isegm.model.modeling.transformer_helper.cross_entropy_loss"
HUB_NAMES = tuple(f"dinov2_vit{s}14{r}" for s in "sblg" for r in ("_reg", ""))
ORIGINAL_TAPS = (2, 5, 8, 11)  # DinoV2Extractor's fixed extraction_blocks
_pickle_lock = threading.Lock()


def _int_if_integral(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def extractor_type(config: SkipClickConfig) -> str:
    """The `extractor_type` to record for `config.encoder` (see the module docstring)."""
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
    specified: dict[str, Any] = dict(
        use_disks=True,
        norm_radius=_int_if_integral(config.click_radius),
        with_prev_mask=True,
        extractor_type=extractor_type(config),
        backbone_params=dict(
            img_size=(config.image_size, config.image_size),
            patch_size=(config.patch_size, config.patch_size),
            embed_dim=d,
            depth=config.fusion_depth,
            num_heads=config.fusion_heads,
            mlp_ratio=_int_if_integral(config.fusion_mlp_ratio),
            qkv_bias=True,
            primitive_stack=True,
        ),
        # serialize() deep-copies the arguments before FeatureVitModel adds neck_params['skip_connections'].
        neck_params=dict(in_dim=d, out_dims=list(config.neck_dims)),
        head_params=head_params,
        random_split=False,
        trained_extractor=config.train_encoder,
        use_intermediate=list(ORIGINAL_TAPS) if config.fuse_taps else [11],
    )
    if config.skip_connections:  # only the skip configs pass it
        specified["skip_connections"] = True
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
    from ..convert.skipclick_checkpoint import infer_config

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


@contextlib.contextmanager
def isegm_loss_placeholder() -> Iterator[type]:
    """`CrossEntropyLoss` importable under its isegm name while the block runs (pickling only).

    Uses the real class if isegm is already imported; otherwise installs placeholder modules and
    restores `sys.modules` afterwards, so no isegm module outlives the export.
    """
    torch = require_torch()
    real = sys.modules.get(LOSS_MODULE)
    if real is not None and hasattr(real, "CrossEntropyLoss"):
        yield real.CrossEntropyLoss
        return
    if real is not None:
        raise CheckpointError(f"a module {LOSS_MODULE} is imported but defines no CrossEntropyLoss")
    parts = LOSS_MODULE.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    with _pickle_lock:
        created = [name for name in names if name not in sys.modules]
        mods = {name: sys.modules.get(name) or types.ModuleType(name) for name in names}
        leaf = mods[LOSS_MODULE]

        def cross_entropy(*args: Any, **kwargs: Any) -> Any:  # pickled by reference only
            raise NotImplementedError("placeholder of isegm's cross_entropy")

        class CrossEntropyLoss(torch.nn.Module):
            """Placeholder with the attributes of the original's `CrossEntropyLoss()` (all defaults)."""

            def __init__(self) -> None:
                super().__init__()
                self.use_sigmoid = False
                self.use_mask = False
                self.reduction = "mean"
                self.loss_weight = 1.0
                self.class_weight = None
                self.cls_criterion = cross_entropy

        for obj, name in ((cross_entropy, "cross_entropy"), (CrossEntropyLoss, "CrossEntropyLoss")):
            obj.__module__, obj.__qualname__ = LOSS_MODULE, name
            setattr(leaf, name, obj)
        # Link each new module into its parent (an existing parent gets the attribute only for the duration).
        linked = []
        for parent, child in zip(names[:-1], names[1:], strict=True):
            attr = child.rsplit(".", 1)[1]
            if child in created:
                setattr(mods[parent], attr, mods[child])
                linked.append((mods[parent], attr))
        sys.modules.update({name: mods[name] for name in created})
        try:
            yield CrossEntropyLoss
        finally:
            for name in created:
                sys.modules.pop(name, None)
            for parent_module, attr in linked:
                if hasattr(parent_module, attr):
                    delattr(parent_module, attr)


def _to_torch_state(state: dict[str, np.ndarray]) -> OrderedDict:
    torch = require_torch()
    # from_numpy shares memory (no second copy); arrays straight from device_get are read-only, copy those.
    arrays = ((k, np.ascontiguousarray(v, np.float32)) for k, v in state.items())
    return OrderedDict((k, torch.from_numpy(a if a.flags.writeable else a.copy())) for k, a in arrays)


def save_original_pth(
    path: str | Path, config: SkipClickConfig, params: Any, *, overwrite: bool = False
) -> Path:
    """Write `params` as an original SkipClick checkpoint `{'state_dict', 'config'}` (atomically).

    `torch.save` needs the whole state dict at once, so this holds one host copy of the weights
    (gathered leaf by leaf); use the safetensors writer to stream instead.
    """
    check_writable(path, overwrite)  # before gathering anything
    entries = skipclick_entries(config)
    torch_sources(params, entries, skipclick_shapes(config))  # strict check before any work
    lost = unrecorded_fields(config)
    if lost:
        warnings.warn("the original config record cannot express this configuration exactly; the tensors are "
                      "exact, but load the file back with config= (or export safetensors, which stores the "
                      "configuration): " + "; ".join(lost), stacklevel=2)
    state = _to_torch_state(flax_to_torch(params, entries))
    torch = require_torch()
    with atomic_file(path, overwrite) as (_, f), isegm_loss_placeholder() as loss_cls:
        torch.save({"state_dict": state, "config": original_record(config, loss_decode=loss_cls())}, f)
    return Path(path)


def save_dinov2_pth(path: str | Path, config: DinoV2Config, params: Any, *, overwrite: bool = False) -> Path:
    """Write DINOv2 encoder parameters as a hub checkpoint (a plain state dict, like
    `dinov2_vitb14_reg4_pretrain.pth`), atomically."""
    check_writable(path, overwrite)
    entries = dinov2_entries(config)
    torch_sources(params, entries, dinov2_shapes(config))
    state = _to_torch_state(flax_to_torch(params, entries))
    with atomic_file(path, overwrite) as (_, f):
        require_torch().save(state, f)
    return Path(path)


def is_sharded(params: Any) -> bool:
    """Whether any leaf lives on more than one device (informational, for reports)."""
    return any(isinstance(x, jax.Array) and len(x.sharding.device_set) > 1 for x in jax.tree.leaves(params))
