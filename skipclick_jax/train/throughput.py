"""Throughput accounting of the training loop: images/s, where a step's time goes, and MFU.

Per step the loop measures the time spent waiting for the next batch of the input pipeline (`data_s`) and
the time from handing the batch to the step until its metrics are on the host (`step_s`: transfer,
dispatch and the step on the devices). Averages over a logging interval go to metrics.jsonl, TensorBoard
and the progress line, so a data-loading stall shows up as a large `data_s` / `data_fraction`.

MFU (model FLOPs utilisation, with `--peak-tflops`): model FLOPs per image (XLA's cost analysis of the
step, at the mean number of simulated clicks, as `skipclick bench-train --flops`) × images/s, divided by
the devices' peak: `peak_tflops` × 10^12 × number of devices.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class StepTimer:
    """Accumulates the per-step times of one logging interval."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.data_s = 0.0
        self.step_s = 0.0
        self.steps = 0
        self.images = 0

    def add(self, data_s: float, step_s: float, images: int) -> None:
        self.data_s += data_s
        self.step_s += step_s
        self.steps += 1
        self.images += images

    def summary(self, flops_per_image: float | None = None, peak_tflops: float | None = None,
                num_devices: int = 1) -> dict[str, float]:
        """Interval figures: images_per_sec, data_s and step_s (means per step), data_fraction, and with
        FLOPs and a peak, achieved_tflops and mfu. Empty when no step was timed."""
        if not self.steps:
            return {}
        # Time inside steps only: checkpoints and evaluations between steps do not lower images/s.
        out = {
            "images_per_sec": self.images / max(self.data_s + self.step_s, 1e-12),
            "data_s": self.data_s / self.steps,
            "step_s": self.step_s / self.steps,
            "data_fraction": self.data_s / max(self.data_s + self.step_s, 1e-12),
        }
        if flops_per_image:
            out["achieved_tflops"] = out["images_per_sec"] * flops_per_image / 1e12
            if peak_tflops:
                out["mfu"] = out["achieved_tflops"] / (peak_tflops * num_devices)
        return out


def flops_per_image(config: Any) -> float:
    """Model FLOPs per training image from XLA's cost analysis of the unoptimised step (traced, not
    compiled). Accumulation does not change the work per image, and XLA counts a scan body once, so the
    analysis runs without it."""
    from .bench import step_flops

    config = dataclasses.replace(config, grad_accum_steps=1)
    return step_flops(config, compiled=False)["flops_per_image"]


def postfix(values: dict[str, float]) -> dict[str, str]:
    """The progress line's fields."""
    out = {"loss": f"{values['loss']:.4f}", "iou": f"{values['iou']:.3f}", "lr": f"{values['lr']:.1e}"}
    if "images_per_sec" in values:
        out["img/s"] = f"{values['images_per_sec']:.1f}"
        out["data/step"] = f"{1e3 * values['data_s']:.0f}/{1e3 * values['step_s']:.0f}ms"
    if "mfu" in values:
        out["MFU"] = f"{100 * values['mfu']:.1f}%"
    return out
