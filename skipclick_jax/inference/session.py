"""`ClickSession`: one image, one object, clicks in, probability maps out — what a GUI or notebook uses.

The pipeline is the original evaluation predictor's (SPEC 3.3): the image is resized to S×S with
bilinear align_corners=True and encoded once; each click maps (y, x) to (S·y/H, S·x/W) in float64,
resizes the previous probability map to S×S, runs the compiled click step (with horizontal-flip
logit averaging if enabled), applies the sigmoid and resizes back to H×W. The same object serves as the
evaluator's predictor (`set_image`, `add_click`, `reset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..model.skipclick import ImageFeatures, SkipClick
from .engine import ClickEngine


def as_rgb_float(image: Any) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] from uint8 or float images, RGB, grayscale or RGBA (alpha dropped).

    uint8 is divided by 255 (as torchvision's ToTensor); float images must already lie in [0, 1].
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be H×W (grayscale), H×W×1, H×W×3 (RGB) or H×W×4 (RGBA); got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / np.float32(255)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if not (np.isfinite(arr).all() and lo >= 0.0 and hi <= 1.0):
            raise ValueError(f"float images must be finite and within [0, 1]; got values in [{lo}, {hi}]")
    else:
        raise TypeError(f"image dtype must be uint8 or float (RGB in [0, 1]); got {arr.dtype}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def encode_image(engine: ClickEngine, image: Any) -> tuple[ImageFeatures, tuple[int, int]]:
    """The image-only work of `ClickSession.set_image`: validate, resize to S×S (align_corners) and encode.

    Touches no session state, so it can run ahead on a worker thread; hand the result to `set_features`.
    """
    rgb = as_rgb_float(image)
    network = engine.to_network(rgb[None])
    return engine.encode(network), rgb.shape[:2]


@dataclass(frozen=True)
class SessionClick:
    y: float
    x: float
    is_positive: bool


class ClickSession:
    """Interactive segmentation of one object at a time.

    Args:
        model, params: a `SkipClick` module and its parameters (see `load_checkpoint`).
        size: network input side S (448 by default; the paper uses 672 for DAVIS, 896 for HQSeg/WSESeg).
        flip: average the logits of the image and its mirror (the evaluation protocol's default).
        threshold: probability threshold of `mask` (0.49 as the evaluation; the original GUI shows > 0.5).
        engine: share a compiled `ClickEngine` between sessions (same model, size and flip).
    """

    def __init__(
        self,
        model: SkipClick | None = None,
        params: Any = None,
        *,
        size: int = 448,
        flip: bool = True,
        threshold: float = 0.49,
        capacity: int = 24,
        engine: ClickEngine | None = None,
    ):
        if engine is None:
            if model is None or params is None:
                raise ValueError("give a model and its params, or an engine")
            engine = ClickEngine(model, params, size, flip=flip, capacity=capacity)
        self.engine = engine
        self.threshold = threshold
        self._features: ImageFeatures | None = None
        self._hw: tuple[int, int] | None = None
        self._clicks: list[SessionClick] = []
        self._history: list[jax.Array] = []  # probability maps (1, H, W, 1) after each click, on device

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, dtype: str = "float32", **kwargs: Any) -> ClickSession:
        """Open a session on any checkpoint `load_checkpoint` reads; `dtype` 'float32' or 'bfloat16'."""
        from ..weights import load_checkpoint

        model, params = load_checkpoint(path, dtype=jnp.dtype(dtype))
        return cls(model, params, **kwargs)

    # --- image ----------------------------------------------------------------------------------
    def set_image(self, image: Any) -> None:
        """Take a new image (any size; uint8 or float, RGB, grayscale or RGBA), encode it, clear the clicks."""
        self.set_features(*encode_image(self.engine, image))

    def set_features(self, features: ImageFeatures, hw: tuple[int, int]) -> None:
        """Use an image encoded elsewhere (`encode_image` with this session's engine); clears the clicks."""
        self._features, self._hw = features, (int(hw[0]), int(hw[1]))
        self.reset()

    @property
    def image_size(self) -> tuple[int, int] | None:
        return self._hw

    @property
    def features(self) -> ImageFeatures | None:
        """The current image's encoded features (None before `set_image`)."""
        return self._features

    # --- clicks ---------------------------------------------------------------------------------
    @property
    def clicks(self) -> list[SessionClick]:
        return list(self._clicks)

    def _require_image(self) -> tuple[int, int]:
        if self._hw is None:
            raise RuntimeError("no image: call set_image first")
        return self._hw

    def _prev(self) -> jax.Array:
        h, w = self._require_image()
        if self._history:
            return self._history[-1]
        return self.engine.put(np.zeros((1, h, w, 1), np.float32))  # jnp.zeros would compile per shape

    def add_click(self, y: float, x: float, is_positive: bool = True) -> np.ndarray:
        """Add a click at row `y`, column `x` of the original image; returns the H×W probability map."""
        h, w = self._require_image()
        for name, v in (("y", y), ("x", x)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"click {name} must be a real number (a pixel {'row' if name == 'y' else 'column'}), "
                                f"got {v!r}")
        if not isinstance(is_positive, (bool, np.bool_)):
            raise TypeError(f"is_positive must be True or False, got {is_positive!r}")
        if not (np.isfinite(y) and np.isfinite(x) and 0 <= y < h and 0 <= x < w):
            raise ValueError(f"click ({y}, {x}) is outside the {h}×{w} image")
        s = self.engine.size
        clicks = [*self._clicks, SessionClick(y, x, bool(is_positive))]
        # The original maps clicks with S·y/H (not (S-1)/(H-1)) in float64 (SPEC trap 6).
        network_clicks = [((s * c.y) / h, (s * c.x) / w, c.is_positive) for c in clicks]
        prev = self.engine.to_network(self._prev())
        prob = self.engine.to_image(self.engine.click(self._features, prev, [network_clicks]), (h, w))
        self._clicks, self._history = clicks, [*self._history, prob]  # commit only after success
        return np.asarray(prob)[0, :, :, 0]

    def undo(self) -> np.ndarray:
        """Remove the last click; returns the probability map before it (zeros after the first)."""
        if self._clicks:
            self._clicks.pop()
            self._history.pop()
        return self.probability

    def reset(self) -> None:
        """Forget the clicks and the previous mask (start a new object on the same image)."""
        self._clicks, self._history = [], []

    @property
    def probability(self) -> np.ndarray:
        """The current H×W probability map (zeros before the first click)."""
        return np.asarray(self._prev())[0, :, :, 0]

    @property
    def mask(self) -> np.ndarray:
        """The current binary mask: probability > threshold (strict, as the original)."""
        return self.probability > np.float32(self.threshold)
