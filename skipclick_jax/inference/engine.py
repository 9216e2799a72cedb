"""The compiled per-image and per-click computations behind sessions, the evaluator and the benchmark.

`ClickEngine` prepares its weights once (`prepare_variables`: kernels in the compute dtype, the FPN first
layers split into click and image halves) and owns three kinds of jitted functions of those variables, each
compiled once per shape and reused:

- `encode`: images (B, S, S, 3) → `ImageFeatures` (with flip TTA: of [images, mirrored images]);
- `click_logits` / `click`: (features, previous mask, encoded clicks) → logits / flip-averaged
  probabilities (B, S, S, 1). Click offsets come in a fixed capacity (padding rows are output-identical,
  SPEC trap 2), so adding clicks never changes a shape; the previous-mask buffer is donated;
- `to_network` / `to_image`: the evaluation protocol's bilinear align_corners=True resizes between the
  original resolution and S (tiny graphs, compiled per image size).

Clicks are given in network coordinates as float64 (host) and encoded with the original's float64 disk
arithmetic (`click_offsets`); everything else stays on device.

Every array entering a compiled function is committed to the engine's device first (`put`). jit caches
its executables per argument placement: an uncommitted array (numpy moved with a plain `device_put`,
`jnp.zeros`) and a committed one (any output of a call on committed parameters, e.g. loaded weights)
would compile the same step twice — a multi-second stall at a user's second click.
"""

from __future__ import annotations

import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..model.clicks import ClickOffsets, click_offsets
from ..model.resize import resize_bilinear
from ..model.skipclick import ImageFeatures, SkipClick, prepare_variables

Click = tuple[float, float, bool]  # (y, x, is_positive) in network-input pixels


def points_array(clicks_per_item: list[list[Click]], capacity: int, size: int, flip: bool) -> np.ndarray:
    """(B', 2·capacity, 3) float64 points in the original layout; with `flip`, B' = 2B and the second half
    holds the mirrored clicks x'' = S − x' − 1 (the original's AddHorizontalFlip arithmetic)."""
    def rows(clicks: list[Click], mirror: bool) -> np.ndarray:
        out = np.full((2 * capacity, 3), -1.0)
        pos = [c for c in clicks if c[2]]
        neg = [c for c in clicks if not c[2]]
        for base, group in ((0, pos), (capacity, neg)):
            for j, (y, x, _) in enumerate(group):
                out[base + j] = (y, (size - x) - 1 if mirror else x, 0.0)
        return out

    items = [rows(c, False) for c in clicks_per_item]
    if flip:
        items += [rows(c, True) for c in clicks_per_item]
    return np.stack(items)


# One compiled preparation per model and weight shapes, shared by every engine (and every `set_params`).
_prepare = jax.jit(prepare_variables, static_argnums=0)


def _flip_w(x: jax.Array) -> jax.Array:
    return x[:, :, ::-1]


class ClickEngine:
    """Compiled encode / click step for one network input size S.

    Args:
        model: a `SkipClick` module (its `dtype` is the compute dtype of matmuls and convolutions).
        params: its float32 parameters; the engine keeps them (`params`) and the prepared `variables` the
            compiled steps take, both on `device`.
        size: the network input side S (a multiple of the patch size).
        flip: horizontal-flip test-time augmentation (logits of the image and its mirror averaged).
        capacity: point slots per sign (≥ 1); grows in steps of `capacity` if a session needs more.
        device: where parameters and inputs live (default: the first device).
    """

    def __init__(self, model: SkipClick, params: Any, size: int, *, flip: bool = True, capacity: int = 24,
                 device: jax.Device | None = None):
        if size % model.config.patch_size:
            raise ValueError(f"network size {size} is not a multiple of the patch size {model.config.patch_size}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity (click slots per sign) must be a positive integer, got {capacity!r}")
        self.model, self.size, self.flip, self.step = model, size, flip, capacity
        self.capacity = capacity
        self._capacity_lock = threading.Lock()  # sessions on several threads may share an engine
        self.device = device if device is not None else jax.devices()[0]
        self.set_params(params)
        self._encode = jax.jit(self.encode_step)
        self._logits = jax.jit(self._logits_impl)
        self._click = jax.jit(self.click_step, donate_argnums=(2,))
        self._to_network = jax.jit(self._to_network_impl)
        self._to_image = jax.jit(self._to_image_impl, static_argnums=(1,))

    # --- pure implementations (jitted in __init__) --------------------------------------------
    def encode_step(self, variables: Any, images: jax.Array) -> ImageFeatures:
        """The encode as a pure function of (`variables`, images) (unjitted; flip TTA included)."""
        return self.model.apply(variables, self.encode_inputs(images), method=SkipClick.encode)

    def decode_inputs(self, features: ImageFeatures, prev: jax.Array) -> tuple[ImageFeatures, jax.Array]:
        """The features and previous masks as the model's decode takes them: with flip TTA the mirrored
        masks are appended, and features of fewer images than masks are repeated (K objects of one image)."""
        if self.flip:
            prev = jnp.concatenate([prev, _flip_w(prev)], axis=0)
        n_feat, n = features.tokens.shape[0], prev.shape[0]
        if n_feat not in (1, n):
            # K objects of one image: features [image | mirror] → [image × K | mirror × K], like prev.
            rep = lambda t: jnp.repeat(t, n // n_feat, axis=0)  # noqa: E731
            terms = None if features.skip_terms is None else tuple(map(rep, features.skip_terms))
            features = features.replace(tokens=rep(features.tokens), skip_terms=terms)
        return features, prev

    def probabilities(self, logits: jax.Array) -> jax.Array:
        """Logits of the decode batch → probabilities (flip TTA: averaged as logits, SPEC 3.3)."""
        if self.flip:
            half = logits.shape[0] // 2
            logits = 0.5 * (logits[:half] + _flip_w(logits[half:]))
        return jax.nn.sigmoid(logits)

    def _logits_impl(self, variables: Any, features: ImageFeatures, prev: jax.Array,
                     offsets: ClickOffsets) -> jax.Array:
        features, prev = self.decode_inputs(features, prev)
        return self.model.apply(variables, features, prev, offsets, method=SkipClick.decode)

    def click_step(self, variables: Any, features: ImageFeatures, prev: jax.Array, offsets: ClickOffsets) -> jax.Array:
        """The click step as a pure function of (`variables`, features, prev, offsets) → probabilities
        (unjitted), for callers composing it into their own compiled programs (e.g. the batched evaluator)."""
        return self.probabilities(self._logits_impl(variables, features, prev, offsets))

    def encode_inputs(self, images: jax.Array) -> jax.Array:
        """The images as the model's encode takes them (flip TTA: the mirrored images appended)."""
        return jnp.concatenate([images, _flip_w(images)], axis=0) if self.flip else images

    def _to_network_impl(self, x: jax.Array) -> jax.Array:
        return resize_bilinear(x, (self.size, self.size), align_corners=True)

    def _to_image_impl(self, x: jax.Array, hw: tuple[int, int]) -> jax.Array:
        return resize_bilinear(x, hw, align_corners=True)

    # --- public API -----------------------------------------------------------------------------
    def set_params(self, params: Any) -> None:
        """Use new parameters (of the same shapes: the compiled steps are kept, e.g. for evaluation during
        training) and prepare them again."""
        self.params = self.put(params)
        self.variables = _prepare(self.model, self.params)

    def put(self, tree: Any) -> Any:
        """Commit arrays (numpy or JAX, any pytree) to the engine's device; a no-op for those already there."""
        return jax.device_put(tree, self.device)

    def encode(self, images: jax.Array | np.ndarray) -> ImageFeatures:
        """Encode (B, S, S, 3) float RGB images in [0, 1] (already at the network size)."""
        images = images.astype(jnp.float32) if isinstance(images, jax.Array) else np.asarray(images, np.float32)
        return self._encode(self.variables, self.put(images))

    def encode_clicks(self, clicks_per_item: list[list[Click]]) -> ClickOffsets:
        """Clicks (network coordinates) → device `ClickOffsets`, growing the capacity if needed."""
        most = max((max(sum(c[2] for c in cl), sum(not c[2] for c in cl)) for cl in clicks_per_item), default=0)
        with self._capacity_lock:
            while most > self.capacity:
                self.capacity += self.step  # one recompilation per growth step, never per click
            capacity = self.capacity
        points = points_array(clicks_per_item, capacity, self.size, self.flip)
        return self.put(click_offsets(points, self.size, self.size))

    def click_logits(self, features: ImageFeatures, prev: jax.Array, clicks: list[list[Click]]) -> jax.Array:
        """Raw logits (B·(2 if flip), S, S, 1) of the click step (no averaging), mostly for tests."""
        return self._logits(self.variables, self.put(features), self.put(prev), self.encode_clicks(clicks))

    def click(self, features: ImageFeatures, prev: jax.Array, clicks: list[list[Click]]) -> jax.Array:
        """Probabilities (B, S, S, 1) for each item's clicks; `prev` (B, S, S, 1) is consumed (donated)."""
        return self._click(self.variables, self.put(features), self.put(prev), self.encode_clicks(clicks))

    def to_network(self, prob: jax.Array) -> jax.Array:
        """(B, H, W, C) → (B, S, S, C), bilinear align_corners=True (the evaluation's ZoomIn resize)."""
        return self._to_network(self.put(prob))

    def to_image(self, prob: jax.Array, hw: tuple[int, int]) -> jax.Array:
        """(B, S, S, C) → (B, H, W, C), bilinear align_corners=True (the evaluation's inverse resize)."""
        return self._to_image(self.put(prob), tuple(int(v) for v in hw))
