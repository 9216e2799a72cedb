"""Prepare a dataset once as TFDS ArrayRecord shards (no TensorFlow needed).

    python data/prepare_tfds.py cocolvis --root /data/lvis_v1 --splits train val --out /data/tfds
    python data/prepare_tfds.py folder --root /data/my_objects --out /data/tfds_mine
    python data/prepare_tfds.py coco --annotations /data/x/annotations.json --images /data/x/images \
        --out /data/tfds_x

Read back with ``skipclick_jax.data.TfdsSource(out, split)`` (or ``tfds.data_source("skipclick_records",
data_dir=out, split=...)`` after importing ``skipclick_jax.data.tfds_records``). The folder and coco kinds
write a single split named by ``--split`` (default train). Preparing into an existing ``--out`` that
already holds the dataset is a no-op; use a fresh directory per dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from skipclick_jax.data import CocoJsonSource, CocoLvisSource, FolderSource  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["cocolvis", "folder", "coco"])
    parser.add_argument("--out", required=True, type=Path, help="TFDS data_dir to write")
    parser.add_argument("--root", type=Path, help="dataset root (cocolvis, folder)")
    parser.add_argument("--splits", nargs="+", default=["train"], help="cocolvis splits")
    parser.add_argument("--split", default="train", help="split name for folder / coco")
    parser.add_argument("--annotations", type=Path, help="COCO JSON file (coco)")
    parser.add_argument("--images", type=Path, help="COCO image folder (coco)")
    parser.add_argument("--keep-empty", action="store_true", help="keep images without objects")
    args = parser.parse_args(argv)

    if args.kind == "cocolvis":
        if args.root is None:
            parser.error("cocolvis needs --root")
        sources = {split: CocoLvisSource(args.root, split) for split in args.splits}
    elif args.kind == "folder":
        if args.root is None:
            parser.error("folder needs --root")
        sources = {args.split: FolderSource(args.root, skip_empty=not args.keep_empty)}
    else:
        if args.annotations is None or args.images is None:
            parser.error("coco needs --annotations and --images")
        sources = {args.split: CocoJsonSource(args.annotations, args.images, skip_empty=not args.keep_empty)}

    from skipclick_jax.data.tfds_records import prepare_tfds  # tensorflow_datasets is slow to import

    path = prepare_tfds(sources, args.out)
    print(f"prepared {', '.join(f'{k} ({len(v)})' for k, v in sources.items())} in {path}")


if __name__ == "__main__":
    main()
