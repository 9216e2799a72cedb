"""Independent NoC evaluation in the original's style, for end-to-end parity tests of ``skipclick_jax.eval``.

Written from SPEC §3 and shares no code with ``skipclick_jax``: its own click rule (OpenCV exact distance
transform on a zero-padded error map, ``np.where`` first hit), IoU, float32 storage of the per-click IoUs and
NoC, and a PyTorch zoom-in predictor (``ZoomIn(skip_clicks=-1)`` with ``suppress=False``) on top of
:class:`ReferencePredictor`'s arithmetic.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .predictor import ReferencePredictor


class ReferenceClicker:
    """The original evaluation clicker (RITM's ``Clicker``), re-implemented."""

    def __init__(self, gt: np.ndarray) -> None:
        self.obj = gt == 1
        self.valid = gt != -1
        self.not_clicked = np.ones(gt.shape, bool)
        self.clicks: list[tuple[int, int, bool]] = []

    def click(self, pred: np.ndarray) -> tuple[int, int, bool]:
        fn = self.obj & ~pred & self.valid
        fp = ~self.obj & pred & self.valid
        dist = []
        for err in (fn, fp):
            d = cv2.distanceTransform(np.pad(err, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
            dist.append(d * self.not_clicked)
        positive = bool(dist[0].max() > dist[1].max())
        d = dist[0] if positive else dist[1]
        ys, xs = np.where(d == d.max())
        c = (int(ys[0]), int(xs[0]), positive)
        self.clicks.append(c)
        self.not_clicked[c[0], c[1]] = False
        return c


def reference_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    valid = gt != -1
    inter = np.logical_and(np.logical_and(pred, gt == 1), valid).sum()
    union = np.logical_and(np.logical_or(pred, gt == 1), valid).sum()
    return inter / union


def reference_evaluate(predictor, image: np.ndarray, gt: np.ndarray, max_clicks: int = 20,
                       target_iou: float = 0.95, thresh: float = 0.49):
    """One object: (clicks, float64 IoUs, float32 stored IoUs), the original's per-sample loop."""
    clicker = ReferenceClicker(gt)
    predictor.set_image(image)
    pred = np.zeros(gt.shape, bool)
    ious = []
    for _ in range(max_clicks):
        y, x, positive = clicker.click(pred)
        prob = predictor.add_click(y, x, positive)
        pred = prob > thresh
        ious.append(float(reference_iou(gt, pred)))
        if ious[-1] >= target_iou:
            break
    return clicker.clicks, ious, np.array(ious, dtype=np.float32)


def reference_noc(stored: list[np.ndarray], max_clicks: int = 20):
    """(mean NoC, count of NoC == max_clicks) for t = 0.8 … 0.95, from float32 IoU arrays.

    The thresholds are Python floats from ``np.arange(...).tolist()``, so numpy compares them in float32.
    """
    thresholds = np.arange(0.8, 0.95 + 0.001, 0.05).tolist()
    out = []
    for t in thresholds:
        nocs = np.array([int(np.argmax(a >= t)) + 1 if np.any(a >= t) else max_clicks for a in stored])
        out.append((float(nocs.mean()), int((nocs == max_clicks).sum())))
    return out


class ReferenceZoomInPredictor(ReferencePredictor):
    """The evaluation predictor with SimpleClick's ZoomIn active from the 2nd click (skip_clicks=-1)."""

    def set_image(self, image: np.ndarray) -> None:
        super().set_image(image)
        self.roi = None
        self.prev_probs = None  # numpy (H, W) after the last click
        self.rois = []

    @staticmethod
    def _expand(rmin, rmax, cmin, cmax, h, w):
        rc, cc = 0.5 * (rmin + rmax), 0.5 * (cmin + cmax)
        hh = max(1.4 * (rmax - rmin + 1), 200)
        ww = max(1.4 * (cmax - cmin + 1), 200)
        box = (round(rc - 0.5 * hh), round(rc + 0.5 * hh), round(cc - 0.5 * ww), round(cc + 0.5 * ww))
        return max(0, box[0]), min(h - 1, box[1]), max(0, box[2]), min(w - 1, box[3])

    @staticmethod
    def _box_iou(a, b):
        def seg(p, q, r, s):
            return max(0, min(q, s) - max(p, r) + 1) / max(1e-6, max(q, s) - min(p, r) + 1)
        return seg(a[0], a[1], b[0], b[1]) * seg(a[2], a[3], b[2], b[3])

    @torch.no_grad()
    def add_click(self, y: int, x: int, is_positive: bool) -> np.ndarray:
        self.clicks.append((y, x, is_positive))
        h, w = self.image.shape[2:]
        s = self.size
        candidate = (0, h - 1, 0, w - 1)
        if self.prev_probs is not None:
            mask = self.prev_probs > 0.5
            for cy, cx, p in self.clicks:
                if p:
                    mask[cy, cx] = True
            if (self.prev_probs > 0.5).any():
                rows, cols = np.where(mask.any(1))[0], np.where(mask.any(0))[0]
                candidate = self._expand(rows[0], rows[-1], cols[0], cols[-1], h, w)
        outside = any(p and not (self.roi[0] <= cy < self.roi[1] and self.roi[2] <= cx < self.roi[3])
                      for cy, cx, p in self.clicks) if self.roi is not None else True
        if self.roi is None or outside or self._box_iou(candidate, self.roi) < 0.5:
            self.roi = candidate
        self.rois.append(self.roi)
        r0, r1, c0, c1 = self.roi
        x4 = torch.cat([self.image, self.prev], 1)[:, :, r0:r1 + 1, c0:c1 + 1]
        x4 = F.interpolate(x4, size=(s, s), mode="bilinear", align_corners=True)
        clicks = [[(s * (cy - r0) / (r1 - r0 + 1), s * (cx - c0) / (c1 - c0 + 1), p) for cy, cx, p in self.clicks]]
        if self.flip:
            x4 = torch.cat([x4, torch.flip(x4, dims=[3])], 0)
            clicks = clicks + [[(cy, s - cx - 1, p) for cy, cx, p in clicks[0]]]
        logits = self.model(x4, self._points(clicks))
        if self.flip:
            logits = 0.5 * (logits[:1] + torch.flip(logits[1:], dims=[3]))
        prob = F.interpolate(torch.sigmoid(logits), size=(r1 - r0 + 1, c1 - c0 + 1), mode="bilinear",
                             align_corners=True)
        if self.prev_probs is not None:
            full = torch.zeros_like(self.prev)
            full[:, :, r0:r1 + 1, c0:c1 + 1] = prob
            prob = full
        self.prev = prob
        self.prev_probs = prob[0, 0].numpy().copy()
        return self.prev_probs.copy()
