"""The training augmentations of SPEC 5.3, re-implemented with OpenCV/numpy (albumentations 1.4.19 +
albucore 0.0.19 semantics for uint8 images).

Each transform applies identically to the RGB image and to the (H, W, L) stack of mask label layers
(image-only transforms leave the layers alone). Randomness comes from a caller-supplied
``numpy.random.Generator``; the draws mirror albumentations' parameters but not its RNG stream.

Exact semantics reproduced (checked against the albumentations/albucore sources of those versions):

- UniformRandomResize: ``scale ~ U(lo, hi)``; new size ``int(round(H*scale))`` with Python's round (half to
  even); image ``cv2.INTER_LINEAR``, layers ``cv2.INTER_NEAREST``.
- HorizontalFlip: mirror columns.
- PadIfNeeded (position "center", BORDER_CONSTANT 0): ``top = (min_h - H) // 2``,
  ``bottom = min_h - H - top``; same for left/right (the extra odd pixel goes to the bottom/right).
- RandomCrop: ``y = int((H - ch + 1) * u)``, ``x = int((W - cw + 1) * v)`` with ``u, v ~ U[0, 1)``, i.e. a
  uniform integer offset in ``[0, H - ch]``.
- RandomBrightnessContrast (brightness_by_max): ``alpha = 1 + U(contrast)``, ``beta = U(brightness)``;
  albucore builds a float32 look-up table ``lut = arange(256) * alpha + beta * 255``, clips it to [0, 255]
  and casts to uint8, which **truncates** (no rounding); the image is mapped through the table.
- RGBShift: per-channel shift ``~ U(-limit, limit)``; albucore **truncates the shift to an integer** for uint8
  images (``np.trunc``) before building the per-channel table, then clips to [0, 255].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from skipclick_jax.data.config import AugmentConfig

_CV_MAX_CHANNELS = 512  # OpenCV's CV_CN_MAX


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """UniformRandomResize's target size: Python ``round`` (half to even) of each side times ``scale``."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (cv2.INTER_LINEAR) resize of an RGB image; a no-op at the same size, as in albumentations."""
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_layers(layers: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour (cv2.INTER_NEAREST) resize of an (H, W, L) label stack."""
    if layers.shape[:2] == (height, width):
        return layers
    chunks = []
    for start in range(0, layers.shape[2], _CV_MAX_CHANNELS):
        part = np.ascontiguousarray(layers[:, :, start:start + _CV_MAX_CHANNELS])
        chunk = cv2.resize(part, (width, height), interpolation=cv2.INTER_NEAREST)
        chunks.append(chunk.reshape(height, width, -1))  # cv2 drops a single channel axis
    return np.concatenate(chunks, axis=2) if len(chunks) > 1 else chunks[0]


def hflip(array: np.ndarray) -> np.ndarray:
    """Mirror the column axis."""
    return np.ascontiguousarray(array[:, ::-1])


def pad_amounts(height: int, width: int, min_height: int, min_width: int) -> tuple[int, int, int, int]:
    """PadIfNeeded's centred split (top, bottom, left, right); the odd pixel goes to the bottom/right."""
    pad_h = max(0, min_height - height)
    pad_w = max(0, min_width - width)
    return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


def pad_if_needed(array: np.ndarray, min_height: int, min_width: int) -> np.ndarray:
    """Zero-pads an (H, W, C) array to at least (min_height, min_width), centred."""
    top, bottom, left, right = pad_amounts(array.shape[0], array.shape[1], min_height, min_width)
    if top == bottom == left == right == 0:
        return array
    return np.pad(array, ((top, bottom), (left, right), (0, 0)), mode="constant", constant_values=0)


def crop_origin(height: int, width: int, crop_height: int, crop_width: int, h_start: float, w_start: float
                ) -> tuple[int, int]:
    """RandomCrop's top-left corner from two uniforms in [0, 1) (albumentations ``get_crop_coords``)."""
    if crop_height > height or crop_width > width:
        raise ValueError(f"crop {crop_height}x{crop_width} exceeds the image {height}x{width}")
    return int((height - crop_height + 1) * h_start), int((width - crop_width + 1) * w_start)


def brightness_contrast_lut(alpha: float, beta: float) -> np.ndarray:
    """albucore's uint8 table for ``img * alpha + beta * 255`` (float32, clipped, truncated to uint8)."""
    lut = np.arange(256, dtype=np.float32) * alpha + beta * 255.0
    return np.clip(lut, 0, 255).astype(np.uint8)


def brightness_contrast(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """RandomBrightnessContrast with fixed parameters on a uint8 image."""
    return brightness_contrast_lut(alpha, beta)[image]


def rgb_shift(image: np.ndarray, shifts: Sequence[float]) -> np.ndarray:
    """RGBShift with fixed per-channel shifts on a uint8 RGB image (shifts truncated toward zero)."""
    int_shifts = np.trunc(np.asarray(shifts, np.float64)).astype(np.float32).reshape(-1, 1)
    luts = np.clip(np.arange(256, dtype=np.float32) + int_shifts, 0, 255).astype(np.uint8)
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        out[:, :, c] = luts[c][image[:, :, c]]
    return out


def augment(image: np.ndarray, layers: np.ndarray, rng: np.random.Generator, config: AugmentConfig
            ) -> tuple[np.ndarray, np.ndarray]:
    """Applies the whole SPEC 5.3 pipeline once. Returns fresh arrays (never views of the inputs)."""
    crop_h, crop_w = config.crop_size
    new_h, new_w = scaled_size(image.shape[0], image.shape[1], rng.uniform(*config.scale_range))
    image = resize_image(image, new_h, new_w)
    layers = resize_layers(layers, new_h, new_w)

    if rng.random() < config.flip_prob:
        image, layers = hflip(image), hflip(layers)

    image = pad_if_needed(image, crop_h, crop_w)
    layers = pad_if_needed(layers, crop_h, crop_w)

    y, x = crop_origin(image.shape[0], image.shape[1], crop_h, crop_w, rng.random(), rng.random())
    image = np.array(image[y:y + crop_h, x:x + crop_w])  # copies: later steps modify layers in place
    layers = np.array(layers[y:y + crop_h, x:x + crop_w])

    if rng.random() < config.brightness_contrast_prob:
        alpha = 1.0 + rng.uniform(*config.contrast_limit)
        beta = 0.0 + rng.uniform(*config.brightness_limit)
        image = brightness_contrast(image, alpha, beta)

    if rng.random() < config.rgb_shift_prob:
        shifts = [rng.uniform(-limit, limit) for limit in config.rgb_shift_limit]
        image = rgb_shift(image, shifts)
    return image, layers
