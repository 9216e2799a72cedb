"""`skipclick bench --plot DIR`: the figures as PNGs (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, whatever the environment's display
import matplotlib.pyplot as plt  # noqa: E402

from ..atomic import write_bytes_atomic  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def _latency_vs(rows: list[dict[str, Any]], key: str, fixed: str, title: str, path: Path) -> Path | None:
    """p50 of encode and click against `key` (size or batch), one line per dtype, at the smallest `fixed`."""
    if len({r[key] for r in rows}) < 2:
        return None
    base = min(r[fixed] for r in rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for dtype in sorted({r["dtype"] for r in rows}):
        chosen = sorted((r for r in rows if r["dtype"] == dtype and r[fixed] == base), key=lambda r: r[key])
        xs = [r[key] for r in chosen]
        for part, style in (("encode", "-o"), ("click", "--s")):
            ax.plot(xs, [r[part]["p50_ms"] for r in chosen], style, label=f"{part} {dtype}")
    ax.set_xlabel(key)
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title(f"{title} ({fixed} {base})")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _stage_bars(breakdown: dict[str, Any], label: str, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), constrained_layout=True)
    for ax, part in zip(axes, ("encode", "click"), strict=True):
        r = breakdown[part]
        names = [s["stage"] for s in r["stages"]]
        ax.barh(names, [s["p50_ms"] for s in r["stages"]], color="tab:blue", label="stage alone")
        bounds = [s["bound_ms"] or 0.0 for s in r["stages"]]
        if any(bounds):
            ax.barh(names, bounds, color="tab:orange", alpha=0.6, label="roofline bound")
        ax.invert_yaxis()
        ax.set_xlabel("p50 (ms)")
        ax.set_title(f"{part}: stages sum {r['sum_ms']:.1f} ms, fused {r['fused']['p50_ms']:.1f} ms")
        ax.legend()
    fig.suptitle(label)
    return _save(fig, path)


def _roofline(breakdown: dict[str, Any], peaks: dict[str, Any], dtype: str, label: str, path: Path) -> Path:
    tflops, gbps = peaks["tflops"].get(dtype) or peaks["tflops"].get("float32"), peaks["gbps"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    points = [s for part in ("encode", "click") for s in [*breakdown[part]["stages"], breakdown[part]["fused"]]]
    intensities = [s["flop_per_byte"] for s in points if s["flop_per_byte"]]
    lo, hi = min(intensities + [0.1]) / 2, max(intensities + [10.0]) * 2
    xs = [lo * (hi / lo) ** (k / 50) for k in range(51)]
    roof = f"roof ({tflops:.3g} TFLOP/s, {gbps:.3g} GB/s)"
    ax.loglog(xs, [min(tflops, x * gbps / 1e3) for x in xs], "k-", label=roof)
    for s in points:
        if s["flop_per_byte"] and s["achieved_tflops"]:
            ax.loglog(s["flop_per_byte"], s["achieved_tflops"], "o")
            ax.annotate(s["stage"], (s["flop_per_byte"], s["achieved_tflops"]), fontsize=7)
    ax.set_xlabel("arithmetic intensity (FLOP / byte accessed)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(f"{label}\npeaks: {peaks['source']}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_plots(directory: str | Path, rows: list[dict[str, Any]], breakdowns: list[dict[str, Any]],
                peaks: dict[str, Any] | None) -> list[Path]:
    """Latency vs size and vs batch (when several were measured), per-stage bars and a roofline chart per
    breakdown (the roofline needs peaks). Returns the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = [_latency_vs(rows, "size", "batch", "latency vs input size", out / "latency_vs_size.png"),
               _latency_vs(rows, "batch", "size", "latency vs batch", out / "latency_vs_batch.png")]
    for b in breakdowns:
        tag = f"{b['size']}_{b['dtype']}_b{b['batch']}"
        label = f"size {b['size']}, {b['dtype']}, batch {b['batch']}"
        written.append(_stage_bars(b["breakdown"], label, out / f"stages_{tag}.png"))
        if peaks and peaks.get("gbps") and peaks.get("tflops"):
            written.append(_roofline(b["breakdown"], peaks, b["dtype"], label, out / f"roofline_{tag}.png"))
    return [p for p in written if p is not None]
