"""Peak compute and bandwidth of a device, and the roofline bound of a computation on it.

A stage doing F FLOPs and moving B bytes cannot take less than max(F / peak FLOP/s, B / peak bytes/s);
the fraction of that bound a measured time reaches says how much is left, and which roof (compute or
memory) is the one to push against.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Peaks:
    """Peak dense TFLOP/s per compute dtype and peak memory bandwidth, with where the numbers come from."""

    tflops: dict[str, float]
    gbps: float | None
    source: str

    def tflops_for(self, dtype: str) -> float:
        return self.tflops.get(dtype, self.tflops.get("float32", 0.0))


# Vendor datasheet figures (dense, no sparsity). float32 is the TF32 tensor-core rate: XLA's default
# precision for float32 matmuls on these GPUs (with matmul precision "highest" the FP32 rate applies).
KNOWN_PEAKS = {
    "H100 80GB HBM3": Peaks({"bfloat16": 989.4, "float32": 494.7}, 3350.0, "NVIDIA H100 SXM5 datasheet"),
    "H100 PCIe": Peaks({"bfloat16": 756.0, "float32": 378.0}, 2000.0, "NVIDIA H100 PCIe datasheet"),
    "H200": Peaks({"bfloat16": 989.4, "float32": 494.7}, 4800.0, "NVIDIA H200 SXM datasheet"),
    "A100-SXM4-80GB": Peaks({"bfloat16": 312.0, "float32": 156.0}, 2039.0, "NVIDIA A100 datasheet"),
    "A100-SXM4-40GB": Peaks({"bfloat16": 312.0, "float32": 156.0}, 1555.0, "NVIDIA A100 datasheet"),
}


def xla_cost(program: Any) -> tuple[float, float]:
    """(FLOPs, bytes accessed) of a lowered or compiled XLA program, from XLA's cost analysis."""
    analysis = program.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per program
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def known_peaks(device: jax.Device) -> Peaks | None:
    """The datasheet peaks of a known GPU (by `device_kind`), else None."""
    for kind, peaks in KNOWN_PEAKS.items():
        if kind in device.device_kind:
            return peaks
    return None


def _best_seconds(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peaks(dtypes: tuple[str, ...] = ("float32", "bfloat16")) -> Peaks:
    """Attainable peaks measured on the default device: a 2048×768 @ 768×3072 matmul per compute dtype
    (bf16 operands accumulate in float32, as the model's layers do) and a 256 MiB float32 copy-and-scale
    (read + write). What this machine really reaches, for devices without datasheet figures (CPUs)."""
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.random((2048, 768), np.float32))
    b = jnp.asarray(rng.random((768, 3072), np.float32))
    tflops = {}
    for dtype in dtypes:
        x, y = a.astype(dtype), b.astype(dtype)
        dot = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
        tflops[dtype] = 2 * 2048 * 768 * 3072 / _best_seconds(dot, x, y) / 1e12
    # Donated in place: a fresh 256 MiB output per call would time page faults, not bandwidth.
    scale = jax.jit(lambda v: v * 1.0001, donate_argnums=0)
    big = scale(jnp.ones((64 * 2**20,), jnp.float32))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        big = jax.block_until_ready(scale(big))
        best = min(best, time.perf_counter() - t0)
    gbps = 2 * big.nbytes / best / 1e9
    return Peaks(tflops, gbps, "measured here (matmul 2048×768×3072; 256 MiB scale-copy)")


def bound_ms(gflop: float, gbytes: float, tflops: float | None, gbps: float | None) -> tuple[float | None, str]:
    """The roofline bound in ms and which roof sets it ("compute" or "memory"); None without both peaks."""
    if not tflops or not gbps:
        return None, ""
    compute, memory = gflop / tflops, 1e3 * gbytes / gbps  # GFLOP / (TFLOP/s) = ms
    return max(compute, memory), "compute" if compute >= memory else "memory"
