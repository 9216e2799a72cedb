"""Per-sample loop, dataset driver, JSON output and plot, with fake numpy predictors."""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pytest

from skipclick_jax.eval.loop import (
    Predictor,
    evaluate_dataset,
    evaluate_sample,
    plot_miou_curve,
    results_to_json,
    write_results_json,
)

from .fakes import DiskPredictor, ScriptedPredictor


class Sample(NamedTuple):
    """Anything with ``id``, ``image`` and ``gt`` works as a dataset sample."""

    id: str
    image: np.ndarray
    gt: np.ndarray


def _disk_gt(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(np.int32)


def _image(h: int, w: int) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def test_fake_predictor_satisfies_protocol():
    assert isinstance(DiskPredictor(), Predictor)


def test_perfect_first_click_stops_after_one_click():
    gt = _disk_gt(40, 50, 20, 25, 6)
    pred = DiskPredictor(radius=6)
    res = evaluate_sample(pred, _image(40, 50), gt)
    assert res.clicks == [(20, 25, True)]
    assert res.ious == [1.0]
    assert pred.calls[:2] == ["reset", "set_image"]


def test_min_clicks_forces_more_clicks():
    gt = _disk_gt(40, 50, 20, 25, 6)
    res = evaluate_sample(DiskPredictor(radius=6), _image(40, 50), gt, min_clicks=3)
    assert len(res.ious) == 3
    # Clicks 2 and 3 are degenerate negative clicks at (0, 0) (nothing left to correct), which the disk
    # predictor answers by erasing a disk at the corner: the object is untouched.
    assert res.clicks[1:] == [(0, 0, False), (0, 0, False)]
    assert res.ious == [1.0, 1.0, 1.0]


def test_never_reaching_target_runs_all_clicks():
    gt = np.zeros((30, 30), np.int32)
    gt[5:25, 5:25] = 1
    res = evaluate_sample(DiskPredictor(radius=1), _image(30, 30), gt, max_clicks=20)
    assert len(res.clicks) == len(res.ious) == 20
    assert all(isinstance(v, float) for v in res.ious)
    assert max(res.ious) < 0.95
    assert all(p for _, _, p in res.clicks)  # only positive clicks: disks never overshoot
    assert len(set((y, x) for y, x, _ in res.clicks)) == 20


def test_threshold_is_strict_and_early_stop_uses_float64():
    gt = np.zeros((4, 5), np.int32)
    gt[0, :] = 1
    gt[1, :] = 1
    gt[2, :] = 1
    gt[3, :] = 1  # 20 object pixels
    m1 = np.full(gt.shape, 0.49, np.float32)  # exactly 0.49 → not predicted (strict >)
    m2 = np.full(gt.shape, 0.4901, np.float32)
    m2[3, 4] = 0.0  # 19/20 IoU exactly → stops (float64 0.95 >= 0.95)
    pred = ScriptedPredictor([m1, m2, np.ones(gt.shape, np.float32)])
    res = evaluate_sample(pred, _image(4, 5), gt)
    assert res.ious == [0.0, 0.95]
    assert len(pred.clicks) == 2


def test_shape_mismatch_raises():
    gt = np.zeros((4, 5), np.int32)
    gt[1:3, 1:3] = 1
    with pytest.raises(ValueError, match="predictor returned"):
        evaluate_sample(ScriptedPredictor([np.zeros((5, 4), np.float32)]), _image(4, 5), gt)
    with pytest.raises(ValueError, match="do not match"):
        evaluate_sample(DiskPredictor(), _image(5, 5), gt)


def _toy_dataset() -> list[Sample]:
    samples = []
    rng = np.random.default_rng(3)
    for i in range(6):
        h, w = 40 + 3 * i, 50
        gt = _disk_gt(h, w, 15 + i, 20 + 2 * i, 5 + i)
        gt[rng.integers(0, h, 5), rng.integers(0, w, 5)] = 1  # some stray pixels the disks must chase
        samples.append(Sample(f"img{i}", rng.integers(0, 255, (h, w, 3), dtype=np.uint8), gt))
    return samples


def test_evaluate_dataset_json_and_determinism(tmp_path):
    samples = _toy_dataset()
    res1 = evaluate_dataset(DiskPredictor(radius=4), samples, name="toy", progress=False)
    res2 = evaluate_dataset(DiskPredictor(radius=4), samples, name="toy", progress=True)
    assert [s.id for s in res1.samples] == [f"img{i}" for i in range(6)]
    assert res1.metrics == res2.metrics
    assert res1.seconds_per_click > 0
    p1 = write_results_json(tmp_path / "a" / "results.json", {"toy": res1})
    p2 = write_results_json(tmp_path / "b.json", [res2])
    assert p1.read_bytes() == p2.read_bytes()
    assert sorted(x.name for x in p1.parent.iterdir()) == ["results.json"]  # no temp file left behind
    data = json.loads(p1.read_text())
    entry = data["toy"]
    assert set(entry) == {"metrics", "samples"}
    assert set(entry["metrics"]) == {"NoC@80", "NoC@85", "NoC@90", "NoC@95", "NoF@85", "NoF@90", "NoF@95",
                                     "mIoU@k"}
    first = entry["samples"][0]
    assert first["id"] == "img0"
    assert first["clicks"][0] == [15, 20, True]
    assert first["ious"] == res1.samples[0].ious  # float64 values round-trip exactly


def test_json_nan_becomes_null(tmp_path):
    res = evaluate_dataset(DiskPredictor(), [], name="empty", progress=False)
    data = json.loads(write_results_json(tmp_path / "r.json", [res]).read_text())
    assert data["empty"]["metrics"]["NoC@85"] is None and data["empty"]["samples"] == []
    assert results_to_json([res])["empty"]["metrics"]["NoF@85"] == 0


def test_full_run_miou_curve_and_plot(tmp_path):
    res = evaluate_dataset(DiskPredictor(radius=4), _toy_dataset(), name="toy", target_iou=1.01,
                           progress=False)
    assert all(len(s.ious) == 20 for s in res.samples)
    curve = res.metrics["mIoU@k"]
    assert len(curve) == 20 and curve[-1] >= curve[0]
    png = plot_miou_curve(tmp_path / "plots" / "miou.png", {"toy": curve, "other": curve[:10]})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
