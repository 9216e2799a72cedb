"""Encoder weights (DINOv2 or DINOv3) in the hub or Hugging Face key names → (config, encoder params), strictly.

Shared by every reader of encoder weights (hub `.pth`, safetensors, Hugging Face directories and files).
The Hugging Face family of a file is told by its key names or its config.json `model_type`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DinoV3Config, Encoder
from .errors import CheckpointError
from .mapping import encoder_params
from .records import infer_encoder
from .tables import dinov2_hf, dinov3_hf

HF_FAMILIES = {"dinov2": dinov2_hf, "dinov3": dinov3_hf}


def hf_family_of_keys(names: Any) -> str | None:
    """'dinov3' or 'dinov2' when `names` are Hugging Face encoder keys, else None."""
    names = set(names)
    for family in ("dinov3", "dinov2"):  # DINOv3 first: its key names are the more specific
        if HF_FAMILIES[family].is_hf_layout(names):
            return family
    return None


def hf_module(family_or_config: str | Encoder) -> Any:
    """The Hugging Face key table module of an encoder family or configuration."""
    if isinstance(family_or_config, str):
        return HF_FAMILIES[family_or_config]
    return dinov3_hf if isinstance(family_or_config, DinoV3Config) else dinov2_hf


def hf_module_of_record(record: dict[str, Any], source: str) -> Any:
    """The Hugging Face key table module for a config.json (by its `model_type`)."""
    for module in HF_FAMILIES.values():
        if record.get("model_type") in module.MODEL_TYPES:
            return module
    known = [t for m in HF_FAMILIES.values() for t in m.MODEL_TYPES]
    raise CheckpointError(f"{source}: model_type {record.get('model_type')!r} is not a DINOv2 model or a DINOv3 "
                          f"ViT (expected one of {', '.join(known)})")


def encoder_from_state(
    state: dict[str, np.ndarray],
    layout: str,
    path: Path,
    *,
    config: Encoder | None = None,
    config_origin: str | None = None,
    hf_record: dict[str, Any] | None = None,
    name: str | None = None,
) -> tuple[Encoder, dict[str, Any]]:
    """Hub- or HF-named encoder tensors (`layout` "hub" or "hf") → (config, encoder params as numpy), strictly.

    `config` (from our metadata or a config.json, described by `config_origin`) is checked against every
    shape; without one, the hyper-parameters are read off the shapes (hub name `name` if given).
    """
    if layout == "hf":
        family = hf_family_of_keys(state)
        if family is None:
            raise CheckpointError(f"{path}: not a Hugging Face DINOv2 / DINOv3 layout")
        state = hf_module(family).hub_state_from_hf(state, path, config=config, config_origin=config_origin,
                                                    hf_record=hf_record)
    if config is None:
        config = infer_encoder(state, "", name, path)
    try:
        params = encoder_params(state, config, path)
    except CheckpointError as e:
        if config_origin is None:
            raise
        raise CheckpointError(f"{e}\n  ({config_origin} does not describe these tensors)") from e
    return config, params


def read_hf_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the Hugging Face config ({e})") from e
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: not a Hugging Face config (a JSON object was expected)")
    return record


def resolve_hf_config(hf_config: dict[str, Any] | str | Path) -> tuple[dict[str, Any], str]:
    """(config.json content, where it came from) for a path or an already-read dict."""
    if isinstance(hf_config, dict):
        return hf_config, "the Hugging Face config passed in"
    return read_hf_config(hf_config), str(hf_config)
