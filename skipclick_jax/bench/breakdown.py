"""`skipclick bench --breakdown`: where the time of the encode and of the click step goes.

Every stage (see `stages`) is compiled on its own and timed on the inputs it gets in the real step; XLA's
cost analysis gives its FLOPs and bytes accessed, its memory analysis the bytes the call needs. The fused
step (the same computation compiled as one program, without the host-side click encoding) is timed the
same way; the gap between the sum of the stages and the fused step is what fusion across stage
boundaries buys (or, when negative, what the boundaries cost nothing at all).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ..inference.engine import Click, ClickEngine
from .roofline import Peaks, bound_ms, xla_cost
from .stages import Stage, click_stages, encode_output, encode_stages, run_stages


def memory_bytes(compiled: Any) -> dict[str, int] | None:
    """XLA's memory analysis of a compiled call: arguments, outputs, temporaries, and their peak sum."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    out = {k: int(getattr(m, f"{k}_size_in_bytes")) for k in ("argument", "output", "temp", "alias")}
    out["peak"] = out["argument"] + out["output"] + out["temp"] - out["alias"]
    return out


def _p50_ms(compiled: Callable[..., Any], args: tuple[Any, ...], calls: int) -> tuple[float, Any]:
    out = jax.block_until_ready(compiled(*args))  # warm
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(1e3 * (time.perf_counter() - t0))
    return float(np.median(times)), out


def _program(name: str, fn: Callable[..., Any], counted_fn: Callable[..., Any], args: tuple[Any, ...],
             counted: ClickEngine, calls: int, peaks: Peaks | None, dtype: str) -> tuple[dict[str, Any], Any]:
    """Compile `fn(*args)` once, time it, and describe it; `args[0]` is the variables. FLOPs come from the
    same program on the fused-attention model `counted` (XLA counts the per-head loop body once)."""
    compiled = jax.jit(fn).lower(*args).compile()
    ms, out = _p50_ms(compiled, args, calls)
    flops, _ = xla_cost(jax.jit(counted_fn).lower(counted.variables, *args[1:]).compile())
    _, nbytes = xla_cost(compiled)
    return _figures(name, ms, flops, nbytes, peaks, dtype) | {"memory": memory_bytes(compiled)}, out


def _figures(name: str, ms: float, flops: float, nbytes: float, peaks: Peaks | None, dtype: str) -> dict[str, Any]:
    gflop, gbytes = flops / 1e9, nbytes / 1e9
    tflops, gbps = (peaks.tflops_for(dtype), peaks.gbps) if peaks else (None, None)
    bound, roof = bound_ms(gflop, gbytes, tflops, gbps)
    return {"stage": name, "p50_ms": ms, "gflop": gflop, "gbytes": gbytes,
            "flop_per_byte": flops / nbytes if nbytes else None,
            "achieved_tflops": gflop / ms if ms else None, "achieved_gbps": gbytes / ms * 1e3 if ms else None,
            "bound_ms": bound, "roof": roof, "fraction_of_bound": bound / ms if bound and ms else None}


def _measure(stages: list[Stage], counted_stages: list[Stage], engine: ClickEngine, counted: ClickEngine,
             inputs: dict[str, Any], calls: int, peaks: Peaks | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    dtype = str(np.dtype(engine.model.dtype))
    rows: list[dict[str, Any]] = []
    counted_by_name = {s.name: s for s in counted_stages}

    def each(stage: Stage, args: tuple[Any, ...]) -> Any:
        row, out = _program(stage.name, stage.fn, counted_by_name[stage.name].fn, args, counted, calls, peaks, dtype)
        rows.append(row)
        return out

    outputs = run_stages(stages, engine.variables, inputs, each)
    return rows, outputs


def breakdown(engine: ClickEngine, images: np.ndarray, clicks: list[list[Click]], calls: int,
              peaks: Peaks | None) -> dict[str, Any]:
    """Per-stage and fused figures of the encode and the click step (batch = len(images), one object each).

    Returns {"encode": {...}, "click": {...}}, each with "stages" (rows), "fused" (the whole step), the sum
    of the stage times, the margin (sum / fused − 1), and the max |difference| between the composed stages'
    output and the fused step's (they must agree to float rounding)."""
    counted = ClickEngine(engine.model.clone(attention="fused"), engine.params, engine.size, flip=engine.flip)
    dtype = str(np.dtype(engine.model.dtype))
    images = engine.put(images)
    prev = engine.put(np.zeros((len(images), engine.size, engine.size, 1), np.float32))
    offsets = engine.encode_clicks(clicks)
    result = {}

    enc_rows, enc_out = _measure(encode_stages(engine), encode_stages(counted), engine, counted,
                                 {"images": images}, calls, peaks)
    features = encode_output(enc_out)
    fused, fused_features = _program("encode (fused)", engine.encode_step, counted.encode_step,
                                     (engine.variables, images), counted, calls, peaks, dtype)
    result["encode"] = _summary(enc_rows, fused, _max_diff(features.tokens, fused_features.tokens))

    inputs = {"features": fused_features, "prev": prev, "offsets": offsets}
    click_rows, click_out = _measure(click_stages(engine), click_stages(counted), engine, counted, inputs, calls,
                                     peaks)
    # the engine's step without the donation (its inputs are reused call after call)
    fused, probs = _program("click (fused)", engine.click_step, counted.click_step,
                            (engine.variables, fused_features, prev, offsets), counted, calls, peaks, dtype)
    result["click"] = _summary(click_rows, fused, _max_diff(click_out["final resize"], probs))
    stats = engine.device.memory_stats()  # None on CPU
    keys = ("peak_bytes_in_use", "bytes_limit")
    result["device_memory"] = {k: stats[k] for k in keys if k in stats} if stats else None
    return result


def _max_diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


def _summary(rows: list[dict[str, Any]], fused: dict[str, Any], diff: float) -> dict[str, Any]:
    total = sum(r["p50_ms"] for r in rows)
    return {"stages": rows, "fused": fused, "sum_ms": total, "margin": total / fused["p50_ms"] - 1,
            "max_abs_diff": diff}


def format_breakdown(result: dict[str, Any]) -> str:
    """The breakdown as text: one line per stage, then the fused step and the margin."""
    head = (f"{'stage':<26} {'p50':>9} {'GFLOP':>8} {'GB':>7} {'FLOP/B':>7} {'TFLOP/s':>8} {'GB/s':>7} "
            f"{'bound':>9} {'roof':>7} {'of bound':>8} {'peak mem':>9}")
    lines = []
    for part in ("encode", "click"):
        r = result[part]
        lines += [f"{part}:", head, "-" * len(head)]
        for row in [*r["stages"], r["fused"]]:
            mem = row["memory"]["peak"] / 2**20 if row.get("memory") else None
            lines.append(
                f"{row['stage']:<26} {row['p50_ms']:7.2f}ms {row['gflop']:8.2f} {row['gbytes']:7.3f} "
                f"{_num(row['flop_per_byte'], '7.1f')} {_num(row['achieved_tflops'], '8.3f')} "
                f"{_num(row['achieved_gbps'], '7.1f')} {_num(row['bound_ms'], '7.2f', 'ms')} {row['roof']:>7} "
                f"{_num(row['fraction_of_bound'], '8.1%')} {_num(mem, '6.0f', 'MiB')}")
        lines.append(f"sum of stages {r['sum_ms']:.2f} ms vs fused {r['fused']['p50_ms']:.2f} ms: margin "
                     f"{r['margin']:+.1%}; composed stages vs fused step max |Δ| {r['max_abs_diff']:.1e}")
    if result.get("device_memory"):
        lines.append(f"device memory: {result['device_memory']}")
    return "\n".join(lines)


def _num(value: float | None, spec: str, unit: str = "") -> str:
    width = int(spec.split(".")[0]) + len(unit)
    return f"{'—':>{width}}" if value is None else f"{format(value, spec)}{unit}"
