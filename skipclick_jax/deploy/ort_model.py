"""`OnnxSkipClick`: the exported ONNX pair run by ONNX Runtime, with its inputs checked against the metadata.

    pair = OnnxSkipClick("export_dir")
    features = pair.encode(images)                          # (B, 3, S, S) float32 in [0, 1]
    logits, prob = pair.click(features, prev_mask, points)  # (B, 1, S, S) float32 each

Needs onnxruntime and numpy only (no JAX model code, no torch). Wrong shapes, dtypes or names are refused
with a message naming the input, its expected shape and dtype, and what was given, before ONNX Runtime
sees them. `flip=True` adds the evaluation protocol's horizontal-flip averaging around the graphs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .metadata import read_metadata

Features = dict[str, np.ndarray]


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("running the ONNX pair needs onnxruntime: pip install 'skipclick-jax[onnx]'") from None
    return onnxruntime


def check_input(spec: dict[str, Any], value: Any, dims: dict[str, int]) -> None:
    """Raise a clear TypeError / ValueError unless `value` matches `spec` (a metadata tensor spec).

    `dims` binds symbolic dimensions ("batch", "2*n") across the inputs of one call.
    """
    name, want = spec["name"], tuple(spec["shape"])
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array {want} {spec['dtype']}, got {type(value).__name__}")
    if value.dtype != np.dtype(spec["dtype"]):
        raise TypeError(f"{name}: expected dtype {spec['dtype']}, got {value.dtype} (convert with "
                        f".astype(np.{spec['dtype']}))")
    if value.ndim != len(want):
        raise ValueError(f"{name}: expected shape {want}, got {value.shape}")
    for axis, (w, g) in enumerate(zip(want, value.shape, strict=True)):
        if isinstance(w, int):
            if g != w:
                raise ValueError(f"{name}: expected shape {want}, got {value.shape} (axis {axis} must be {w})")
            continue
        if w.startswith("2*") and (g < 2 or g % 2):
            raise ValueError(f"{name}: axis {axis} ({w}) must be an even number >= 2 (N positive, then N negative "
                             f"slots), got {g}")
        if g < 1:
            raise ValueError(f"{name}: axis {axis} ({w}) must be >= 1, got {g}")
        if dims.setdefault(w, g) != g:
            raise ValueError(f"{name}: axis {axis} is the {w} dimension, {dims[w]} for the earlier inputs, got {g}")


def mirror_points(points: np.ndarray, size: int) -> np.ndarray:
    """Points of the mirrored image: x → (S − x) − 1 in float64 (the original's AddHorizontalFlip); padding
    rows stay (−1, −1, −1)."""
    out = points.copy()
    valid = points[..., :2].max(axis=-1) >= 0
    out[..., 1] = np.where(valid, (size - points[..., 1]) - 1, points[..., 1])
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function (what the graphs' `probabilities` output computes)."""
    return (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float32)


class OnnxSkipClick:
    """The encoder / click ONNX pair of an export directory, on ONNX Runtime (CPU by default).

    Args:
        export_dir: a directory written by `skipclick export CKPT OUT --format onnx`.
        flip: average the logits of the image and its mirror (the evaluation protocol's default); the
            features of `encode` then hold [images, mirrored images] and `click` takes care of the rest.
        threads: ONNX Runtime intra-op threads (default: its own choice).
        providers: ONNX Runtime execution providers (default: CPU).
    """

    def __init__(self, export_dir: str | Path, *, flip: bool = False, threads: int | None = None,
                 providers: list[str] | None = None):
        ort = _require_onnxruntime()
        self.directory = Path(export_dir)
        self.metadata = read_metadata(self.directory)
        if self.metadata.get("format") != "onnx":
            raise ValueError(f"{export_dir}: holds a {self.metadata.get('format')} export, not onnx")
        self.size: int = int(self.metadata["size"])
        self.threshold: float = float(self.metadata["threshold"])
        self.flip = flip
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        providers = providers or ["CPUExecutionProvider"]
        graphs = self.metadata["graphs"]
        self.encoder_spec, self.click_spec = graphs["encoder"], graphs["click"]
        session = lambda graph: ort.InferenceSession(  # noqa: E731
            str(self.directory / graphs[graph]["file"]), options, providers=providers)
        self.encoder, self.clicker = session("encoder"), session("click")
        self.feature_names = [s["name"] for s in self.encoder_spec["outputs"]]

    def encode(self, images: np.ndarray) -> Features:
        """(B, 3, S, S) float32 RGB in [0, 1] → the image features (with `flip`: of [images, mirrored])."""
        check_input(self.encoder_spec["inputs"][0], images, {})
        if self.flip:
            images = np.concatenate([images, images[..., ::-1]], axis=0)
        outputs = self.encoder.run(self.feature_names, {"image": images})
        return dict(zip(self.feature_names, outputs, strict=True))

    def run_click(self, features: Features, prev_mask: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One run of click.onnx, inputs checked: (logits, probabilities), no flip handling."""
        if not isinstance(features, dict) or set(features) != set(self.feature_names):
            got = sorted(features) if isinstance(features, dict) else type(features).__name__
            raise ValueError(f"features: expected the encoder's outputs {self.feature_names}, got {got}")
        feed = {**features, "prev_mask": prev_mask, "points": points}
        dims: dict[str, int] = {}
        for spec in self.click_spec["inputs"]:
            check_input(spec, feed[spec["name"]], dims)
        logits, prob = self.clicker.run(["logits", "probabilities"], feed)
        return logits, prob

    def click(self, features: Features, prev_mask: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and probabilities (B, 1, S, S) for `points` (B, 2N, 3) float64 and `prev_mask` (B, 1, S, S).

        With `flip`, `features` come from this object's `encode` (2B rows) and the logits are the average
        of the image's and the mirrored image's; the probabilities are their sigmoid.
        """
        if not self.flip:
            return self.run_click(features, prev_mask, points)
        for name, value, dtype in (("prev_mask", prev_mask, np.float32), ("points", points, np.float64)):
            if not isinstance(value, np.ndarray) or value.dtype != dtype:
                raise TypeError(f"{name}: expected a {np.dtype(dtype)} numpy array, got "
                                f"{getattr(value, 'dtype', type(value).__name__)}")
        prev2 = np.concatenate([prev_mask, prev_mask[..., ::-1]], axis=0)
        points2 = np.concatenate([points, mirror_points(points, self.size)], axis=0)
        logits, _ = self.run_click(features, prev2, points2)
        half = logits.shape[0] // 2
        averaged = (np.float32(0.5) * (logits[:half] + logits[half:, ..., ::-1])).astype(np.float32)
        return averaged, sigmoid(averaged)
