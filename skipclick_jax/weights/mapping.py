"""Applying the key table strictly: every source key consumed, every parameter filled, every shape checked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .mapping import Entry
from .torch_io import CheckpointError


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
