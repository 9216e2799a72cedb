"""Generic source: a COCO-format instance annotation JSON (polygons and RLE), one sample per annotation.

``root`` is either the ``.json`` file or a folder holding ``annotations.json``. An image ``file_name`` is
looked up as ``<json folder>/<file_name>``, then ``<json folder>/images/<file_name>`` (or under ``image_dir``
when given). Samples follow the order of the JSON's ``images`` list, then of ``annotations``; crowd
annotations (``iscrowd`` = 1) are skipped unless ``include_crowd``. Sample ids:
``<image stem>/<annotation id>``.

Masks are decoded without pycocotools:

* RLE (``{"size": [h, w], "counts": str | list}``): exact, column-major runs starting with background; the
  compressed string form is COCO's LEB128-like 5-bit code with deltas after the third run.
* Polygons: the same rasterisation as pycocotools (outline traced on a 1/5-pixel grid, column-centre crossings
  toggle runs): pixel (r, c) is object when its centre (c + 0.5, r + 0.5) lies inside the polygon. Several
  polygons of one annotation are united.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import DatasetError, EvalDataset, EvalSample, check_same_size, read_rgb

_POLY_SCALE = 5  # pycocotools traces polygon outlines on a 1/5-pixel grid


def rle_string_to_counts(s: str | bytes) -> list[int]:
    """Decode COCO's compressed RLE string to run lengths."""
    data = s.encode("ascii") if isinstance(s, str) else bytes(s)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)  # sign extension
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def counts_to_rle_string(counts: Sequence[int]) -> str:
    """Encode run lengths as COCO's compressed RLE string (inverse of :func:`rle_string_to_counts`)."""
    out = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE dict (compressed or not) to an H×W uint8 0/1 mask."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    counts = rle_string_to_counts(counts) if isinstance(counts, str | bytes) else [int(c) for c in counts]
    if sum(counts) != h * w or any(c < 0 for c in counts):
        raise ValueError(f"RLE runs sum to {sum(counts)}, expected {h}*{w}={h * w}")
    values = np.arange(len(counts)) % 2
    flat = np.repeat(values.astype(np.uint8), counts)
    return flat.reshape(w, h).T.copy()  # runs are column-major


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """Encode an H×W mask as a compressed COCO RLE dict (``counts`` is a str)."""
    mask = np.asarray(mask, dtype=bool)
    flat = mask.T.reshape(-1)  # column-major
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(bounds).tolist() if flat.size else []
    if flat.size and flat[0]:
        counts = [0] + counts  # runs always start with background
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_rle_string(counts)}


def polygon_counts(xy: np.ndarray, height: int, width: int) -> list[int]:
    """COCO run lengths of one polygon (k×2 array of x, y), rasterised the way pycocotools does.

    Vertices are snapped to a 1/5-pixel grid and the outline is traced densely on that grid; every crossing of
    a column centre x = c + 0.5 toggles the column at the first row whose centre lies below the crossing.
    Net effect: pixel (r, c) is object when its centre (c + 0.5, r + 0.5) is inside the polygon (top edges
    inclusive, bottom edges exclusive, up to the 1/5-pixel snapping).
    """
    scale = _POLY_SCALE
    # C casts truncate toward zero; np.trunc keeps that for coordinates left of / above the image.
    x = np.trunc(scale * xy[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(scale * xy[:, 1] + 0.5).astype(np.int64)
    x, y = np.append(x, x[0]), np.append(y, y[0])
    us, vs = [], []
    for j in range(len(xy)):
        xs, xe, ys, ye = int(x[j]), int(x[j + 1]), int(y[j]), int(y[j + 1])
        dx, dy = abs(xe - xs), abs(ye - ys)
        # Trace from the low end of the major axis (stable rounding), but emit points in edge order.
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe, ys, ye = xe, xs, ye, ys
        n = max(dx, dy)
        t = np.arange(n + 1, dtype=np.float64)
        if flip:
            t = t[::-1]
        if dx >= dy:
            slope = (ye - ys) / dx if dx else 0.0  # a repeated vertex: a single point
            us.append(t.astype(np.int64) + xs)
            vs.append(np.trunc(ys + slope * t + 0.5).astype(np.int64))
        else:
            slope = (xe - xs) / dy
            vs.append(t.astype(np.int64) + ys)
            us.append(np.trunc(xs + slope * t + 0.5).astype(np.int64))
    u, v = np.concatenate(us), np.concatenate(vs)

    # Column-centre crossings: between consecutive traced points whose grid column differs.
    moved = u[1:] != u[:-1]
    ucross = np.minimum(u[1:], u[:-1])[moved]
    vcross = np.minimum(v[1:], v[:-1])[moved]
    xd = (ucross + 0.5) / scale - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    yd = np.ceil(np.clip((vcross[keep] + 0.5) / scale - 0.5, 0, height))
    toggles = np.sort(np.append(xd[keep].astype(np.int64) * height + yd.astype(np.int64), height * width))

    # Toggle positions → run lengths; two toggles at one position cancel (merge the runs around them).
    runs = np.diff(toggles, prepend=0).tolist()
    counts = [runs[0]]
    j = 1
    while j < len(runs):
        if runs[j] > 0:
            counts.append(runs[j])
            j += 1
        else:
            j += 1
            if j < len(runs):
                counts[-1] += runs[j]
                j += 1
    return counts


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` (union) to an H×W uint8 0/1 mask.

    Polygons with fewer than 3 vertices are ignored.
    """
    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(xy) >= 3:
            mask |= rle_decode({"size": [height, width], "counts": polygon_counts(xy, height, width)})
    return mask


def annotation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode an annotation's ``segmentation`` (polygon list, RLE dict or list of RLE dicts)."""
    if isinstance(segmentation, dict):
        mask = rle_decode(segmentation)
    elif isinstance(segmentation, list) and segmentation and isinstance(segmentation[0], dict):
        mask = np.zeros((height, width), np.uint8)
        for rle in segmentation:
            mask |= rle_decode(rle)
    elif isinstance(segmentation, list):
        mask = polygons_to_mask(segmentation, height, width)
    else:
        raise ValueError(f"unsupported segmentation of type {type(segmentation).__name__}")
    if mask.shape != (height, width):
        raise ValueError(f"segmentation is {mask.shape[1]}x{mask.shape[0]}, image is {width}x{height}")
    return mask


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
            gt = annotation_to_mask(ann["segmentation"], h, w).astype(np.int32)
        except (KeyError, ValueError, TypeError) as err:
            raise DatasetError(f"bad segmentation in {where}: {err}") from err
        check_same_size(image, gt, path, self.json_path)
        if not gt.any():
            raise DatasetError(f"empty mask for {where}")
        return EvalSample(sample_id, image, gt)

    def ids(self) -> list[str]:
        return [sample_id for sample_id, _, _, _ in self.index]
