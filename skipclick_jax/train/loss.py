"""The training loss and metric: RITM's normalised focal loss (SPEC 5.6) and the batch IoU."""

from __future__ import annotations

import jax
import jax.numpy as jnp

IGNORE_LABEL = -1.0
_EPS = 1e-12


def normalized_focal_loss(
    logits: jax.Array, labels: jax.Array, alpha: float = 0.5, gamma: float = 2.0
) -> jax.Array:
    """`NormalizedFocalLossSigmoid(alpha, gamma)` of the original, reduced to a scalar (mean over images).

    Args:
        logits: (B, ...) raw network outputs (the trainer passes (B, S, S, 1)).
        labels: same shape; 1 foreground, 0 background, -1 ignored (any value > 0.5 counts as foreground).
        alpha: weight of the foreground class (background gets 1 - alpha; 0.5 makes both 0.5).
        gamma: focusing exponent.

    Per image b with pixels i, p = sigmoid(z), w = [y != -1], pt = 1 - |y - p| (1 where ignored),
    β = (1 - pt)^γ, M = stopgrad(Σ w / (Σ β + 1e-12)) and
    L_b = Σ -α_i β_i M log(min(pt_i + 1e-12, 1)) w_i / (Σ w + 1e-12); the result is mean_b L_b.
    The normaliser M is detached (the original's `detach_delimeter=True`): gradients flow only through β and
    log pt in the numerator.
    """
    logits = logits.astype(jnp.float32)
    labels = labels.astype(jnp.float32)
    axes = tuple(range(1, logits.ndim))
    one_hot = labels > 0.5
    weight = (labels != IGNORE_LABEL).astype(jnp.float32)
    prob = jax.nn.sigmoid(logits)
    alpha_t = jnp.where(one_hot, alpha * weight, (1.0 - alpha) * weight)
    pt = jnp.where(weight > 0, 1.0 - jnp.abs(labels - prob), 1.0)
    # An integral γ uses integer powers ((1 - pt)·(1 - pt) for γ = 2), as PyTorch's `** 2` does.
    beta = (1.0 - pt) ** (int(gamma) if float(gamma).is_integer() else gamma)
    weight_sum = jnp.sum(weight, axis=axes, keepdims=True)
    mult = jax.lax.stop_gradient(weight_sum / (jnp.sum(beta, axis=axes, keepdims=True) + _EPS))
    loss = -alpha_t * beta * mult * jnp.log(jnp.minimum(pt + _EPS, 1.0)) * weight
    per_image = jnp.sum(loss, axis=axes) / (jnp.sum(weight, axis=axes) + _EPS)
    return jnp.mean(per_image)


def batch_iou(logits: jax.Array, labels: jax.Array, threshold: float = 0.49) -> jax.Array:
    """Mean IoU of `sigmoid(logits) > threshold` against `labels > 0.5` over the images of a batch.

    As the original's train metric (`_compute_iou`), ignored pixels (-1) count as predicted background and
    images whose prediction ∪ ground truth is empty are left out of the mean; a batch where every image
    is empty scores 1.
    """
    total, count = batch_iou_parts(logits, labels, threshold)
    return iou_from_parts(total, count)


def batch_iou_parts(logits: jax.Array, labels: jax.Array, threshold: float = 0.49) -> tuple[jax.Array, jax.Array]:
    """(sum of the IoUs of the non-empty images, their number): what `batch_iou` averages; the parts of
    several micro-batches add up to those of the whole batch (gradient accumulation)."""
    axes = tuple(range(1, logits.ndim))
    pred = (jax.nn.sigmoid(logits.astype(jnp.float32)) > threshold) & (labels != IGNORE_LABEL)
    gt = labels > 0.5
    union = jnp.sum(pred | gt, axis=axes)
    inter = jnp.sum(pred & gt, axis=axes)
    valid = union > 0
    iou = jnp.where(valid, inter / jnp.maximum(union, 1), 0.0)
    return jnp.sum(iou), jnp.sum(valid)


def iou_from_parts(total: jax.Array, count: jax.Array) -> jax.Array:
    """`batch_iou` from `batch_iou_parts` (1 when every image is empty)."""
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 1.0)
