"""`skipclick train`: train or resume a SkipClick model from a config preset.

    skipclick train --config configs/skipclick_vitb14_448.py --workdir runs/main \\
        --data cocolvis:/data/lvis_v1 --encoder-weights dinov2_vitb14_reg4_pretrain.pth \\
        [--set batch_size=16 --set model.fusion_depth=2 ...] [key=value ...]

Rerunning the same command after an interruption resumes from the newest checkpoint in the workdir.
The trained weights are in <workdir>/export (`skipclick_jax.load_checkpoint("<workdir>/export")`).
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
    from .loop import NonFiniteLossError, describe, maybe_initialize_distributed, train

    maybe_initialize_distributed()  # before anything touches a device
    config = apply_overrides(load_config(args.config), list(args.overrides) + list(args.extra_overrides))
    if args.data:
        config = dataclasses.replace(config, data_source=args.data)
    if args.encoder_weights:
        config = dataclasses.replace(config, encoder_weights=str(args.encoder_weights))
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    _enable_compilation_cache(args)
    print(describe(config), file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the random-encoder warning must not be swallowed
        try:
            result = train(config, args.workdir, max_steps=args.max_steps, progress=not args.no_progress)
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
