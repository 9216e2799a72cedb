"""The encode and the click step cut into their stages, each a pure jittable function of (variables, inputs).

Each stage is the model's own method (`SkipClick.embed_clicks`, `fuse_clicks`, …), so running the stages
one after the other is the real step, only without fusion across stage boundaries; `run_stages` checks
that the composition gives the fused step's output. `skipclick bench --breakdown` compiles and times each
stage on the inputs it gets inside the real step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax

from ..inference.engine import ClickEngine
from ..model.clicks import ClickOffsets
from ..model.skipclick import ImageFeatures, SkipClick


@dataclass(frozen=True)
class Stage:
    """One stage: `fn(variables, *inputs)` → output, and how to build its inputs from the previous outputs."""

    name: str
    fn: Callable[..., Any]
    inputs: Callable[[dict[str, Any]], tuple[Any, ...]]  # from the outputs so far (and the step's inputs)


def _method(model: SkipClick, method: Callable[..., Any]) -> Callable[..., Any]:
    return lambda variables, *args: model.apply(variables, *args, method=method)


def encode_stages(engine: ClickEngine) -> list[Stage]:
    """The encode: encoder (normalise, ViT blocks → taps), tap fusion, FPN image halves, position embedding."""
    model, cfg = engine.model, engine.model.config
    stages = [
        Stage("encoder", lambda v, images: model.apply(v, engine.encode_inputs(images), method=SkipClick.taps),
              lambda o: (o["images"],)),
        Stage("fuse taps", _method(model, SkipClick.fuse_taps), lambda o: (o["encoder"],)),
    ]
    if cfg.skip_connections:
        stages.append(Stage("FPN image halves", _method(model, SkipClick.skip_terms), lambda o: (o["encoder"],)))
    if cfg.fusion_block == "transformer":
        grid = (engine.size // cfg.patch_size,) * 2
        stages.append(Stage("position embedding", lambda v: model.apply(v, grid, method=SkipClick.position_embedding),
                            lambda o: ()))
    return stages


def encode_output(outputs: dict[str, Any]) -> ImageFeatures:
    """The encode's result assembled from its stages' outputs."""
    return ImageFeatures(outputs["fuse taps"], outputs.get("FPN image halves"), outputs.get("position embedding"))


def click_stages(engine: ClickEngine) -> list[Stage]:
    """The click step: click maps + patch embedding, fusion stack, FPN, head, final resize (+ flip average,
    sigmoid), for one object per encoded image (the features and the masks have the same batch)."""
    model = engine.model
    size = (engine.size, engine.size)

    def embed(v: Any, features: ImageFeatures, prev: jax.Array, offsets: ClickOffsets) -> jax.Array:
        features, prev = engine.decode_inputs(features, prev)
        return model.apply(v, features, prev, offsets, method=SkipClick.embed_clicks)

    def fusion(v: Any, x: jax.Array, features: ImageFeatures) -> jax.Array:
        return model.apply(v, x, features, method=SkipClick.fuse_clicks)

    def fpn(v: Any, x: jax.Array, terms: Any) -> list[jax.Array]:
        return model.apply(v, x, terms, method=lambda m, x, t: m.neck(x, t))

    def resize(v: Any, logits: jax.Array) -> jax.Array:
        del v
        return engine.probabilities(SkipClick.upsample_logits(logits, size))

    return [
        Stage("click maps + patch embed", embed, lambda o: (o["features"], o["prev"], o["offsets"])),
        Stage("fusion stack", fusion, lambda o: (o["click maps + patch embed"], o["features"])),
        Stage("FPN", fpn, lambda o: (o["fusion stack"], o["features"].skip_terms)),
        Stage("head", _method(model, SkipClick.head_logits), lambda o: (o["FPN"],)),
        Stage("final resize", resize, lambda o: (o["head"],)),
    ]


def run_stages(stages: list[Stage], variables: Any, inputs: dict[str, Any],
               each: Callable[[Stage, tuple[Any, ...]], Any] | None = None) -> dict[str, Any]:
    """Run the stages in order, each compiled on its own; `each(stage, args)` may replace the call (e.g. to
    time it) and must return the stage's output. Returns every output by stage name."""
    outputs = dict(inputs)
    for stage in stages:
        args = (variables, *stage.inputs(outputs))
        outputs[stage.name] = each(stage, args) if each else jax.jit(stage.fn)(*args)
    return outputs
