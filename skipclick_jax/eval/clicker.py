"""Deterministic click simulator of the NoC evaluation protocol (SPEC §3.5, traps 23, 24, 26).

Each click goes to the pixel of the larger error region that is farthest from the region's border:

1. FN = object pixels missed by the prediction, FP = non-object pixels predicted; ignore pixels (−1) excluded.
2. Both masks get a 1-pixel zero border before an exact Euclidean distance transform (OpenCV ``DIST_L2``
   with ``DIST_MASK_PRECISE``), so the image border counts as "outside the error"; the border is cropped off.
3. Distances are multiplied by the not-clicked map (already clicked pixels score 0).
4. Positive click iff ``max(FN) > max(FP)`` (strict: ties, including 0 = 0, give a negative click).
5. The click goes to the first maximum in row-major order.

Pure numpy/OpenCV; two distance transforms per click, so it is cheap enough for interactive demos.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IGNORE_LABEL = -1


@dataclass(frozen=True)
class Click:
    """One simulated click in original-image integer pixel coordinates (row first, trap 1)."""

    y: int
    x: int
    is_positive: bool


def padded_distance(mask: np.ndarray) -> np.ndarray:
    """Exact distance of every ``mask`` pixel to the nearest non-mask pixel; the image border counts as one.

    Returns a float32 H×W map (0 outside the mask).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        # Fast path; the transform of an all-zero image is all zeros anyway.
        return np.zeros(mask.shape, np.float32)
    padded = np.pad(mask, 1).astype(np.uint8)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[1:-1, 1:-1]


def error_masks(gt: np.ndarray, pred: np.ndarray,
                ignore_label: int = IGNORE_LABEL) -> tuple[np.ndarray, np.ndarray]:
    """False-negative and false-positive masks of ``pred`` against ``gt`` (ignore pixels excluded)."""
    gt = np.asarray(gt)
    pred = np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"gt and pred must be 2-D arrays of the same shape, got {gt.shape} and {pred.shape}")
    obj = gt == 1
    valid = gt != ignore_label
    fn = obj & ~pred & valid
    fp = ~obj & pred & valid
    return fn, fp


def next_click(gt: np.ndarray, pred: np.ndarray, not_clicked: np.ndarray | None = None) -> Click:
    """Compute the next simulated click for ground truth ``gt`` and binary prediction ``pred``.

    Args:
        gt: H×W integer mask, 1 = object, 0 = background, −1 = ignore.
        pred: H×W boolean prediction (anything non-zero counts as predicted).
        not_clicked: H×W boolean map, False at already clicked pixels (None: nothing clicked yet).

    Returns:
        The click; it is *not* recorded anywhere (see :class:`Clicker` for the stateful version).
    """
    fn, fp = error_masks(gt, pred)
    fn_dist = padded_distance(fn)
    fp_dist = padded_distance(fp)
    if not_clicked is not None:
        not_clicked = np.asarray(not_clicked, dtype=bool)
        if not_clicked.shape != fn.shape:
            raise ValueError(f"not_clicked has shape {not_clicked.shape}, expected {fn.shape}")
        fn_dist = fn_dist * not_clicked
        fp_dist = fp_dist * not_clicked
    # Compare the float32 maxima exactly as the reference does; ties go to the negative side.
    is_positive = bool(fn_dist.max() > fp_dist.max())
    dist = fn_dist if is_positive else fp_dist
    # argmax returns the first maximum of the flattened (row-major) array.
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return Click(int(y), int(x), is_positive)


class Clicker:
    """Stateful click simulator for one object: remembers its clicks and which pixels were clicked.

    >>> clicker = Clicker(gt)            # doctest: +SKIP
    >>> click = clicker.next_click(np.zeros_like(gt, bool))   # first click: positive, object centre
    """

    def __init__(self, gt_mask: np.ndarray) -> None:
        gt = np.asarray(gt_mask)
        if gt.ndim != 2:
            raise ValueError(f"gt_mask must be 2-D, got shape {gt.shape}")
        self.gt_mask = gt
        self._clicks: list[Click] = []
        self._not_clicked = np.ones(gt.shape, dtype=bool)

    @property
    def clicks(self) -> list[Click]:
        """The clicks made so far, oldest first (a copy)."""
        return list(self._clicks)

    @property
    def not_clicked_map(self) -> np.ndarray:
        """Boolean H×W map, False at already clicked pixels (a copy)."""
        return self._not_clicked.copy()

    def __len__(self) -> int:
        return len(self._clicks)

    def next_click(self, pred_mask: np.ndarray) -> Click:
        """Compute the next click for the current binary prediction, record it and return it."""
        click = next_click(self.gt_mask, pred_mask, self._not_clicked)
        self._clicks.append(click)
        self._not_clicked[click.y, click.x] = False
        return click

    def undo(self) -> Click:
        """Remove and return the last click (IndexError if there is none)."""
        click = self._clicks.pop()
        # The degenerate "no error left" case can click the same pixel twice; keep it marked while
        # another remaining click still sits on it.
        if all((c.y, c.x) != (click.y, click.x) for c in self._clicks):
            self._not_clicked[click.y, click.x] = True
        return click

    def reset(self) -> None:
        """Forget all clicks."""
        self._clicks.clear()
        self._not_clicked[...] = True
