"""Normalised focal loss (SPEC 5.6) and the batch IoU against hand computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skipclick_jax.train.loss import batch_iou, normalized_focal_loss


def _reference(logits: np.ndarray, labels: np.ndarray, alpha: float = 0.5, gamma: float = 2.0) -> float:
    """SPEC 5.6 written out pixel by pixel in float64."""
    per_image = []
    for z, y in zip(logits.astype(np.float64), labels.astype(np.float64), strict=True):
        z, y = z.ravel(), y.ravel()
        p = 1 / (1 + np.exp(-z))
        w = (y != -1).astype(np.float64)
        pt = np.where(w > 0, 1 - np.abs(y - p), 1.0)
        beta = (1 - pt) ** gamma
        a = np.where(y > 0.5, alpha, 1 - alpha) * w
        mult = w.sum() / (beta.sum() + 1e-12)
        loss = -a * beta * mult * np.log(np.minimum(pt + 1e-12, 1.0)) * w
        per_image.append(loss.sum() / (w.sum() + 1e-12))
    return float(np.mean(per_image))


def test_two_pixel_case_by_hand():
    # One image, two pixels: a foreground pixel predicted 0.5 and a background pixel predicted sigmoid(1).
    logits = np.array([[[0.0], [1.0]]], np.float32)
    labels = np.array([[[1.0], [0.0]]], np.float32)
    p1 = 1 / (1 + np.exp(-1.0))
    b0, b1 = 0.25, p1**2  # (1 - pt)^2 with pt = 0.5 and 1 - p1
    mult = 2 / (b0 + b1)
    expected = 0.5 * mult * (b0 * -np.log(0.5) + b1 * -np.log(1 - p1)) / 2
    got = float(normalized_focal_loss(jnp.asarray(logits), jnp.asarray(labels)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Equivalently 0.5 · Σβ(-log pt) / Σβ, the form of SPEC 5.6.
    np.testing.assert_allclose(got, 0.5 * (b0 * np.log(2) - b1 * np.log(1 - p1)) / (b0 + b1), rtol=1e-6)


def test_ignore_pixels_batch_mean_and_alpha():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (3, 6, 5, 1)).astype(np.float32)
    labels = (rng.random((3, 6, 5, 1)) > 0.6).astype(np.float32)
    labels[0, :2] = -1  # ignored rows
    labels[2] = -1  # a fully ignored image contributes 0 (the 1e-12 guards) but still counts in the mean
    for alpha, gamma in [(0.5, 2.0), (0.25, 2.0), (0.5, 1.5)]:
        got = float(normalized_focal_loss(jnp.asarray(logits), jnp.asarray(labels), alpha, gamma))
        np.testing.assert_allclose(got, _reference(logits, labels, alpha, gamma), rtol=2e-6)
    # Changing the prediction on ignored pixels changes nothing.
    moved = logits.copy()
    moved[labels == -1] += 5
    np.testing.assert_allclose(normalized_focal_loss(jnp.asarray(moved), jnp.asarray(labels)),
                               normalized_focal_loss(jnp.asarray(logits), jnp.asarray(labels)), rtol=1e-7)
    assert float(normalized_focal_loss(jnp.asarray(logits[2:]), jnp.asarray(labels[2:]))) == 0.0


def test_gradient_treats_the_normaliser_as_constant():
    """d loss / dz in closed form with M held fixed: 0.5·M·dℓ/dp·p(1-p) / (Σw · B)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (2, 4, 4, 1)).astype(np.float64)
    labels = (rng.random((2, 4, 4, 1)) > 0.5).astype(np.float64)
    labels[1, 0, :] = -1
    grad = np.asarray(jax.grad(lambda z: normalized_focal_loss(z, jnp.asarray(labels)))(jnp.asarray(logits)))
    p = 1 / (1 + np.exp(-logits))
    w = (labels != -1).astype(np.float64)
    beta = np.where(labels > 0.5, (1 - p) ** 2, p**2) * w
    mult = w.sum(axis=(1, 2, 3), keepdims=True) / beta.sum(axis=(1, 2, 3), keepdims=True)
    dl_dp = np.where(labels > 0.5, 2 * (1 - p) * np.log(p) - (1 - p) ** 2 / p, -2 * p * np.log(1 - p) + p**2 / (1 - p))
    expected = 0.5 * mult * dl_dp * p * (1 - p) * w / w.sum(axis=(1, 2, 3), keepdims=True) / len(logits)
    np.testing.assert_allclose(grad, expected, rtol=2e-4, atol=1e-9)
    # Differentiating through the normaliser would give a different gradient.
    undetached = jax.grad(lambda z: _undetached(z, jnp.asarray(labels)))(jnp.asarray(logits))
    assert not np.allclose(grad, np.asarray(undetached), rtol=1e-2)


def _undetached(z, y):
    p = jax.nn.sigmoid(z)
    w = (y != -1).astype(z.dtype)
    pt = jnp.where(w > 0, 1 - jnp.abs(y - p), 1.0)
    beta = (1 - pt) ** 2
    mult = w.sum((1, 2, 3), keepdims=True) / (beta.sum((1, 2, 3), keepdims=True) + 1e-12)
    loss = -0.5 * beta * mult * jnp.log(jnp.minimum(pt + 1e-12, 1.0)) * w
    return jnp.mean(loss.sum((1, 2, 3)) / (w.sum((1, 2, 3)) + 1e-12))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_perfect_prediction_and_dtypes(dtype):
    labels = jnp.asarray(np.array([[[[1.0], [0.0]], [[0.0], [1.0]]]], np.float32))
    logits = (labels * 2 - 1) * 40
    assert float(normalized_focal_loss(logits.astype(dtype), labels)) < 1e-12


def test_batch_iou_by_hand():
    labels = np.zeros((3, 4, 4, 1), np.float32)
    labels[0, :2, :2] = 1  # 4 pixels
    labels[1, 0, 0] = -1  # ignored pixel, nothing else: empty union once the ignored pixel is dropped
    logits = np.full((3, 4, 4, 1), -9.0, np.float32)
    logits[0, :2, :3] = 9  # 6 predicted, 4 correct: IoU 4/6
    logits[1, 0, 0] = 9  # predicted on the ignored pixel only: counts as background
    logits[2, 3, 3] = 9  # empty ground truth, one false positive: IoU 0
    got = float(batch_iou(jnp.asarray(logits), jnp.asarray(labels)))
    np.testing.assert_allclose(got, (4 / 6 + 0) / 2, rtol=1e-6)
    # Threshold is strict > 0.49 on the probability.
    at = np.full((1, 1, 1, 1), np.log(0.49 / 0.51), np.float32)
    assert float(batch_iou(jnp.asarray(at + 1e-3), jnp.ones((1, 1, 1, 1)))) == 1.0
    assert float(batch_iou(jnp.asarray(at - 1e-3), jnp.ones((1, 1, 1, 1)))) == 0.0
    assert float(batch_iou(jnp.full((2, 2, 2, 1), -9.0), jnp.zeros((2, 2, 2, 1)))) == 1.0
