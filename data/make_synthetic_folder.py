"""Write a small synthetic dataset in the folder layout and/or as a COCO-format JSON.

    python data/make_synthetic_folder.py --out /tmp/synthetic_folder --num-images 16 --format both

Folder layout (``skipclick_jax.data.FolderSource(out)``)::

    <out>/images/img_XXXX.jpg
    <out>/masks/img_XXXX_<k>.png      one 0/255 mask per object

COCO JSON (``skipclick_jax.data.CocoJsonSource(out / "annotations.json", out / "images")``): the same
images, objects stored as polygons, compressed RLE and uncompressed RLE, plus one crowd annotation per image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from skipclick_jax.data.synthetic import write_coco_json, write_folder  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--format", choices=["folder", "coco", "both"], default="both")
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-size", type=int, default=200, help="smallest image side")
    parser.add_argument("--max-size", type=int, default=640, help="largest image side")
    args = parser.parse_args(argv)
    sizes = (args.min_size, args.max_size)
    if args.format in ("folder", "both"):
        print(f"wrote folder layout to {write_folder(args.out, args.num_images, args.seed, sizes)}")
    if args.format in ("coco", "both"):
        path = write_coco_json(args.out, args.num_images, args.seed, sizes,
                               write_images=args.format == "coco")
        print(f"wrote COCO annotations to {path}")


if __name__ == "__main__":
    main()
