"""COCO segmentations (RLE and polygons) through pycocotools, the standard every COCO mask comes from.

RLE: ``{"size": [h, w], "counts": ...}``, run lengths over the column-major flattened mask, alternating
0-runs and 1-runs from a 0-run; ``counts`` is COCO's compact string or a plain list. Polygons
``[[x0, y0, x1, y1, ...], ...]`` are rasterised by pycocotools (pixel (r, c) is object when its centre lies
inside) and united.

Checked here, because pycocotools does not: a plain count list must cover exactly h·w pixels, and a decoded
compact string must hold only 0/1 values agreeing with its runs' area (pycocotools leaves the pixels after
too short a run list uninitialised).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask


def _decode(rles: Any) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools 2.0.x calls np.array(copy=False) on its RLE objects
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        return coco_mask.decode(rles)


def _compact(rle: dict[str, Any]) -> dict[str, Any]:
    """`rle` with compact-string counts (pycocotools' own form), validated."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {counts.sum()}, expected {h * w}")
    return coco_mask.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE dict (compact or a count list) → uint8 mask (h, w) with values 0/1."""
    compact = _compact(rle)
    try:
        mask = _decode(compact)
    except ValueError as e:  # runs longer than the mask
        raise ValueError(f"invalid RLE for a {compact['size'][0]}×{compact['size'][1]} mask: {e}") from None
    if mask.max(initial=0) > 1 or np.count_nonzero(mask) != int(coco_mask.area(compact)):
        raise ValueError(f"invalid RLE: its runs do not cover the {compact['size'][0]}×{compact['size'][1]} mask")
    return np.ascontiguousarray(mask)


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """Binary mask (h, w) → COCO RLE dict; ``counts`` is the compact string, or with ``compressed=False``
    the plain run-length list (which pycocotools has no encoder for: a few lines of numpy)."""
    binary = np.asfortranarray(np.asarray(mask) != 0, dtype=np.uint8)
    h, w = binary.shape
    if compressed:
        rle = coco_mask.encode(binary)
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    flat = binary.ravel(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"size": [h, w], "counts": [0, *runs] if flat.size and flat[0] else runs}  # starts with a 0-run


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (united) to an H×W uint8 0/1 mask; polygons of fewer than 3 vertices are
    ignored (pycocotools would read a 4-number list as a box)."""
    rings = [[float(v) for v in p] for p in polygons if len(p) >= 6]
    odd = [len(p) for p in rings if len(p) % 2]
    if odd:
        raise ValueError(f"a polygon needs x, y pairs; got {odd[0]} numbers")
    if not rings:
        return np.zeros((height, width), np.uint8)
    return np.ascontiguousarray(_decode(coco_mask.merge(coco_mask.frPyObjects(rings, height, width))))


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Any COCO ``segmentation`` (polygon list, RLE dict or list of RLE dicts) → uint8 0/1 mask (height, width)."""
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
