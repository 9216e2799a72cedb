"""COCO segmentations without pycocotools: (compressed) RLE and polygons, decoded as pycocotools does.

RLE: ``{"size": [h, w], "counts": ...}`` with run lengths over the *column-major* flattened mask,
alternating 0-runs and 1-runs and starting with a 0-run. ``counts`` is a list of ints or COCO's compact
string: each count in 5-bit groups (low group first) as chars ``48 + group``, bit 0x20 meaning "more groups
follow", 0x10 in the last group the sign; from the fourth count on, the difference to the count two earlier.

Polygons are rasterised like pycocotools (outline traced on a 1/5-pixel grid, column-centre crossings toggle
runs): pixel (r, c) is object when its centre (c + 0.5, r + 0.5) lies inside the polygon. Several polygons of
one annotation are united. This is the standard for COCO-format ground truth (evaluation, custom training
data); RITM's own COCO+LVIS training masks come pre-rasterised and do not go through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_POLY_SCALE = 5  # pycocotools traces polygon outlines on a 1/5-pixel grid


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
