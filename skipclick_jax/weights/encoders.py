"""DINOv2 encoder weights in the hub or Hugging Face key names → (`DinoV2Config`, `DinoV2` params), strictly.

Shared by every reader of encoder weights (hub `.pth`, safetensors, Hugging Face directories and files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import DinoV2Config
from .errors import CheckpointError
from .mapping import dinov2_params, dinov2_shapes, torch_sources
from .records import infer_encoder_config
from .tables import dinov2_hf as hf
from .tables.dinov2 import dinov2_entries


def encoder_from_state(
    state: dict[str, np.ndarray],
    layout: str,
    path: Path,
    *,
    config: DinoV2Config | None = None,
    config_origin: str | None = None,
    hf_record: dict[str, Any] | None = None,
    name: str | None = None,
) -> tuple[DinoV2Config, dict[str, Any]]:
    """Hub- or HF-named encoder tensors → (config, `DinoV2` params as numpy), strictly.

    `config` (from our metadata or a config.json, described by `config_origin`) is checked against every
    shape; without one, the hyper-parameters are read off the shapes (hub name `name` if given).
    """
    if layout == "dinov2-hf":
        state = hf.strip_prefix(state)
        if config is not None:
            entries = hf.entries_for(config)
            shapes = dinov2_shapes(config)
            hub_shapes = {s.name: s.shape for s in torch_sources(shapes, dinov2_entries(config), shapes)}
        else:
            entries, hub_shapes = hf.hf_entries(*hf.layout_from_keys(state)), None
        mask_dim = None
        if hf_record is not None and not hf_record.get("use_mask_token", True) and config is not None:
            mask_dim = config.embed_dim
        state = hf.hf_to_hub(state, entries, path, expected_hub_shapes=hub_shapes, config_source=config_origin,
                             mask_token_dim=mask_dim)
    if config is None:
        config = infer_encoder_config(state, "", name, path)
    try:
        params = dinov2_params(state, config, path)
    except CheckpointError as e:
        if config_origin is None:
            raise
        raise CheckpointError(f"{e}\n  ({config_origin} does not describe these tensors)") from e
    return config, params
