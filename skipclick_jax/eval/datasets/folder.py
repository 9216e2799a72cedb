"""Generic source: a folder of images with one mask file per object.

Layout (``root`` is the folder given to ``get_dataset("folder", root)``)::

    images/<stem>.<ext>            any OpenCV-readable image (.jpg, .png, .bmp, .tif, .webp, ...)
    masks/<stem>.<ext>             a single object of image <stem>                 → sample id "<stem>"
    masks/<stem>_<k>.<ext>         object k (digits) of image <stem>               → sample id "<stem>_<k>"
    masks/<stem>/<name>.<ext>      one sub-folder per image, any mask file names   → sample id "<stem>/<name>"

A mask file whose stem equals an image stem belongs to that image (so an image may itself be called ``a_1``);
otherwise a trailing ``_<digits>`` is stripped to find the image (the RITM ``ImagesDirDataset`` rule). Images
and the objects of an image are sorted "naturally" (digit runs compared as numbers: ``a_2`` before ``a_10``);
a ``<stem>.<ext>`` mask comes before ``<stem>_<k>`` ones.

Mask decoding: read unchanged (8 or 16 bit); an alpha channel is dropped and colour masks use the maximum over
their colour channels; **any non-zero value is object**. Optionally ``ignore_value`` (e.g. 128 or 255) marks
ignore pixels (−1) instead. A mask without object pixels, a mask without an image or a size mismatch is an
error (or, with ``skip_corrupt``, a warning and the sample is skipped); images without masks are skipped
with a warning.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import cv2
import numpy as np

from .base import (
    IMAGE_EXTENSIONS,
    DatasetError,
    EvalDataset,
    EvalSample,
    check_same_size,
    list_images,
    match_by_stem,
    read_rgb,
    require_dir,
)

_SUFFIX = re.compile(r"^(?P<stem>.+)_(?P<k>\d+)$")


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key comparing digit runs as numbers ("2" < "10")."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", text) if t]


def read_object_mask(path: Path, ignore_value: int | None = None) -> np.ndarray:
    """Decode a generic object mask to int32 1/0/−1 (see the module docstring)."""
    if not path.is_file():
        raise DatasetError(f"missing mask file: {path}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"cannot decode mask file: {path}")
    if raw.ndim == 3:
        # Drop alpha (gray+alpha or BGRA), keep the colour channels.
        raw = raw[:, :, :1] if raw.shape[2] == 2 else raw[:, :, :3]
        raw = raw.max(axis=2)
    gt = (raw != 0).astype(np.int32)
    if ignore_value is not None:
        gt[raw == ignore_value] = -1
    return gt


class FolderDataset(EvalDataset):
    """Generic ``images/`` + ``masks/`` folder, one mask file per object (module docstring)."""

    name = "folder"

    def __init__(self, root: str | Path, skip_corrupt: bool = False, ignore_value: int | None = None,
                 images_dir: str = "images", masks_dir: str = "masks") -> None:
        super().__init__(root, skip_corrupt)
        self.ignore_value = ignore_value
        self.images_dir = images_dir
        self.masks_dir = masks_dir
        self._last: tuple[Path, np.ndarray] | None = None

    def _build_index(self) -> list[tuple[str, Path, Path]]:
        images_path = require_dir(self.root / self.images_dir, self.name)
        masks_path = require_dir(self.root / self.masks_dir, self.name)
        images = match_by_stem(list_images(images_path), images_path, self.name)
        per_image: dict[str, list[tuple[tuple, str, Path]]] = {stem: [] for stem in images}

        for entry in sorted(masks_path.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.name not in images:
                    self._problem(f"mask folder {entry} has no image {entry.name}.* in {images_path}")
                    continue
                for mask in list_images(entry):
                    key = (1, natural_key(mask.stem))
                    per_image[entry.name].append((key, f"{entry.name}/{mask.stem}", mask))
                continue
            if entry.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            stem = entry.stem
            if stem in images:
                per_image[stem].append(((0, []), stem, entry))
                continue
            m = _SUFFIX.match(stem)
            if m and m["stem"] in images:
                per_image[m["stem"]].append(((1, [(0, int(m["k"]))]), stem, entry))
            else:
                self._problem(f"mask {entry} matches no image in {images_path} "
                              f"(expected <stem>.<ext> or <stem>_<k>.<ext>)")

        index: list[tuple[str, Path, Path]] = []
        for stem in sorted(images, key=natural_key):
            objects = sorted(per_image[stem], key=lambda t: t[0])
            if not objects:
                warnings.warn(f"{self.name}: image {images[stem]} has no mask, skipped", stacklevel=3)
            index.extend((sample_id, images[stem], mask) for _, sample_id, mask in objects)
        if not index:
            raise DatasetError(f"{self.name}: no image/mask pairs found in {self.root}")
        return index

    def _load(self, ref: tuple[str, Path, Path]) -> EvalSample:
        sample_id, image_path, mask_path = ref
        if self._last is None or self._last[0] != image_path:
            self._last = (image_path, read_rgb(image_path))
        image = self._last[1]
        gt = read_object_mask(mask_path, self.ignore_value)
        check_same_size(image, gt, image_path, mask_path)
        if not (gt == 1).any():
            raise DatasetError(f"mask has no object pixels: {mask_path}")
        return EvalSample(sample_id, image, gt)

    def ids(self) -> list[str]:
        return [sample_id for sample_id, _, _ in self.index]
