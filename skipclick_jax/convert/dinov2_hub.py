"""DINOv2 torch.hub checkpoints (`dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth`) → encoder parameters."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from ..config import DinoV2Config
from ..model.dinov2 import DinoV2
from .mapping import dinov2_entries
from .strict import torch_to_flax
from .torch_io import CheckpointError, read_pth, state_dict_of


def hub_name_from_filename(path: str | Path) -> str | None:
    """`dinov2_vitb14_reg4_pretrain.pth` → `dinov2_vitb14_reg`; None if the name is not a hub file name."""
    m = re.match(r"(dinov2_vit[sblg]14)(_reg4?)?(_pretrain)?\.pth$", Path(path).name)
    if not m:
        return None
    return m.group(1) + ("_reg" if m.group(2) else "")


def dinov2_param_shapes(config: DinoV2Config) -> dict:
    s = 2 * config.patch_size
    module = DinoV2(config)
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, s, s, 3)), (0,)))["params"]


def read_dinov2_pth(path: str | Path, name: str | None = None) -> tuple[DinoV2Config, dict[str, Any]]:
    """Read a DINOv2 hub checkpoint: (encoder config, `DinoV2` params as numpy arrays).

    The hyper-parameters come from `name` (e.g. `dinov2_vitb14_reg`), else from the file name, and are
    checked against the tensor shapes; a renamed file of unknown size is read off the shapes.
    """
    from .skipclick_checkpoint import infer_encoder_config

    state, _ = state_dict_of(read_pth(path), path)
    if any(k.startswith("feature_extractor.") for k in state):
        raise CheckpointError(f"{path}: this is a SkipClick checkpoint, not a DINOv2 hub checkpoint")
    config = infer_encoder_config(state, "", name or hub_name_from_filename(path), Path(path))
    params = torch_to_flax(state, dinov2_entries(config), dinov2_param_shapes(config), path)
    return config, params
