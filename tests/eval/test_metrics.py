"""IoU / NoC / NoF / mIoU metrics and the result tables (SPEC §3.6, §3.7, traps 27, 27b, 43)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skipclick_jax.eval.metrics import (
    IOU_THRESHOLDS,
    format_results_table,
    format_wseseg_table,
    iou,
    miou_curve,
    noc,
    noc_table,
    summarize,
    wseseg_average,
)


def test_thresholds_are_the_reference_arange():
    assert IOU_THRESHOLDS == (0.8, 0.8500000000000001, 0.9000000000000001, 0.9500000000000002)


def test_iou_ignores_label_minus_one():
    gt = np.array([[1, 1, 0, -1], [0, 1, 0, -1]])
    pred = np.array([[1, 0, 1, 1], [0, 1, 0, 1]], bool)
    # intersection 2, union {0,0},{0,1},{0,2},{1,1} = 4; the ignore column does not count.
    assert iou(gt, pred) == 0.5
    assert isinstance(iou(gt, pred), float)
    assert iou(gt, gt == 1) == 1.0
    assert math.isnan(iou(np.zeros((2, 2), int), np.zeros((2, 2), bool)))
    with pytest.raises(ValueError):
        iou(gt, pred[:, :2])


def test_noc_first_reaching_click_and_failures():
    assert noc([0.5, 0.81, 0.9], 0.8) == 2
    assert noc([0.5, 0.81, 0.9], 0.9) == 3
    assert noc([0.5] * 20, 0.8) == 20  # never reached → 20
    assert noc([0.5] * 19 + [0.99], 0.8) == 20  # reached exactly at click 20 → also 20
    assert noc([], 0.8) == 20
    assert noc([0.5, 0.85], 0.8, max_clicks=5) == 2
    assert noc([0.5], 0.8, max_clicks=5) == 5


def test_float32_threshold_quirks():
    # Exactly 19/20: the float64 early-stop test (0.95 >= 0.95) stops the loop, and the stored float32
    # IoU compared in float32 with the float32 threshold also counts as reached (even against
    # 0.9500000000000002, which float64 arithmetic would call a miss).
    v = 19 / 20
    assert v >= 0.95
    assert noc([0.3, v], IOU_THRESHOLDS[3]) == 2
    assert noc([0.3, v], 0.95) == 2
    assert np.float64(np.float32(v)) < IOU_THRESHOLDS[3]  # the float64 comparison would have failed
    # 17/20 against 0.8500000000000001: reached for the same reason.
    assert noc([17 / 20], IOU_THRESHOLDS[1]) == 1
    # The real quirk: an IoU just *below* 0.95 in float64 (the loop keeps clicking) rounds to
    # float32(0.95) and NoC@95 counts it as reached.
    below = 94999999 / 100000000
    assert below < 0.95
    assert noc([0.3, below, 0.97], 0.95) == 2
    # Further below it is a genuine miss.
    assert noc([0.3, 0.9499999, 0.97], 0.95) == 3


def test_noc_table_and_summary():
    all_ious = [
        [0.82, 0.91, 0.96],            # NoC 1, 2, 2, 3
        [0.5] * 20,                    # never: 20 everywhere
        [0.5] * 19 + [0.96],           # reaches everything at click 20: NoC 20, counted in NoF
        [0.86, 0.88, 0.89, 0.90001],   # 1, 1, 4, 20
    ]
    table = noc_table(all_ious)
    np.testing.assert_array_equal(table, [[1, 2, 2, 3], [20, 20, 20, 20], [20, 20, 20, 20], [1, 1, 4, 20]])
    s = summarize(all_ious)
    assert list(s) == ["NoC@80", "NoC@85", "NoC@90", "NoC@95", "NoF@85", "NoF@90", "NoF@95", "mIoU@k"]
    assert s["NoC@80"] == pytest.approx(42 / 4)
    assert s["NoC@90"] == pytest.approx(46 / 4)
    assert (s["NoF@85"], s["NoF@90"], s["NoF@95"]) == (2, 2, 3)
    # mIoU@k only over the clicks every sample has (here 3).
    assert len(s["mIoU@k"]) == 3
    assert s["mIoU@k"][0] == pytest.approx(np.mean(np.float32([0.82, 0.5, 0.5, 0.86])), abs=1e-7)


def test_summary_with_lower_target_hides_unreachable_thresholds():
    s = summarize([[0.5, 0.91]], target_iou=0.9)
    assert s["NoC@95"] is None and s["NoF@95"] is None
    assert s["NoC@90"] == 2.0 and s["NoF@90"] == 0


def test_empty_summary():
    s = summarize([])
    assert math.isnan(s["NoC@85"]) and s["NoF@85"] == 0 and s["mIoU@k"] == []


def test_miou_curve_full_runs():
    rng = np.random.default_rng(0)
    runs = rng.uniform(0, 1, size=(7, 20))
    curve = miou_curve(runs.tolist())
    assert len(curve) == 20
    np.testing.assert_allclose(curve, runs.astype(np.float32).mean(axis=0), rtol=1e-6)
    assert miou_curve([[0.1, 0.2], [0.3]]) == pytest.approx([0.2])


PAPER_TAB1_SKIP = {  # class: (NoC@85, NoC@90), SPEC §7.1 "+ Skip Connections"
    "flickr_bobsleighs": (1.52, 2.08),
    "flickr_curling_stone": (2.61, 4.09),
    "flickr_ski_helmets": (7.27, 9.31),
    "flickr_snow_kites": (7.36, 8.93),
    "yt_sports": (10.23, 15.51),
    "flickr_curling_brooms": (8.56, 13.16),
    "flickr_ski_goggles": (9.06, 11.5),
    "flickr_ski_misc": (8.01, 11.49),
    "flickr_slalom_obstacles": (6.1, 9.62),
    "flickr_snowboards": (4.22, 5.94),
}


def _paper_summaries() -> dict[str, dict]:
    out = {}
    for cls, (a, b) in PAPER_TAB1_SKIP.items():
        out[f"WSESeg_{cls}"] = {"NoC@80": 1.0, "NoC@85": a, "NoC@90": b, "NoC@95": 15.0,
                                "NoF@85": 1, "NoF@90": 2, "NoF@95": 3, "mIoU@k": []}
    return out


def test_wseseg_average_is_unweighted_mean_of_classes():
    summaries = _paper_summaries()
    summaries["GrabCut"] = {"NoC@85": 100.0, "NoC@90": 100.0}  # not a WSESeg class: not averaged
    avg = wseseg_average(summaries)
    assert avg["NoC@85"] == pytest.approx(6.494)
    assert avg["NoC@90"] == pytest.approx(9.163)


def test_tables_render():
    summaries = _paper_summaries()
    text = format_wseseg_table(summaries)
    assert "Bobsleigh" in text and "Snowboards" in text and "6.494 / 9.163" in text
    assert text.index("Bobsleigh") < text.index("Curl. Stone") < text.index("Snowboards")
    table = format_results_table({"GrabCut": summarize([[0.5, 0.91]]), "Berkeley": summarize([[0.96]])},
                                 timings={"GrabCut": (0.01, 3.0)}, model_name="m")
    assert "GrabCut" in table and "Berkeley" in table and ">=20@95%" in table
    assert "Eval results for model: m" in table
    assert "|  1.00   |" in table  # Berkeley NoC@80
    assert "?" in format_results_table({"x": summarize([[0.5]], target_iou=0.85)})
