"""Latency of the per-image encode and the per-click step, measured honestly (`skipclick bench`).

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

import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..inference.engine import ClickEngine
from ..model import SkipClick
from .roofline import xla_cost

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
        """Achieved TFLOP/s of encode and click (p50), and the fraction of `peak_tflops` when given."""
        out = {}
        for name, gflop, t in (("encode", self.encode_gflop, self.encode), ("click", self.click_gflop, self.click)):
            tflops = gflop / t["p50_ms"]  # GFLOP / ms = TFLOP/s
            out[f"{name}_tflops"] = tflops
            if peak_tflops:
                out[f"{name}_peak_fraction"] = tflops / peak_tflops
        return out



def bench_clicks(batch: int, size: int) -> list[list[tuple[float, float, bool]]]:
    """A realistic click state: 3 positives and 2 negatives per item, fractional coordinates."""
    rng = np.random.default_rng(0)
    return [[(float(rng.uniform(0, size - 1)), float(rng.uniform(0, size - 1)), k < 3) for k in range(5)]
            for _ in range(batch)]


def bench_engine(model: SkipClick, params: Any, size: int, batch: int, flip: bool, calls: int,
                 torch_ref: Any = None, torch_autocast: bool = False) -> Row:
    """Measure one configuration; `torch_ref` (the PyTorch model) is timed interleaved at batch 1, under
    `torch.autocast(bfloat16)` with `torch_autocast`."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
    clicks = bench_clicks(batch, size)

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
    encode_flops, _ = xla_cost(jax.jit(counted.encode_step).lower(counted.variables, counted.put(images)).compile())
    click_flops, _ = xla_cost(jax.jit(counted.click_step).lower(counted.variables, features, prev, offsets).compile())

    torch_timer = None
    if torch_ref is not None:
        torch_timer = _TorchTimer(torch_ref, images[:1], prev, clicks[:1], torch_autocast)
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

    def __init__(self, ref: Any, image: np.ndarray, prev: Any, clicks: list, autocast: bool = False) -> None:
        import contextlib

        import torch

        self.torch, self.ref = torch, ref
        # torch.autocast(bfloat16): the fair PyTorch counterpart of our bf16 mode.
        self.context = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
        self.autocast = autocast
        self.image = torch.from_numpy(image.transpose(0, 3, 1, 2).copy())
        self.prev = torch.from_numpy(np.asarray(prev)[:1].transpose(0, 3, 1, 2).copy())
        n = 3
        rows = [(y, x, k) for k, (y, x, p) in enumerate(clicks[0]) if p]
        rows += [(-1, -1, -1)] * (n - len(rows))
        neg = [(y, x, k) for k, (y, x, p) in enumerate(clicks[0]) if not p]
        rows += neg + [(-1, -1, -1)] * (n - len(neg))
        self.points = torch.tensor([rows], dtype=torch.float64)
        with torch.inference_mode(), self.context():
            t0 = time.perf_counter()
            ref.set_image(self.image)
            self.encode_cold = 1e3 * (time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref.apply_click(self.prev, self.points)
            self.click_cold = 1e3 * (time.perf_counter() - t0)
        self.enc_ms: list[float] = []
        self.click_ms: list[float] = []

    def encode(self) -> None:
        with self.torch.inference_mode(), self.context():
            t0 = time.perf_counter()
            self.ref.set_image(self.image)
            self.enc_ms.append(1e3 * (time.perf_counter() - t0))

    def click(self) -> None:
        with self.torch.inference_mode(), self.context():
            t0 = time.perf_counter()
            self.ref.apply_click(self.prev, self.points)
            self.click_ms.append(1e3 * (time.perf_counter() - t0))

    def result(self) -> dict[str, Any]:
        return {"set_image": Timing(self.encode_cold, self.enc_ms).summary(),
                "apply_click": Timing(self.click_cold, self.click_ms).summary(),
                "threads": self.torch.get_num_threads(), "version": self.torch.__version__,
                "autocast_bfloat16": self.autocast}


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}ms"


def format_table(rows: list[Row], peaks: Any = None) -> str:
    """The results as a text table; a percentile without enough calls behind it shows as —. `peaks`
    (`roofline.Peaks`) adds the fraction of the peak FLOP/s reached."""
    head = (f"{'size':>5} {'dtype':>8} {'batch':>5} {'flip':>4} | {'encode cold':>11} {'n':>4} {'p50':>9} {'p90':>9} "
            f"{'p99':>9} {'GFLOP':>8} {'GFLOP/s':>8} | {'click cold':>10} {'n':>4} {'p50':>9} {'p90':>9} {'p99':>9} "
            f"{'GFLOP':>8} {'GFLOP/s':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        peak_tflops = peaks.tflops_for(r.dtype) if peaks and peaks.tflops else None
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
            amp = " under autocast(bfloat16)" if r.torch.get("autocast_bfloat16") else ""
            lines.append(
                f"{'':>27}PyTorch {r.torch['version']}{amp} ({r.torch['threads']} threads), same weights and inputs, "
                f"{tc['calls']} calls each: set_image p50 {ts['p50_ms']:.1f} ms, apply_click p50 "
                f"{tc['p50_ms']:.1f} ms → JAX/PyTorch: encode {e['p50_ms'] / ts['p50_ms']:.2f}×, click "
                f"{c['p50_ms'] / tc['p50_ms']:.2f}×")
    lines.append(f"(n: timed calls; p90 needs {MIN_CALLS[90]}, p99 {MIN_CALLS[99]} — fewer show as —)")
    return "\n".join(lines)
