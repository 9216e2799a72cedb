"""`skipclick train`: train or resume a SkipClick model from a config preset.

    skipclick train --config configs/skipclick_vitb14_448.py --workdir runs/main \\
        --data cocolvis:/data/lvis_v1 --encoder-weights dinov2_vitb14_reg4_pretrain.pth \\
        [--set batch_size=16 --set model.fusion_depth=2 ...] [key=value ...]

Rerunning the same command after an interruption resumes from the newest checkpoint in the workdir.
The trained weights are in <workdir>/export (`skipclick_jax.load_checkpoint("<workdir>/export")`).

Several processes (hosts): run the same command in each with JAX_COORDINATOR_ADDRESS=HOST:PORT,
JAX_NUM_PROCESSES=N and JAX_PROCESS_ID=i (or under SLURM / Open MPI, which JAX detects).

Exit status: 0 done, 3 non-finite loss, 4 stalled (a peer process died; rerun to resume), 143 stopped by
a signal after a checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

from .data_source import SPEC_HELP

# Exit status when the loss became NaN/inf, and when a signal stopped the run (after a checkpoint).
EXIT_NONFINITE = 3
EXIT_SIGNAL = 128 + signal.SIGTERM


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train SkipClick (Grain input pipeline, sharded jit step, resumable Orbax checkpoints)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="a config file (configs/<preset>.py) or a preset name")
    p.add_argument("--workdir", required=True, type=Path, help="checkpoints, export/, metrics.jsonl, tensorboard/")
    p.add_argument("--data", help=f"training data: {SPEC_HELP}")
    p.add_argument("--encoder-weights", type=Path,
                   help="DINOv2 weights: hub .pth (dinov2_vitb14_reg4_pretrain.pth) or a `skipclick convert` dir")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, dotted for nested ones (model.fusion_depth=2); repeatable")
    p.add_argument("extra_overrides", nargs="*", metavar="KEY=VALUE", help="more overrides, as --set")
    p.add_argument("--max-steps", type=int, help="stop after this global step (with a checkpoint)")
    p.add_argument("--compilation-cache", type=Path,
                   help="persistent XLA compilation cache (default <workdir>/compilation_cache; 'none' = off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--profile-steps", metavar="A:B",
                   help="write a jax.profiler trace of global steps A..B to <workdir>/profile (process 0)")
    p.add_argument("--peak-tflops", type=float,
                   help="peak TFLOP/s of one device: the metrics then include MFU (model FLOPs utilisation)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.set_defaults(run=run)


def _enable_compilation_cache(args: argparse.Namespace) -> None:
    """Recompiling the step after a restart costs minutes on big models; cache it on disk."""
    import jax

    off = args.compilation_cache is not None and str(args.compilation_cache).lower() == "none"
    if off or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    directory = args.compilation_cache or args.workdir / "compilation_cache"
    jax.config.update("jax_compilation_cache_dir", str(Path(directory).absolute()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def run(args: argparse.Namespace) -> int:
    import json
    import warnings

    from .config import apply_overrides, load_config
    from .distributed import maybe_initialize_distributed
    from .loop import NonFiniteLossError, describe, parse_profile_steps, train

    maybe_initialize_distributed()  # before anything touches a device
    config = apply_overrides(load_config(args.config), list(args.overrides) + list(args.extra_overrides))
    if args.data:
        config = dataclasses.replace(config, data_source=args.data)
    if args.encoder_weights:
        config = dataclasses.replace(config, encoder_weights=str(args.encoder_weights))
    profile = parse_profile_steps(args.profile_steps) if args.profile_steps else None
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        raise ValueError(f"--peak-tflops must be positive, got {args.peak_tflops}")
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    _enable_compilation_cache(args)
    print(describe(config), file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the random-encoder warning must not be swallowed
        try:
            result = train(config, args.workdir, max_steps=args.max_steps, progress=not args.no_progress,
                           profile_steps=profile, peak_tflops=args.peak_tflops)
        except NonFiniteLossError as e:
            print(f"skipclick train: {e}", file=sys.stderr)
            return EXIT_NONFINITE
    where = f"; weights: {result.export_dir} (load_checkpoint)"
    if result.stopped_by_signal:
        print(f"stopped by a signal at step {result.step} after saving a checkpoint{where}; rerun to resume",
              file=sys.stderr)
        return EXIT_SIGNAL
    print(f"finished at step {result.step}{where}", file=sys.stderr)
    return 0
