"""Per-sample NoC evaluation loop (SPEC §3.4), dataset driver, JSON results and the mIoU-vs-clicks plot.

The loop is written against a tiny predictor protocol so it runs with the JAX model, a PyTorch reference or a
fake numpy predictor in tests:

* ``reset()`` forgets clicks and the previous mask; ``set_image(image)`` starts a new image (H×W×3, uint8 or
  float32 in [0, 1]);
* ``add_click(y, x, is_positive)`` adds one click (original-resolution pixel coordinates, row first) and
  returns the H×W float32 probability map; the predictor keeps its own previous mask and click list.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..atomic import write_bytes_atomic
from .clicker import Clicker
from .metrics import iou, summarize


@runtime_checkable
class Predictor(Protocol):
    """What :func:`evaluate_sample` needs from a model."""

    def reset(self) -> None:
        """Forget clicks and the previous mask (the image may be kept)."""

    def set_image(self, image: np.ndarray) -> None:
        """Start a new image, H×W×3 uint8 or float32 in [0, 1]."""

    def add_click(self, y: float, x: float, is_positive: bool) -> np.ndarray:
        """Add a click and return the H×W float32 probability map at the image resolution."""


@dataclass
class SampleResult:
    """Clicks ``(y, x, is_positive)`` and float64 IoU after each click of one object."""

    clicks: list[tuple[int, int, bool]]
    ious: list[float]
    id: str = ""


@dataclass
class DatasetResult:
    """Per-sample results, :func:`~skipclick_jax.eval.metrics.summarize` dict and wall time of a dataset."""

    name: str
    samples: list[SampleResult]
    metrics: dict[str, Any]
    elapsed_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    # The samples `elapsed_s` covers (all of them, unless some were finished by an interrupted run).
    timed: list[SampleResult] | None = None

    @property
    def _timed(self) -> list[SampleResult]:
        return self.samples if self.timed is None else self.timed

    @property
    def seconds_per_click(self) -> float:
        n = sum(len(s.ious) for s in self._timed)
        return self.elapsed_s / n if n else float("nan")

    @property
    def samples_per_second(self) -> float:
        return len(self._timed) / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def check_gt(image: Any, gt: Any, sample_id: str) -> np.ndarray:
    """The ground truth as an array, after checking it fits the image and holds an object."""
    gt = np.asarray(gt)
    if gt.ndim != 2 or tuple(np.shape(image)[:2]) != gt.shape:
        raise ValueError(f"sample {sample_id}: image {np.shape(image)} and gt {gt.shape} do not match")
    if not np.any(gt == 1):
        raise ValueError(f"sample {sample_id}: the object mask is empty (no pixel equals 1); its IoU is undefined")
    return gt


def evaluate_sample(predictor: Predictor, image: np.ndarray, gt: np.ndarray, max_clicks: int = 20,
                    target_iou: float = 0.95, thresh: float = 0.49, min_clicks: int = 1,
                    sample_id: str = "") -> SampleResult:
    """Simulate up to ``max_clicks`` clicks on one object and record the IoU after each.

    The prediction is ``prob > thresh`` (strict, trap 23); the loop stops after click k when the float64
    IoU ≥ ``target_iou`` and k ≥ ``min_clicks``.
    """
    gt = check_gt(image, gt, sample_id)
    clicker = Clicker(gt)
    pred = np.zeros(gt.shape, dtype=bool)
    ious: list[float] = []
    predictor.reset()
    predictor.set_image(image)
    for k in range(1, max_clicks + 1):
        click = clicker.next_click(pred)
        prob = np.asarray(predictor.add_click(float(click.y), float(click.x), click.is_positive))
        if prob.shape != gt.shape:
            raise ValueError(f"predictor returned a {prob.shape} map for a {gt.shape} image")
        pred = prob > thresh
        value = iou(gt, pred)
        ious.append(value)
        if value >= target_iou and k >= min_clicks:
            break
    clicks = [(c.y, c.x, c.is_positive) for c in clicker.clicks]
    return SampleResult(clicks=clicks, ious=ious, id=sample_id)


def evaluate_dataset(predictor: Predictor, dataset: Iterable[Any], name: str | None = None,
                     max_clicks: int = 20, target_iou: float = 0.95, thresh: float = 0.49,
                     min_clicks: int = 1, progress: bool = True,
                     on_done: Callable[[int, SampleResult], None] | None = None) -> DatasetResult:
    """Run :func:`evaluate_sample` on every sample of ``dataset`` and summarise.

    ``dataset`` yields objects with ``id``, ``image`` and ``gt`` attributes (see
    :class:`~skipclick_jax.eval.datasets.EvalSample`); its ``name`` attribute is used when ``name`` is None.
    ``on_done(position, result)`` is called as soon as a sample is finished (position: in ``dataset``).
    """
    name = name if name is not None else str(getattr(dataset, "name", "dataset"))
    try:
        total: int | None = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        total = None
    iterator: Iterable[Any] = dataset
    if progress:
        from tqdm import tqdm

        iterator = tqdm(dataset, total=total, desc=name, leave=False, dynamic_ncols=True)
    results = []
    start = time.perf_counter()
    for sample in iterator:
        results.append(evaluate_sample(predictor, sample.image, sample.gt, max_clicks=max_clicks,
                                       target_iou=target_iou, thresh=thresh, min_clicks=min_clicks,
                                       sample_id=str(sample.id)))
        if on_done is not None:
            on_done(len(results) - 1, results[-1])
    elapsed = time.perf_counter() - start
    metrics = summarize([r.ious for r in results], max_clicks=max_clicks, target_iou=target_iou)
    settings = {"max_clicks": max_clicks, "target_iou": target_iou, "thresh": thresh,
                "min_clicks": min_clicks}
    return DatasetResult(name=name, samples=results, metrics=metrics, elapsed_s=elapsed, settings=settings)


def results_to_json(results: Mapping[str, DatasetResult] | Sequence[DatasetResult]) -> dict[str, Any]:
    """``{dataset: {"metrics": {...}, "samples": [{"id", "clicks": [[y, x, pos], ...], "ious": [...]}]}}``.

    Timings are left out so that two runs of a deterministic predictor give identical files.
    """
    items = results.values() if isinstance(results, Mapping) else results
    out: dict[str, Any] = {}
    for res in items:
        out[res.name] = {
            "metrics": _jsonable(res.metrics),
            "samples": [
                {"id": s.id, "clicks": [[int(y), int(x), bool(p)] for y, x, p in s.clicks],
                 "ious": [float(v) for v in s.ious]}
                for s in res.samples
            ],
        }
    return out


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as JSON atomically (temporary sibling, then ``os.replace``): never half-written.

    NaN values are written as ``null``.
    """
    text = json.dumps(_jsonable(data), indent=1, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_results_json(path: str | os.PathLike[str],
                       results: Mapping[str, DatasetResult] | Sequence[DatasetResult]) -> Path:
    """Write :func:`results_to_json` of ``results`` atomically to ``path``."""
    return write_json_atomic(path, results_to_json(results))


def _jsonable(value: Any) -> Any:
    """Plain-Python copy of ``value`` with NaN/inf → None and numpy scalars unwrapped."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def plot_miou_curve(path: str | os.PathLike[str], curves: Mapping[str, Sequence[float]],
                    title: str = "mIoU vs. number of clicks") -> Path:
    """Save mIoU@k curves (label → values for k = 1, 2, …) as a PNG, using the non-interactive Agg canvas."""
    # Figure + Agg canvas directly: no pyplot global state, no GUI backend needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, values in curves.items():
        ks = np.arange(1, len(values) + 1)
        ax.plot(ks, np.asarray(values, dtype=float) * 100.0, marker="o", markersize=3, label=label)
    ax.set_xlabel("number of clicks")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(loc="lower right")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue())
