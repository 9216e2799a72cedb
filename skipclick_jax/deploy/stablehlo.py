"""`jax.export`-serialized encode and click functions, reloadable without this package's model code.

    exp = jax.export.deserialize(open("encode.jax_export", "rb").read())
    features = exp.call(images)                          # dict of arrays, images (B, S, S, 3) in [0, 1]
    click = jax.export.deserialize(open("click.jax_export", "rb").read())
    with jax.enable_x64(True):                           # the points are float64 (see below)
        out = click.call(features, prev_mask, points)    # {"logits", "probabilities"}: (B, S, S, 1)

The weights are constants inside the serialized modules; the batch is symbolic in both functions and the
number of click rows in the click function. Layout NHWC, as the Flax model. Points are float64 so that
fractional clicks get the original's disk test (the offsets are subtracted in float64 and rounded once
to float32); JAX only passes float64 arrays with x64 enabled, hence the `enable_x64` context at the call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import export

from ..atomic import atomic_directory
from ..model.clicks import ClickOffsets
from ..model.skipclick import ImageFeatures, SkipClick
from .metadata import build_record, points_doc, tensor_spec, write_metadata
from .size import fusion_pos_embed, network_size

ENCODE_FILE = "encode.jax_export"
CLICK_FILE = "click.jax_export"
# Squared offset of unused point rows: no pixel is within any click radius of it.
FAR = 1e12


def feature_names(model: SkipClick) -> list[str]:
    """Names of the image features passed from encode to click: the tokens, then the FPN image terms."""
    return ["tokens"] + ([f"skip{i}" for i in range(4)] if model.config.skip_connections else [])


def encode_function(model: SkipClick, params: Any) -> Callable[[jax.Array], dict[str, jax.Array]]:
    """images (B, S, S, 3) → {name: feature}, the weights closed over (they become constants)."""
    names = feature_names(model)

    def encode(images: jax.Array) -> dict[str, jax.Array]:
        f = model.apply({"params": params}, images, method=SkipClick.encode)
        return dict(zip(names, (f.tokens, *(f.skip_terms or ())), strict=True))

    return encode


def points_offsets(points: jax.Array, size: int) -> ClickOffsets:
    """float64 (B, 2N, 3) points → float32 squared offsets, as the original computes them (traced with x64)."""
    yx = points[..., :2]
    valid = jnp.max(yx, axis=-1) >= 0
    axis = jnp.arange(size, dtype=jnp.float64)
    dy = (axis - yx[..., 0:1]).astype(jnp.float32)
    dx = (axis - yx[..., 1:2]).astype(jnp.float32)
    # As in model.clicks: keep XLA from contracting the squares and their sum into an FMA.
    dy2, dx2 = jax.lax.optimization_barrier((dy * dy, dx * dx))
    far = jnp.float32(FAR)
    return ClickOffsets(jnp.where(valid[..., None], dy2, far), jnp.where(valid[..., None], dx2, far))


def click_function(model: SkipClick, params: Any, size: int) -> Callable[..., dict[str, jax.Array]]:
    """(features, prev_mask (B, S, S, 1), float64 points (B, 2N, 3)) → {"logits", "probabilities"}."""
    names = feature_names(model)
    pos_embed = fusion_pos_embed(model, params, size)  # a constant at a fixed size: baked in, not an input

    def click(features: dict[str, jax.Array], prev_mask: jax.Array, points: jax.Array) -> dict[str, jax.Array]:
        skips = tuple(features[n] for n in names[1:]) or None
        feats = ImageFeatures(features["tokens"], skips, pos_embed)
        logits = model.apply({"params": params}, feats, prev_mask, points_offsets(points, size),
                             method=SkipClick.decode)
        return {"logits": logits, "probabilities": jax.nn.sigmoid(logits)}

    return click


def export_stablehlo(model: SkipClick, params: Any, out_dir: str | Path, *, size: int | None = None,
                     overwrite: bool = False, platforms: tuple[str, ...] | None = None) -> Path:
    """Write `encode.jax_export`, `click.jax_export` and `metadata.json` into `out_dir` (atomically).

    Args:
        model, params: a `SkipClick` module and its parameters.
        size: the network input side S (default: the training size); fixed in the exported functions.
        overwrite: replace an existing `out_dir`.
        platforms: lowering platforms for `jax.export` (default: the current backend), e.g. ("cpu", "cuda").
    """
    size = network_size(model.config, size)
    encode = encode_function(model, params)
    (batch,) = export.symbolic_shape("batch")
    image = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    encoded = export.export(jax.jit(encode), platforms=platforms)(image)

    with jax.enable_x64(True):  # float64 points; every other value keeps its float32 dtype
        batch, rows = export.symbolic_shape("batch, n")
        example = jax.eval_shape(encode, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
        features = {k: jax.ShapeDtypeStruct((batch, *v.shape[1:]), v.dtype) for k, v in example.items()}
        prev = jax.ShapeDtypeStruct((batch, size, size, 1), jnp.float32)
        points = jax.ShapeDtypeStruct((batch, 2 * rows, 3), jnp.float64)
        clicked = export.export(jax.jit(click_function(model, params, size)), platforms=platforms)(
            features, prev, points)

    feature_specs = [tensor_spec(k, ("batch", *example[k].shape[1:]), str(np.dtype(example[k].dtype)),
                                 "image feature (NHWC), passed as one dict {name: array}")
                     for k in feature_names(model)]
    mask_shape = ("batch", size, size, 1)
    graphs = {
        "encode": {"file": ENCODE_FILE, "platforms": list(encoded.platforms),
                   "inputs": [tensor_spec("images", ("batch", size, size, 3), "float32", "RGB in [0, 1]")],
                   "outputs": feature_specs},
        "click": {"file": CLICK_FILE, "platforms": list(clicked.platforms),
                  "inputs": [*feature_specs,
                             tensor_spec("prev_mask", mask_shape, "float32", "previous probabilities"),
                             tensor_spec("points", ("batch", "2*n", 3), "float64", points_doc(size))],
                  "outputs": [tensor_spec("logits", mask_shape, "float32", "mask logits at S"),
                              tensor_spec("probabilities", mask_shape, "float32", "sigmoid of the logits")],
                  "call": "click.call({name: feature}, prev_mask, points) under jax.enable_x64(True)"},
    }
    with atomic_directory(out_dir, overwrite) as tmp:
        (tmp / ENCODE_FILE).write_bytes(encoded.serialize())
        (tmp / CLICK_FILE).write_bytes(clicked.serialize())
        write_metadata(tmp, build_record(model.config, size, "stablehlo", "NHWC", graphs))
    return Path(out_dir)
