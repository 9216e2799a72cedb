"""NoC evaluation: click simulator, metrics, per-sample loop and dataset readers (pure numpy/OpenCV).

Sub-modules: :mod:`.clicker`, :mod:`.metrics`, :mod:`.loop`, :mod:`.datasets`.
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
