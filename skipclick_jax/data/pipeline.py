"""One raw record → one training sample (SPEC 5.2), deterministic given a numpy Generator."""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from skipclick_jax.data.config import TrainDataConfig
from skipclick_jax.data.points_sampler import sample_points
from skipclick_jax.data.records import Record
from skipclick_jax.data.sample import (
    Objects,
    compute_areas,
    copy_objects,
    load_objects,
    remove_small_objects,
)
from skipclick_jax.data.transforms import augment


class TrainingSample(TypedDict):
    """Model input for one sample (NHWC-friendly; the model converts the image to [0, 1] floats)."""

    image: np.ndarray  # uint8 (S, S, 3), RGB
    points: np.ndarray  # float32 (2N, 3): N positive rows then N negative rows, (row, col, 100) or -1s
    mask: np.ndarray  # float32 (S, S), values 0/1


def augment_until_accepted(image: np.ndarray, layers: np.ndarray, objects: Objects, rng: np.random.Generator,
                           config: TrainDataConfig) -> tuple[np.ndarray, np.ndarray, Objects]:
    """Augments until at least one object survives (area >= 1), or a background-only result is kept with
    probability ``keep_background_prob``; each try starts again from the unaugmented sample."""
    for attempt in range(config.max_augment_tries):
        aug_image, aug_layers = augment(image, layers, rng, config.augment)
        aug_objects = copy_objects(objects)
        compute_areas(aug_layers, aug_objects)
        remove_small_objects(aug_objects, 1)
        if aug_objects or attempt == config.max_augment_tries - 1:
            break
        if rng.random() < config.keep_background_prob:
            break
    return aug_image, aug_layers, aug_objects


def make_training_sample(record: Record, rng: np.random.Generator, config: TrainDataConfig) -> TrainingSample:
    """Stuff rule → augmentation loop → drop objects < ``min_object_area`` → click sampling."""
    layers, objects = load_objects(record, rng, config.stuff_prob)
    image, layers, objects = augment_until_accepted(record["image"], layers, objects, rng, config)
    remove_small_objects(objects, config.min_object_area)
    points, mask = sample_points(layers, objects, rng, config.sampler)
    return TrainingSample(image=image, points=points, mask=mask)
