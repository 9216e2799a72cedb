"""Two simple layouts for bringing your own data: a folder of per-object masks and a COCO-format JSON.

Folder layout (``FolderSource``)::

    <root>/images/<stem>.{jpg,jpeg,png,bmp}
    <root>/masks/<stem>_<k>.png          one file per object, k = 0, 1, 2, ... (decimal)

A mask pixel belongs to the object if any of its colour channels is non-zero (an alpha channel is
ignored); 8- and 16-bit masks are accepted. Objects are ordered by k.

COCO JSON (``CocoJsonSource``): the standard ``images`` / ``annotations`` lists; images are read from
``image_dir / file_name``. Every non-crowd annotation with a non-empty mask is one object. Crowd
annotations (``iscrowd=1``) are skipped by default, as RITM's COCO loader treats them as ignore regions.

In both, every object is a root without children and nothing is stuff. Masks are packed into label
layers with :func:`~skipclick_jax.data.records.pack_masks`, and images without any object are skipped by
default (RITM's conversion script also drops them; they would only ever yield background-only samples).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from skipclick_jax.coco_masks import segmentation_to_mask
from skipclick_jax.data.records import (
    EncodedRecord,
    Record,
    decode_image,
    encode_layers,
    make_objects,
    pack_masks,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_MASK_NAME = re.compile(r"^(?P<stem>.+)_(?P<k>\d+)\.png$")


def read_object_mask(path: str | Path) -> np.ndarray:
    """Reads one per-object mask file: any non-zero colour channel → True."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"could not read mask {path}")
    if mask.ndim == 3:
        mask = mask[:, :, :3].max(axis=2)
    return mask != 0


class FolderSource:
    """Images plus one mask file per object (layout in the module docstring)."""

    def __init__(self, root: str | Path, skip_empty: bool = True):
        self.root = Path(root)
        images_dir, masks_dir = self.root / "images", self.root / "masks"
        if not images_dir.is_dir():
            raise FileNotFoundError(f"no images/ folder in {self.root}")
        masks: dict[str, list[tuple[int, Path]]] = defaultdict(list)
        if masks_dir.is_dir():
            for path in masks_dir.iterdir():
                match = _MASK_NAME.match(path.name)
                if match:
                    masks[match["stem"]].append((int(match["k"]), path))
        self._items: list[tuple[str, Path, list[Path]]] = []
        for path in sorted(images_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            object_files = [p for _, p in sorted(masks.get(path.stem, []))]
            if object_files or not skip_empty:
                self._items.append((path.stem, path, object_files))

    def __len__(self) -> int:
        return len(self._items)

    def sample_id(self, index: int) -> str:
        return self._items[index][0]

    def _load(self, index: int) -> tuple[str, bytes, np.ndarray, list[tuple[int, int]]]:
        stem, image_path, mask_paths = self._items[index]
        image_bytes = image_path.read_bytes()
        masks = [read_object_mask(p) for p in mask_paths]
        shape = decode_image(image_bytes).shape[:2] if not masks else masks[0].shape
        layers, mapping = pack_masks(masks, shape)
        return stem, image_bytes, layers, mapping

    def read_encoded(self, index: int) -> EncodedRecord:
        stem, image_bytes, layers, mapping = self._load(index)
        return EncodedRecord(sample_id=stem, image=image_bytes, layers=encode_layers(layers),
                             objects=make_objects(mapping))

    def __getitem__(self, index: int) -> Record:
        stem, image_bytes, layers, mapping = self._load(index)
        image = decode_image(image_bytes)
        if layers.shape[:2] != image.shape[:2]:
            raise ValueError(f"{stem}: masks {layers.shape[:2]} do not match the image {image.shape[:2]}")
        return Record(sample_id=stem, image=image, layers=layers, objects=make_objects(mapping))


class CocoJsonSource:
    """A COCO-format instance annotation file; samples in ascending image id.

    The parsed JSON is dropped when pickled (re-read lazily in Grain workers).
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, skip_crowd: bool = True,
                 skip_empty: bool = True):
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        self.skip_crowd = skip_crowd
        self.skip_empty = skip_empty
        self._index: list[tuple[dict[str, Any], list[dict[str, Any]]]] | None = None
        _ = self.index  # fail early on a missing or malformed file

    @property
    def index(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        if self._index is None:
            data = json.loads(self.annotation_file.read_text())
            per_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for ann in data.get("annotations", []):
                if self.skip_crowd and ann.get("iscrowd", 0):
                    continue
                per_image[ann["image_id"]].append(ann)
            items = []
            for image in sorted(data["images"], key=lambda im: im["id"]):
                anns = sorted(per_image.get(image["id"], []), key=lambda a: a.get("id", 0))
                if anns or not self.skip_empty:
                    items.append((image, anns))
            self._index = items
        return self._index

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_index": None}

    def __len__(self) -> int:
        return len(self.index)

    def sample_id(self, index: int) -> str:
        return Path(self.index[index][0]["file_name"]).stem

    def _load(self, index: int) -> tuple[str, bytes, np.ndarray, list[tuple[int, int]]]:
        image_info, anns = self.index[index]
        h, w = int(image_info["height"]), int(image_info["width"])
        image_bytes = (self.image_dir / image_info["file_name"]).read_bytes()
        masks = [m for m in (segmentation_to_mask(a["segmentation"], h, w) for a in anns) if m.any()]
        layers, mapping = pack_masks(masks, (h, w))
        return self.sample_id(index), image_bytes, layers, mapping

    def read_encoded(self, index: int) -> EncodedRecord:
        sid, image_bytes, layers, mapping = self._load(index)
        return EncodedRecord(sample_id=sid, image=image_bytes, layers=encode_layers(layers),
                             objects=make_objects(mapping))

    def __getitem__(self, index: int) -> Record:
        sid, image_bytes, layers, mapping = self._load(index)
        image = decode_image(image_bytes)
        if layers.shape[:2] != image.shape[:2]:
            raise ValueError(f"{sid}: annotation size {layers.shape[:2]} does not match the image")
        return Record(sample_id=sid, image=image, layers=layers, objects=make_objects(mapping))
