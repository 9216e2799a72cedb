"""`skipclick bench`: latency of the per-image encode and the per-click step, measured honestly.

For each (size, dtype, batch): the cold time (first call, including compilation) and warm percentiles
over `--calls` timed calls each of encode and click (`block_until_ready` on every call), FLOPs per call
from XLA's cost analysis and the achieved FLOP/s (and the fraction of `--peak-tflops`). A percentile is
only reported when enough calls stand behind it (p90: 10, p99: 100); every figure says how many. The
click step is timed as a user meets it: host-side click encoding, transfer, the compiled step; each call
feeds the previous output back as the previous mask (it is donated). `--compare-torch` times
`skipclick_jax.pytorch.TorchSkipClick` (the torch extra) with the same weights, in the same process, with
the original's per-click semantics (`set_image` / `apply_click`: fuse and FPN first layers redone per
click), interleaved call by call with the JAX calls so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..atomic import write_bytes_atomic
from ..model import SkipClick
from .engine import ClickEngine

# A percentile is reported only with at least this many timed calls behind it.
MIN_CALLS = {50: 1, 90: 10, 99: 100}


@dataclass
class Timing:
    """Cold (first call) and warm times in milliseconds."""

    cold_ms: float
    warm_ms: list[float] = field(repr=False)

    def summary(self) -> dict[str, float | int | None]:
        """cold, p50/p90/p99 (None where fewer calls than `MIN_CALLS` were timed) and the call count."""
        n = len(self.warm_ms)
        out: dict[str, float | int | None] = {"cold_ms": self.cold_ms, "calls": n}
        for q, needed in MIN_CALLS.items():
            out[f"p{q}_ms"] = float(np.percentile(self.warm_ms, q)) if n >= needed else None
        return out


@dataclass
class Row:
    size: int
    dtype: str
    batch: int
    flip: bool
    encode: dict[str, float]
    click: dict[str, float]
    encode_gflop: float
    click_gflop: float
    torch: dict[str, Any] | None = None

    def achieved(self, peak_tflops: float | None) -> dict[str, float]:
        out = {}
        for name, gflop, t in (("encode", self.encode_gflop, self.encode), ("click", self.click_gflop, self.click)):
            tflops = gflop / t["p50_ms"]  # GFLOP / ms = TFLOP/s
            out[f"{name}_tflops"] = tflops
            if peak_tflops:
                out[f"{name}_peak_fraction"] = tflops / peak_tflops
        return out


def _flops(compiled: Any) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0))


def _clicks(batch: int, size: int) -> list[list[tuple[float, float, bool]]]:
    """A realistic click state: 3 positives and 2 negatives per item, fractional coordinates."""
    rng = np.random.default_rng(0)
    return [[(float(rng.uniform(0, size - 1)), float(rng.uniform(0, size - 1)), k < 3) for k in range(5)]
            for _ in range(batch)]


def bench_engine(model: SkipClick, params: Any, size: int, batch: int, flip: bool, calls: int,
                 torch_ref: Any = None) -> Row:
    """Measure one configuration; `torch_ref` (a reference model) is timed interleaved at batch 1."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
    clicks = _clicks(batch, size)

    t0 = time.perf_counter()
    engine = ClickEngine(model, params, size, flip=flip)
    features = jax.block_until_ready(engine.encode(images))
    encode_cold = 1e3 * (time.perf_counter() - t0)
    prev = jax.device_put(np.zeros((batch, size, size, 1), np.float32))
    t0 = time.perf_counter()
    prev = jax.block_until_ready(engine.click(features, prev, clicks))
    click_cold = 1e3 * (time.perf_counter() - t0)

    # FLOPs of the same computation with the fused attention: XLA's cost analysis counts the body of the
    # per-head loop once, which would undercount the attention by the number of heads.
    counted = ClickEngine(model.clone(attention="fused"), engine.params, size, flip=flip)
    offsets = counted.encode_clicks(clicks)
    encode_flops = _flops(jax.jit(counted.encode_step).lower(engine.params, counted.put(images)).compile())
    click_flops = _flops(jax.jit(counted.click_step).lower(engine.params, features, prev, offsets).compile())

    torch_timer = _TorchTimer(torch_ref, images[:1], prev, clicks[:1]) if torch_ref is not None else None
    click_ms, enc_ms = [], []
    for _ in range(calls):  # each JAX call next to a PyTorch one: both see the same machine load
        t0 = time.perf_counter()
        prev = jax.block_until_ready(engine.click(features, prev, clicks))
        click_ms.append(1e3 * (time.perf_counter() - t0))
        if torch_timer:
            torch_timer.click()
    for _ in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(engine.encode(images))
        enc_ms.append(1e3 * (time.perf_counter() - t0))
        if torch_timer:
            torch_timer.encode()
    return Row(size, str(jnp.dtype(model.dtype)), batch, flip, Timing(encode_cold, enc_ms).summary(),
               Timing(click_cold, click_ms).summary(), encode_flops / 1e9, click_flops / 1e9,
               torch_timer.result() if torch_timer else None)


class _TorchTimer:
    """`TorchSkipClick.set_image` / `apply_click` (the original's semantics) on the same inputs (batch 1, float32)."""

    def __init__(self, ref: Any, image: np.ndarray, prev: Any, clicks: list) -> None:
        import torch

        self.torch, self.ref = torch, ref
        self.image = torch.from_numpy(image.transpose(0, 3, 1, 2).copy())
        self.prev = torch.from_numpy(np.asarray(prev)[:1].transpose(0, 3, 1, 2).copy())
        n = 3
        rows = [(y, x, k) for k, (y, x, p) in enumerate(clicks[0]) if p]
        rows += [(-1, -1, -1)] * (n - len(rows))
        neg = [(y, x, k) for k, (y, x, p) in enumerate(clicks[0]) if not p]
        rows += neg + [(-1, -1, -1)] * (n - len(neg))
        self.points = torch.tensor([rows], dtype=torch.float64)
        with torch.inference_mode():
            t0 = time.perf_counter()
            ref.set_image(self.image)
            self.encode_cold = 1e3 * (time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref.apply_click(self.prev, self.points)
            self.click_cold = 1e3 * (time.perf_counter() - t0)
        self.enc_ms: list[float] = []
        self.click_ms: list[float] = []

    def encode(self) -> None:
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            self.ref.set_image(self.image)
            self.enc_ms.append(1e3 * (time.perf_counter() - t0))

    def click(self) -> None:
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            self.ref.apply_click(self.prev, self.points)
            self.click_ms.append(1e3 * (time.perf_counter() - t0))

    def result(self) -> dict[str, Any]:
        return {"set_image": Timing(self.encode_cold, self.enc_ms).summary(),
                "apply_click": Timing(self.click_cold, self.click_ms).summary(),
                "threads": self.torch.get_num_threads(), "version": self.torch.__version__}


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}ms"


def format_table(rows: list[Row], peak_tflops: float | None) -> str:
    """The results as a text table; a percentile without enough calls behind it shows as —."""
    head = (f"{'size':>5} {'dtype':>8} {'batch':>5} {'flip':>4} | {'encode cold':>11} {'n':>4} {'p50':>9} {'p90':>9} "
            f"{'p99':>9} {'GFLOP':>8} {'GFLOP/s':>8} | {'click cold':>10} {'n':>4} {'p50':>9} {'p90':>9} {'p99':>9} "
            f"{'GFLOP':>8} {'GFLOP/s':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        a = r.achieved(peak_tflops)
        e, c = r.encode, r.click
        lines.append(
            f"{r.size:5d} {r.dtype:>8} {r.batch:5d} {'on' if r.flip else 'off':>4} | {e['cold_ms']:9.0f}ms "
            f"{e['calls']:4d} {_ms(e['p50_ms']):>9} {_ms(e['p90_ms']):>9} {_ms(e['p99_ms']):>9} "
            f"{r.encode_gflop:8.2f} {1e3 * a['encode_tflops']:8.1f} | {c['cold_ms']:8.0f}ms {c['calls']:4d} "
            f"{_ms(c['p50_ms']):>9} {_ms(c['p90_ms']):>9} {_ms(c['p99_ms']):>9} {r.click_gflop:8.2f} "
            f"{1e3 * a['click_tflops']:8.1f}")
        if peak_tflops:
            lines.append(f"{'':>27}fraction of {peak_tflops} TFLOP/s peak: encode "
                         f"{a['encode_peak_fraction']:.1%}, click {a['click_peak_fraction']:.1%}")
        if r.torch:
            ts, tc = r.torch["set_image"], r.torch["apply_click"]
            lines.append(
                f"{'':>27}PyTorch {r.torch['version']} ({r.torch['threads']} threads), same weights and inputs, "
                f"{tc['calls']} calls each: set_image p50 {ts['p50_ms']:.1f} ms, apply_click p50 "
                f"{tc['p50_ms']:.1f} ms → JAX/PyTorch: encode {e['p50_ms'] / ts['p50_ms']:.2f}×, click "
                f"{c['p50_ms'] / tc['p50_ms']:.2f}×")
    lines.append(f"(n: timed calls; p90 needs {MIN_CALLS[90]}, p99 {MIN_CALLS[99]} — fewer show as —)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..config import preset
    from ..model import init_params
    from ..pytorch import torch_model
    from ..weights import load_checkpoint
    from .compile_cache import enable_compilation_cache

    if args.cache_dir:
        enable_compilation_cache(args.cache_dir)
    if args.checkpoint:
        base, params = load_checkpoint(args.checkpoint)
        config, source = base.config, args.checkpoint
    else:
        config = preset(args.preset)
        params = jax.device_put(init_params(config, seed=0))
        source = f"random weights ({args.preset})"
    device = jax.devices()[0]
    print(f"skipclick bench — {source}; device {device.platform} ({device.device_kind}), "
          f"{os.cpu_count()} CPU threads, jax {jax.__version__}")
    rows = []
    for size in args.sizes:
        for dtype in args.dtypes:
            for batch in args.batches:
                model = SkipClick(config, dtype=jnp.dtype(dtype))
                compare = args.compare_torch and dtype == "float32" and batch == 1 and not args.flip
                ref = torch_model(config, params) if compare else None
                if ref is not None:
                    import torch

                    torch.set_num_threads(args.torch_threads or os.cpu_count())
                print(f"measuring size {size}, {dtype}, batch {batch}" + (" (+ PyTorch)" if ref else ""),
                      flush=True)
                rows.append(bench_engine(model, params, size, batch, args.flip, args.calls, ref))
    print()
    print(format_table(rows, args.peak_tflops))
    if args.json:
        out = {"device": f"{device.platform} {device.device_kind}", "jax": jax.__version__, "source": source,
               "cpu_threads": os.cpu_count(), "peak_tflops": args.peak_tflops,
               "rows": [asdict(r) | r.achieved(args.peak_tflops) for r in rows]}
        path = write_bytes_atomic(args.json, (json.dumps(out, indent=2) + "\n").encode())
        print(f"results written to {path}")
    return 0


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def register(subparsers) -> None:
    """`skipclick bench [--checkpoint CKPT] [--sizes 448,672] [--dtypes float32,bfloat16] [--batches 1,4] …`."""
    p = subparsers.add_parser("bench", help="encode / click latency (cold, warm percentiles), FLOPs, vs PyTorch")
    p.add_argument("--checkpoint", help="weights to load (default: random weights of --preset)")
    p.add_argument("--preset", default="skipclick_vitb14_448")
    p.add_argument("--sizes", type=_ints, default=[448], help="network sizes, e.g. 448,672,896")
    p.add_argument("--dtypes", type=lambda s: s.split(","), default=["float32"], help="float32,bfloat16")
    p.add_argument("--batches", type=_ints, default=[1], help="batch sizes (objects or images per call)")
    p.add_argument("--flip", action="store_true", help="time with flip TTA (the evaluation protocol)")
    p.add_argument("--calls", type=int, default=20,
                   help="timed warm calls of encode and of click each (p90 needs 10, p99 100)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak, to report the fraction reached")
    p.add_argument("--compare-torch", action="store_true",
                   help="also time the model in PyTorch with the original's per-click semantics (float32, batch 1, "
                        "no flip; needs the torch extra) in the same run")
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the results as JSON")
    p.add_argument("--cache-dir", default=None, help="persistent XLA compilation cache directory")
    p.set_defaults(run=run)
