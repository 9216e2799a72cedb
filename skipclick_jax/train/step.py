"""The training step (SPEC 5.5): simulated clicks without gradient, then one pass with gradient.

Per batch, with n ~ U{0, …, max_num_next_clicks} drawn once for the whole batch:

1. prev = 0; the encoder runs once (its output does not depend on the clicks; the original reruns it per
   simulated click with identical results because it is frozen, or unchanged within the step). DINOv3
   encoders run twice: plain for the simulated clicks, with the original's train-mode RoPE factors for the
   loss pass (`TrainConfig.dinov3_train_rope_rescale`).
2. n times, without gradient and in eval mode (no dropout): prev = sigmoid(decode(prev, points)), then
   one click per sample by the training click rule (`clicks.add_next_points`, on device).
3. logits = decode(prev, points) in train mode (Dropout2d in the head); normalised focal loss; Adam.

Gradient accumulation (`grad_accum_steps` K > 1) happens inside this one jitted step: the step's batch
is cut into K micro-batches (micro-batch k = rows k, K+k, 2K+k, …, so each stays spread over all
devices), their gradients are summed in a `lax.scan` and averaged, and Adam runs once. The data stream,
n, the per-sample click draws and the loss are those of the whole batch (every micro-batch has the same
size, so the mean of the means is the mean); only the head's dropout masks are drawn per micro-batch.
A checkpoint therefore never falls inside an accumulation, and a resumed run cannot differ from an
uninterrupted one by construction.

The step is `jax.jit`-compiled over a 1-D ('data',) mesh: state replicated and donated, batch sharded on
its leading axis; XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from ..config import DinoV3Config
from ..model import SkipClick
from ..model.dinov3 import rope_rescale_factors
from .clicks import add_next_points
from .config import TrainConfig
from .loss import batch_iou_parts, iou_from_parts, normalized_focal_loss
from .state import TrainState, batch_sharding, learning_rate_schedule, merge_params, replicated, state_shardings

Batch = dict[str, jax.Array]  # image uint8 (B,S,S,3), points float32 (B,2N,3), mask float32 (B,S,S)
Metrics = dict[str, jax.Array]


def make_model(config: TrainConfig) -> SkipClick:
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.compute_dtype]
    return SkipClick(config.model, dtype=dtype)


def dt_method(config: TrainConfig) -> str:
    """The click rule's distance transform: Bellman-Ford relaxation on accelerators, raster scan on CPU."""
    if config.dt_method != "auto":
        return config.dt_method
    return "raster" if jax.default_backend() == "cpu" else "relax"


def simulate_clicks(
    model: SkipClick, params: Any, features: Any, gt: jax.Array, points: jax.Array, num_clicks: jax.Array,
    key: jax.Array, method: str = "relax", micro: tuple[jax.Array | int, int] = (0, 1),
) -> tuple[jax.Array, jax.Array]:
    """`num_clicks` eval-mode passes, each followed by one simulated click; returns (prev_mask, points).

    `num_clicks` may be traced (a while loop). Callers pass stop-gradient'ed params and features.
    `micro` = (k, K): the samples are micro-batch k of K of a K-times larger batch (rows k, K+k, …), and
    draw the same click candidates as in that batch.
    """
    prev = jnp.zeros(gt.shape, jnp.float32)
    index, count = micro

    def sample_keys(t):
        keys = jax.random.split(jax.random.fold_in(key, t), gt.shape[0] * count)
        return keys if count == 1 else jnp.take(keys.reshape(gt.shape[0], count), index, axis=1)

    def body(t, carry):
        prev, points = carry
        logits = model.apply({"params": params}, features, prev, points, train=False, method=SkipClick.decode)
        prev = jax.nn.sigmoid(logits)
        points = add_next_points(prev, gt, points, t + 1, sample_keys(t), method=method)
        return prev, points

    return jax.lax.fori_loop(0, num_clicks, body, (prev, points))


def train_step(
    state: TrainState, batch: Batch, *, model: SkipClick, tx: optax.GradientTransformation, config: TrainConfig,
    method: str = "relax",
) -> tuple[TrainState, Metrics]:
    """One optimisation step (un-jitted; see `make_train_step`), over `config.grad_accum_steps`
    micro-batches of `batch`."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    k_num, k_clicks, k_dropout = jax.random.split(key, 3)
    num_clicks = jax.random.randint(k_num, (), 0, config.max_num_next_clicks + 1)
    # DINOv3: the original's loss pass sees the encoder in train mode (random RoPE factors, one per block),
    # the simulated clicks the plain encoder (see TrainConfig.dinov3_train_rope_rescale).
    rope = None
    if isinstance(config.model.encoder, DinoV3Config) and config.dinov3_train_rope_rescale:
        rope = rope_rescale_factors(config.model.encoder, jax.random.fold_in(key, 3))
    accum = config.grad_accum_steps

    def micro_step(micro_batch: Batch, index: jax.Array | int):
        """(loss, (iou sum, iou count), gradients) of micro-batch `index`."""
        # ToTensor: uint8 / 255 in float32.
        image = micro_batch["image"].astype(jnp.float32) / 255.0
        gt = micro_batch["mask"][..., None].astype(jnp.float32)

        def taps(params, rope_scales=None):
            return model.apply({"params": params}, image, rope_scales, method=SkipClick.taps)

        def encoder_passes(params):
            """Taps for the simulated clicks and for the loss pass (the same ones unless DINOv3 rescales)."""
            plain = taps(params)
            return plain, plain if rope is None else taps(params, rope)

        # A frozen encoder is run outside the differentiated function: no gradient work at all.
        frozen = None if config.model.train_encoder else encoder_passes(merge_params(state.params, state.frozen))
        dropout_key = k_dropout if accum == 1 else jax.random.fold_in(k_dropout, index)

        def loss_fn(trainable):
            params = merge_params(trainable, state.frozen)
            click_taps, loss_taps = encoder_passes(params) if frozen is None else frozen
            features = model.apply({"params": params}, loss_taps, method=SkipClick.features_from_taps)
            click_features = features if loss_taps is click_taps else model.apply(
                {"params": params}, click_taps, method=SkipClick.features_from_taps)
            prev, points = simulate_clicks(
                model, jax.lax.stop_gradient(params), jax.lax.stop_gradient(click_features), gt,
                micro_batch["points"], num_clicks, k_clicks, method, micro=(index, accum),
            )
            logits = model.apply(
                {"params": params}, features, prev, points, train=True, rngs={"dropout": dropout_key},
                method=SkipClick.decode,
            )
            return normalized_focal_loss(logits, gt, config.loss_alpha, config.loss_gamma), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return loss, batch_iou_parts(logits, gt), grads

    if accum == 1:
        loss, iou_parts, grads = micro_step(batch, 0)
    else:
        # (K·B, …) → (K, B, …) with micro-batch k = rows k, K+k, …: a device's block of rows holds rows of
        # every micro-batch, so each micro-batch keeps the batch's sharding over all devices.
        def split(x):
            return jnp.swapaxes(x.reshape(x.shape[0] // accum, accum, *x.shape[1:]), 0, 1)

        def body(carry, xs):
            index, micro_batch = xs
            out = micro_step(micro_batch, index)
            return jax.tree.map(jnp.add, carry, out), None

        zeros = jax.tree.map(jnp.zeros_like, (jnp.float32(0), (jnp.float32(0), jnp.int32(0)), state.params))
        (loss, iou_parts, grads), _ = jax.lax.scan(
            body, zeros, (jnp.arange(accum), jax.tree.map(split, batch)))
        loss, grads = loss / accum, jax.tree.map(lambda g: g / accum, grads)

    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": loss,
        "iou": iou_from_parts(*iou_parts),
        "lr": learning_rate_schedule(config)(state.step),
        "num_clicks": num_clicks,
        "grad_norm": optax.tree.norm(grads),
    }
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics


def make_train_step(
    config: TrainConfig, mesh: Mesh, tx: optax.GradientTransformation, state: TrainState
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """The jitted step: state replicated and donated, batch sharded on 'data', metrics replicated.

    `state` (concrete or abstract) only provides the tree structure for the shardings.
    """
    model = make_model(config)
    shardings = state_shardings(state, mesh)

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        return train_step(state, batch, model=model, tx=tx, config=config, method=dt_method(config))

    return jax.jit(
        step,
        in_shardings=(shardings, batch_sharding(mesh)),
        out_shardings=(shardings, replicated(mesh)),
        donate_argnums=0,
    )
