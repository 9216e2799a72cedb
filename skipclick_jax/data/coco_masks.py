"""COCO segmentation decoding without pycocotools: polygons and (compressed) RLE.

RLE follows the COCO convention: ``{"size": [h, w], "counts": ...}`` with run lengths over the
*column-major* (Fortran-order) flattened mask, alternating 0-runs and 1-runs and starting with a 0-run.
``counts`` is either a list of ints (uncompressed) or COCO's compact string: each count is written in
5-bit groups (low group first) as chars ``48 + group``, bit 0x20 meaning "more groups follow", 0x10 in
the last group being the sign; from the fourth count on (index > 2), the value stored is the difference
to the count two places earlier.

Polygons are rasterised like RITM's LVIS loader: each ring's points are rounded to integers and filled
with ``cv2.fillPoly``; rings are OR-ed. (pycocotools rasterises polygons differently at the boundary; the
RITM training data was produced with ``cv2.fillPoly``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np


def counts_from_string(s: str | bytes) -> list[int]:
    """Decodes COCO's compressed RLE string into run lengths."""
    data = s.encode("ascii") if isinstance(s, str) else bytes(s)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(data):
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)  # sign-extend
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def counts_to_string(counts: Sequence[int]) -> str:
    """Encodes run lengths as COCO's compressed RLE string (inverse of :func:`counts_from_string`)."""
    out = bytearray()
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, like C on a signed long
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(c + 48)
    return out.decode("ascii")


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE dict (compressed or not) → uint8 mask (h, w) with values 0/1."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        counts = counts_from_string(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any() or counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {counts.sum()}, expected {h * w}")
    values = (np.arange(len(counts)) % 2).astype(np.uint8)
    return np.repeat(values, counts).reshape(w, h).T.copy()


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """Binary mask (h, w) → COCO RLE dict; ``counts`` is a string if ``compressed`` else a list."""
    h, w = mask.shape
    flat = (np.asarray(mask).T.reshape(-1) != 0).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]  # RLE always starts with a (possibly empty) 0-run
    return {"size": [h, w], "counts": counts_to_string(runs) if compressed else runs}


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """COCO polygon list [[x1, y1, x2, y2, ...], ...] → uint8 mask (height, width) with values 0/1."""
    mask = np.zeros((height, width), np.uint8)
    for ring in polygons:
        pts = np.round(np.asarray(ring, np.float64).reshape(-1, 2)).astype(np.int32)
        if len(pts) >= 3:
            cv2.fillPoly(mask, [pts], 1)
    return mask


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Any COCO ``segmentation`` value (polygons, RLE, compressed RLE) → uint8 mask (height, width)."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        mask = rle_decode(segmentation)
        if mask.shape != (height, width):
            raise ValueError(f"RLE size {mask.shape} does not match the image ({height}, {width})")
        return mask
    raise ValueError(f"unsupported segmentation type {type(segmentation).__name__}")
