"""The `skipclick` command. Each feature module registers its own subcommand (`register(subparsers)`)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules providing `register(subparsers)`; each adds one subcommand with `set_defaults(run=...)`.
COMMAND_MODULES = [
    "skipclick_jax.weights.convert",
    "skipclick_jax.demo",
    "skipclick_jax.bench.command",
    "skipclick_jax.train.bench",
    "skipclick_jax.weights.export",
    "skipclick_jax.annotate.command",
    "skipclick_jax.train.command",
    "skipclick_jax.eval.command",
    "skipclick_jax.eval.agreement",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skipclick", description="SkipClick interactive segmentation in JAX")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .weights.errors import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (CheckpointError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"skipclick {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
