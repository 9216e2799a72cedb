"""Datasets made of an image folder and a mask folder matched by file stem, one object per image.

* GrabCut: ``data_GT/<name>.<ext>`` + ``boundary_GT/<stem>.<ext>``; Berkeley: ``images/`` + ``masks/``.
  Mask = channel 0 of the colour read; 128 → −1 (ignore band), > 128 → 1.
* DAVIS: ``img/<name>.jpg`` + ``gt/<stem>.png``; COCO_MVal uses the same layout. Mask = max over the colour
  channels, > 0 → 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import (
    DatasetError,
    EvalDataset,
    EvalSample,
    check_same_size,
    list_images,
    match_by_stem,
    read_mask_color,
    read_rgb,
    require_dir,
)


def decode_ignore_band_mask(mask_bgr: np.ndarray) -> np.ndarray:
    """GrabCut/Berkeley decoding: channel 0; 128 → −1, > 128 → 1, other values as in the reference.

    The reference only rewrites 128 and > 128 and then takes ``== 1`` as the object, so a stored value of 1
    is also object; every other value below 128 is background.
    """
    v = mask_bgr[:, :, 0].astype(np.int32)
    gt = np.zeros(v.shape, np.int32)
    gt[(v > 128) | (v == 1)] = 1
    gt[v == 128] = -1
    return gt


def decode_nonzero_mask(mask_bgr: np.ndarray) -> np.ndarray:
    """DAVIS/HQSeg decoding: any non-zero value in any channel is object; no ignore label."""
    return (mask_bgr.max(axis=2) > 0).astype(np.int32)


class PairedFolderDataset(EvalDataset):
    """Image folder + mask folder matched by stem (the mask may have a different extension)."""

    name = "paired"
    images_dir = "images"
    masks_dir = "masks"

    def _build_index(self) -> list[tuple[Path, Path]]:
        images_path = require_dir(self.root / self.images_dir, self.name)
        masks_path = require_dir(self.root / self.masks_dir, self.name)
        masks = match_by_stem(list_images(masks_path), masks_path, self.name)
        index = []
        for image in list_images(images_path):
            # The reference keys on the name up to the first dot; the stem is tried first.
            mask = masks.get(image.stem) or masks.get(image.name.split(".")[0])
            if mask is None:
                self._problem(f"no mask for image {image} in {masks_path}")
                continue
            index.append((image, mask))
        if not index:
            raise DatasetError(f"{self.name}: no image/mask pairs found in {images_path}")
        return index

    def decode_mask(self, mask_bgr: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _load(self, ref: tuple[Path, Path]) -> EvalSample:
        image_path, mask_path = ref
        image = read_rgb(image_path)
        gt = self.decode_mask(read_mask_color(mask_path))
        check_same_size(image, gt, image_path, mask_path)
        return EvalSample(image_path.stem, image, gt)

    def ids(self) -> list[str]:
        return [image.stem for image, _ in self.index]


class GrabCutDataset(PairedFolderDataset):
    """GrabCut (50 images): ``data_GT/`` images, ``boundary_GT/`` masks with a 128-valued ignore band."""

    name = "GrabCut"
    images_dir = "data_GT"
    masks_dir = "boundary_GT"

    def decode_mask(self, mask_bgr: np.ndarray) -> np.ndarray:
        return decode_ignore_band_mask(mask_bgr)


class BerkeleyDataset(GrabCutDataset):
    """Berkeley (100 images): ``images/`` and ``masks/``, GrabCut decoding."""

    name = "Berkeley"
    images_dir = "images"
    masks_dir = "masks"


class DavisDataset(PairedFolderDataset):
    """DAVIS (345 images): ``img/`` and ``gt/``; any non-zero mask value is object."""

    name = "DAVIS"
    images_dir = "img"
    masks_dir = "gt"

    def decode_mask(self, mask_bgr: np.ndarray) -> np.ndarray:
        return decode_nonzero_mask(mask_bgr)


class CocoMValDataset(DavisDataset):
    """COCO-MVal in the SimpleClick distribution: DAVIS layout (``img/``, ``gt/``)."""

    name = "COCO_MVal"
