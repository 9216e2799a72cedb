"""safetensors exports and imports: the full model in the original key names, the encoder in the DINOv2
hub or Hugging Face key names, and Hugging Face model directories (config.json + model.safetensors).

Metadata written (all values are strings; `format: pt` keeps the files loadable by transformers, which
checks that key):

    skipclick_jax          format tag: "skipclick-state-dict" | "dinov2-hub" | "dinov2-hf"
    skipclick_jax_version  "1"
    config                 SkipClickConfig / DinoV2Config as JSON (exact, unlike the original record)
    encoder_name           encoder files: the hub name of the encoder ("dinov2_vitb14_reg", …)
    hf_config              "dinov2-hf" files: the transformers config.json content

Files without our tags (e.g. a Hugging Face download, or safetensors saved from the original state dict)
are recognised by their key names; their configuration comes from a config.json, or is read off the shapes.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DinoV2Config, SkipClickConfig
from ..convert.mapping import dinov2_entries, skipclick_entries
from ..convert.strict import torch_to_flax
from ..convert.torch_io import CheckpointError
from . import hf_dinov2 as hf
from .safetensors_io import SafetensorsFile, write_safetensors
from .tensors import TensorSource, dinov2_shapes, skipclick_shapes, torch_sources

TAG, VERSION_KEY, VERSION = "skipclick_jax", "skipclick_jax_version", "1"
FULL_TAG, HUB_TAG, HF_TAG = "skipclick-state-dict", "dinov2-hub", "dinov2-hf"
_ENC = "feature_extractor.dinov2."


def _metadata(tag: str, config: Any, **extra: str) -> dict[str, str]:
    return {"format": "pt", TAG: tag, VERSION_KEY: VERSION, "config": json.dumps(dataclasses.asdict(config)),
            **extra}


# --- writers -----------------------------------------------------------------------------------------------
def save_skipclick_safetensors(
    path: str | Path, config: SkipClickConfig, params: Any, *, overwrite: bool = False
) -> Path:
    """The full model in the original state-dict key names and layouts, streamed tensor by tensor."""
    sources = torch_sources(params, skipclick_entries(config), skipclick_shapes(config))
    return write_safetensors(path, sources, _metadata(FULL_TAG, config), overwrite=overwrite)


def hf_sources(hub: list[TensorSource], config: DinoV2Config) -> list[TensorSource]:
    """HF-named sources over hub-named ones; q/k/v slice the fused qkv (kept for the three slices)."""
    by_name = {s.name: s for s in hub}
    recent: OrderedDict[str, np.ndarray] = OrderedDict()  # the qkv weight and bias of the current block

    def fetch(entry: hf.HfEntry) -> np.ndarray:
        if entry.hub_key not in recent:
            recent[entry.hub_key] = by_name[entry.hub_key].fetch()
            while len(recent) > 2:
                recent.popitem(last=False)
        return hf.qkv_part(recent[entry.hub_key], entry.part)

    return [TensorSource(e.hf_key, hf.hf_shape(by_name[e.hub_key].shape, e.part), lambda e=e: fetch(e))
            for e in hf.entries_for(config)]


def save_dinov2_safetensors(
    path: str | Path,
    config: DinoV2Config,
    params: Any,
    *,
    hf_names: bool = False,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """DINOv2 encoder parameters in the hub key names (`blocks.0.attn.qkv.weight`, …) or, with `hf_names`,
    the Hugging Face ones (`encoder.layer.0.attention.attention.query.weight`, …), streamed."""
    sources = torch_sources(params, dinov2_entries(config), dinov2_shapes(config))
    extra = {"encoder_name": name} if name else {}
    if hf_names:
        sources = hf_sources(sources, config)
        meta = _metadata(HF_TAG, config, hf_config=json.dumps(hf.hf_config(config)), **extra)
    else:
        meta = _metadata(HUB_TAG, config, **extra)
    return write_safetensors(path, sources, meta, overwrite=overwrite)


def save_hf_dinov2_dir(
    out_dir: str | Path, config: DinoV2Config, params: Any, *, name: str | None = None, overwrite: bool = False
) -> Path:
    """A Hugging Face model directory (`config.json` + `model.safetensors`), loadable with
    `Dinov2WithRegistersModel.from_pretrained(out_dir)` (or `Dinov2Model` without registers)."""
    from ..atomic import atomic_directory

    with atomic_directory(out_dir, overwrite) as tmp:
        save_dinov2_safetensors(tmp / "model.safetensors", config, params, hf_names=True, name=name)
        (tmp / "config.json").write_text(json.dumps(hf.hf_config(config), indent=2) + "\n")
    return Path(out_dir)


# --- readers -----------------------------------------------------------------------------------------------
def _config_json(meta: dict[str, str], path: Path) -> dict[str, Any] | None:
    if "config" not in meta:
        return None
    try:
        record = json.loads(meta["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: unreadable configuration in the metadata ({e})") from e
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: the configuration in the metadata is not a JSON object")
    return record


def file_kind(f: SafetensorsFile) -> str:
    """'skipclick', 'dinov2-hub' or 'dinov2-hf', from the tag or else from the key names."""
    tag = f.metadata.get(TAG)
    if tag is not None and tag not in (FULL_TAG, HUB_TAG, HF_TAG):
        raise CheckpointError(f"{f.path}: unknown skipclick_jax format tag {tag!r} (a newer version's file?)")
    names = set(f.names)
    if tag == FULL_TAG or any(n.startswith(_ENC) for n in names):
        return "skipclick"
    if tag == HF_TAG or hf.is_hf_layout(names):
        return "dinov2-hf"
    if tag == HUB_TAG or "cls_token" in names:
        return "dinov2-hub"
    sample = ", ".join(sorted(names)[:5])
    raise CheckpointError(f"{f.path}: neither a SkipClick nor a DINOv2 safetensors file (keys: {sample}, …)")


def read_skipclick_safetensors(
    path: str | Path, config: SkipClickConfig | None = None
) -> tuple[SkipClickConfig, dict[str, Any]]:
    """Full-model safetensors → (config, Flax params as numpy). Strict: every key, every shape.

    The configuration is `config`, else the one in the metadata, else inferred from the shapes (a file
    written from an original state dict by other tools).
    """
    from ..convert.skipclick_checkpoint import infer_config

    path = Path(path)
    f = SafetensorsFile(path)
    kind = file_kind(f)
    if kind != "skipclick":
        raise CheckpointError(f"{path}: holds a DINOv2 encoder only ({kind} names), not a SkipClick model; "
                              "load it with skipclick_jax.export.load_dinov2_weights")
    state = f.read_all()
    origin = "the configuration passed in"
    if config is None:
        record = _config_json(f.metadata, path)
        if record is not None:
            try:
                config = SkipClickConfig.from_dict(record)
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: invalid SkipClickConfig in the metadata ({e})") from e
            origin = "the configuration stored in the metadata"
        else:
            warnings.warn(f"{path}: no stored configuration; inferring it from the shapes", stacklevel=2)
            config = infer_config(state, None, path)
            origin = "the configuration inferred from the shapes"
    try:
        params = torch_to_flax(state, skipclick_entries(config), skipclick_shapes(config), path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}\n  ({origin} does not describe these tensors)") from e
    return config, params


def _encoder_config_from(meta: dict[str, str], path: Path) -> DinoV2Config | None:
    record = _config_json(meta, path)
    if record is None:
        return None
    try:
        return DinoV2Config(**record)
    except TypeError as e:
        raise CheckpointError(f"{path}: invalid DinoV2Config in the metadata ({e})") from e


def dinov2_from_state(
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
    from ..convert.skipclick_checkpoint import infer_encoder_config

    if layout == "dinov2-hf":
        state = hf.strip_prefix(state)
        if config is not None:
            entries = hf.entries_for(config)
            hub_shapes = {s.name: s.shape for s in torch_sources(dinov2_shapes(config), dinov2_entries(config),
                                                                 dinov2_shapes(config))}
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
        params = torch_to_flax(state, dinov2_entries(config), dinov2_shapes(config), path)
    except CheckpointError as e:
        if config_origin is None:
            raise
        raise CheckpointError(f"{e}\n  ({config_origin} does not describe these tensors)") from e
    return config, params


def read_dinov2_safetensors(
    path: str | Path, *, hf_config: dict[str, Any] | str | Path | None = None, name: str | None = None
) -> tuple[DinoV2Config, dict[str, Any]]:
    """Encoder safetensors in hub or HF names → (config, `DinoV2` params as numpy).

    Configuration: the DinoV2Config in our metadata; else `hf_config` (a config.json path or its dict);
    else, for a `model.safetensors` next to a `config.json`, that file; else read off the shapes.
    """
    path = Path(path)
    f = SafetensorsFile(path)
    layout = file_kind(f)
    if layout == "skipclick":
        raise CheckpointError(f"{path}: a full SkipClick model; load it with load_checkpoint (the encoder is "
                              "params['encoder'])")
    config, origin, record = _encoder_config_from(f.metadata, path), "the configuration stored in the metadata", None
    if hf_config is not None and layout != "dinov2-hf":
        raise CheckpointError(f"{path}: hub-named DINOv2 weights; a Hugging Face config does not apply to them")
    if layout == "dinov2-hf":
        if hf_config is None and config is None and (path.parent / "config.json").is_file():
            hf_config = path.parent / "config.json"
        if hf_config is not None:
            record, hf_origin = resolve_hf_config(hf_config)
            from_hf = hf.config_from_hf(record, hf_origin)
            if config is not None and not hf.same_architecture(config, from_hf):
                raise CheckpointError(f"{path}: {hf_origin} ({from_hf}) contradicts the configuration stored in "
                                      f"the file ({config})")
            config, origin = config or from_hf, origin if config is not None else hf_origin
    if config is None:
        origin = None
    name = name or f.metadata.get("encoder_name")
    return dinov2_from_state(f.read_all(), layout, path, config=config, config_origin=origin, hf_record=record,
                             name=name)


def resolve_hf_config(hf_config: dict[str, Any] | str | Path) -> tuple[dict[str, Any], str]:
    """(config.json content, where it came from) for a path or an already-read dict."""
    if isinstance(hf_config, dict):
        return hf_config, "the Hugging Face config passed in"
    return hf.read_hf_config(hf_config), str(hf_config)


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
    return dinov2_from_state(state, "dinov2-hf", directory, config=config,
                             config_origin=str(directory / "config.json"), hf_record=record)
