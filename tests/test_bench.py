"""`skipclick bench` runs end to end on the tiny config (no timing assertions: timings are the output)."""

import json

import pytest

from skipclick_jax.cli import main as cli


def test_bench_tiny_end_to_end(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    argv = ["bench", "--preset", "tiny", "--sizes", "112", "--dtypes", "float32,bfloat16", "--batches", "1,2",
            "--calls", "2", "--compare-torch", "--peak-tflops", "1.0", "--json", str(out)]
    assert cli(argv) == 0
    text = capsys.readouterr().out
    assert "apply_click p50" in text and "fraction of 1.0 TFLOP/s peak" in text
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["size"], r["dtype"], r["batch"]) for r in rows] == [
        (112, "float32", 1), (112, "float32", 2), (112, "bfloat16", 1), (112, "bfloat16", 2)]
    for r in rows:
        for part in ("encode", "click"):
            t = r[part]
            assert 0 < t["p50_ms"] <= t["p90_ms"] <= t["p99_ms"] and t["cold_ms"] > 0 and t["calls"] >= 1
        assert r["click_gflop"] > 0 and r["encode_gflop"] > r["click_gflop"] / 10
        assert 0 < r["click_peak_fraction"] < 1
    assert rows[0]["torch"]["apply_click"]["calls"] == 2 and rows[1]["torch"] is None
