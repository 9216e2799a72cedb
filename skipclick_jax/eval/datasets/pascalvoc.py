"""PASCAL VOC 2012 instance masks (RITM/SimpleClick ``PascalVocDataset``, ``val`` split).

Layout: ``JPEGImages/<id>.jpg``, ``SegmentationObject/<id>.png``, ``ImageSets/Segmentation/<split>.txt``.
As in the reference the palette PNG is decoded to colour and converted to **grayscale**; every grey value
other than 0 and 220 (the grey of the boundary colour (224, 224, 192)) is one object; 220 is the ignore label.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .base import (
    DatasetError,
    EvalDataset,
    EvalSample,
    check_same_size,
    read_mask_color,
    read_rgb,
    require_dir,
)

VOC_IGNORE_GRAY = 220


def read_voc_objects(path: Path) -> np.ndarray:
    """Grey-level object map of a VOC ``SegmentationObject`` PNG, exactly as the reference decodes it."""
    return cv2.cvtColor(read_mask_color(path), cv2.COLOR_BGR2GRAY).astype(np.int32)


def voc_object_values(objects: np.ndarray) -> list[int]:
    """Object grey values of a map, ascending (0 and the ignore value excluded)."""
    return [int(v) for v in np.unique(objects) if v not in (0, VOC_IGNORE_GRAY)]


class PascalVOCDataset(EvalDataset):
    """VOC instances of one split; sample ids are ``<image id>/<grey value>``."""

    name = "PascalVOC"

    def __init__(self, root: str | Path, split: str = "val", skip_corrupt: bool = False) -> None:
        super().__init__(root, skip_corrupt)
        if split not in ("train", "val", "trainval"):
            raise ValueError(f"PascalVOC split must be train, val or trainval, got {split!r}")
        self.split = split
        self._last: tuple[str, np.ndarray, np.ndarray] | None = None

    def _build_index(self) -> list[tuple[str, int]]:
        require_dir(self.root, self.name)
        list_path = self.root / "ImageSets" / "Segmentation" / f"{self.split}.txt"
        if not list_path.is_file():
            raise DatasetError(f"{self.name}: missing id list: {list_path}")
        index: list[tuple[str, int]] = []
        for image_id in (s.strip() for s in list_path.read_text().splitlines()):
            if not image_id:
                continue
            try:
                values = voc_object_values(read_voc_objects(self._mask_path(image_id)))
            except DatasetError as err:
                self._problem(str(err))
                continue
            index.extend((image_id, v) for v in values)
        return index

    def _mask_path(self, image_id: str) -> Path:
        return self.root / "SegmentationObject" / f"{image_id}.png"

    def _load(self, ref: tuple[str, int]) -> EvalSample:
        image_id, value = ref
        if self._last is None or self._last[0] != image_id:
            image_path = self.root / "JPEGImages" / f"{image_id}.jpg"
            image = read_rgb(image_path)
            objects = read_voc_objects(self._mask_path(image_id))
            check_same_size(image, objects, image_path, self._mask_path(image_id))
            self._last = (image_id, image, objects)
        _, image, objects = self._last
        gt = (objects == value).astype(np.int32)
        gt[objects == VOC_IGNORE_GRAY] = -1
        return EvalSample(f"{image_id}/{value}", image, gt)

    def ids(self) -> list[str]:
        return [f"{a}/{b}" for a, b in self.index]
