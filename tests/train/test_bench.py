"""`skipclick bench-train` runs end to end on the tiny config (no timing assertions: timings are the output)."""

from __future__ import annotations

import json

import pytest

from skipclick_jax.cli import main as cli


def test_bench_train_tiny_end_to_end(tmp_path, capsys):
    out = tmp_path / "train_bench.json"
    argv = ["bench-train", "--config", "tiny", "--steps", "2", "--flops", "--peak-tflops", "1.0", "--json", str(out)]
    assert cli(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    result = json.loads(out.read_text())
    assert printed == result
    assert result["config"] == "tiny" and result["steps"] == 2 and result["devices"] >= 1
    assert result["images_per_s"] == pytest.approx(result["batch"] / result["step_s_median"])
    assert result["compile_s"] > 0 and 0 <= result["mean_simulated_clicks"] <= 3
    # FLOPs: a step at the mean 1.5 simulated clicks costs more than its click-free part; the achieved
    # rate is consistent with the measured throughput.
    assert result["flops_per_image"] > result["flops_per_image_no_clicks"] > 0
    assert result["flops_per_image"] == pytest.approx(
        result["flops_per_image_no_clicks"] + 1.5 * result["flops_per_simulated_click_per_image"])
    assert result["achieved_tflops"] == pytest.approx(result["images_per_s"] * result["flops_per_image"] / 1e12)
    assert 0 < result["fraction_of_peak"] < 1
