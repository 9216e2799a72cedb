"""Saved masks: one PNG per object, `MASKS_DIR/<image key>/<object index>.png`, and optional COCO JSON.

* Object indices start at 1 (0 would read as "background" in a label map). A mask PNG is 8-bit single
  channel, 255 = object, 0 = background, at the image's original resolution.
* Every file is written atomically (`atomic.write_bytes_atomic`), so a request that fails — or a server that
  dies — leaves earlier masks and the JSON complete.
* With COCO output on, `MASKS_DIR/annotations.json` is rewritten after each save from an in-memory table
  that was filled from the PNGs already on disk at start-up, so the JSON always describes exactly the
  saved PNGs (the PNGs are the source of truth). Segmentations are compressed RLE (`rle_encode` of the
  evaluation's COCO reader); category 1 "object"; ids are assigned in (image list, object index) order.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_bytes_atomic
from ..coco_masks import rle_encode
from .images import ImageEntry
from .paths import UnsafeNameError, safe_join

COCO_FILE = "annotations.json"
_OBJECT_FILE = re.compile(r"^([1-9]\d{0,5})\.png$")


def encode_mask_png(mask: np.ndarray) -> bytes:
    """H×W bool → 8-bit grayscale PNG bytes (0 / 255)."""
    import cv2

    ok, data = cv2.imencode(".png", np.where(mask, np.uint8(255), np.uint8(0)))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def read_mask_png(path: Path) -> np.ndarray:
    """A saved mask PNG → H×W bool (any non-zero pixel is object)."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise ValueError(f"{path}: not a readable PNG")
    return arr > 0


def coco_annotation(mask: np.ndarray) -> dict[str, Any]:
    """The per-object part of a COCO annotation: RLE segmentation, area and [x, y, w, h] bbox."""
    ys, xs = np.nonzero(mask)
    bbox = [0, 0, 0, 0]
    if len(xs):
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    return {"segmentation": rle_encode(mask), "area": int(len(xs)), "bbox": bbox, "iscrowd": 0}


class MaskStore:
    """Writes and lists object masks under `masks_dir`; keeps `annotations.json` in step when `coco`."""

    def __init__(self, masks_dir: str | Path, *, coco: bool = False, entries: Iterable[ImageEntry] = ()):
        self.root = Path(masks_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.coco = coco
        self._lock = threading.Lock()  # guards the COCO table and the JSON write
        self._coco_images: dict[str, dict[str, Any]] = {}  # key → {"entry", "width", "height", "objects"}
        if coco:
            for entry in entries:
                for index in self.saved_objects(entry):
                    try:
                        self._record(entry, index, read_mask_png(self.mask_path(entry, index)))
                    except ValueError:
                        continue  # an unreadable PNG someone left there: not ours to describe
            if self._coco_images:
                self._write_coco()

    # --- layout ----------------------------------------------------------------------------------
    def mask_path(self, entry: ImageEntry, index: int) -> Path:
        if not (isinstance(index, int) and 1 <= index <= 999_999):
            raise ValueError(f"object index {index!r} out of range")
        return safe_join(self.root, entry.key, f"{index}.png")

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def saved_objects(self, entry: ImageEntry) -> list[int]:
        """Object indices with a mask PNG on disk, ascending."""
        try:
            folder = safe_join(self.root, entry.key)
        except UnsafeNameError:
            return []  # e.g. a symlink to elsewhere planted in MASKS_DIR: not ours, never read or written
        if not folder.is_dir():
            return []
        found = (_OBJECT_FILE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def next_index(self, entry: ImageEntry) -> int:
        saved = self.saved_objects(entry)
        return (saved[-1] + 1) if saved else 1

    def saved_union(self, entry: ImageEntry, hw: tuple[int, int]) -> np.ndarray:
        """Union of the saved objects' masks (H×W bool), for showing what is already done."""
        out = np.zeros(hw, bool)
        for index in self.saved_objects(entry):
            try:
                mask = read_mask_png(self.mask_path(entry, index))
            except ValueError:
                continue
            if mask.shape == out.shape:
                out |= mask
        return out

    # --- saving ----------------------------------------------------------------------------------
    def save(self, entry: ImageEntry, index: int, mask: np.ndarray) -> str:
        """Write object `index` of `entry` (overwriting an earlier save of it); returns the relative path."""
        mask = np.asarray(mask, bool)
        path = self.mask_path(entry, index)
        write_bytes_atomic(path, encode_mask_png(mask))
        if self.coco:
            with self._lock:
                self._record(entry, index, mask)
                self._write_coco()
        return self.relative(path)

    def _record(self, entry: ImageEntry, index: int, mask: np.ndarray) -> None:
        item = self._coco_images.setdefault(entry.key, {"entry": entry, "objects": {}})
        item["height"], item["width"] = (int(v) for v in mask.shape)
        item["objects"][index] = coco_annotation(mask)

    def coco_dict(self) -> dict[str, Any]:
        """The COCO instance JSON of everything saved (ids in image-list then object order)."""
        images, annotations = [], []
        for key in sorted(self._coco_images, key=lambda k: self._coco_images[k]["entry"].id):
            item = self._coco_images[key]
            entry: ImageEntry = item["entry"]
            image_id = len(images) + 1
            images.append({
                "id": image_id,
                # Folder images: relative to IMAGES_DIR; uploads: relative to MASKS_DIR.
                "file_name": f"uploads/{entry.name}" if entry.uploaded else entry.name,
                "width": item["width"],
                "height": item["height"],
                "mask_dir": entry.key,
            })
            for index in sorted(item["objects"]):
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "object_index": index,
                    **item["objects"][index],
                })
        return {
            "info": {"description": "skipclick annotate masks (PNG per object; this file mirrors them)"},
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
        }

    def _write_coco(self) -> None:
        data = json.dumps(self.coco_dict(), separators=(",", ":")).encode()
        write_bytes_atomic(safe_join(self.root, COCO_FILE), data)
