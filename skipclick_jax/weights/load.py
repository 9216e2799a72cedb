"""One entry point for weights: recognise a source and load it.

| source                                                   | kind      | reader                     |
|----------------------------------------------------------|-----------|----------------------------|
| directory written by `skipclick convert` / training       | skipclick | `orbax.read_params`        |
| directory written by `save_encoder`                       | encoder   | `orbax.read_encoder`       |
| Hugging Face directory (config.json + model.safetensors)  | encoder   | `hf_dir.read_hf_dir`       |
| original SkipClick `.pth` (`{'state_dict', 'config'}`)    | skipclick | `pth.read_skipclick_pth`   |
| DINOv2 / DINOv3 hub `.pth` (`dinov2_vitb14_reg4_pretrain.pth`, …) | encoder | `pth.read_encoder_pth` |
| transformers `pytorch_model.bin` (HF names)               | encoder   | `encoders.encoder_from_state` |
| `.safetensors`: original key names / hub / HF names       | either    | `safetensors.read_*`       |

Encoders are DINOv2 or DINOv3 (`DinoV2Config` / `DinoV3Config`), told apart by their keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp

from ..config import Encoder, SkipClickConfig
from . import orbax
from .encoders import encoder_from_state, hf_family_of_keys, hf_module_of_record, resolve_hf_config
from .errors import CheckpointError
from .hf_dir import read_hf_dir
from .pth import encoder_from_hub_state, read_pth, read_skipclick_pth, skipclick_from_state, state_dict_of
from .safetensors import SafetensorsFile, file_kind, read_encoder_safetensors, read_skipclick_safetensors
from .tables.skipclick import encoder_prefix

PTH_SUFFIXES = (".pth", ".pt", ".bin")


@dataclass(frozen=True)
class Weights:
    """Loaded parameters: a full SkipClick model or a DINOv2 encoder."""

    kind: Literal["skipclick", "dinov2", "dinov3"]  # a full model, or an encoder of that family
    config: SkipClickConfig | Encoder
    params: Any
    encoder_name: str | None = None

    def encoder(self) -> Weights:
        """The encoder part (itself for an encoder)."""
        if self.kind != "skipclick":
            return self
        assert isinstance(self.config, SkipClickConfig)
        return Weights(self.config.encoder.family, self.config.encoder, self.params["encoder"],
                       self.config.encoder_name)


def _pth(path: Path, hf_config: Any, encoder_name: str | None) -> Weights:
    state, stored = state_dict_of(read_pth(path), path)
    if encoder_prefix(state) is not None:
        config, params = skipclick_from_state(state, stored, path)
        return Weights("skipclick", config, params)
    if hf_family_of_keys(state) is not None:  # e.g. a transformers pytorch_model.bin
        record, origin = None, None
        if hf_config is None and (path.parent / "config.json").is_file():
            hf_config = path.parent / "config.json"
        if hf_config is not None:
            record, origin = resolve_hf_config(hf_config)
        config = hf_module_of_record(record, origin).config_from_hf(record, origin) if record is not None else None
        config, params = encoder_from_state(state, "hf", path, config=config, config_origin=origin,
                                            hf_record=record, name=encoder_name)
        return Weights(config.family, config, params, encoder_name)
    if "cls_token" in state:
        config, params = encoder_from_hub_state(state, path, encoder_name)
        return Weights(config.family, config, params, encoder_name)
    sample = ", ".join(list(state)[:5])
    raise CheckpointError(f"{path}: neither a SkipClick nor an encoder checkpoint (keys: {sample}, …)")


def _directory(path: Path) -> Weights:
    record = orbax.read_record(path)
    if record is None:
        raise CheckpointError(f"{path}: not a checkpoint directory (no config.json)")
    fmt = record.get("format")
    if fmt == orbax.FORMAT:
        config, params = orbax.read_params(path)
        return Weights("skipclick", config, params)
    if fmt == orbax.ENCODER_FORMAT:
        config, params = orbax.read_encoder(path)
        return Weights(config.family, config, params, record.get("encoder_name"))
    if "model_type" in record:
        config, params = read_hf_dir(path)
        return Weights(config.family, config, params)
    raise CheckpointError(f"{path / 'config.json'}: unknown directory format {fmt!r} (expected a skipclick-jax "
                          "checkpoint, a skipclick-jax encoder or a Hugging Face DINOv2 / DINOv3 model)")


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
        f = SafetensorsFile(path)
        if file_kind(f) == "skipclick":
            config, params = read_skipclick_safetensors(path)
            weights = Weights("skipclick", config, params)
        else:
            name = encoder_name or f.metadata.get("encoder_name")
            config, params = read_encoder_safetensors(path, hf_config=hf_config, name=name)
            weights = Weights(config.family, config, params, name)
    elif path.suffix in PTH_SUFFIXES:
        weights = _pth(path, hf_config, encoder_name)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint format {path.suffix!r}; expected a directory, "
                              f"{', '.join(PTH_SUFFIXES)} or .safetensors")
    return Weights(weights.kind, weights.config, jax.tree.map(jnp.asarray, weights.params), weights.encoder_name)


def load_encoder(
    path: str | Path, name: str | None = None, *, hf_config: dict[str, Any] | str | Path | None = None
) -> tuple[Encoder, Any]:
    """Encoder weights (DINOv2 or DINOv3) from any download or checkpoint → `(config, params)`, e.g. to train
    from.

    Accepts a hub `.pth` (`dinov2_vitb14_reg4_pretrain.pth`, `dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth`, …),
    hub- or Hugging-Face-named `.safetensors`, a Hugging Face model directory, a `save_encoder` directory, or a
    full SkipClick checkpoint (its encoder). `name` is the hub name (e.g. `dinov2_vitb14_reg`) when the file
    name does not say it.
    """
    weights = load_weights(path, hf_config=hf_config, encoder_name=name).encoder()
    return weights.config, weights.params


def load_checkpoint(
    path: str | Path, *, config: SkipClickConfig | None = None, dtype: Any = jnp.float32
) -> tuple[Any, Any]:
    """Load SkipClick weights: an original `.pth`, a `.safetensors` in the original key names (`skipclick
    export`), or a directory written by `skipclick convert` / training.

    Returns `(model, params)`; use them as `model.apply({'params': params}, image, prev_mask, points)`.
    `config` overrides the stored configuration (the weights must match it); `dtype` is the compute dtype of
    the returned module (parameters stay float32).
    """
    from ..model.skipclick import SkipClick

    path = Path(path)
    if path.is_dir():
        config, params = orbax.read_params(path, config)
    elif not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    elif path.suffix == ".safetensors":
        config, params = read_skipclick_safetensors(path, config)
    else:
        config, params = read_skipclick_pth(path, config)
    return SkipClick(config, dtype=dtype), jax.tree.map(jnp.asarray, params)
