"""Generic source: a COCO-format instance annotation JSON (polygons and RLE), one sample per annotation.

``root`` is either the ``.json`` file or a folder holding ``annotations.json``. An image ``file_name`` is
looked up as ``<json folder>/<file_name>``, then ``<json folder>/images/<file_name>`` (or under ``image_dir``
when given). Samples follow the order of the JSON's ``images`` list, then of ``annotations``; crowd
annotations (``iscrowd`` = 1) are skipped unless ``include_crowd``. Sample ids:
``<image stem>/<annotation id>``.

Masks (RLE and polygons) are decoded by `skipclick_jax.coco_masks`, as pycocotools decodes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ...coco_masks import segmentation_to_mask
from .base import DatasetError, EvalDataset, EvalSample, check_same_size, read_rgb


class CocoJsonDataset(EvalDataset):
    """COCO-format annotations (see module docstring)."""

    name = "coco-json"

    def __init__(self, root: str | Path, skip_corrupt: bool = False, image_dir: str | Path | None = None,
                 include_crowd: bool = False) -> None:
        super().__init__(root, skip_corrupt)
        self.json_path = self.root / "annotations.json" if self.root.is_dir() else self.root
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.include_crowd = include_crowd
        self._last: tuple[Path, np.ndarray] | None = None

    def _resolve_image(self, file_name: str) -> Path:
        base = self.json_path.parent
        if self.image_dir is not None:
            candidates = [self.image_dir / file_name]
        else:
            candidates = [base / file_name, base / "images" / file_name]
        for c in candidates:
            if c.is_file():
                return c
        return candidates[0]  # read_rgb reports it as missing

    def _build_index(self) -> list[tuple[str, Path, dict[str, Any], dict[str, Any]]]:
        if not self.json_path.is_file():
            raise DatasetError(f"{self.name}: annotation file not found: {self.json_path}")
        try:
            data = json.loads(self.json_path.read_text(encoding="utf-8"))
            images = data["images"]
            annotations = data["annotations"]
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"{self.name}: not a COCO instance JSON: {self.json_path} ({err})") from err
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for ann in annotations:
            if ann.get("iscrowd", 0) and not self.include_crowd:
                continue
            by_image.setdefault(ann.get("image_id"), []).append(ann)
        known = {img.get("id") for img in images}
        for image_id in by_image:
            if image_id not in known:
                self._problem(f"annotation refers to unknown image_id {image_id!r} in {self.json_path}")
        index = []
        for img in images:
            path = self._resolve_image(str(img["file_name"]))
            for ann in by_image.get(img.get("id"), []):
                index.append((f"{Path(img['file_name']).stem}/{ann.get('id')}", path, img, ann))
        if not index:
            raise DatasetError(f"{self.name}: no usable annotations in {self.json_path}")
        return index

    def _load(self, ref: tuple[str, Path, dict[str, Any], dict[str, Any]]) -> EvalSample:
        sample_id, path, img, ann = ref
        if self._last is None or self._last[0] != path:
            self._last = (path, read_rgb(path))
        image = self._last[1]
        h, w = int(img.get("height", image.shape[0])), int(img.get("width", image.shape[1]))
        where = f"annotation {ann.get('id')!r} of {path.name} in {self.json_path}"
        if (h, w) != image.shape[:2]:
            raise DatasetError(f"image {path} is {image.shape[1]}x{image.shape[0]}, JSON says {w}x{h}")
        try:
            gt = segmentation_to_mask(ann["segmentation"], h, w).astype(np.int32)
        except (KeyError, ValueError, TypeError) as err:
            raise DatasetError(f"bad segmentation in {where}: {err}") from err
        check_same_size(image, gt, path, self.json_path)
        if not gt.any():
            raise DatasetError(f"empty mask for {where}")
        return EvalSample(sample_id, image, gt)

    def ids(self) -> list[str]:
        return [sample_id for sample_id, _, _, _ in self.index]
