"""Write a small synthetic COCO+LVIS dataset in RITM's exact on-disk layout (SPEC 4.1).

    python data/make_synthetic_cocolvis.py --out /tmp/synthetic_cocolvis --num-images 24

produces ``<out>/<split>/images/<12-digit id>.jpg``, ``masks/<id>.pickle`` and ``hannotation.pickle`` for
each requested split. Read it with ``skipclick_jax.data.CocoLvisSource(out, split)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from skipclick_jax.data.synthetic import write_cocolvis  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="dataset root (LVIS_v1_PATH equivalent)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    parser.add_argument("--num-images", type=int, default=24, help="images per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-size", type=int, default=200, help="smallest image side")
    parser.add_argument("--max-size", type=int, default=640, help="largest image side")
    args = parser.parse_args(argv)
    for i, split in enumerate(args.splits):
        path = write_cocolvis(args.out, split, args.num_images, args.seed + i, (args.min_size, args.max_size))
        print(f"wrote {args.num_images} images to {path}")


if __name__ == "__main__":
    main()
