"""Augmentation semantics on hand-computed cases (SPEC 5.3, albumentations 1.4.19 / albucore 0.0.19)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skipclick_jax.data import transforms as T
from skipclick_jax.data.config import AugmentConfig


def test_resize_rounding_is_python_round_half_to_even():
    assert T.scaled_size(10, 14, 0.75) == (8, 10)  # 7.5 -> 8, 10.5 -> 10
    assert T.scaled_size(6, 2, 1.25) == (8, 2)  # 7.5 -> 8, 2.5 -> 2
    assert T.scaled_size(448, 300, 1.4) == (627, 420)


def test_resize_interpolations():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    layers = rng.integers(0, 4, (37, 53, 3), dtype=np.uint8)
    out = T.resize_image(image, 50, 70)
    np.testing.assert_array_equal(out, cv2.resize(image, (70, 50), interpolation=cv2.INTER_LINEAR))
    lay = T.resize_layers(layers, 50, 70)
    assert lay.shape == (50, 70, 3)
    for c in range(3):
        np.testing.assert_array_equal(lay[:, :, c], cv2.resize(layers[:, :, c], (70, 50),
                                                               interpolation=cv2.INTER_NEAREST))
    single = T.resize_layers(layers[:, :, :1], 20, 30)
    assert single.shape == (20, 30, 1)
    assert set(np.unique(single)) <= set(np.unique(layers[:, :, 0]))  # nearest: no new labels
    assert T.resize_image(image, 37, 53) is image  # same size: untouched, as in albumentations


def test_hflip():
    a = np.arange(12).reshape(2, 3, 2)
    np.testing.assert_array_equal(T.hflip(a)[:, 0], a[:, 2])
    np.testing.assert_array_equal(T.hflip(T.hflip(a)), a)


def test_pad_split_odd_goes_bottom_right():
    assert T.pad_amounts(445, 440, 448, 448) == (1, 2, 4, 4)
    assert T.pad_amounts(100, 447, 448, 448) == (174, 174, 0, 1)
    assert T.pad_amounts(500, 600, 448, 448) == (0, 0, 0, 0)
    a = np.ones((5, 6, 1), np.uint8)
    out = T.pad_if_needed(a, 8, 9)
    assert out.shape == (8, 9, 1)
    rows, cols = np.nonzero(out[:, :, 0])
    # top 1 / bottom 2, left 1 / right 2
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 5, 1, 6)
    assert out.sum() == a.sum()


def test_crop_origin_bounds():
    assert T.crop_origin(450, 448, 448, 448, 0.0, 0.999) == (0, 0)
    assert T.crop_origin(450, 460, 448, 448, 0.999999, 0.999999) == (2, 12)  # inclusive upper end H - ch
    assert T.crop_origin(450, 460, 448, 448, 0.5, 0.5) == (1, 6)
    with pytest.raises(ValueError):
        T.crop_origin(400, 460, 448, 448, 0.5, 0.5)


def test_brightness_contrast_truncates_like_albucore():
    lut = T.brightness_contrast_lut(1.2, 0.1)  # v * 1.2 + 25.5
    assert lut[0] == 25 and lut[100] == 145 and lut[255] == 255 and lut[10] == 37  # 37.5 -> 37
    lut = T.brightness_contrast_lut(0.85, -0.25)  # v * 0.85 - 63.75
    assert lut[10] == 0 and lut[100] == 21 and lut[255] == 153  # 21.25 -> 21, 153.0 -> 153
    img = np.array([[[0, 100, 255]]], np.uint8)
    np.testing.assert_array_equal(T.brightness_contrast(img, 1.2, 0.1), [[[25, 145, 255]]])


def test_rgb_shift_truncates_shift_and_clips():
    img = np.array([[[250, 2, 5], [100, 100, 100]]], np.uint8)
    out = T.rgb_shift(img, (9.7, -3.2, -10.0))  # effective shifts (9, -3, -10)
    np.testing.assert_array_equal(out, [[[255, 0, 0], [109, 97, 90]]])


def test_augment_identity_parts_and_determinism():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    layers = rng.integers(0, 3, (40, 60, 2), dtype=np.uint8)
    cfg = AugmentConfig(crop_size=(48, 48), scale_range=(1.0, 1.0), flip_prob=0.0,
                        brightness_contrast_prob=0.0, rgb_shift_prob=0.0)
    out_img, out_lay = T.augment(image, layers, np.random.default_rng(1), cfg)
    assert out_img.shape == (48, 48, 3) and out_lay.shape == (48, 48, 2)
    # height 40 -> padded 4 rows on each side; width 60 -> a crop at some x in [0, 12]
    assert not out_img[:4].any() and not out_img[44:].any() and not out_lay[:4].any()
    x = next(x for x in range(13) if np.array_equal(out_img[4:44], image[:, x:x + 48]))
    np.testing.assert_array_equal(out_lay[4:44], layers[:, x:x + 48])
    full = AugmentConfig(crop_size=(48, 48))
    a = T.augment(image, layers, np.random.default_rng(5), full)
    b = T.augment(image, layers, np.random.default_rng(5), full)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.shares_memory(a[1], layers)
