"""Lazy, table-driven views of Flax parameters in PyTorch layout, one tensor at a time.

Each `TensorSource` knows its key and PyTorch shape up front (so a file header can be written first) and
fetches its data only when asked: `jax.device_get` of that one (possibly sharded) leaf, then the table's
exact layout permutation. Peak host memory while streaming is therefore one tensor, not the model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from ..config import DinoV2Config, SkipClickConfig
from ..convert.mapping import TRANSFORMS, Entry
from ..convert.strict import flatten_params
from ..convert.torch_io import CheckpointError


@functools.cache
def skipclick_shapes(config: SkipClickConfig) -> dict:
    """`model.param_shapes(config)`, cached (an abstract trace of the whole model)."""
    from ..model.skipclick import param_shapes

    return param_shapes(config)


@functools.cache
def dinov2_shapes(config: DinoV2Config) -> dict:
    """The DINOv2 encoder's parameter shapes, cached."""
    from ..convert.dinov2_hub import dinov2_param_shapes

    return dinov2_param_shapes(config)


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


def torch_shape(entry: Entry, flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    """PyTorch shape of a Flax parameter, from the table's transform applied to a zero-byte view."""
    view = np.broadcast_to(np.empty((), np.uint8), flax_shape)  # no memory, any shape
    return tuple(TRANSFORMS[entry.transform][1](view).shape)


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
        return TensorSource(e.torch_key, torch_shape(e, tuple(leaf.shape)), lambda: e.to_torch(host_array(leaf)))

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
