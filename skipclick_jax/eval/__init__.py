"""NoC evaluation: click simulator, metrics, per-sample loop and dataset readers (pure numpy/OpenCV).

Sub-modules: :mod:`.clicker`, :mod:`.metrics`, :mod:`.loop`, :mod:`.datasets` (imported here), and the
model-facing ones, imported on demand because they load JAX: :mod:`.models` (weights, engines per size),
:mod:`.batched` (continuous-batching evaluator), :mod:`.zoom_in` (optional zoom-in predictor),
:mod:`.runner` (datasets → results) and :mod:`.command` (``skipclick evaluate``).
"""

from .clicker import Click, Clicker, next_click
from .loop import (
    DatasetResult,
    Predictor,
    SampleResult,
    evaluate_dataset,
    evaluate_sample,
    plot_miou_curve,
    write_results_json,
)
from .metrics import IOU_THRESHOLDS, format_results_table, format_wseseg_table, iou, noc, summarize

__all__ = [
    "IOU_THRESHOLDS", "Click", "Clicker", "DatasetResult", "Predictor", "SampleResult", "evaluate_dataset",
    "evaluate_sample", "format_results_table", "format_wseseg_table", "iou", "next_click", "noc",
    "plot_miou_curve", "summarize", "write_results_json",
]
