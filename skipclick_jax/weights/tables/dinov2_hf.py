"""Hugging Face `Dinov2WithRegistersModel` / `Dinov2Model` key names ↔ the DINOv2 hub layout.

A second, small table for the encoder only; the hub layout ↔ Flax step is `tables.dinov2`. Names
follow transformers' `convert_dinov2_with_registers_to_hf.py` / `convert_dinov2_to_hf.py` (`create_rename_keys`,
`read_in_q_k_v`, the SwiGLU `w12`/`w3` → `weights_in`/`weights_out` rename) and the module tree of
`modeling_dinov2_with_registers.py` / `modeling_dinov2.py`. Every transform is exact: renames, and the hub's
fused `attn.qkv` (rows [q; k; v]) split into / concatenated from `attention.attention.{query,key,value}`.

Position-embedding interpolation. The weights are the same, but the runtime resize differs between
implementations: HF `Dinov2WithRegistersModel` resizes like the hub `_reg` models (antialiased bicubic
to the exact size), while HF `Dinov2Model` (no registers) uses plain bicubic to the exact size where the hub
uses the scale factor (g + 0.1) / M. `config_from_hf` always returns the *hub* semantics
(registers: antialias, offset 0; no registers: no antialias, offset 0.1), because SkipClick was trained
with hub encoders; exact-size grids (the native 37×37 at 518 px) are unaffected either way.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...config import DinoV2Config
from ..errors import CheckpointError
from ..mapping import TensorSource

# Prefixes of HF checkpoints that wrap the base model (…ForImageClassification); the base model has none.
HF_PREFIXES = ("dinov2_with_registers.", "dinov2.")
MODEL_TYPES = ("dinov2", "dinov2_with_registers")


@dataclass(frozen=True)
class HfEntry:
    """One HF tensor: its key, the hub key it comes from and, for q/k/v, which third of the fused qkv."""

    hf_key: str
    hub_key: str
    part: int | None = None


def hf_entries(depth: int, registers: bool, ffn: str) -> list[HfEntry]:
    """The HF state dict (module order of `Dinov2[WithRegisters]Model`) for an encoder of this shape."""
    e = [HfEntry("embeddings.cls_token", "cls_token"), HfEntry("embeddings.mask_token", "mask_token")]
    if registers:
        e.append(HfEntry("embeddings.register_tokens", "register_tokens"))
    e.append(HfEntry("embeddings.position_embeddings", "pos_embed"))
    e += [HfEntry(f"embeddings.patch_embeddings.projection.{p}", f"patch_embed.proj.{p}") for p in ("weight", "bias")]
    mlp = (("weights_in", "w12"), ("weights_out", "w3")) if ffn == "swiglu" else (("fc1", "fc1"), ("fc2", "fc2"))
    for i in range(depth):
        h, b = f"encoder.layer.{i}.", f"blocks.{i}."
        e += [HfEntry(f"{h}norm1.{p}", f"{b}norm1.{p}") for p in ("weight", "bias")]
        for part, name in enumerate(("query", "key", "value")):
            e += [HfEntry(f"{h}attention.attention.{name}.{p}", f"{b}attn.qkv.{p}", part) for p in ("weight", "bias")]
        e += [HfEntry(f"{h}attention.output.dense.{p}", f"{b}attn.proj.{p}") for p in ("weight", "bias")]
        e.append(HfEntry(f"{h}layer_scale1.lambda1", f"{b}ls1.gamma"))
        e += [HfEntry(f"{h}norm2.{p}", f"{b}norm2.{p}") for p in ("weight", "bias")]
        e += [HfEntry(f"{h}mlp.{hf}.{p}", f"{b}mlp.{hub}.{p}") for hf, hub in mlp for p in ("weight", "bias")]
        e.append(HfEntry(f"{h}layer_scale2.lambda1", f"{b}ls2.gamma"))
    e += [HfEntry(f"layernorm.{p}", f"norm.{p}") for p in ("weight", "bias")]
    return e


def entries_for(config: DinoV2Config) -> list[HfEntry]:
    if not config.layerscale:
        raise CheckpointError("the Hugging Face DINOv2 models always have LayerScale; this encoder has none")
    return hf_entries(config.depth, config.num_registers > 0, config.ffn)


def qkv_part(array: np.ndarray, part: int | None) -> np.ndarray:
    """Rows `part`·D … (part+1)·D of a fused qkv weight / bias (the whole array for `part=None`)."""
    if part is None:
        return array
    d = array.shape[0] // 3
    return np.ascontiguousarray(array[part * d:(part + 1) * d])


def hf_shape(hub_shape: tuple[int, ...], part: int | None) -> tuple[int, ...]:
    return hub_shape if part is None else (hub_shape[0] // 3, *hub_shape[1:])


def strip_prefix(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop the `dinov2.` / `dinov2_with_registers.` prefix of wrapped HF checkpoints."""
    for prefix in HF_PREFIXES:
        if f"{prefix}embeddings.cls_token" in state:
            return {k.removeprefix(prefix) if k.startswith(prefix) else k: v for k, v in state.items()}
    return dict(state)


def is_hf_layout(names: Any) -> bool:
    names = set(names)
    return any(f"{p}embeddings.cls_token" in names for p in ("", *HF_PREFIXES))


def layout_from_keys(state: Mapping[str, Any]) -> tuple[int, bool, str]:
    """(depth, has registers, ffn) read off HF key names alone."""
    depth = len({int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    ffn = "swiglu" if "encoder.layer.0.mlp.weights_in.weight" in state else "mlp"
    return depth, "embeddings.register_tokens" in state, ffn


def hf_sources(hub: list[TensorSource], config: DinoV2Config) -> list[TensorSource]:
    """HF-named sources over hub-named ones; q/k/v slice the fused qkv (kept for the three slices)."""
    by_name = {s.name: s for s in hub}
    recent: OrderedDict[str, np.ndarray] = OrderedDict()  # the qkv weight and bias of the current block

    def fetch(entry: HfEntry) -> np.ndarray:
        if entry.hub_key not in recent:
            recent[entry.hub_key] = by_name[entry.hub_key].fetch()
            while len(recent) > 2:
                recent.popitem(last=False)
        return qkv_part(recent[entry.hub_key], entry.part)

    return [TensorSource(e.hf_key, hf_shape(by_name[e.hub_key].shape, e.part), lambda e=e: fetch(e))
            for e in entries_for(config)]


def _problems(source: str, missing: list[str], unexpected: list[str], misshaped: list[str], why: str) -> str:
    lines = [f"{source}: {why}"]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
        if items:
            lines.append(f"  {title} ({len(items)}):\n    " + "\n    ".join(items[:40])
                         + (f"\n    … and {len(items) - 40} more" if len(items) > 40 else ""))
    return "\n".join(lines)


def hf_to_hub(
    state: Mapping[str, np.ndarray],
    entries: list[HfEntry],
    source: str | Path,
    *,
    expected_hub_shapes: Mapping[str, tuple[int, ...]] | None = None,
    config_source: str | None = None,
    mask_token_dim: int | None = None,
) -> dict[str, np.ndarray]:
    """HF state dict → hub state dict (hub key order), strictly.

    With `expected_hub_shapes` (from a configuration) every HF tensor's shape is checked first, so a
    config.json that does not describe the weights is reported as such, naming the HF keys.
    `mask_token_dim`: HF models built with `use_mask_token=False` have no mask token; the hub layout
    needs one (unused by inference), so it is filled with zeros, HF's own initial value.
    """
    state = dict(state)
    if mask_token_dim is not None and "embeddings.mask_token" not in state:
        state["embeddings.mask_token"] = np.zeros((1, mask_token_dim), np.float32)
    wanted = {e.hf_key for e in entries}
    missing = [e.hf_key for e in entries if e.hf_key not in state]
    unexpected = [k for k in state if k not in wanted]
    misshaped = []
    if expected_hub_shapes is not None:
        for e in entries:
            if e.hf_key in state:
                want = hf_shape(tuple(expected_hub_shapes[e.hub_key]), e.part)
                if tuple(state[e.hf_key].shape) != want:
                    misshaped.append(f"{e.hf_key}: {tuple(state[e.hf_key].shape)} in the file, {want} expected")
    if missing or unexpected or misshaped:
        why = (f"{config_source} does not match the weights" if config_source and misshaped
               else "does not match the Hugging Face DINOv2 layout")
        raise CheckpointError(_problems(str(source), missing, unexpected, misshaped, why))

    hub: dict[str, np.ndarray] = {}
    parts: dict[str, list[np.ndarray]] = {}
    for e in entries:
        if e.part is None:
            hub[e.hub_key] = np.asarray(state[e.hf_key], np.float32)
        else:
            parts.setdefault(e.hub_key, []).append(np.asarray(state[e.hf_key], np.float32))
            if len(parts[e.hub_key]) == 3:
                pieces = parts.pop(e.hub_key)
                if len({p.shape for p in pieces}) != 1:
                    raise CheckpointError(f"{source}: query/key/value of {e.hub_key} differ in shape "
                                          f"{[p.shape for p in pieces]}")
                hub[e.hub_key] = np.concatenate(pieces, axis=0)
    return hub


def hub_state_from_hf(state: Mapping[str, np.ndarray], path: str | Path, *, config: DinoV2Config | None = None,
                      config_origin: str | None = None, hf_record: Mapping[str, Any] | None = None
                      ) -> dict[str, np.ndarray]:
    """HF state dict (wrapper prefixes allowed) → hub state dict, checked against `config` when given."""
    state = strip_prefix(state)
    hub_shapes = None
    if config is not None:
        entries = entries_for(config)
        hub_shapes = {e.torch_key: e.torch_shape(tuple(s.shape)) for e, s in _hub_param_shapes(config)}
    else:
        entries = hf_entries(*layout_from_keys(state))
    mask_dim = None
    if hf_record is not None and not hf_record.get("use_mask_token", True) and config is not None:
        mask_dim = config.embed_dim
    return hf_to_hub(state, entries, path, expected_hub_shapes=hub_shapes, config_source=config_origin,
                     mask_token_dim=mask_dim)


def _hub_param_shapes(config: DinoV2Config) -> list[tuple[Any, Any]]:
    """(hub table entry, Flax parameter shape) pairs of an encoder."""
    from ..mapping import encoder_shapes, flatten_params
    from .dinov2 import dinov2_entries

    flat = flatten_params(encoder_shapes(config))
    return [(e, flat[e.flax_path]) for e in dinov2_entries(config)]


# --- config.json ---------------------------------------------------------------------------------------
def hf_config(config: DinoV2Config) -> dict[str, Any]:
    """A transformers `config.json` for `config` (`Dinov2WithRegistersModel`, or `Dinov2Model` without registers)."""
    registers = config.num_registers > 0
    record: dict[str, Any] = {
        "architectures": ["Dinov2WithRegistersModel" if registers else "Dinov2Model"],
        "model_type": "dinov2_with_registers" if registers else "dinov2",
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "mlp_ratio": int(config.mlp_ratio) if float(config.mlp_ratio).is_integer() else config.mlp_ratio,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-06,
        "image_size": config.pos_grid * config.patch_size,
        "patch_size": config.patch_size,
        "num_channels": 3,
        "qkv_bias": True,
        "layerscale_value": 1.0,
        "drop_path_rate": 0.0,
        "use_swiglu_ffn": config.ffn == "swiglu",
        "torch_dtype": "float32",
    }
    if registers:
        record["num_register_tokens"] = config.num_registers
    else:
        record["use_mask_token"] = True
    return record


def config_from_hf(record: Mapping[str, Any], source: str = "config.json") -> DinoV2Config:
    """A `DinoV2Config` from a transformers DINOv2 `config.json` (hub interpolation semantics, see module doc)."""
    model_type = record.get("model_type")
    if model_type not in ("dinov2", "dinov2_with_registers"):
        raise CheckpointError(f"{source}: model_type {model_type!r} is not a DINOv2 model "
                              "(expected 'dinov2' or 'dinov2_with_registers')")
    unsupported = {
        "hidden_act": (record.get("hidden_act", "gelu"), "gelu"),
        "qkv_bias": (record.get("qkv_bias", True), True),
        "num_channels": (record.get("num_channels", 3), 3),
    }
    bad = {k: got for k, (got, want) in unsupported.items() if got != want}
    eps = float(record.get("layer_norm_eps", 1e-6))
    if abs(eps - 1e-6) > 1e-12:
        bad["layer_norm_eps"] = eps
    if bad:
        raise CheckpointError(f"{source}: unsupported DINOv2 settings {bad} (the hub models use gelu, qkv_bias, "
                              "3 channels, LayerNorm eps 1e-6)")
    try:
        image, patch = int(record["image_size"]), int(record["patch_size"])
        d, depth = int(record["hidden_size"]), int(record["num_hidden_layers"])
        heads = int(record["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: incomplete DINOv2 config ({e!r})") from e
    if image % patch:
        raise CheckpointError(f"{source}: image_size {image} is not a multiple of patch_size {patch}")
    registers = int(record.get("num_register_tokens", 4)) if model_type == "dinov2_with_registers" else 0
    semantics = (dict(interpolate_antialias=True, interpolate_offset=0.0) if registers
                 else dict(interpolate_antialias=False, interpolate_offset=0.1))
    return DinoV2Config(
        embed_dim=d, depth=depth, num_heads=heads, mlp_ratio=float(record.get("mlp_ratio", 4)),
        ffn="swiglu" if record.get("use_swiglu_ffn", False) else "mlp", patch_size=patch,
        num_registers=registers, pos_grid=image // patch, layerscale=True, **semantics,
    )


def same_architecture(a: DinoV2Config, b: DinoV2Config) -> bool:
    """Equal up to the runtime interpolation semantics (which HF configs cannot express)."""
    strip = dict(interpolate_antialias=True, interpolate_offset=0.0)
    return dataclasses.replace(a, **strip) == dataclasses.replace(b, **strip)
