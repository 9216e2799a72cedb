"""Hugging Face model directories of an encoder (DINOv2 or DINOv3): `config.json` + `model.safetensors` (or
shards listed in `model.safetensors.index.json`), read and written. Key names: `tables.dinov2_hf`,
`tables.dinov3_hf`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_directory
from ..config import Encoder
from .encoders import encoder_from_state, hf_module, hf_module_of_record, read_hf_config
from .errors import CheckpointError
from .safetensors import SafetensorsFile, save_encoder_safetensors


def save_hf_dir(
    out_dir: str | Path, config: Encoder, params: Any, *, name: str | None = None, overwrite: bool = False
) -> Path:
    """A Hugging Face model directory (`config.json` + `model.safetensors`), loadable with
    `Dinov2WithRegistersModel` / `Dinov2Model` / `DINOv3ViTModel.from_pretrained(out_dir)`."""
    with atomic_directory(out_dir, overwrite) as tmp:
        save_encoder_safetensors(tmp / "model.safetensors", config, params, hf_names=True, name=name)
        (tmp / "config.json").write_text(json.dumps(hf_module(config).hf_config(config), indent=2) + "\n")
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


def read_hf_dir(directory: str | Path) -> tuple[Encoder, dict[str, Any]]:
    """A Hugging Face DINOv2 / DINOv3 download (`config.json` + `model.safetensors`) → (config, params)."""
    directory = Path(directory)
    source = str(directory / "config.json")
    record = read_hf_config(source)
    config = hf_module_of_record(record, source).config_from_hf(record, source)
    state = read_hf_state(directory)
    return encoder_from_state(state, "hf", directory, config=config, config_origin=source, hf_record=record)
