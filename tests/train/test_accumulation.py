"""Gradient accumulation inside the jitted step, and the mixed-precision policy of the train state."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from skipclick_jax.model import init_params
from skipclick_jax.train.bench import synthetic_batch
from skipclick_jax.train.checkpointing import TrainCheckpointer
from skipclick_jax.train.config import apply_overrides, preset
from skipclick_jax.train.state import (
    abstract_train_state,
    batch_sharding,
    create_train_state,
    make_mesh,
    make_optimizer,
)
from skipclick_jax.train.step import make_model, make_train_step, train_step

# Dropout off: with accumulation the head's dropout masks are drawn per micro-batch (the only randomness
# that cannot follow the whole batch's draws); everything else is identical by construction.
CONFIG = apply_overrides(preset("tiny"), ["model.head_dropout=0"])
# The gradients themselves are compared: the optimiser below keeps the step's gradients as its state and
# leaves the parameters unchanged (comparing parameters after Adam steps would not do: Adam's first steps
# move every parameter by ~lr·sign(g), which turns rounding noise of gradients that are mathematically
# zero into differences of size lr).
# Measured on this CPU (4 devices, batch 8 = 2 x 4, three steps with 0-3 simulated clicks): losses within
# 9e-8 relative, IoUs within 6.4e-8 relative, gradients within 1.05e-6 of the largest gradient of each
# leaf (float32 sums in another order). Tolerances: about 5-10x those.
LOSS_RTOL, GRAD_RTOL = 1e-6, 5e-6


def _keep_gradients() -> optax.GradientTransformation:
    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(grads, state, params=None):
        return jax.tree.map(jnp.zeros_like, grads), grads

    return optax.GradientTransformation(init, update)


def _run(config, batches, mesh):
    """Per batch i: one step from the same parameters at step number i (its own click draws); returns the
    gradients and the metrics."""
    tx = _keep_gradients()
    state = create_train_state(config, init_params(config.model, config.seed), mesh, tx)
    step = make_train_step(config, mesh, tx, state)
    metrics, grads = [], []
    for i, batch in enumerate(batches):
        state = state.replace(step=jax.device_put(jnp.int32(i), state.step.sharding))
        state, m = step(state, jax.device_put(batch, batch_sharding(mesh)))
        grads.append(jax.device_get(state.opt_state))
        metrics.append(jax.device_get(m))
    return grads, metrics


def test_accumulated_micro_batches_equal_one_step_on_the_whole_batch():
    mesh = make_mesh(jax.devices()[:4])  # micro-batches of 4 over 4 devices
    batches = [synthetic_batch(CONFIG, seed=i) for i in range(3)]
    whole, m_whole = _run(CONFIG, batches, mesh)
    accumulated, m_acc = _run(dataclasses.replace(CONFIG, grad_accum_steps=2), batches, mesh)

    assert [int(m["num_clicks"]) for m in m_whole] == [int(m["num_clicks"]) for m in m_acc]
    assert any(int(m["num_clicks"]) > 0 for m in m_whole)  # the per-sample click draws were exercised
    for a, b in zip(m_whole, m_acc, strict=True):
        print("loss", float(a["loss"]), float(b["loss"]), "iou", float(a["iou"]), float(b["iou"]))
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=LOSS_RTOL)
        np.testing.assert_allclose(b["iou"], a["iou"], rtol=LOSS_RTOL)
    worst = 0.0
    for g_whole, g_acc in zip(whole, accumulated, strict=True):
        rel = jax.tree.map(lambda x, y: float(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-30)), g_whole, g_acc)
        worst = max(worst, *jax.tree.leaves(rel))
        assert max(np.max(np.abs(x)) for x in jax.tree.leaves(g_whole)) > 0
    print("max gradient difference (relative to each leaf's largest gradient):", worst)
    assert worst < GRAD_RTOL


def test_grad_accum_steps_must_divide_the_batch():
    with pytest.raises(ValueError, match="grad_accum_steps 3 must be >= 1 and divide batch_size 8"):
        apply_overrides(preset("tiny"), ["grad_accum_steps=3"])


def test_bfloat16_compute_keeps_float32_parameters_and_adam_moments(tmp_path):
    """Policy: bf16 matmuls/convolutions, float32 master weights, optimiser state and loss."""
    config = dataclasses.replace(preset("tiny"), compute_dtype="bfloat16")
    mesh = make_mesh(jax.devices()[:1])
    tx = make_optimizer(config)
    state = create_train_state(config, init_params(config.model, 0), mesh, tx)
    batch = jax.tree.map(jnp.asarray, synthetic_batch(config))
    model = make_model(config)

    def step(state, batch):
        return train_step(state, batch, model=model, tx=tx, config=config)

    # The step does compute in bfloat16 ...
    assert "bf16" in str(jax.make_jaxpr(step)(state, batch))
    # ... and returns float32 parameters and Adam moments (mu, nu), and a float32 loss.
    new_state, metrics = jax.eval_shape(step, state, batch)
    adam = new_state.opt_state[0]
    for tree in (new_state.params, adam.mu, adam.nu):
        assert {leaf.dtype for leaf in jax.tree.leaves(tree)} == {jnp.dtype("float32")}
    assert metrics["loss"].dtype == jnp.float32

    # What the checkpoint holds (the state the loop saves), read back without a target: float32 too.
    checkpointer = TrainCheckpointer(tmp_path, config)
    checkpointer.save(state, _NoData())
    checkpointer.wait()
    restored = checkpointer.manager.restore(0, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    checkpointer.close()
    for key in ("params", "opt_state"):
        dtypes = {np.asarray(leaf).dtype for leaf in jax.tree.leaves(restored[key]) if np.ndim(leaf) > 0}
        assert dtypes == {np.dtype("float32")}, (key, dtypes)
    assert abstract_train_state(config, mesh, tx).params["fuse"]["kernel"].dtype == jnp.float32


class _NoData:
    """A data iterator stand-in for the checkpoint's Grain item."""

    def get_state(self) -> bytes:
        return b'{"next_index": 0}'

    def set_state(self, state: bytes) -> None:
        pass
