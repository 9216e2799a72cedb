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

The ROI rules are small methods of :class:`Box` (written from the description above and tested on
hand-checked cases and against the PyTorch reference predictor); the resizes run on the host with
PyTorch's bilinear index/weight arithmetic (``bilinear_taps``), so arbitrary ROI sizes need no recompilation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..inference import as_rgb_float
from ..inference.engine import ClickEngine
from ..model.resize import bilinear_taps

RoiClick = tuple[float, float, bool]  # (y, x, is_positive) in image pixels


class Box(NamedTuple):
    """A pixel box with inclusive ends: rows ``top..bottom``, columns ``left..right``."""

    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def covering(cls, mask: np.ndarray) -> Box:
        """The smallest box holding every non-zero pixel of a non-empty 2-D mask."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            raise ValueError("an empty mask has no bounding box")
        return cls(int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))

    @classmethod
    def whole(cls, height: int, width: int) -> Box:
        return cls(0, height - 1, 0, width - 1)

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    def grown(self, factor: float, min_side: float = 0.0) -> Box:
        """Scaled by ``factor`` about its centre, each side at least ``min_side`` pixels long.

        The new ends are centre ∓ side/2, rounded to the nearest integer with ties to even (SimpleClick
        rounds numpy floats with ``round``, which breaks ties that way, like Python's ``round``).
        """
        mid_row, mid_col = (self.top + self.bottom) / 2, (self.left + self.right) / 2
        half_h = max(factor * self.height, min_side) / 2
        half_w = max(factor * self.width, min_side) / 2
        return Box(round(mid_row - half_h), round(mid_row + half_h), round(mid_col - half_w), round(mid_col + half_w))

    def clipped(self, height: int, width: int) -> Box:
        """The part of the box inside an image of ``height`` × ``width`` pixels."""
        return Box(max(self.top, 0), min(self.bottom, height - 1), max(self.left, 0), min(self.right, width - 1))

    def similarity(self, other: Box) -> float:
        """SimpleClick's box "IoU": the overlap ratio of the row spans times that of the column spans,
        each ratio being shared pixels over the pixels of the span covering both (never 0/0)."""

        def overlap(a0: int, a1: int, b0: int, b1: int) -> float:
            shared = min(a1, b1) - max(a0, b0) + 1
            covering = max(a1, b1) - min(a0, b0) + 1
            return max(shared, 0) / max(covering, 1e-6)

        return overlap(self.top, self.bottom, other.top, other.bottom) * overlap(
            self.left, self.right, other.left, other.right)

    def keeps(self, clicks: Sequence[RoiClick]) -> bool:
        """Whether every positive click lies inside, its last row and column counting as outside
        (SimpleClick tests ``>=`` against the inclusive end)."""
        return all(self.top <= y < self.bottom and self.left <= x < self.right for y, x, positive in clicks
                   if positive)


def candidate_roi(mask: np.ndarray, clicks: Sequence[RoiClick], factor: float = 1.4, min_side: float = 200
                  ) -> Box:
    """The region the next click is computed in: the box of ``mask`` and the positive clicks' pixels, grown by
    ``factor`` (sides at least ``min_side``) and clipped to the image."""
    marked = np.array(mask, dtype=bool)
    for y, x, positive in clicks:
        if positive:
            marked[int(y), int(x)] = True
    return Box.covering(marked).grown(factor, min_side).clipped(*marked.shape)


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
        self.roi: Box | None = None
        self.rois: list[Box] = []  # ROI used at each click (for inspection and tests)
        self._prev: np.ndarray | None = None  # H×W float32 probability map after the last click
        self._features: Any = None

    def set_image(self, image: np.ndarray) -> None:
        """Start a new image (uint8 or float RGB); clears clicks and ROI."""
        self._image = as_rgb_float(image)
        self.reset()

    def _update_roi(self) -> None:
        candidate = Box.whole(*self._image.shape[:2])
        if self._prev is not None:
            mask = self._prev > np.float32(self.prob_thresh)
            if mask.any():
                candidate = candidate_roi(mask, self.clicks, self.expansion_ratio, self.min_crop_size)
        if (self.roi is None or not self.roi.keeps(self.clicks)
                or candidate.similarity(self.roi) < self.recompute_iou):
            self.roi, self._features = candidate, None

    def add_click(self, y: float, x: float, is_positive: bool) -> np.ndarray:
        """Add a click (image pixels, row first); returns the H×W probability map."""
        if self._image is None:
            raise RuntimeError("no image: call set_image first")
        h, w = self._image.shape[:2]
        s = self.engine.size
        self.clicks.append((y, x, bool(is_positive)))
        self._update_roi()
        roi = self.roi
        self.rois.append(roi)
        rmin, rmax, cmin, cmax = roi
        rh, rw = roi.height, roi.width
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
