"""Hugging Face model directories of the DINOv2 encoder: `config.json` + `model.safetensors` (or shards
listed in `model.safetensors.index.json`), read and written. The key names are those of `tables.dinov2_hf`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_directory
from ..config import DinoV2Config
from .encoders import encoder_from_state
from .errors import CheckpointError
from .safetensors import SafetensorsFile, save_dinov2_safetensors
from .tables import dinov2_hf as hf


def save_hf_dinov2_dir(
    out_dir: str | Path, config: DinoV2Config, params: Any, *, name: str | None = None, overwrite: bool = False
) -> Path:
    """A Hugging Face model directory (`config.json` + `model.safetensors`), loadable with
    `Dinov2WithRegistersModel.from_pretrained(out_dir)` (or `Dinov2Model` without registers)."""
    with atomic_directory(out_dir, overwrite) as tmp:
        save_dinov2_safetensors(tmp / "model.safetensors", config, params, hf_names=True, name=name)
        (tmp / "config.json").write_text(json.dumps(hf.hf_config(config), indent=2) + "\n")
    return Path(out_dir)


def read_hf_state(directory: Path) -> dict[str, np.ndarray]:
    """The tensors of a Hugging Face model directory: `model.safetensors`, or shards listed in
    `model.safetensors.index.json`."""
    single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
    if single.is_file():
        return SafetensorsFile(single).read_all()
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: unreadable shard index ({e})") from e
        state: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            f = SafetensorsFile(directory / shard)
            state.update((k, f.read(k)) for k in f.names)
        missing = sorted(set(weight_map) - set(state))
        if missing:
            raise CheckpointError(f"{index}: tensors listed but absent from the shards: {missing[:10]}")
        return state
    found = ", ".join(sorted(p.name for p in directory.iterdir())[:10])
    raise CheckpointError(f"{directory}: no model.safetensors (or shard index) in this Hugging Face directory "
                          f"(found: {found}); only safetensors weights are read")


def read_hf_dinov2_dir(directory: str | Path) -> tuple[DinoV2Config, dict[str, Any]]:
    """A Hugging Face DINOv2 download (`config.json` + `model.safetensors`) → (config, `DinoV2` params)."""
    directory = Path(directory)
    record = hf.read_hf_config(directory / "config.json")
    config = hf.config_from_hf(record, str(directory / "config.json"))
    state = read_hf_state(directory)
    return encoder_from_state(state, "dinov2-hf", directory, config=config,
                              config_origin=str(directory / "config.json"), hf_record=record)
