"""IoU, NoC, NoF and mIoU-vs-clicks exactly as the reference evaluation computes them (SPEC §3.6, §3.7).

Precision conventions (traps 27, 27b, 43), reproduced on purpose:

* the per-click IoU is computed in float64 (the loop's early-stop test uses that value);
* the stored IoU lists are float32, and NoC compares them with the threshold **in float32**
  (numpy casts the Python-float threshold to the array's dtype). The tiny offsets of
  ``np.arange(0.8, 0.951, 0.05)`` (0.8500000000000001, …) therefore make no difference, and a float64 IoU
  just *below* a threshold (within half a float32 ulp) counts as reached although the loop did not stop on it.
* NoC of a sample that never reaches t is ``max_clicks``; NoF ("≥20@t") counts samples whose NoC_t equals
  ``max_clicks``, i.e. also those that first reach t exactly at the last click.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from .clicker import IGNORE_LABEL

#: NoC thresholds, float64 exactly as the reference builds them: 0.8, 0.8500000000000001, 0.9000000000000001,
#: 0.9500000000000002.
IOU_THRESHOLDS: tuple[float, ...] = tuple(np.arange(0.8, 0.95 + 0.001, 0.05).tolist())
NOC_KEYS = ("NoC@80", "NoC@85", "NoC@90", "NoC@95")
NOF_KEYS = ("NoF@85", "NoF@90", "NoF@95")

# Paper column order and names of the WSESeg classes (SPEC §4).
WSESEG_CLASS_LABELS: dict[str, str] = {
    "flickr_bobsleighs": "Bobsleigh",
    "flickr_curling_stone": "Curl. Stone",
    "flickr_ski_helmets": "Ski Helmet",
    "flickr_snow_kites": "Snow Kite",
    "yt_sports": "Ski (Jump)",
    "flickr_curling_brooms": "Curl. Broom",
    "flickr_ski_goggles": "Ski Goggles",
    "flickr_ski_misc": "Ski (Misc)",
    "flickr_slalom_obstacles": "Slalom Gate Poles",
    "flickr_snowboards": "Snowboards",
}


def iou(gt: np.ndarray, pred: np.ndarray, ignore_label: int = IGNORE_LABEL) -> float:
    """IoU of the binary prediction with the object (gt == 1), ignore pixels excluded; float64.

    Returns NaN when both the object and the prediction are empty (0/0, as the reference's numpy division).
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred shapes differ: {gt.shape} vs {pred.shape}")
    valid = gt != ignore_label
    obj = gt == 1
    inter = int(np.count_nonzero(pred & obj & valid))
    union = int(np.count_nonzero((pred | obj) & valid))
    return inter / union if union else math.nan


def stored_ious(ious: Sequence[float] | np.ndarray) -> np.ndarray:
    """The float32 per-click IoU array the reference stores and computes NoC from."""
    return np.asarray(ious, dtype=np.float64).astype(np.float32)


def noc(ious: Sequence[float] | np.ndarray, threshold: float, max_clicks: int = 20) -> int:
    """Number of clicks to reach ``threshold`` for one sample (1-based), ``max_clicks`` if never reached."""
    reached = stored_ious(ious) >= np.float32(threshold)
    return int(np.argmax(reached)) + 1 if reached.any() else max_clicks


def noc_table(all_ious: Sequence[Sequence[float]], thresholds: Sequence[float] = IOU_THRESHOLDS,
              max_clicks: int = 20) -> np.ndarray:
    """Per-sample NoC values, shape (num_samples, num_thresholds), int64."""
    return np.array([[noc(s, t, max_clicks) for t in thresholds] for s in all_ious],
                    dtype=np.int64).reshape(len(all_ious), len(thresholds))


def miou_curve(all_ious: Sequence[Sequence[float]]) -> list[float]:
    """mIoU@k for k = 1 … (shortest IoU list); complete for runs where every sample used all clicks.

    As the reference's ``--print-ious``: the float32 lists are truncated to the shortest one and averaged.
    """
    if not all_ious:
        return []
    k = min(len(s) for s in all_ious)
    if k == 0:
        return []
    stacked = np.stack([stored_ious(s)[:k] for s in all_ious])
    return [float(v) for v in stacked.mean(axis=0)]


def summarize(all_ious: Sequence[Sequence[float]], max_clicks: int = 20,
              target_iou: float = 0.95) -> dict[str, Any]:
    """Dataset summary ``{"NoC@80", "NoC@85", "NoC@90", "NoC@95", "NoF@85", "NoF@90", "NoF@95", "mIoU@k"}``.

    A threshold above ``target_iou`` cannot be evaluated from lists truncated at the target (trap 27), so its
    entries are None (the reference prints "?"). Means over zero samples are NaN.
    """
    usable = [t <= min(0.95, target_iou) + 0.001 for t in IOU_THRESHOLDS]
    table = noc_table(all_ious, IOU_THRESHOLDS, max_clicks)
    out: dict[str, Any] = {}
    for j, key in enumerate(NOC_KEYS):
        out[key] = (float(table[:, j].mean()) if len(table) else math.nan) if usable[j] else None
    for j, key in enumerate(NOF_KEYS, start=1):
        out[key] = int((table[:, j] == max_clicks).sum()) if usable[j] else None
    out["mIoU@k"] = miou_curve(all_ious)
    return out


def wseseg_average(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """Unweighted mean over WSESeg classes of every NoC/NoF entry (the paper's "Average" column).

    ``summaries`` maps dataset names (``WSESeg_<class>`` or bare class names) to :func:`summarize` outputs;
    only the WSESeg classes present are averaged.
    """
    rows = [s for name, s in summaries.items() if _wseseg_class(name) is not None]
    out: dict[str, float | None] = {}
    for key in NOC_KEYS + NOF_KEYS:
        vals = [r.get(key) for r in rows]
        out[key] = float(np.mean(vals)) if vals and all(v is not None for v in vals) else None
    return out


def _wseseg_class(name: str) -> str | None:
    bare = name[len("WSESeg_"):] if name.startswith("WSESeg_") else name
    return bare if bare in WSESEG_CLASS_LABELS else None


def _cell(value: Any, width: int, fmt: str = ".2f") -> str:
    text = "?" if value is None else (f"{value:{fmt}}" if isinstance(value, float) else str(value))
    return f"{text:^{width}}"


def format_results_table(summaries: Mapping[str, Mapping[str, Any]], n_clicks: int = 20,
                         timings: Mapping[str, tuple[float, float]] | None = None,
                         model_name: str | None = None,
                         samples_per_s: Mapping[str, float] | None = None) -> str:
    """Reference-style results table, one row per dataset.

    Args:
        summaries: dataset name → :func:`summarize` output.
        n_clicks: click budget (for the "≥20@t" headers).
        timings: optional dataset name → (seconds per click, total seconds).
        model_name: optional title line.
        samples_per_s: optional dataset name → throughput (an extra "smp/s" column; rows without one show "-").
    """
    nof = [f">={n_clicks}@{t}%" for t in (85, 90, 95)]
    header = (f'|{"Dataset":^30}|' + "".join(f"{h:^9}|" for h in ("NoC@80%", "NoC@85%", "NoC@90%", "NoC@95%"))
              + "".join(f"{h:^9}|" for h in nof))
    if timings is not None:
        header += f'{"SPC,s":^7}|{"Time":^9}|'
    if samples_per_s is not None:
        header += f'{"smp/s":^8}|'
    rule = "-" * len(header)
    lines = [f"Eval results for model: {model_name}"] if model_name else []
    lines += [rule, header, rule]
    for name, s in summaries.items():
        shown = name if len(name) <= 30 else "…" + name[-29:]  # long folder:PATH names keep their tail
        row = f"|{shown:^30}|" + "".join(_cell(s.get(k), 9) + "|" for k in NOC_KEYS + NOF_KEYS)
        if timings is not None:
            spc, total = timings.get(name, (math.nan, math.nan))
            total_txt = str(timedelta(seconds=int(total))) if math.isfinite(total) else "-"
            row += (f"{spc:^7.3f}|" if math.isfinite(spc) else f'{"-":^7}|') + f"{total_txt:^9}|"
        if samples_per_s is not None:
            rate = samples_per_s.get(name)
            row += f"{rate:^8.2f}|" if rate is not None and math.isfinite(rate) else f'{"-":^8}|'
        lines.append(row)
    lines.append(rule)
    return "\n".join(lines)


def format_wseseg_table(summaries: Mapping[str, Mapping[str, Any]], name: str = "SkipClick") -> str:
    """Paper Tab. 1/2 style row: "NoC@85 / NoC@90" per WSESeg class (paper column order) plus the Average."""
    by_class = {_wseseg_class(k): v for k, v in summaries.items() if _wseseg_class(k) is not None}
    cols = [c for c in WSESEG_CLASS_LABELS if c in by_class]
    cells = [_pair(by_class[c]) for c in cols]
    avg = wseseg_average({c: by_class[c] for c in cols})
    cells.append(_pair(avg, fmt=".3f"))
    headers = ["method"] + [WSESEG_CLASS_LABELS[c] for c in cols] + ["Average"]
    widths = [max(len(h), len(v)) for h, v in zip(headers, [name] + cells, strict=True)]
    head = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    row = "| " + " | ".join(v.ljust(w) for v, w in zip([name] + cells, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([head, sep, row])


def _pair(summary: Mapping[str, Any], fmt: str = ".2f") -> str:
    a, b = summary.get("NoC@85"), summary.get("NoC@90")
    return f"{_cell(a, 0, fmt).strip()} / {_cell(b, 0, fmt).strip()}"
