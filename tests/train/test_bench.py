"""`skipclick bench-train` runs end to end on the tiny config (no timing assertions: timings are the output)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from skipclick_jax.cli import main as cli
from skipclick_jax.train.bench import step_flops
from skipclick_jax.train.config import preset


def test_bench_train_tiny_end_to_end(tmp_path, capsys):
    out = tmp_path / "train_bench.json"
    argv = ["bench-train", "--config", "tiny", "--steps", "2", "--flops", "--lowered-cost", "--peak-tflops", "1.0",
            "--json", str(out)]
    assert cli(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    result = json.loads(out.read_text())
    assert printed == result
    assert result["config"] == "tiny" and result["steps"] == 2 and result["devices"] >= 1
    assert result["images_per_s"] > 0 and result["step_s_median"] > 0
    assert result["compile_s"] > 0 and 0 <= result["mean_simulated_clicks"] <= 3
    assert result["flops_per_image"] > result["flops_per_image_no_clicks"] > 0
    assert 0 < result["fraction_of_peak"] < 1


def test_flops_decomposition_against_a_hand_count():
    """The FLOPs split (step without clicks + E[n] x one simulated click) checked independently: four more
    encoder blocks before the taps add exactly the FLOPs of four frozen DINOv2 blocks (forward only) to the
    click-free part, counted by hand from the layer shapes, and nothing to the per-click part."""
    base = preset("tiny")
    deeper = dataclasses.replace(base, model=dataclasses.replace(
        base.model, encoder=dataclasses.replace(base.model.encoder, depth=8), taps=(4, 5, 6, 7)))
    a, b = step_flops(base, compiled=False), step_flops(deeper, compiled=False)

    enc = base.model.encoder
    tokens, d, hidden = 1 + enc.num_registers + (base.model.image_size // enc.patch_size) ** 2, enc.embed_dim, \
        enc.hidden_dim
    block = 2 * tokens * d * 3 * d + 2 * 2 * tokens * tokens * d + 2 * tokens * d * d + 2 * 2 * tokens * d * hidden
    added = b["flops_per_image_no_clicks"] - a["flops_per_image_no_clicks"]
    # The hand count covers the matrix products; XLA also counts the norms, GELUs, softmax and residual adds
    # (measured: 1.23x). Counting the encoder twice, or not at all, would be 2.4x or 0x.
    assert 4 * block <= added <= 1.35 * 4 * block, added / (4 * block)
    assert b["flops_per_simulated_click_per_image"] == pytest.approx(a["flops_per_simulated_click_per_image"],
                                                                      rel=1e-6)
