"""`skipclick agreement`: what a lower compute precision changes in simulated sessions.

Both models (the same weights, float32 and e.g. bfloat16) see the same clicks: the float32 session's own
NoC clicks (SPEC 3.5 click rule), so each click state is compared like for like. Per click: the fraction
of pixels whose mask (prob > thresh) agrees, whether the next simulated click would be the same, and
the logit difference over all pixels. A user deciding whether `--dtype bfloat16` is good enough for
their images runs this on a few of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..atomic import write_bytes_atomic
from .clicker import Clicker, next_click
from .loop import check_gt


@dataclass
class Agreement:
    """Per-click figures over all samples."""

    mask_agreement: list[float] = field(default_factory=list)  # fraction of pixels with the same mask
    same_next_click: list[bool] = field(default_factory=list)
    logit_abs_diff: list[np.ndarray] = field(default_factory=list)  # a subsample of |Δ logit| per click

    def summary(self) -> dict[str, Any]:
        agree = np.asarray(self.mask_agreement)
        diffs = np.concatenate(self.logit_abs_diff) if self.logit_abs_diff else np.zeros(1)
        return {"clicks": int(agree.size), "mask_agreement_mean": float(agree.mean()),
                "mask_agreement_worst_click": float(agree.min()),
                "same_next_click": float(np.mean(self.same_next_click)),
                "logit_abs_diff": {f"p{q}": float(np.percentile(diffs, q)) for q in (50, 90, 99, 99.9)}
                | {"max": float(diffs.max())}}


def _logits(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob.astype(np.float64), 1e-7, 1 - 1e-7)  # sigmoid saturates in float32 beyond ±16
    return np.log(p) - np.log1p(-p)


def compare_sessions(reference: Any, other: Any, samples: list[tuple[np.ndarray, np.ndarray]], clicks: int = 20,
                     thresh: float = 0.49, pixels_per_click: int = 4096, seed: int = 0) -> Agreement:
    """Drive `reference` and `other` (ClickSession-like: set_image, add_click → H×W probabilities) with the
    reference's simulated clicks on each (image, gt) sample and compare after every click."""
    rng = np.random.default_rng(seed)
    result = Agreement()
    for k, (image, gt) in enumerate(samples):
        gt = check_gt(image, gt, str(k))
        clicker = Clicker(gt)
        reference.set_image(image)
        other.set_image(image)
        ref_pred = np.zeros(gt.shape, bool)
        for _ in range(clicks):
            click = clicker.next_click(ref_pred)
            p_ref = np.asarray(reference.add_click(click.y, click.x, click.is_positive))
            p_other = np.asarray(other.add_click(click.y, click.x, click.is_positive))
            ref_pred, other_pred = p_ref > thresh, p_other > thresh
            result.mask_agreement.append(float(np.mean(ref_pred == other_pred)))
            clicked = clicker.not_clicked_map
            result.same_next_click.append(next_click(gt, ref_pred, clicked) == next_click(gt, other_pred, clicked))
            idx = rng.choice(p_ref.size, min(pixels_per_click, p_ref.size), replace=False)
            result.logit_abs_diff.append(np.abs(_logits(p_ref.ravel()[idx]) - _logits(p_other.ravel()[idx])))
    return result


def run(args: Any) -> int:
    import jax.numpy as jnp

    from ..inference import ClickSession
    from .models import load_eval_model
    from .runner import open_dataset, resolve_datasets

    model = load_eval_model(args.checkpoint, "float32")
    size = args.size or model.model.config.image_size  # default: the size the weights were trained at
    sessions = [ClickSession(model.model.clone(dtype=jnp.dtype(dtype)), model.params, size=size, flip=args.flip)
                for dtype in ("float32", args.dtype)]
    samples = []
    for spec in resolve_datasets(args.datasets):
        samples += [(s.image, s.gt) for s in open_dataset(spec)]
    samples = samples[: args.max_samples] if args.max_samples else samples
    figures = compare_sessions(*sessions, samples, clicks=args.clicks).summary()
    figures |= {"checkpoint": args.checkpoint, "dtype": args.dtype, "size": size, "flip": args.flip,
                "samples": len(samples)}
    print(f"{args.dtype} vs float32 over {len(samples)} objects × {args.clicks} clicks (the float32 session's "
          f"clicks), size {size}, flip {'on' if args.flip else 'off'}:")
    print(f"  mask agreement: mean {figures['mask_agreement_mean']:.4%}, worst click "
          f"{figures['mask_agreement_worst_click']:.4%}; same next click {figures['same_next_click']:.1%}")
    print("  |Δ logit|: " + ", ".join(f"{k} {v:.3g}" for k, v in figures["logit_abs_diff"].items()))
    if args.json:
        print(f"written to {write_bytes_atomic(args.json, (json.dumps(figures, indent=2) + chr(10)).encode())}")
    return 0


def register(subparsers: Any) -> None:
    """`skipclick agreement --checkpoint CKPT --datasets folder:ROOT [--dtype bfloat16] [--clicks 20]`."""
    p = subparsers.add_parser("agreement", help="how far a lower-precision session strays from float32")
    p.add_argument("--checkpoint", required=True, help="weights (any `load_checkpoint` source, or random:PRESET)")
    p.add_argument("--datasets", required=True, help="as `skipclick evaluate --datasets` (e.g. folder:ROOT)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16"])
    p.add_argument("--size", type=int, default=None, help="network size (default: the training size)")
    p.add_argument("--flip", action="store_true", help="flip TTA on (the evaluation protocol's)")
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--json", default=None)
    p.set_defaults(run=run)
