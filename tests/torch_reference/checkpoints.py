"""Writers (and a stub reader) for checkpoints in the exact layouts of the original code bases.

``save_original_checkpoint`` reproduces an isegm training checkpoint: a full pickle whose config holds a
``CrossEntropyLoss`` *instance* of the isegm package, so (like the real files) it cannot be loaded without
``isegm`` or a stub unpickler. isegm is not installed here: while saving, throw-away modules of the same names
are put into ``sys.modules`` so that pickle records the references, and removed again afterwards.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections import OrderedDict

import torch
from torch import nn

from .dinov2 import ReferenceDinoV2, dinov2_kwargs
from .dinov3 import ReferenceDinoV3, dinov3_kwargs
from .skipclick import IMAGENET_MEAN, IMAGENET_STD, ReferenceSkipClick

MODEL_CLASS = "isegm.model.is_featurevit_model.FeatureVitModel"
LOSS_MODULE = "isegm.model.modeling.transformer_helper.cross_entropy_loss"

# The DINOv3 config passes cfg.DINOV3_PATHS.{REPO, VIT_B_WEIGHTS}: absolute paths on the author's machine, recorded
# verbatim in the checkpoint. These stand-ins have the same form (override them via ``save_original_checkpoint``).
DINOV3_REPO_PATH = "/home/skipclick/repos/dinov3"
DINOV3_WEIGHT_FILES = {  # hub weight file names (LVD-1689M)
    "dinov3_vits16": "dinov3_vits16_pretrain_lvd1689m-08c60483.pth",
    "dinov3_vits16plus": "dinov3_vits16plus_pretrain_lvd1689m-4057cbaa.pth",
    "dinov3_vitb16": "dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth",
    "dinov3_vitl16": "dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth",
    "dinov3_vitl16plus": "dinov3_vitl16plus_pretrain_lvd1689m-46503df0.pth",
    "dinov3_vith16plus": "dinov3_vith16plus_pretrain_lvd1689m-7c1da9a5.pth",
    "dinov3_vit7b16": "dinov3_vit7b16_pretrain_lvd1689m-a955f4ea.pth",
}


@contextlib.contextmanager
def _fake_isegm_loss_module():
    """Temporarily importable ``isegm...cross_entropy_loss`` with ``CrossEntropyLoss``, ``cross_entropy``."""
    parts = LOSS_MODULE.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    saved = {name: sys.modules.get(name) for name in names}
    mods = {name: types.ModuleType(name) for name in names}
    for parent, child in zip(names[:-1], names[1:], strict=True):
        setattr(mods[parent], child.rsplit(".", 1)[1], mods[child])
    leaf = mods[LOSS_MODULE]

    def cross_entropy(*args, **kwargs):  # only pickled by reference, never called
        raise NotImplementedError

    class CrossEntropyLoss(nn.Module):
        # Same attributes as the mmseg-derived original with its default arguments.
        def __init__(self):
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
    sys.modules.update(mods)
    try:
        yield leaf
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _extractor_type(backbone: ReferenceDinoV2 | ReferenceDinoV3) -> str:
    """Hub name matching the backbone's hyper-parameters; the released config's name for non-hub backbones."""
    if isinstance(backbone, ReferenceDinoV3):
        for name in DINOV3_WEIGHT_FILES:
            if dinov3_kwargs(name) == backbone.hparams:
                return name
        return "dinov3_vitb16"
    for arch in ("vits14", "vitb14", "vitl14", "vitg14"):
        for name in (f"dinov2_{arch}_reg", f"dinov2_{arch}"):
            if dinov2_kwargs(name) == backbone.hparams:
                return name
    return "dinov2_vitb14_reg"


def _backbone(model: ReferenceSkipClick) -> ReferenceDinoV2 | ReferenceDinoV3:
    extractor = model.feature_extractor
    return extractor.dinov3 if model.config["backbone"] == "dinov3" else extractor.dinov2


def original_config(model: ReferenceSkipClick, loss_decode=None, **overrides) -> dict:
    """``serialize``-style config of ``model``: specified params in the released config's order, then defaults.

    DINOv3 models (config ``featurevit_dinov3_...``) also specify ``backbone_repo_path`` and
    ``backbone_weight_path`` (path strings, :data:`DINOV3_REPO_PATH` and the hub weight file under it unless
    overridden); conv-stack models (``featureconv_...``) specify ``use_conv_stack=True`` and record only
    img_size, patch_size, embed_dim and depth as ``backbone_params``.
    ``overrides`` replace values (keeping the specified flag) or add specified params.
    """
    c = model.config
    extractor_type = _extractor_type(_backbone(model))
    dinov3 = c["backbone"] == "dinov3"
    backbone_params = dict(
        img_size=tuple(c["img_size"]),
        patch_size=(c["patch_size"], c["patch_size"]),
        embed_dim=c["embed_dim"],
        depth=c["fusion_depth"],
    )
    if not c["use_conv_stack"]:
        backbone_params.update(
            num_heads=c["fusion_heads"],
            mlp_ratio=c["fusion_mlp_ratio"],
            qkv_bias=True,
            primitive_stack=True,
        )
    head_params = dict(
        in_channels=list(c["neck_out_dims"]),
        in_index=list(range(len(c["neck_out_dims"]))),
        dropout_ratio=c["dropout_ratio"],
        num_classes=c["num_classes"],
        loss_decode=loss_decode,
        align_corners=False,
        upsample=c["upsample"],
        channels=c["head_channels"],
    )
    specified = dict(
        use_disks=True,
        norm_radius=c["norm_radius"],
        with_prev_mask=True,
        extractor_type=extractor_type,
        backbone_params=backbone_params,
        # serialize() deep-copies the kwargs before FeatureVitModel injects neck_params['skip_connections'].
        neck_params=dict(in_dim=c["embed_dim"], out_dims=list(c["neck_out_dims"])),
        head_params=head_params,
        random_split=False,
        trained_extractor=False,
        use_intermediate=list(c["use_intermediate"]),
        skip_connections=c["skip_connections"],
    )
    if dinov3:  # the DINOv3 config passes the two paths right after backbone_params
        weight_file = DINOV3_WEIGHT_FILES.get(extractor_type, DINOV3_WEIGHT_FILES["dinov3_vitb16"])
        position = list(specified).index("backbone_params") + 1
        items = list(specified.items())
        items[position:position] = [
            ("backbone_repo_path", DINOV3_REPO_PATH),
            ("backbone_weight_path", f"{DINOV3_REPO_PATH}/weights/{weight_file}"),
        ]
        specified = dict(items)
    if c["use_conv_stack"]:
        specified["use_conv_stack"] = True
    # Unspecified defaults, in get_default_params order (FeatureVitModel, then ISModel).
    defaults = dict(
        backbone_weight_path=None,
        backbone_repo_path=None,
        use_conv_stack=False,
        with_aux_output=False,
        cpu_dist_maps=False,
        use_rgb_conv=False,
        use_leaky_relu=False,
        norm_mean_std=(list(IMAGENET_MEAN), list(IMAGENET_STD)),
    )
    params = {k: {"type": "builtin", "value": v, "specified": True} for k, v in specified.items()}
    params.update(
        {k: {"type": "builtin", "value": v, "specified": False} for k, v in defaults.items() if k not in specified}
    )
    for k, v in overrides.items():
        params.setdefault(k, {"type": "builtin", "value": None, "specified": True})["value"] = v
    return {"class": MODEL_CLASS, "params": params}


def _float32_state_dict(module: nn.Module) -> OrderedDict:
    return OrderedDict((k, v.detach().to(torch.float32).clone()) for k, v in module.state_dict().items())


def save_original_checkpoint(model: ReferenceSkipClick, path, **config_overrides) -> dict:
    """Write ``{'state_dict', 'config'}`` exactly like an isegm SkipClick checkpoint; returns what was saved.

    The state dict includes the persistent buffers (DINOv3: ``rope_embed.periods``, ``attn.qkv.bias_mask``),
    all float32. ``config_overrides`` go to :func:`original_config`.

    The config's ``head_params['loss_decode']`` is a pickled instance of
    ``isegm.model.modeling.transformer_helper.cross_entropy_loss.CrossEntropyLoss``; loading the file
    therefore needs ``isegm`` or a stub unpickler (see :func:`load_original_checkpoint`).
    """
    with _fake_isegm_loss_module() as loss_mod:
        config = original_config(model, loss_decode=loss_mod.CrossEntropyLoss(), **config_overrides)
        ckpt = {"state_dict": _float32_state_dict(model), "config": config}
        torch.save(ckpt, path)
    return ckpt


def save_dinov2_hub_checkpoint(dinov2_model: ReferenceDinoV2, path) -> None:
    """Write a plain state dict like the hub's ``dinov2_vit*14[_reg4]_pretrain.pth`` files."""
    torch.save(_float32_state_dict(dinov2_model), path)


def save_dinov3_hub_checkpoint(dinov3_model: ReferenceDinoV3, path) -> None:
    """Write a plain state dict like ``dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth`` (float32 tensors, incl. the
    ``rope_embed.periods`` and ``bias_mask`` buffers; ``torch.load(..., weights_only=True)`` reads it)."""
    torch.save(_float32_state_dict(dinov3_model), path)


class IsegmStub:
    """Placeholder for any isegm class or function met while unpickling; keeps the pickled state."""

    stub_of = None

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "isegm" or module.startswith("isegm."):
            return type(name, (IsegmStub,), {"stub_of": f"{module}.{name}"})
        return super().find_class(module, name)


# torch.load wants a pickle-like module; it subclasses our Unpickler, so find_class above still applies.
stub_pickle_module = types.SimpleNamespace(Unpickler=_StubUnpickler, load=pickle.load, __name__="stub_pickle")


def load_original_checkpoint(path) -> dict:
    """Load an isegm checkpoint without isegm: its classes/functions become :class:`IsegmStub` subclasses."""
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=stub_pickle_module)
