"""Optional zoom-in (SPEC §3.8): SimpleClick's ``ZoomIn(skip_clicks=-1)`` as a predictor, off by default.

SkipClick's numbers are produced with the zoom-in suppressed (the full image is always the region of
interest, which is :class:`~skipclick_jax.inference.ClickSession`). With the zoom-in active, each click
goes through these rules (``isegm/inference/transforms/zoom_in.py``):

1. From the second click on (when a previous probability map exists): the candidate ROI is the bounding box of
   ``prob > 0.5`` with every positive click's pixel added, expanded ×1.4 around its centre, at least 200
   pixels on each side, rounded half to even, then clamped to the image. If the mask is empty, or at the
   first click, the candidate is the full image.
2. The current ROI is replaced by the candidate when there is none yet, when a positive click lies outside it
   (a click on its last row/column counts as outside — the original compares ``>=`` with the inclusive
   maximum), or when the box IoU of candidate and ROI is below 0.5.
3. The ROI of the image and of the previous probability map is resized to S×S (bilinear,
   align_corners=True); clicks map as ``S·(y − r_min)/(r_max − r_min + 1)`` (float64). The image is encoded
   again only when the ROI changed.
4. The S×S probability map is resized to the ROI size and pasted into a zero map of the image size (from the
   second click on; the first click's ROI is the full image). Outside the ROI the probability is 0.

The ROI rules are plain functions, tested on hand-checked cases; the resizes run on the host with PyTorch's
bilinear index/weight arithmetic (``bilinear_taps``), so arbitrary ROI sizes need no recompilation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..inference import as_rgb_float
from ..inference.engine import ClickEngine
from ..model.resize import bilinear_taps

Roi = tuple[int, int, int, int]  # (r_min, r_max, c_min, c_max), inclusive
RoiClick = tuple[float, float, bool]  # (y, x, is_positive) in image pixels


def bbox_from_mask(mask: np.ndarray) -> Roi:
    """Inclusive bounding box of the non-zero pixels of a non-empty 2-D mask."""
    rows = np.flatnonzero(np.any(mask, axis=1))
    cols = np.flatnonzero(np.any(mask, axis=0))
    if not len(rows):
        raise ValueError("bbox_from_mask needs a non-empty mask")
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def expand_bbox(bbox: Roi, ratio: float, min_size: float | None = None) -> Roi:
    """Scale the box by ``ratio`` around its centre, sides at least ``min_size``; ends rounded half to even."""
    rmin, rmax, cmin, cmax = bbox
    rcenter, ccenter = 0.5 * (rmin + rmax), 0.5 * (cmin + cmax)
    height, width = ratio * (rmax - rmin + 1), ratio * (cmax - cmin + 1)
    if min_size is not None:
        height, width = max(height, min_size), max(width, min_size)
    # Python's round() is round-half-to-even, as the original's round() on numpy floats.
    return (int(round(rcenter - 0.5 * height)), int(round(rcenter + 0.5 * height)),
            int(round(ccenter - 0.5 * width)), int(round(ccenter + 0.5 * width)))


def clamp_bbox(bbox: Roi, rmin: int, rmax: int, cmin: int, cmax: int) -> Roi:
    """Clamp a box to the given inclusive limits."""
    return max(rmin, bbox[0]), min(rmax, bbox[1]), max(cmin, bbox[2]), min(cmax, bbox[3])


def _segment_iou(a: int, b: int, c: int, d: int) -> float:
    inter = max(0, min(b, d) - max(a, c) + 1)
    union = max(1e-6, max(b, d) - min(a, c) + 1)
    return inter / union


def bbox_iou(b1: Roi, b2: Roi) -> float:
    """The original's box "IoU": the product of the row-interval and column-interval IoUs."""
    return _segment_iou(b1[0], b1[1], b2[0], b2[1]) * _segment_iou(b1[2], b1[3], b2[2], b2[3])


def object_roi(mask: np.ndarray, clicks: Sequence[RoiClick], ratio: float = 1.4, min_size: float = 200) -> Roi:
    """Candidate ROI: box of ``mask`` ∪ positive click pixels, expanded and clamped to the image."""
    mask = np.array(mask, dtype=bool)
    for y, x, positive in clicks:
        if positive:
            mask[int(y), int(x)] = True
    h, w = mask.shape
    return clamp_bbox(expand_bbox(bbox_from_mask(mask), ratio, min_size), 0, h - 1, 0, w - 1)


def roi_holds_positive_clicks(roi: Roi, clicks: Sequence[RoiClick]) -> bool:
    """True when every positive click is inside ``roi`` (strictly before its last row and column, as the original)."""
    for y, x, positive in clicks:
        if positive and (y < roi[0] or y >= roi[1] or x < roi[2] or x >= roi[3]):
            return False
    return True


def resize_bilinear_np(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) float32 → (h, w, C), bilinear align_corners=True with PyTorch's taps (width pass first)."""
    x = np.asarray(x, np.float32)
    h, w = size
    one = np.float32(1)
    if x.shape[1] != w:
        i0, i1, lam = bilinear_taps(x.shape[1], w, True)
        lam = lam[None, :, None]
        x = x[:, i0] * (one - lam) + x[:, i1] * lam
    if x.shape[0] != h:
        i0, i1, lam = bilinear_taps(x.shape[0], h, True)
        lam = lam[:, None, None]
        x = x[i0] * (one - lam) + x[i1] * lam
    return x


class ZoomInPredictor:
    """The evaluation predictor with SimpleClick's zoom-in active (one image, one object at a time).

    Implements the :class:`~skipclick_jax.eval.loop.Predictor` protocol. Flip TTA follows ``engine.flip``.

    Args:
        engine: compiled ``ClickEngine`` of the network size S (the crop is resized to S×S).
        expansion_ratio, min_crop_size, recompute_iou, prob_thresh: the original's ZoomIn defaults.
    """

    def __init__(self, engine: ClickEngine, *, expansion_ratio: float = 1.4, min_crop_size: int = 200,
                 recompute_iou: float = 0.5, prob_thresh: float = 0.5) -> None:
        self.engine = engine
        self.expansion_ratio, self.min_crop_size = expansion_ratio, min_crop_size
        self.recompute_iou, self.prob_thresh = recompute_iou, prob_thresh
        self._image: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Forget clicks, the previous probability map and the ROI (the image is kept)."""
        self.clicks: list[RoiClick] = []
        self.roi: Roi | None = None
        self.rois: list[Roi] = []  # ROI used at each click (for inspection and tests)
        self._prev: np.ndarray | None = None  # H×W float32 probability map after the last click
        self._features: Any = None

    def set_image(self, image: np.ndarray) -> None:
        """Start a new image (uint8 or float RGB); clears clicks and ROI."""
        self._image = as_rgb_float(image)
        self.reset()

    def _update_roi(self) -> None:
        h, w = self._image.shape[:2]
        candidate = None
        if self._prev is not None:
            mask = self._prev > np.float32(self.prob_thresh)
            if mask.any():
                candidate = object_roi(mask, self.clicks, self.expansion_ratio, self.min_crop_size)
        if candidate is None:
            candidate = (0, h - 1, 0, w - 1)
        if (self.roi is None or not roi_holds_positive_clicks(self.roi, self.clicks)
                or bbox_iou(candidate, self.roi) < self.recompute_iou):
            self.roi, self._features = candidate, None

    def add_click(self, y: float, x: float, is_positive: bool) -> np.ndarray:
        """Add a click (image pixels, row first); returns the H×W probability map."""
        if self._image is None:
            raise RuntimeError("no image: call set_image first")
        h, w = self._image.shape[:2]
        s = self.engine.size
        self.clicks.append((y, x, bool(is_positive)))
        self._update_roi()
        rmin, rmax, cmin, cmax = self.roi
        self.rois.append(self.roi)
        rh, rw = rmax - rmin + 1, cmax - cmin + 1
        if self._features is None:  # the ROI changed: encode its crop
            crop = resize_bilinear_np(self._image[rmin:rmax + 1, cmin:cmax + 1], (s, s))
            self._features = self.engine.encode(crop[None])
        prev = np.zeros((h, w), np.float32) if self._prev is None else self._prev
        prev_net = resize_bilinear_np(prev[rmin:rmax + 1, cmin:cmax + 1, None], (s, s))
        net_clicks = [((s * (cy - rmin)) / rh, (s * (cx - cmin)) / rw, p) for cy, cx, p in self.clicks]
        prob = self.engine.click(self._features, prev_net[None], [net_clicks])
        prob_roi = resize_bilinear_np(np.asarray(prob)[0], (rh, rw))[:, :, 0]
        if self._prev is None:
            out = prob_roi  # first click: the ROI is the whole image
        else:
            out = np.zeros((h, w), np.float32)
            out[rmin:rmax + 1, cmin:cmax + 1] = prob_roi
        self._prev = out
        return out.copy()
