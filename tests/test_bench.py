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
    assert "PyTorch float32 (original semantics)" in text and "PyTorch autocast(bf16)" in text
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
    assert rows[0]["torch"]["apply_click"]["calls"] == 10 and not rows[0]["torch"]["autocast_bfloat16"]
    assert rows[1]["torch"]["autocast_bfloat16"]  # bf16 rows are compared with PyTorch under autocast
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


def test_bench_breakdown_plots_and_json(tmp_path, capsys):
    """--breakdown: every stage of encode and click compiled and timed on its own, with FLOPs, bytes,
    memory and the roofline (peaks measured here); the stages compose to the fused step; plots and JSON."""
    out, plots = tmp_path / "bench.json", tmp_path / "plots"
    argv = ["bench", "--preset", "tiny", "--sizes", "112,140", "--calls", "2", "--breakdown", "--measure-peaks",
            "--plot", str(plots), "--json", str(out), "--markdown", str(tmp_path / "table.md")]
    assert cli(argv) == 0
    text = capsys.readouterr().out
    assert "sum of stages" in text and "JAX float32" in text
    result = json.loads(out.read_text())
    assert result["peaks"]["gbps"] > 0 and result["peaks"]["tflops"]["float32"] > 0
    assert [(b["size"], b["dtype"]) for b in result["breakdowns"]] == [(112, "float32"), (140, "float32")]
    for b in result["breakdowns"]:
        encode, click = b["breakdown"]["encode"], b["breakdown"]["click"]
        assert [s["stage"] for s in encode["stages"]] == ["encoder", "fuse taps", "FPN image halves",
                                                          "position embedding"]
        assert [s["stage"] for s in click["stages"]] == ["click maps + patch embed", "fusion stack", "FPN", "head",
                                                         "final resize"]
        for part in (encode, click):
            # The stages run one after the other are the step: same output up to float rounding.
            assert part["max_abs_diff"] <= 1e-5, part["max_abs_diff"]
            assert part["sum_ms"] == sum(s["p50_ms"] for s in part["stages"])
            for row in [*part["stages"], part["fused"]]:
                assert row["p50_ms"] > 0 and row["gbytes"] > 0 and row["memory"]["peak"] > 0
                assert row["bound_ms"] > 0 and row["roof"] in ("compute", "memory")
            # The heavy stages do the FLOPs: their sum is the fused step's count (cost analysis per program).
            flops = sum(s["gflop"] for s in part["stages"])
            assert abs(flops - part["fused"]["gflop"]) <= 0.02 * part["fused"]["gflop"], (flops, part["fused"])
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["latency_vs_size.png", "roofline_112_float32_b1.png", "roofline_140_float32_b1.png",
                     "stages_112_float32_b1.png", "stages_140_float32_b1.png"]
    assert all((plots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    table = (tmp_path / "table.md").read_text()
    assert "skipclick bench --preset tiny --sizes 112,140" in table and table.count("| JAX float32 |") == 2
