"""Train-step throughput and FLOPs: `skipclick bench-train --config configs/tiny.py`.

Measures the jitted train step exactly as `train` runs it (all devices of the process, batch sharded,
state donated) on a fixed synthetic batch: compile time, then the median step time over `--steps` steps
(each step draws its own number of simulated clicks, 0-3, as in training), and images/s. With `--flops`,
XLA's cost analysis gives the model FLOPs per image of one step at the mean 1.5 simulated clicks:

    FLOPs(step) = FLOPs(encoder + features + final decode fwd/bwd + Adam) + E[n]·FLOPs(one simulated click)

XLA counts a while-loop body once, so the step's analysis (which contains the click loop once) is combined
with a separate analysis of one simulated click; attention is analysed with the fused implementation (on
CPU the model loops over heads, and that loop would be counted once too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..bench.roofline import xla_cost


@contextlib.contextmanager
def _fused_attention() -> Iterator[None]:
    from ..model import layers

    original = layers.attention

    def fused(q, k, v, implementation="auto", *rest, **kwargs):  # any further arguments pass through
        return original(q, k, v, "fused", *rest, **kwargs)

    layers.attention = fused
    try:
        yield
    finally:
        layers.attention = original


def synthetic_batch(config: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch with one rectangular object per image and one positive click (shapes as the pipeline's)."""
    rng = np.random.default_rng(seed)
    b, s, n = config.batch_size, config.model.image_size, config.data.sampler.max_num_points
    mask = np.zeros((b, s, s), np.float32)
    points = -np.ones((b, 2 * n, 3), np.float32)
    for i in range(b):
        r0, c0 = rng.integers(0, s // 2, 2)
        mask[i, r0 : r0 + s // 3, c0 : c0 + s // 3] = 1
        points[i, 0] = [r0 + s // 6, c0 + s // 6, 100]
    return {"image": rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8), "points": points, "mask": mask}


def _cost_flops(lowered: Any, compiled: bool) -> float:
    return xla_cost(lowered.compile() if compiled else lowered)[0]


def step_flops(config: Any, compiled: bool = True) -> dict[str, float]:
    """Model FLOPs per image of one train step (see the module docstring), from XLA's cost analysis."""
    from ..model import SkipClick
    from .clicks import add_next_points
    from .state import abstract_train_state, make_mesh, make_optimizer
    from .step import make_model, train_step

    mesh = make_mesh(jax.devices()[:1])
    tx = make_optimizer(config)
    state = abstract_train_state(config, mesh, tx)
    state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), state)
    b, s = config.batch_size, config.model.image_size
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in synthetic_batch(config).items()}
    model = make_model(config)

    def one_click(params, image, prev, gt, points, key):
        features = model.apply({"params": params}, image, method=SkipClick.encode)
        logits = model.apply({"params": params}, features, prev, points, method=SkipClick.decode)
        return add_next_points(jax.nn.sigmoid(logits), gt, points, 1, key, method="relax")

    def encode_only(params, image):
        return model.apply({"params": params}, image, method=SkipClick.encode)

    with _fused_attention():
        full = _cost_flops(jax.jit(lambda st, bt: train_step(st, bt, model=model, tx=tx, config=config)).lower(
            state, batch), compiled)
        params = state.full_params()
        image = jax.ShapeDtypeStruct((b, s, s, 3), jnp.float32)
        mask = jax.ShapeDtypeStruct((b, s, s, 1), jnp.float32)
        click_and_encode = _cost_flops(jax.jit(one_click).lower(
            params, image, mask, mask, batch["points"], jax.eval_shape(lambda: jax.random.key(0))), compiled)
        encode = _cost_flops(jax.jit(encode_only).lower(params, image), compiled)
    click = click_and_encode - encode
    mean_clicks = config.max_num_next_clicks / 2
    total = full + (mean_clicks - 1) * click
    return {"flops_per_image": total / b, "flops_per_image_no_clicks": (full - click) / b,
            "flops_per_simulated_click_per_image": click / b, "mean_simulated_clicks": mean_clicks}


def measure_throughput(config: Any, steps: int = 20, warmup: int = 2) -> dict[str, float]:
    """Median train-step time and images/s on all local devices (fixed batch, fresh tiny-init state)."""
    from ..model import init_params
    from .state import batch_sharding, create_train_state, make_mesh, make_optimizer
    from .step import make_train_step

    mesh = make_mesh()
    tx = make_optimizer(config)
    state = create_train_state(config, init_params(config.model, config.seed), mesh, tx)
    step = make_train_step(config, mesh, tx, state)
    batch = jax.device_put(synthetic_batch(config), batch_sharding(mesh))
    t0 = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    times, clicks = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch)
        n = int(jax.device_get(metrics["num_clicks"]))  # blocks until the step is done
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            clicks.append(n)
    median = statistics.median(times)
    return {"devices": mesh.size, "batch": config.batch_size, "crop": config.model.image_size,
            "compile_s": compile_s, "step_s_median": median, "step_s_mean": statistics.fmean(times),
            "images_per_s": config.batch_size / median, "mean_simulated_clicks": statistics.fmean(clicks),
            "steps": steps}


def run(args: argparse.Namespace) -> int:
    """Measure, print the results as JSON (and write them to `--json`)."""
    from ..atomic import write_bytes_atomic
    from .config import apply_overrides, load_config

    config = apply_overrides(load_config(args.config), args.overrides)
    result: dict[str, Any] = {"config": config.name, "backend": jax.default_backend(),
                              "device": jax.devices()[0].device_kind, "compute_dtype": config.compute_dtype}
    if not args.flops_only:
        result.update(measure_throughput(config, args.steps))
    if args.flops or args.flops_only:
        result.update(step_flops(config, compiled=not args.lowered_cost))
        if "images_per_s" in result:
            result["achieved_tflops"] = result["images_per_s"] * result["flops_per_image"] / 1e12
            if args.peak_tflops:
                result["fraction_of_peak"] = result["achieved_tflops"] / args.peak_tflops
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        write_bytes_atomic(args.json, (text + "\n").encode())
    return 0


def register(subparsers) -> None:
    """`skipclick bench-train [--config CFG] [--set k=v] [--steps N] [--flops]`."""
    p = subparsers.add_parser("bench-train", help="train-step images/s and FLOPs per image",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", help="config file or preset name (default tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--flops", action="store_true", help="also report FLOPs per image from XLA's cost analysis")
    p.add_argument("--flops-only", action="store_true", help="only the FLOPs (no step is run)")
    p.add_argument("--lowered-cost", action="store_true",
                   help="cost analysis of the unoptimised program (no compilation; for very large models on CPU)")
    p.add_argument("--peak-tflops", type=float, help="device peak, to report the fraction of peak")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.set_defaults(run=run)
