"""Training-data configuration: frozen dataclasses whose defaults are the released SkipClick run (SPEC 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AugmentConfig:
    """SPEC 5.3's augmentations, in order: resize, flip, pad, crop, brightness/contrast, RGB shift."""

    crop_size: tuple[int, int] = (448, 448)  # (height, width) of PadIfNeeded and RandomCrop
    scale_range: tuple[float, float] = (0.75, 1.40)  # UniformRandomResize
    flip_prob: float = 0.5
    brightness_limit: tuple[float, float] = (-0.25, 0.25)
    contrast_limit: tuple[float, float] = (-0.15, 0.40)
    brightness_contrast_prob: float = 0.75
    rgb_shift_limit: tuple[float, float, float] = (10.0, 10.0, 10.0)  # symmetric r/g/b limits, uint8 units
    rgb_shift_prob: float = 0.75


@dataclass(frozen=True)
class SamplerConfig:
    """MultiPointSampler of SPEC 5.4 (the configured values plus the original's defaults)."""

    max_num_points: int = 24
    prob_gamma: float = 0.8
    expand_ratio: float = 0.1
    positive_erode_prob: float = 0.9
    positive_erode_iters: int = 3
    # An eroded positive mask is used only if it keeps more than this many pixels.
    min_eroded_area: int = 10
    negative_bg_prob: float = 0.1
    negative_other_prob: float = 0.4
    negative_border_prob: float = 0.5
    merge_objects_prob: float = 0.15
    max_num_merged_objects: int = 2
    click_order: int = 100  # third column of every sampled click (first_click_center is off)

    def __post_init__(self) -> None:
        total = self.negative_bg_prob + self.negative_other_prob + self.negative_border_prob
        if not math.isclose(total, 1.0):
            raise ValueError(f"negative strategy probabilities sum to {total}, not 1")
        if self.max_num_points < 1 or self.max_num_merged_objects < 2:
            raise ValueError("max_num_points must be >= 1 and max_num_merged_objects >= 2")


@dataclass(frozen=True)
class TrainDataConfig:
    """Everything that turns a raw record into a training sample, plus the epoch definition."""

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    stuff_prob: float = 0.30  # per loaded image: stuff masks become root objects, else they are erased
    min_object_area: int = 1000  # objects smaller than this (after the crop) are dropped
    keep_background_prob: float = 0.05  # accept an augmentation in which every object vanished
    epoch_len: int = 30000  # random draws (with replacement) per epoch, SPEC trap 34
    # Not in the original (which loops forever on an image without objects when keep_background_prob=0):
    # after this many rejected augmentations the last one is kept as a background-only sample.
    max_augment_tries: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_background_prob <= 1.0 or not 0.0 <= self.stuff_prob <= 1.0:
            raise ValueError("probabilities must lie in [0, 1]")
        if self.epoch_len < 1 or self.max_augment_tries < 1:
            raise ValueError("epoch_len and max_augment_tries must be positive")
