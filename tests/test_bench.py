"""`skipclick bench` runs end to end on the tiny config (no timing assertions: timings are the output)."""

import json

import pytest

from skipclick_jax.cli import main as cli


def test_bench_tiny_end_to_end(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    argv = ["bench", "--preset", "tiny", "--sizes", "112", "--dtypes", "float32,bfloat16", "--batches", "1",
            "--calls", "10", "--compare-torch", "--peak-tflops", "1.0", "--json", str(out)]
    assert cli(argv) == 0
    text = capsys.readouterr().out
    assert "apply_click p50" in text and "fraction of 1.0 TFLOP/s peak" in text
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["size"], r["dtype"], r["batch"]) for r in rows] == [(112, "float32", 1), (112, "bfloat16", 1)]
    for r in rows:
        for part in ("encode", "click"):
            t = r[part]
            # 10 timed calls of each: enough for a p90, not for a p99 (reported as missing, not made up)
            assert t["calls"] == 10 and t["p99_ms"] is None
            assert 0 < t["p50_ms"] <= t["p90_ms"] and t["cold_ms"] > 0
        assert r["click_gflop"] > 0 and r["encode_gflop"] > r["click_gflop"] / 10
        assert 0 < r["click_peak_fraction"] < 1
    assert rows[0]["torch"]["apply_click"]["calls"] == 10 and rows[1]["torch"] is None
    assert text.count("—") >= 4  # the four missing p99 figures


def test_bench_compare_torch_needs_no_source_checkout(tmp_path, monkeypatch, capsys):
    """--compare-torch needs only the package (and torch), not the source tree's tests."""
    pytest.importorskip("torch")
    import importlib
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != repo])
    for name in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError):  # the test tree is out of reach, as after a plain pip install
        importlib.import_module("tests.torch_reference")
    assert cli(["bench", "--preset", "tiny", "--sizes", "112", "--calls", "1", "--compare-torch"]) == 0
    assert "apply_click p50" in capsys.readouterr().out
