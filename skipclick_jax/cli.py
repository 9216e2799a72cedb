"""The `skipclick` command: convert, demo, (and the tools of the other modules)."""

from __future__ import annotations

import argparse
import sys


def _convert(args: argparse.Namespace) -> int:
    from .convert.command import convert_file

    report = convert_file(args.src, args.out, overwrite=args.overwrite, encoder_name=args.encoder)
    print(report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skipclick", description="SkipClick interactive segmentation in JAX")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="original SkipClick / DINOv2 hub .pth → Orbax checkpoint + JSON config")
    p.add_argument("src", help="SkipClick checkpoint ({'state_dict','config'}) or dinov2_vit*14*_pretrain.pth")
    p.add_argument("out", help="output directory (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--encoder", default=None,
                   help="DINOv2 hub name (e.g. dinov2_vitb14_reg) when the file name does not say it")
    p.set_defaults(run=_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .convert.torch_io import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CheckpointError, FileExistsError, FileNotFoundError) as e:
        print(f"skipclick {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
