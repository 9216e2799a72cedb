"""Applying a key table (`weights.tables`) strictly, in both directions.

PyTorch → Flax (`torch_to_flax`): every source key consumed, every parameter filled, every shape checked;
problems are reported all at once, naming the file and the keys. Flax → PyTorch (`flax_to_torch`, and the
lazy `torch_sources` that writers stream from): the tree must hold exactly the table's parameters with the
configuration's shapes. Peak host memory while streaming is one tensor: each `TensorSource` fetches (and
gathers, if sharded) its leaf only when asked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..config import DinoV3Config, Encoder, SkipClickConfig
from .errors import CheckpointError
from .tables import Entry
from .tables.encoders import encoder_entries
from .tables.skipclick import skipclick_entries


@functools.cache
def skipclick_shapes(config: SkipClickConfig) -> dict:
    """The `SkipClick` parameter tree of `config` as ShapeDtypeStructs (an abstract trace, cached)."""
    from ..model.skipclick import param_shapes

    return param_shapes(config)


@functools.cache
def encoder_shapes(config: Encoder) -> dict:
    """The `DinoV2` / `DinoV3` encoder's parameter tree as ShapeDtypeStructs (cached)."""
    from ..model import dinov2, dinov3

    family = dinov3 if isinstance(config, DinoV3Config) else dinov2
    return family.encoder_param_shapes(config)


def _format_problems(source: str, missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    lines = [f"{source}: does not match the expected layout"]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("mis-shaped keys", misshaped)):
        if items:
            shown = "\n    ".join(items[:40])
            more = f"\n    … and {len(items) - 40} more" if len(items) > 40 else ""
            lines.append(f"  {title} ({len(items)}):\n    {shown}{more}")
    return "\n".join(lines)


def flatten_params(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            flat.update(flatten_params(v, (*prefix, k)))
        else:
            flat[(*prefix, k)] = v
    return flat


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, v in flat.items():
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return tree


def torch_to_flax(
    state: Mapping[str, np.ndarray],
    entries: Iterable[Entry],
    expected: Mapping[str, Any],
    source: str | Path,
) -> dict[str, Any]:
    """Map a PyTorch state dict onto a Flax parameter tree shaped like `expected` (arrays or
    ShapeDtypeStructs). Raises `CheckpointError` naming every missing, unexpected and mis-shaped key."""
    entries = list(entries)
    expected_flat = flatten_params(expected)
    by_key = {e.torch_key: e for e in entries}
    missing = [k for k in by_key if k not in state]
    unexpected = [k for k in state if k not in by_key]
    misshaped, out = [], {}
    for key, entry in by_key.items():
        if key not in state:
            continue
        want = expected_flat.get(entry.flax_path)
        if want is None:  # a table entry without a parameter: a bug in the table, not in the file
            raise AssertionError(f"mapping entry {entry} has no parameter in the model")
        array = entry.to_flax(np.asarray(state[key]))
        if tuple(array.shape) != tuple(want.shape):
            torch_shape = tuple(entry.to_torch(np.empty(want.shape, np.uint8)).shape)
            misshaped.append(f"{key}: {tuple(state[key].shape)} in the file, {torch_shape} expected")
            continue
        out[entry.flax_path] = array.astype(np.float32) if array.dtype != np.float32 else array
    if missing or unexpected or misshaped:
        raise CheckpointError(_format_problems(str(source), missing, unexpected, misshaped))
    unfilled = [("/".join(p)) for p in expected_flat if p not in out]
    if unfilled:
        raise AssertionError(f"parameters not covered by the mapping table: {unfilled}")
    return _unflatten(out)


def flax_to_torch(params: Mapping[str, Any], entries: Iterable[Entry]) -> dict[str, np.ndarray]:
    """The inverse of `torch_to_flax`: a PyTorch-layout state dict (numpy, float32) in table order.

    Arrays are gathered to the host one at a time, so sharded parameters never need to fit twice."""
    flat = flatten_params(params)
    entries = list(entries)
    covered = {e.flax_path for e in entries}
    extra = ["/".join(p) for p in flat if p not in covered]
    if extra:
        raise CheckpointError(f"parameters the PyTorch layout has no key for: {extra[:20]}")
    state = {}
    for e in entries:
        if e.flax_path not in flat:
            raise CheckpointError(f"parameter {'/'.join(e.flax_path)} (for {e.torch_key}) is missing")
        state[e.torch_key] = e.to_torch(np.asarray(jax.device_get(flat[e.flax_path]), np.float32))
    return state


@dataclass(frozen=True)
class TensorSource:
    """One output tensor: its name, its shape and a function producing it as float32 numpy."""

    name: str
    shape: tuple[int, ...]
    fetch: Callable[[], np.ndarray]


def host_array(leaf: Any) -> np.ndarray:
    """Gather one parameter to the host as float32 (sharded arrays are assembled from their shards)."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        # Multi-process runs: every process takes part in the gather of this single leaf.
        from jax.experimental import multihost_utils

        leaf = multihost_utils.process_allgather(leaf, tiled=True)
    return np.asarray(jax.device_get(leaf), dtype=np.float32)


def torch_sources(
    params: Mapping[str, Any], entries: Iterable[Entry], expected: Mapping[str, Any]
) -> list[TensorSource]:
    """The PyTorch state dict of `params`, in table order, as lazy sources.

    Checks first, like `convert.strict.flax_to_torch`, that the tree has exactly the table's parameters,
    and also that every shape is the one `expected` (the parameter shapes of the configuration) gives,
    so a configuration that does not describe the weights fails before anything is written.
    """
    flat = flatten_params(params)
    want = flatten_params(expected)
    entries = list(entries)
    covered = {e.flax_path for e in entries}
    extra = ["/".join(p) for p in flat if p not in covered]
    missing = [f"{'/'.join(e.flax_path)} (for {e.torch_key})" for e in entries if e.flax_path not in flat]
    misshaped = [f"{'/'.join(e.flax_path)}: {tuple(flat[e.flax_path].shape)}, configuration says "
                 f"{tuple(want[e.flax_path].shape)}"
                 for e in entries if e.flax_path in flat and e.flax_path in want
                 and tuple(flat[e.flax_path].shape) != tuple(want[e.flax_path].shape)]
    problems = [(t, items) for t, items in (("parameters the layout has no key for", extra),
                                            ("missing parameters", missing),
                                            ("parameters whose shape does not match the configuration", misshaped))
                if items]
    if problems:
        raise CheckpointError("the parameters do not match the configuration:\n" + "\n".join(
            f"  {title} ({len(items)}): {', '.join(items[:20])}" for title, items in problems))

    def source(e: Entry) -> TensorSource:
        leaf = flat[e.flax_path]
        return TensorSource(e.torch_key, e.torch_shape(tuple(leaf.shape)), lambda: e.to_torch(host_array(leaf)))

    return [source(e) for e in entries]


def materialize(sources: Iterable[TensorSource]) -> dict[str, np.ndarray]:
    """All sources fetched into an ordered dict (for writers that need the whole state at once)."""
    out = {}
    for s in sources:
        array = s.fetch()
        if tuple(array.shape) != s.shape:  # a bug in a transform, never a user error
            raise AssertionError(f"{s.name}: produced {array.shape}, announced {s.shape}")
        out[s.name] = array
    return out


def skipclick_params(state: Mapping[str, np.ndarray], config: SkipClickConfig, source: str | Path) -> dict[str, Any]:
    """An original SkipClick state dict → the `SkipClick` parameters of `config` (strict)."""
    return torch_to_flax(state, skipclick_entries(config), skipclick_shapes(config), source)


def encoder_params(state: Mapping[str, np.ndarray], config: Encoder, source: str | Path) -> dict[str, Any]:
    """A DINOv2 / DINOv3 hub state dict → the encoder parameters of `config` (strict)."""
    return torch_to_flax(state, encoder_entries(config), encoder_shapes(config), source)
