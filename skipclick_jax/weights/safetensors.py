"""safetensors files: the full model in the original key names, the DINOv2 encoder in hub or Hugging Face
names. Reading goes through the `safetensors` library (`safe_open`: lazy, no pickle, no torch).

Metadata written (all values are strings; `format: pt` keeps the files loadable by transformers, which
checks that key):

    skipclick_jax          format tag: "skipclick-state-dict" | "dinov2-hub" | "dinov2-hf" | "dinov3-hub" |
                           "dinov3-hf"
    skipclick_jax_version  "1"
    config                 SkipClickConfig / DinoV2Config / DinoV3Config as JSON (exact, unlike the original
                           record)
    encoder_name           encoder files: the hub name of the encoder ("dinov2_vitb14_reg", "dinov3_vitb16", …)
    hf_config              "-hf" files: the transformers config.json content

Files without our tags (e.g. a Hugging Face download, or safetensors saved from the original state dict)
are recognised by their key names; their configuration comes from a config.json, or is read off the shapes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, check_writable
from ..config import Encoder, SkipClickConfig, encoder_from_dict
from .encoders import encoder_from_state, hf_family_of_keys, hf_module, hf_module_of_record, resolve_hf_config
from .errors import CheckpointError
from .mapping import TensorSource, encoder_shapes, skipclick_params, skipclick_shapes, torch_sources
from .records import encoder_family, infer_config
from .tables.encoders import encoder_entries
from .tables.skipclick import encoder_prefix, skipclick_entries

TAG, VERSION_KEY, VERSION = "skipclick_jax", "skipclick_jax_version", "1"
FULL_TAG = "skipclick-state-dict"
ENCODER_TAGS = ("dinov2-hub", "dinov2-hf", "dinov3-hub", "dinov3-hf")  # <family>-<names>
# Tensor dtypes a checkpoint may hold; F16 and BF16 are widened to float32 exactly, F64 is refused.
_READABLE = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"}


# --- the format ------------------------------------------------------------------------------------------------
def write_safetensors(
    path: str | Path,
    sources: Sequence[TensorSource],
    metadata: dict[str, str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write float32 tensors to `path` in safetensors format, header first, then one tensor at a time.

    Hand-written because the library's writer needs every tensor in memory at once, while this one streams
    from (sharded) device arrays with one tensor on the host; files are checked against the library's reader.
    """
    check_writable(path, overwrite)
    header: dict[str, Any] = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"safetensors metadata must map str to str; offending keys: {bad}")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for s in sources:
        if s.name in header:
            raise ValueError(f"duplicate tensor name {s.name!r}")
        nbytes = 4 * math.prod(s.shape)
        header[s.name] = {"dtype": "F32", "shape": list(s.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # keep the tensor data 8-byte aligned, as the reference writer does

    with atomic_file(path, overwrite) as (_, f):
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for s in sources:
            array = np.ascontiguousarray(s.fetch(), dtype="<f4")
            if tuple(array.shape) != s.shape:
                raise AssertionError(f"{s.name}: produced {array.shape}, header says {s.shape}")
            f.write(memoryview(array).cast("B"))
            del array  # release before fetching the next one
    return Path(path)


class SafetensorsFile:
    """A safetensors file read with the library: `names`, `metadata`, `shape(name)`, `read(name)`, lazily."""

    def __init__(self, path: str | Path):
        from safetensors import SafetensorError, safe_open

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such file")
        try:
            with safe_open(self.path, framework="numpy") as f:
                self.metadata: dict[str, str] = f.metadata() or {}
                slices = {name: f.get_slice(name) for name in f.offset_keys()}  # file order, not sorted
                self._entries = {name: (s.get_dtype(), tuple(s.get_shape())) for name, s in slices.items()}
        except SafetensorError as e:
            raise CheckpointError(f"{self.path}: {_damage(self.path) or f'not a safetensors file ({e})'}") from e
        unknown = {n: d for n, (d, _) in self._entries.items() if d not in _READABLE}
        if unknown:
            name, dtype = next(iter(unknown.items()))
            raise CheckpointError(f"{self.path}: tensor {name!r} has unknown dtype {dtype!r}")

    @property
    def names(self) -> list[str]:
        """Tensor names in file order."""
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][1]

    def read(self, name: str) -> np.ndarray:
        """One tensor as a numpy array; floating-point tensors are returned as float32 (F16/BF16 exactly)."""
        return next(self._arrays([name]))[1]

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) pairs in file order, read lazily."""
        return self._arrays(self.names)

    def read_all(self) -> dict[str, np.ndarray]:
        return dict(self.items())

    def _arrays(self, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(self.path, framework="numpy") as f:
                for name in names:
                    if self._entries[name][0] == "F64":
                        raise CheckpointError(f"{self.path}: tensor {name!r} is float64; converting it would lose "
                                              "precision")
                    array = f.get_tensor(name)
                    yield name, array.astype(np.float32) if self._entries[name][0] in ("F16", "BF16") else array
        except (SafetensorError, OSError) as e:  # the file changed since it was opened
            raise CheckpointError(f"{self.path}: cannot read the tensors ({e})") from e


def _damage(path: Path) -> str | None:
    """What is wrong with a file the library refused, said precisely (None: not found out)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"not a safetensors file ({size} bytes, too short for a header)"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"not a safetensors file or truncated (header length {n}, file size {size})"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return f"not a safetensors file (bad JSON header: {e})"
    if not isinstance(header, dict):
        return "not a safetensors file (header is not a JSON object)"
    header.pop("__metadata__", None)
    available, position = size - 8 - n, 0
    try:
        spans = sorted((int(v["data_offsets"][0]), int(v["data_offsets"][1]), k, v) for k, v in header.items())
    except (TypeError, KeyError, ValueError, IndexError):
        return "malformed header entries"
    for begin, end, name, info in spans:
        if begin != position:
            return f"tensor data of {name!r} is not contiguous (offset {begin}, expected {position})"
        item = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2}.get(info.get("dtype"), 1)
        if end - begin != item * math.prod(info.get("shape", [])):
            return f"tensor {name!r}: {end - begin} bytes for shape {tuple(info.get('shape', []))} {info.get('dtype')}"
        position = end
    if position > available:
        return f"truncated file: the header announces {position} bytes of tensor data, only {available} are present"
    if position < available:
        return f"{available - position} unexpected bytes after the tensor data"
    return None


# --- our files ---------------------------------------------------------------------------------------------------
def _metadata(tag: str, config: Any, **extra: str) -> dict[str, str]:
    return {"format": "pt", TAG: tag, VERSION_KEY: VERSION, "config": json.dumps(dataclasses.asdict(config)),
            **extra}


def save_skipclick_safetensors(
    path: str | Path, config: SkipClickConfig, params: Any, *, overwrite: bool = False
) -> Path:
    """The full model in the original state-dict key names and layouts, streamed tensor by tensor."""
    sources = torch_sources(params, skipclick_entries(config), skipclick_shapes(config))
    return write_safetensors(path, sources, _metadata(FULL_TAG, config), overwrite=overwrite)


def save_encoder_safetensors(
    path: str | Path,
    config: Encoder,
    params: Any,
    *,
    hf_names: bool = False,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Encoder parameters in the hub key names (`blocks.0.attn.qkv.weight`, …) or, with `hf_names`, the Hugging
    Face ones (DINOv2: `encoder.layer.0.attention.attention.query.weight`, DINOv3: `layer.0.attention.q_proj…`),
    streamed."""
    sources = torch_sources(params, encoder_entries(config), encoder_shapes(config))
    extra = {"encoder_name": name} if name else {}
    if hf_names:
        hf = hf_module(config)
        sources = hf.hf_sources(sources, config)
        meta = _metadata(f"{config.family}-hf", config, hf_config=json.dumps(hf.hf_config(config)), **extra)
    else:
        meta = _metadata(f"{config.family}-hub", config, **extra)
    return write_safetensors(path, sources, meta, overwrite=overwrite)


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
    """'skipclick', '<family>-hub' or '<family>-hf' (family: dinov2 / dinov3), from the tag or the key names."""
    tag = f.metadata.get(TAG)
    if tag is not None and tag not in (FULL_TAG, *ENCODER_TAGS):
        raise CheckpointError(f"{f.path}: unknown skipclick_jax format tag {tag!r} (a newer version's file?)")
    names = set(f.names)
    if tag is not None:
        return "skipclick" if tag == FULL_TAG else tag
    if encoder_prefix(names) is not None:
        return "skipclick"
    hf_family = hf_family_of_keys(names)
    if hf_family is not None:
        return f"{hf_family}-hf"
    if "cls_token" in names:
        return f"{encoder_family(names)}-hub"
    sample = ", ".join(sorted(names)[:5])
    raise CheckpointError(f"{f.path}: neither a SkipClick model nor DINOv2 / DINOv3 encoder weights "
                          f"(keys: {sample}, …)")


def read_skipclick_safetensors(
    path: str | Path, config: SkipClickConfig | None = None
) -> tuple[SkipClickConfig, dict[str, Any]]:
    """Full-model safetensors → (config, Flax params as numpy). Strict: every key, every shape.

    The configuration is `config`, else the one in the metadata, else inferred from the shapes (a file
    written from an original state dict by other tools).
    """
    path = Path(path)
    f = SafetensorsFile(path)
    kind = file_kind(f)
    if kind != "skipclick":
        raise CheckpointError(f"{path}: holds a DINOv2 encoder only ({kind} names), not a SkipClick model; "
                              "load it with skipclick_jax.weights.load_encoder")
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
        params = skipclick_params(state, config, path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}\n  ({origin} does not describe these tensors)") from e
    return config, params


def _encoder_config_from(meta: dict[str, str], path: Path) -> Encoder | None:
    record = _config_json(meta, path)
    if record is None:
        return None
    try:
        return encoder_from_dict(record)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid encoder configuration in the metadata ({e})") from e


def read_encoder_safetensors(
    path: str | Path, *, hf_config: dict[str, Any] | str | Path | None = None, name: str | None = None
) -> tuple[Encoder, dict[str, Any]]:
    """Encoder safetensors in hub or HF names → (config, encoder params as numpy).

    Configuration: the one in our metadata; else `hf_config` (a config.json path or its dict); else, for a
    `model.safetensors` next to a `config.json`, that file; else read off the shapes.
    """
    path = Path(path)
    f = SafetensorsFile(path)
    layout = file_kind(f)
    if layout == "skipclick":
        raise CheckpointError(f"{path}: a full SkipClick model; load it with load_checkpoint (the encoder is "
                              "params['encoder'])")
    family, names = layout.split("-")
    config, origin, record = _encoder_config_from(f.metadata, path), "the configuration stored in the metadata", None
    if hf_config is not None and names != "hf":
        family_name = {"dinov2": "DINOv2", "dinov3": "DINOv3"}[family]
        raise CheckpointError(f"{path}: hub-named {family_name} weights; a Hugging Face config does not apply to them")
    if names == "hf":
        if hf_config is None and config is None and (path.parent / "config.json").is_file():
            hf_config = path.parent / "config.json"
        if hf_config is not None:
            hf = hf_module(family)
            record, hf_origin = resolve_hf_config(hf_config)
            from_hf = hf_module_of_record(record, hf_origin).config_from_hf(record, hf_origin)
            if config is not None and not hf.same_architecture(config, from_hf):
                raise CheckpointError(f"{path}: {hf_origin} ({from_hf}) contradicts the configuration stored in "
                                      f"the file ({config})")
            config, origin = config or from_hf, origin if config is not None else hf_origin
    if config is None:
        origin = None
    name = name or f.metadata.get("encoder_name")
    return encoder_from_state(f.read_all(), names, path, config=config, config_origin=origin, hf_record=record,
                              name=name)
