"""`--data` specifications → record sources of `skipclick_jax.data`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPEC_HELP = "cocolvis:ROOT | folder:ROOT | coco-json:ANNOTATIONS.json[,IMAGE_DIR] | tfds:DATA_DIR"


def open_source(spec: str) -> Any:
    """Open the training split named by `spec` (see `SPEC_HELP`).

    cocolvis:ROOT   RITM's COCO+LVIS layout, split `train` (ROOT/train/{images,masks,hannotation.pickle})
    folder:ROOT     ROOT/images/*.jpg with ROOT/masks/<stem>_<k>.png instance masks
    coco-json:F[,D] a COCO instance annotation file; images in D (default: F's folder/images)
    tfds:DIR        a dataset prepared by `prepare_tfds` (split `train`)
    """
    kind, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise ValueError(f"data source {spec!r} is not of the form KIND:PATH ({SPEC_HELP})")
    if kind == "cocolvis":
        from ..data import CocoLvisSource

        return CocoLvisSource(arg, "train")
    if kind == "folder":
        from ..data import FolderSource

        return FolderSource(arg)
    if kind == "coco-json":
        from ..data import CocoJsonSource

        annotations, _, images = arg.partition(",")
        return CocoJsonSource(annotations, images or Path(annotations).parent / "images")
    if kind == "tfds":
        from ..data import TfdsSource

        return TfdsSource(arg, "train")
    raise ValueError(f"unknown data source kind {kind!r} ({SPEC_HELP})")
