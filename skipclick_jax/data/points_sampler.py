"""The training click sampler (RITM/SimpleClick ``MultiPointSampler`` as configured by SkipClick, SPEC 5.4).

Target: one uniformly random root object, or with ``merge_objects_prob`` two distinct roots merged. Clicks
are (row, col, click_order) with click_order always 100 (no special first click). Output rows: positives
padded with (-1, -1, -1) to ``max_num_points``, then negatives padded the same way.

Counts: positives ``1 + k``, ``P(k) ∝ gamma^k`` for k < max_num_points; negatives ``k`` with
``P(k) ∝ gamma^k`` for k <= max_num_points (so about 20 % of samples have no negative click).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from skipclick_jax.data.config import SamplerConfig
from skipclick_jax.data.sample import Objects, node_mask, root_objects

_KERNEL = np.ones((3, 3), np.uint8)
NEGATIVE_STRATEGIES = ("bg", "other", "border")


@functools.cache
def generate_probs(n: int, gamma: float) -> np.ndarray:
    """``p_k ∝ gamma^k`` for k = 0..n-1, normalised (read-only array)."""
    probs = gamma ** np.arange(n, dtype=np.float64)
    probs /= probs.sum()
    probs.setflags(write=False)
    return probs


@dataclass
class Target:
    """What the sampler selected: the ground truth and the masks clicks are drawn from."""

    gt: np.ndarray  # bool (H, W)
    positive_masks: list[np.ndarray]  # one per selected object, possibly eroded
    negative_masks: dict[str, np.ndarray]  # "bg", "other", "border"
    object_ids: list[int]


def positive_erode(mask: np.ndarray, rng: np.random.Generator, config: SamplerConfig) -> np.ndarray:
    """With probability ``positive_erode_prob`` erode by a 3x3 kernel ``positive_erode_iters`` times,
    falling back to the uneroded mask if at most ``min_eroded_area`` pixels survive.

    OpenCV's default erosion border does not erode from the image edge (the original behaves the same).
    """
    if rng.random() > config.positive_erode_prob:
        return mask
    eroded = cv2.erode(mask.astype(np.uint8), _KERNEL, iterations=config.positive_erode_iters).astype(bool)
    return eroded if int(eroded.sum()) > config.min_eroded_area else mask


def border_mask(gt: np.ndarray, expand_ratio: float) -> np.ndarray:
    """Ring around ``gt``: 3x3 dilation repeated ``ceil(expand_ratio * sqrt(area))`` times, minus ``gt``."""
    iterations = int(np.ceil(expand_ratio * np.sqrt(gt.sum())))
    if iterations <= 0:
        return np.zeros_like(gt, dtype=bool)
    ring = cv2.dilate(gt.astype(np.uint8), _KERNEL, iterations=iterations).astype(bool)
    ring[gt] = False
    return ring


def select_target(layers: np.ndarray, objects: Objects, rng: np.random.Generator, config: SamplerConfig
                  ) -> Target:
    """Chooses the target object(s) and builds the positive and negative sampling masks."""
    if not objects:
        # Background-only sample: no target, every negative strategy draws from the background
        # (pixels outside every remaining label; labels of removed small objects stay non-background).
        background = layers.max(axis=2) == 0
        gt = np.zeros(layers.shape[:2], bool)
        return Target(gt, [], dict.fromkeys(NEGATIVE_STRATEGIES, background), [])

    roots = root_objects(objects)
    if len(roots) > 1 and rng.random() < config.merge_objects_prob:
        num = int(rng.integers(2, min(len(roots), config.max_num_merged_objects) + 1))
        ids = [roots[int(i)] for i in rng.choice(len(roots), size=num, replace=False)]
    else:
        ids = [roots[int(rng.integers(len(roots)))]]

    masks = [node_mask(layers, objects[i]) for i in ids]
    gt = np.logical_or.reduce(masks)
    positive = [positive_erode(m, rng, config) for m in masks]
    bg = ~gt
    if len(objects) <= len(ids):
        other = bg
    else:
        other = (layers.max(axis=2) != 0) & ~gt
    negatives = {"bg": bg, "other": other, "border": border_mask(gt, config.expand_ratio)}
    return Target(gt, positive, negatives, ids)


class _PixelPicker:
    """Uniform random pixels of a mask (indices computed once)."""

    def __init__(self, mask: np.ndarray):
        self.width = mask.shape[1]
        self.flat = np.flatnonzero(mask)

    def __len__(self) -> int:
        return len(self.flat)

    def pick(self, rng: np.random.Generator) -> tuple[int, int]:
        row, col = divmod(int(self.flat[rng.integers(len(self.flat))]), self.width)
        return row, col


def sample_positive_points(masks: list[np.ndarray], rng: np.random.Generator, config: SamplerConfig
                           ) -> list[tuple[int, int]]:
    """Positive (row, col) clicks for one object, or for merged objects (SPEC 5.4)."""
    n_max = config.max_num_points
    pickers = [p for p in (_PixelPicker(m) for m in masks[:n_max]) if len(p)]
    if not pickers:
        return []
    if len(pickers) == 1:
        count = 1 + int(rng.choice(n_max, p=generate_probs(n_max, config.prob_gamma)))
        return [pickers[0].pick(rng) for _ in range(count)]
    # Merged objects: one click per object, then k extra clicks (k from the *negative* count law), each in
    # a uniformly chosen object; a random subset of the extras is kept if the total exceeds n_max.
    points = [p.pick(rng) for p in pickers]
    extra_count = int(rng.choice(n_max + 1, p=generate_probs(n_max + 1, config.prob_gamma)))
    extra = [pickers[int(rng.integers(len(pickers)))].pick(rng) for _ in range(extra_count)]
    room = n_max - len(points)
    if len(extra) > room:
        extra = [extra[int(i)] for i in rng.choice(len(extra), size=room, replace=False)]
    return points + extra


def sample_negative_points(negative_masks: dict[str, np.ndarray], rng: np.random.Generator,
                           config: SamplerConfig) -> list[tuple[int, int]]:
    """Negative clicks: count from the negative law, each with a random strategy; a click whose strategy
    mask is empty is skipped (not redrawn)."""
    n_max = config.max_num_points
    count = int(rng.choice(n_max + 1, p=generate_probs(n_max + 1, config.prob_gamma)))
    probs = [config.negative_bg_prob, config.negative_other_prob, config.negative_border_prob]
    pickers = [_PixelPicker(negative_masks[name]) for name in NEGATIVE_STRATEGIES]
    points = []
    for strategy in rng.choice(len(pickers), size=count, p=probs):
        picker = pickers[int(strategy)]
        if len(picker):
            points.append(picker.pick(rng))
    return points


def points_array(positive: list[tuple[int, int]], negative: list[tuple[int, int]], config: SamplerConfig
                 ) -> np.ndarray:
    """(2N, 3) float32: positives then negatives, each padded with (-1, -1, -1) to N = max_num_points."""
    n_max = config.max_num_points
    out = np.full((2 * n_max, 3), -1.0, np.float32)
    for offset, points in ((0, positive[:n_max]), (n_max, negative[:n_max])):
        if points:
            out[offset:offset + len(points), :2] = points
            out[offset:offset + len(points), 2] = config.click_order
    return out


def sample_points(layers: np.ndarray, objects: Objects, rng: np.random.Generator, config: SamplerConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Selects a target and samples its clicks. Returns (points (2N, 3) float32, gt mask (H, W) float32)."""
    target = select_target(layers, objects, rng, config)
    positive = sample_positive_points(target.positive_masks, rng, config)
    negative = sample_negative_points(target.negative_masks, rng, config)
    return points_array(positive, negative, config), target.gt.astype(np.float32)
