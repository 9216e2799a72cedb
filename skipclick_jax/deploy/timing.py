"""Wall-clock times of the exported ONNX pair on ONNX Runtime (what `skipclick bench --backend onnxruntime`
reports next to the JAX engine)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .ort_model import OnnxSkipClick

CAPACITY = 24  # click slots per sign, as `ClickEngine`'s default: the same click rows as the JAX step


def time_onnx_pair(export_dir: str | Path, size: int, batch: int, calls: int, *,
                   threads: int | None = None) -> dict[str, Any]:
    """Time `encoder.onnx` and `click.onnx` of `export_dir` at batch `batch`, `calls` warm calls each.

    Each timed call is one `InferenceSession.run` (inputs prepared beforehand, outputs returned to numpy);
    the click state is one positive click in 2·24 rows, the previous mask random, no flip. The first call of
    each graph is reported apart as the cold call (ONNX Runtime's first-run allocations), not in the lists.

    Returns a dict: "encode" and "click" (lists of `calls` seconds), "encode_cold" and "click_cold"
    (seconds), "size", "batch", "threads", "device" ("onnxruntime CPU" or the providers used).
    """
    if calls < 1 or batch < 1:
        raise ValueError(f"calls and batch must be >= 1, got calls={calls}, batch={batch}")
    pair = OnnxSkipClick(export_dir, threads=threads)
    if size != pair.size:
        raise ValueError(f"{export_dir} was exported at size {pair.size}; re-export with --size {size}")
    rng = np.random.default_rng(0)
    images = rng.random((batch, 3, size, size), dtype=np.float32)
    prev = rng.random((batch, 1, size, size), dtype=np.float32)
    points = np.full((batch, 2 * CAPACITY, 3), -1.0)
    points[:, 0] = (size / 2, size / 3, 0.0)

    def timed(run) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    encode_run = lambda: pair.encoder.run(None, {"image": images})  # noqa: E731
    encode_cold = timed(encode_run)
    encode = [timed(encode_run) for _ in range(calls)]
    features = pair.encode(images)
    click_run = lambda: pair.clicker.run(None, {**features, "prev_mask": prev, "points": points})  # noqa: E731
    click_cold = timed(click_run)
    click = [timed(click_run) for _ in range(calls)]
    return {"encode": encode, "click": click, "encode_cold": encode_cold, "click_cold": click_cold,
            "size": size, "batch": batch, "threads": threads, "device": "onnxruntime " + ",".join(
                pair.encoder.get_providers())}
