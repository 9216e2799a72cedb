"""Loading weights from any supported source, for export and for users of HF / safetensors downloads.

| source                                                  | kind      |
|---------------------------------------------------------|-----------|
| directory written by `skipclick convert` / training      | skipclick |
| directory written by `save_encoder`                      | dinov2    |
| Hugging Face directory (config.json + model.safetensors) | dinov2    |
| original SkipClick `.pth` (`{'state_dict', 'config'}`)   | skipclick |
| DINOv2 hub `.pth` (`dinov2_vitb14_reg4_pretrain.pth`)    | dinov2    |
| `.safetensors`: original key names / hub / HF names      | either    |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp

from ..config import DinoV2Config, SkipClickConfig
from ..convert.torch_io import CheckpointError
from . import formats
from . import hf_dinov2 as hf
from .safetensors_io import SafetensorsFile

PTH_SUFFIXES = (".pth", ".pt", ".bin")


@dataclass(frozen=True)
class Weights:
    """Loaded parameters: a full SkipClick model or a DINOv2 encoder."""

    kind: Literal["skipclick", "dinov2"]
    config: SkipClickConfig | DinoV2Config
    params: Any
    encoder_name: str | None = None

    def encoder(self) -> Weights:
        """The DINOv2 encoder part (itself for an encoder)."""
        if self.kind == "dinov2":
            return self
        assert isinstance(self.config, SkipClickConfig)
        return Weights("dinov2", self.config.encoder, self.params["encoder"], self.config.encoder_name)


def _pth(path: Path, hf_config: Any, encoder_name: str | None) -> Weights:
    from ..convert.dinov2_hub import hub_name_from_filename
    from ..convert.mapping import skipclick_entries
    from ..convert.skipclick_checkpoint import _ENC, infer_config, infer_encoder_config
    from ..convert.strict import torch_to_flax
    from ..convert.torch_io import read_pth, state_dict_of
    from .tensors import dinov2_shapes, skipclick_shapes

    state, stored = state_dict_of(read_pth(path), path)
    if any(k.startswith(_ENC) for k in state):
        config = infer_config(state, stored, path)
        # = convert.skipclick_checkpoint.params_from_state, with the parameter shapes cached
        params = torch_to_flax(state, skipclick_entries(config), skipclick_shapes(config), path)
        return Weights("skipclick", config, params)
    if hf.is_hf_layout(state):  # e.g. a transformers pytorch_model.bin
        record, origin = None, None
        if hf_config is None and (path.parent / "config.json").is_file():
            hf_config = path.parent / "config.json"
        if hf_config is not None:
            record, origin = formats.resolve_hf_config(hf_config)
        config = hf.config_from_hf(record, str(origin)) if record is not None else None
        config, params = formats.dinov2_from_state(state, "dinov2-hf", path, config=config, config_origin=origin,
                                                   hf_record=record, name=encoder_name)
        return Weights("dinov2", config, params, encoder_name)
    if "cls_token" in state and "pos_embed" in state:
        name = encoder_name or hub_name_from_filename(path)
        config = infer_encoder_config(state, "", name, path)
        params = torch_to_flax(state, formats.dinov2_entries(config), dinov2_shapes(config), path)
        return Weights("dinov2", config, params, name)
    sample = ", ".join(list(state)[:5])
    raise CheckpointError(f"{path}: neither a SkipClick nor a DINOv2 checkpoint (keys: {sample}, …)")


def _directory(path: Path) -> Weights:
    from ..checkpoint import ENCODER_FORMAT, FORMAT, load_checkpoint, load_encoder

    record_path = path / "config.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a checkpoint directory (cannot read config.json: {e})") from e
    fmt = record.get("format") if isinstance(record, dict) else None
    if fmt == FORMAT:
        model, params = load_checkpoint(path)
        return Weights("skipclick", model.config, params)
    if fmt == ENCODER_FORMAT:
        config, params = load_encoder(path)
        return Weights("dinov2", config, params, record.get("encoder_name"))
    if isinstance(record, dict) and "model_type" in record:
        config, params = formats.read_hf_dinov2_dir(path)
        return Weights("dinov2", config, params)
    raise CheckpointError(f"{record_path}: unknown directory format {fmt!r} (expected a skipclick-jax checkpoint, "
                          "a skipclick-jax encoder or a Hugging Face DINOv2 model)")


def load_weights(
    path: str | Path,
    *,
    hf_config: dict[str, Any] | str | Path | None = None,
    encoder_name: str | None = None,
) -> Weights:
    """Load any supported checkpoint (table in the module docstring); parameters come back as jax arrays.

    `hf_config`: transformers config.json (path or dict) for HF-named weights without one beside them.
    `encoder_name`: DINOv2 hub name for hub weights whose file name does not say it.
    """
    path = Path(path)
    if path.is_dir():
        weights = _directory(path)
    elif not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    elif path.suffix == ".safetensors":
        kind = formats.file_kind(SafetensorsFile(path))
        if kind == "skipclick":
            config, params = formats.read_skipclick_safetensors(path)
            weights = Weights("skipclick", config, params)
        else:
            name = encoder_name or SafetensorsFile(path).metadata.get("encoder_name")
            config, params = formats.read_dinov2_safetensors(path, hf_config=hf_config, name=name)
            weights = Weights("dinov2", config, params, name)
    elif path.suffix in PTH_SUFFIXES:
        weights = _pth(path, hf_config, encoder_name)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint format {path.suffix!r}; expected a directory, "
                              f"{', '.join(PTH_SUFFIXES)} or .safetensors")
    return Weights(weights.kind, weights.config, jax.tree.map(jnp.asarray, weights.params), weights.encoder_name)


def load_dinov2_weights(
    path: str | Path, *, hf_config: dict[str, Any] | str | Path | None = None, name: str | None = None
) -> tuple[DinoV2Config, Any]:
    """DINOv2 encoder weights from any source (hub `.pth`, hub/HF safetensors, HF directory, encoder dir, or
    the encoder of a full SkipClick checkpoint) → `(DinoV2Config, params)`, e.g. to start training."""
    weights = load_weights(path, hf_config=hf_config, encoder_name=name).encoder()
    assert isinstance(weights.config, DinoV2Config)
    return weights.config, weights.params
