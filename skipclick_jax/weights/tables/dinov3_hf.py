"""Hugging Face `DINOv3ViTModel` key names ↔ the DINOv3 hub layout (transformers' `convert_dinov3_vit_to_hf.py`,
`modeling_dinov3_vit.py`).

Renames, plus three things the HF model does differently and this table bridges exactly:

- attention: q/k/v are three projections (`attention.{q,k,v}_proj`) with **no k bias**; the hub has one fused
  `attn.qkv` (rows [q; k; v]) whose k bias is multiplied by a stored `bias_mask` (ones on q and v, zeros
  on k). HF → hub: the k bias is 0 and the mask the canonical one. Hub → HF: the mask must be canonical
  (else HF cannot express the model); the k bias is dropped (it is masked to 0, so no output depends on it);
- RoPE: HF recomputes its frequencies in float32; the hub stores `rope_embed.periods` (bfloat16-rounded in
  the released files). HF → hub: the released (bf16) periods. Hub → HF: the periods must be those;
- `mask_token` is (1, 1, C) in HF, (1, C) in the hub (a reshape).

So a hub checkpoint with a zero k bias (the released ones) goes to HF and back bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...config import DinoV3Config
from ..errors import CheckpointError
from ..mapping import TensorSource

MODEL_TYPES = ("dinov3_vit",)


def is_hf_layout(names: Any) -> bool:
    names = set(names)
    return "embeddings.register_tokens" in names and any(n.startswith("layer.") for n in names) or \
        "layer.0.attention.q_proj.weight" in names


def _hub_mask(c: int) -> np.ndarray:
    return np.concatenate([np.ones(c), np.zeros(c), np.ones(c)]).astype(np.float32)


def _hub_periods(config: DinoV3Config) -> np.ndarray:
    from ...model.dinov3 import hub_periods

    return hub_periods(config)


def _renames(config: DinoV3Config) -> list[tuple[str, str]]:
    """(HF key, hub key) of every plainly renamed tensor, in the HF module order."""
    pairs = [("embeddings.cls_token", "cls_token"), ("embeddings.register_tokens", "storage_tokens"),
             ("embeddings.patch_embeddings.weight", "patch_embed.proj.weight"),
             ("embeddings.patch_embeddings.bias", "patch_embed.proj.bias")]
    mlp = (("gate_proj", "w1"), ("up_proj", "w2"), ("down_proj", "w3")) if config.ffn == "swiglu" else (
        ("up_proj", "fc1"), ("down_proj", "fc2"))
    for i in range(config.depth):
        h, b = f"layer.{i}.", f"blocks.{i}."
        pairs += [(f"{h}norm1.{p}", f"{b}norm1.{p}") for p in ("weight", "bias")]
        pairs += [(f"{h}attention.o_proj.{p}", f"{b}attn.proj.{p}") for p in ("weight", "bias")]
        pairs += [(f"{h}layer_scale1.lambda1", f"{b}ls1.gamma")]
        pairs += [(f"{h}norm2.{p}", f"{b}norm2.{p}") for p in ("weight", "bias")]
        pairs += [(f"{h}mlp.{hf}.{p}", f"{b}mlp.{hub}.{p}") for hf, hub in mlp for p in ("weight", "bias")]
        pairs += [(f"{h}layer_scale2.lambda1", f"{b}ls2.gamma")]
    return pairs + [(f"norm.{p}", f"norm.{p}") for p in ("weight", "bias")]


def _check(config: DinoV3Config) -> None:
    if not config.qkv_bias or config.local_cls_norm:
        raise CheckpointError("the Hugging Face DINOv3 layout is implemented for models with a qkv bias and without a "
                              "local cls norm (all hub ViTs but vit7b16 / vitl16-SAT)")


def hf_sources(hub: list[TensorSource], config: DinoV3Config) -> list[TensorSource]:
    """HF-named sources over hub-named ones (export direction); see the module docstring for what is checked."""
    _check(config)
    by_name = {s.name: s for s in hub}
    c = config.embed_dim

    def part(key: str, rows: slice, hf_key: str) -> TensorSource:
        src = by_name[key]
        return TensorSource(hf_key, (rows.stop - rows.start, *src.shape[1:]),
                            lambda: np.ascontiguousarray(src.fetch()[rows]))

    def checked(key: str, want: np.ndarray, what: str) -> None:
        got = by_name[key].fetch()
        if not np.array_equal(got, want):
            raise CheckpointError(f"{key} is not the {what}; the Hugging Face DINOv3 model cannot express it")

    checked("rope_embed.periods", _hub_periods(config), "released RoPE periods (base^(k/F) rounded to bfloat16)")
    out: list[TensorSource] = []
    for hf_key, hub_key in _renames(config):
        if hf_key == "embeddings.register_tokens":  # HF order: cls, mask, register tokens
            m = by_name["mask_token"]
            out.append(TensorSource("embeddings.mask_token", (1, *m.shape), lambda m=m: m.fetch()[None]))
        out.append(TensorSource(hf_key, by_name[hub_key].shape, by_name[hub_key].fetch))
        if hf_key.endswith("norm1.bias"):  # HF order: norm1, q/k/v, o_proj, …
            i = hf_key.split(".")[1]
            checked(f"blocks.{i}.attn.qkv.bias_mask", _hub_mask(c), "canonical k-bias mask (ones, zeros on k, ones)")
            for name, rows in (("q", slice(0, c)), ("k", slice(c, 2 * c)), ("v", slice(2 * c, 3 * c))):
                out.append(part(f"blocks.{i}.attn.qkv.weight", rows, f"layer.{i}.attention.{name}_proj.weight"))
                if name != "k":  # the k bias is masked to zero in the hub model and absent in HF
                    out.append(part(f"blocks.{i}.attn.qkv.bias", rows, f"layer.{i}.attention.{name}_proj.bias"))
    return out


def hub_state_from_hf(state: Mapping[str, np.ndarray], path: str | Path, *, config: DinoV3Config | None = None,
                      config_origin: str | None = None, hf_record: Any = None) -> dict[str, np.ndarray]:
    """HF state dict → hub state dict (hub key order), strictly; see the module docstring."""
    state = dict(state)
    if config is None:
        config = _config_from_keys(state, path)
    _check(config)
    c = config.embed_dim
    wanted = {hf for hf, _ in _renames(config)} | {"embeddings.mask_token"}
    for i in range(config.depth):
        wanted |= {f"layer.{i}.attention.{n}.weight" for n in ("q_proj", "k_proj", "v_proj")}
        wanted |= {f"layer.{i}.attention.{n}.bias" for n in ("q_proj", "v_proj")}
    missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - wanted)
    if missing or unexpected:
        why = f"{config_origin} does not match the weights" if config_origin else \
            "does not match the Hugging Face DINOv3 layout"
        lines = [f"{path}: {why}"]
        lines += [f"  missing keys ({len(missing)}): {', '.join(missing[:40])}"] if missing else []
        lines += [f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:40])}"] if unexpected else []
        raise CheckpointError("\n".join(lines))
    f32 = lambda k: np.asarray(state[k], np.float32)  # noqa: E731
    mask = f32("embeddings.mask_token")
    hub = {"cls_token": f32("embeddings.cls_token"), "storage_tokens": f32("embeddings.register_tokens"),
           "mask_token": mask.reshape(mask.shape[0], -1) if mask.ndim == 3 else mask,
           "patch_embed.proj.weight": f32("embeddings.patch_embeddings.weight"),
           "patch_embed.proj.bias": f32("embeddings.patch_embeddings.bias"),
           "rope_embed.periods": _hub_periods(config)}
    renames = dict(_renames(config))
    for i in range(config.depth):
        h, b = f"layer.{i}.", f"blocks.{i}."
        for hf_key in (f"{h}norm1.weight", f"{h}norm1.bias"):
            hub[renames[hf_key]] = f32(hf_key)
        weights = [f32(f"{h}attention.{n}_proj.weight") for n in "qkv"]
        if len({w.shape for w in weights}) != 1:
            shapes = [w.shape for w in weights]
            raise CheckpointError(f"{path}: q/k/v projections of layer {i} differ in shape {shapes}")
        hub[f"{b}attn.qkv.weight"] = np.concatenate(weights, axis=0)
        hub[f"{b}attn.qkv.bias"] = np.concatenate([f32(f"{h}attention.q_proj.bias"), np.zeros(c, np.float32),
                                                   f32(f"{h}attention.v_proj.bias")])
        hub[f"{b}attn.qkv.bias_mask"] = _hub_mask(c)
        for hf_key, hub_key in renames.items():
            if hf_key.startswith(h) and "norm1" not in hf_key:
                hub[hub_key] = f32(hf_key)
    hub["norm.weight"], hub["norm.bias"] = f32("norm.weight"), f32("norm.bias")
    return hub


def _config_from_keys(state: Mapping[str, Any], path: str | Path) -> DinoV3Config:
    depth = len({int(m.group(1)) for k in state if (m := re.match(r"layer\.(\d+)\.", k))})
    try:
        c = state["embeddings.cls_token"].shape[-1]
        registers = state["embeddings.register_tokens"].shape[1]
        patch = state["embeddings.patch_embeddings.weight"].shape[-1]
    except KeyError as e:
        raise CheckpointError(f"{path}: not a Hugging Face DINOv3 layout (missing {e.args[0]})") from None
    gated = "layer.0.mlp.gate_proj.weight" in state
    hidden = state["layer.0.mlp.up_proj.weight"].shape[0] if depth else 0
    if c % 64:
        raise CheckpointError(f"{path}: cannot infer the head count of a {c}-wide encoder; give its config.json")
    return DinoV3Config(embed_dim=c, depth=depth, num_heads=c // 64, num_registers=registers, patch_size=patch,
                        ffn="swiglu" if gated else "mlp", ffn_ratio=6.0 if gated else hidden / c)


# --- config.json -------------------------------------------------------------------------------------------
def hf_config(config: DinoV3Config) -> dict[str, Any]:
    """A transformers `config.json` for `config` (`DINOv3ViTModel`)."""
    _check(config)
    gated = config.ffn == "swiglu"
    return {
        "architectures": ["DINOv3ViTModel"],
        "model_type": "dinov3_vit",
        "hidden_size": config.embed_dim,
        "intermediate_size": config.hidden_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "hidden_act": "silu" if gated else "gelu",
        "use_gated_mlp": gated,
        "layer_norm_eps": 1e-05,
        "rope_theta": config.rope_base,
        "pos_embed_rescale": config.rope_rescale,
        "image_size": 224,
        "patch_size": config.patch_size,
        "num_channels": 3,
        "num_register_tokens": config.num_registers,
        "query_bias": True,
        "key_bias": False,
        "value_bias": True,
        "proj_bias": True,
        "mlp_bias": True,
        "layerscale_value": 1.0,
        "drop_path_rate": 0.0,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "torch_dtype": "float32",
    }


def config_from_hf(record: Mapping[str, Any], source: str = "config.json") -> DinoV3Config:
    """A `DinoV3Config` from a transformers DINOv3 `config.json`."""
    if record.get("model_type") not in MODEL_TYPES:
        raise CheckpointError(f"{source}: model_type {record.get('model_type')!r} is not a DINOv3 ViT")
    bad = {k: record.get(k) for k, want in (("query_bias", True), ("value_bias", True), ("key_bias", False),
                                            ("num_channels", 3), ("proj_bias", True), ("mlp_bias", True))
           if record.get(k, want) != want}
    if abs(float(record.get("layer_norm_eps", 1e-5)) - 1e-5) > 1e-12:
        bad["layer_norm_eps"] = record.get("layer_norm_eps")
    if bad:
        raise CheckpointError(f"{source}: unsupported DINOv3 settings {bad}")
    try:
        c, depth = int(record["hidden_size"]), int(record["num_hidden_layers"])
        heads, hidden = int(record["num_attention_heads"]), int(record["intermediate_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: incomplete DINOv3 config ({e!r})") from e
    gated = bool(record.get("use_gated_mlp", False))
    ratio = 6.0 if gated else hidden / c  # the hub's SwiGLU models all use ratio 6
    config = DinoV3Config(embed_dim=c, depth=depth, num_heads=heads, ffn="swiglu" if gated else "mlp",
                          ffn_ratio=ratio, patch_size=int(record.get("patch_size", 16)),
                          num_registers=int(record.get("num_register_tokens", 0)),
                          rope_base=float(record.get("rope_theta", 100.0)),
                          rope_rescale=float(record.get("pos_embed_rescale") or 2.0))
    if config.hidden_dim != hidden:
        raise CheckpointError(f"{source}: intermediate_size {hidden} is not what the DINOv3 FFN rule gives")
    return config


def same_architecture(a: DinoV3Config, b: DinoV3Config) -> bool:
    return a == b
