"""`skipclick bench`: encode / click latency of every backend in one run, and where the time goes.

Per (size, dtype, batch): cold and warm percentiles, XLA FLOPs and achieved FLOP/s (`latency`); with
`--breakdown` the per-stage figures and roofline (`breakdown`); `--compare-torch` the PyTorch model with
the original's per-click semantics (float32, and under `torch.autocast(bfloat16)` for the bf16 rows);
`--onnx DIR` the ONNX pair of `skipclick export --format onnx` in ONNX Runtime. `--plot DIR` draws it,
`--json` keeps every figure, `--markdown` writes the README's performance table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import asdict
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..atomic import write_bytes_atomic
from ..model import SkipClick
from .latency import MIN_CALLS, Row, bench_clicks, bench_engine, format_table


def _machine() -> str:
    device = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{device.platform} {device.device_kind}; host {cpu}, {os.cpu_count()} CPU threads; jax {jax.__version__}"


def backend_rows(rows: list[Row], onnx: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every backend's encode / click p50 side by side, with the ratio to PyTorch float32 at the same size."""
    out = []
    for r in rows:
        out.append({"backend": f"JAX {r.dtype}", "size": r.size, "batch": r.batch, "flip": r.flip,
                    "encode_ms": r.encode["p50_ms"], "click_ms": r.click["p50_ms"]})
        if r.torch:
            amp = " autocast(bf16)" if r.torch.get("autocast_bfloat16") else " float32"
            out.append({"backend": f"PyTorch{amp} (original semantics)", "size": r.size, "batch": 1, "flip": False,
                        "encode_ms": r.torch["set_image"]["p50_ms"], "click_ms": r.torch["apply_click"]["p50_ms"]})
    out += onnx
    for row in out:
        base = next((b for b in out if b["backend"] == "PyTorch float32 (original semantics)"
                     and b["size"] == row["size"] and b["batch"] == row["batch"]), None)
        row["encode_vs_torch"] = row["encode_ms"] / base["encode_ms"] if base else None
        row["click_vs_torch"] = row["click_ms"] / base["click_ms"] if base else None
    return out


def format_backends(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The backend table as text or Markdown."""
    def ratio(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}×"

    cells = [[r["backend"], str(r["size"]), str(r["batch"]), f"{r['encode_ms']:.1f}", f"{r['click_ms']:.1f}",
              ratio(r["encode_vs_torch"]), ratio(r["click_vs_torch"])] for r in rows]
    head = ["backend", "size", "batch", "encode p50 (ms)", "click p50 (ms)", "encode vs PyTorch", "click vs PyTorch"]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(x) for x in col) for col in zip(head, *cells, strict=True)]
    fmt = lambda c: "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths, strict=True)))  # noqa: E731
    return "\n".join([fmt(head), "-" * (sum(widths) + 2 * len(widths)), *map(fmt, cells)])


def run(args: argparse.Namespace) -> int:
    from ..config import preset
    from ..inference.compile_cache import enable_compilation_cache
    from ..inference.engine import ClickEngine
    from ..model import init_params
    from ..pytorch import torch_model
    from ..weights import load_checkpoint
    from .breakdown import breakdown, format_breakdown
    from .roofline import Peaks, known_peaks, measure_peaks

    if args.calls < 1:
        raise ValueError("--calls must be at least 1")
    if args.cache_dir:
        enable_compilation_cache(args.cache_dir)
    if args.checkpoint:
        base, params = load_checkpoint(args.checkpoint)
        config, source = base.config, args.checkpoint
    else:
        config = preset(args.preset)
        params = jax.device_put(init_params(config, seed=0))
        source = f"random weights ({args.preset})"
    machine = _machine()
    print(f"skipclick bench — {source}; {machine}")

    peaks = known_peaks(jax.devices()[0])
    if args.measure_peaks:
        peaks = measure_peaks(tuple(args.dtypes))
    if args.peak_tflops or args.peak_gbps:  # given figures override known or measured ones
        tflops = {d: args.peak_tflops for d in ("float32", "bfloat16")} if args.peak_tflops else None
        peaks = Peaks(tflops or (peaks.tflops if peaks else {}), args.peak_gbps or (peaks.gbps if peaks else None),
                      "given on the command line" + (f" / {peaks.source}" if peaks else ""))
    if peaks:
        gbps = f"{peaks.gbps:.3g} GB/s" if peaks.gbps else "bandwidth unknown"
        print(f"peaks ({peaks.source}): " + ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in peaks.tflops.items())
              + f", {gbps}")

    rows, breakdowns, onnx = [], [], []
    for size in args.sizes:
        for dtype in args.dtypes:
            for batch in args.batches:
                model = SkipClick(config, dtype=jnp.dtype(dtype))
                compare = args.compare_torch and batch == 1 and not args.flip
                ref = torch_model(config, params) if compare else None
                if ref is not None:
                    import torch

                    torch.set_num_threads(args.torch_threads or os.cpu_count())
                print(f"measuring size {size}, {dtype}, batch {batch}" + (" (+ PyTorch)" if ref else ""), flush=True)
                rows.append(bench_engine(model, params, size, batch, args.flip, args.calls, ref,
                                         torch_autocast=dtype == "bfloat16"))
                if args.breakdown:
                    engine = ClickEngine(model, params, size, flip=args.flip)
                    images = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
                    result = breakdown(engine, images, bench_clicks(batch, size), args.calls, peaks)
                    breakdowns.append({"size": size, "dtype": dtype, "batch": batch, "breakdown": result})
        if args.onnx:  # float32 only: once per size
            from ..deploy.timing import time_onnx_pair

            for batch in args.batches:
                t = time_onnx_pair(args.onnx, size, batch, args.calls)
                onnx.append({"backend": "ONNX Runtime float32", "size": size, "batch": batch, "flip": False,
                             "encode_ms": 1e3 * float(np.median(t["encode"])),
                             "click_ms": 1e3 * float(np.median(t["click"]))})
    print()
    print(format_table(rows, peaks))
    backends = backend_rows(rows, onnx)
    print()
    print(format_backends(backends))
    for b in breakdowns:
        print(f"\nbreakdown — size {b['size']}, {b['dtype']}, batch {b['batch']} (p50 of {args.calls} calls per stage)")
        print(format_breakdown(b["breakdown"]))

    peaks_dict = asdict(peaks) if peaks else None
    if args.plot:
        from .plots import write_plots

        for path in write_plots(args.plot, [asdict(r) for r in rows], breakdowns, peaks_dict):
            print(f"plot written to {path}")
    if args.json:
        out = {"machine": machine, "jax": jax.__version__, "source": source, "cpu_threads": os.cpu_count(),
               "calls": args.calls, "min_calls": MIN_CALLS, "peaks": peaks_dict,
               "rows": [asdict(r) | r.achieved(peaks.tflops_for(r.dtype) if peaks else None) for r in rows],
               "backends": backends, "breakdowns": breakdowns}
        path = write_bytes_atomic(args.json, (json.dumps(out, indent=2) + "\n").encode())
        print(f"results written to {path}")
    if args.markdown:
        command = command_line(args)
        text = (f"Measured with `{command}` on {machine}.\n\n{format_backends(backends, markdown=True)}\n")
        path = write_bytes_atomic(args.markdown, text.encode())
        print(f"markdown table written to {path}")
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a run (the settings that change the figures)."""
    parts = ["skipclick bench", f"--checkpoint {args.checkpoint}" if args.checkpoint else f"--preset {args.preset}",
             "--sizes " + ",".join(map(str, args.sizes)), "--dtypes " + ",".join(args.dtypes),
             "--batches " + ",".join(map(str, args.batches)), f"--calls {args.calls}"]
    flags = {"--flip": args.flip, "--compare-torch": args.compare_torch, "--breakdown": args.breakdown,
             "--measure-peaks": args.measure_peaks}
    parts += [flag for flag, on in flags.items() if on]
    if args.onnx:
        parts.append(f"--onnx {args.onnx}")
    return " ".join(parts)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def register(subparsers) -> None:
    """`skipclick bench [--checkpoint CKPT] [--sizes 448,672] [--dtypes float32,bfloat16] [--batches 1,4] …`."""
    p = subparsers.add_parser("bench", help="encode / click latency per backend, per-stage breakdown, roofline")
    p.add_argument("--checkpoint", help="weights to load (default: random weights of --preset)")
    p.add_argument("--preset", default="skipclick_vitb14_448")
    p.add_argument("--sizes", type=_ints, default=[448], help="network sizes, e.g. 448,672,896")
    p.add_argument("--dtypes", type=lambda s: s.split(","), default=["float32"], help="float32,bfloat16")
    p.add_argument("--batches", type=_ints, default=[1], help="batch sizes (objects or images per call)")
    p.add_argument("--flip", action="store_true", help="time with flip TTA (the evaluation protocol)")
    p.add_argument("--calls", type=int, default=20,
                   help="timed warm calls of encode and of click each (p90 needs 10, p99 100)")
    p.add_argument("--breakdown", action="store_true",
                   help="time every stage of encode and click on its own, with FLOPs, bytes and the roofline")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak compute (TFLOP/s)")
    p.add_argument("--peak-gbps", type=float, default=None, help="device peak memory bandwidth (GB/s)")
    p.add_argument("--measure-peaks", action="store_true",
                   help="measure the attainable peaks here (a large matmul per dtype, a large copy) for the roofline")
    p.add_argument("--compare-torch", action="store_true",
                   help="also time the PyTorch model with the original's per-click semantics (batch 1, no flip; "
                        "float32, and under torch.autocast(bfloat16) for bfloat16; needs the torch extra)")
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--onnx", default=None, help="a `skipclick export --format onnx` directory to time in ONNX Runtime")
    p.add_argument("--plot", default=None, help="write PNG plots to this directory")
    p.add_argument("--json", default=None, help="write every figure as JSON")
    p.add_argument("--markdown", default=None, help="write the backend table as Markdown (the README's)")
    p.add_argument("--cache-dir", default=None, help="persistent XLA compilation cache directory")
    p.set_defaults(run=run)
