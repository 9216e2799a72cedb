"""The sharded train step: equal to the single-device step, frozen encoder, overfitting a few samples."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from skipclick_jax.data import CocoLvisSource, make_train_dataset
from skipclick_jax.model import init_params
from skipclick_jax.train.config import preset
from skipclick_jax.train.state import (
    batch_sharding,
    count_leaves,
    create_train_state,
    make_mesh,
    make_optimizer,
)
from skipclick_jax.train.step import make_train_step

CONFIG = preset("tiny")  # the tests share its compiled step (same program everywhere, see conftest)


@pytest.fixture(scope="module")
def batches(cocolvis_root):
    ds = make_train_dataset(CocoLvisSource(cocolvis_root), CONFIG.data, seed=1, batch_size=CONFIG.batch_size)
    it = iter(ds)
    return [next(it) for _ in range(3)]


@pytest.fixture(scope="module")
def setup():
    """Jitted steps on a 1-device and an 8-device mesh, from the same initial parameters."""
    assert jax.device_count() == 8, "tests/conftest.py simulates 8 CPU devices"
    tx = make_optimizer(CONFIG)
    params = init_params(CONFIG.model, 0)
    out = {}
    for name, mesh in (("single", make_mesh(jax.devices()[:1])), ("sharded", make_mesh())):
        state = create_train_state(CONFIG, params, mesh, tx)
        out[name] = (mesh, make_train_step(CONFIG, mesh, tx, state), lambda m=mesh: create_train_state(
            CONFIG, params, m, tx))
    return out


def _run(setup, name, batches, steps):
    mesh, step, fresh = setup[name]
    state = fresh()
    metrics = []
    for batch in batches[:steps]:
        state, m = step(state, jax.device_put(batch, batch_sharding(mesh)))
        metrics.append(jax.device_get(m))
    return state, metrics


def _first_steps(setup, name, batches):
    """The metrics of one step from the initial state on each batch.

    Trajectories are not compared: after one Adam step the two runs hold parameters that differ where
    Adam normalised rounding noise into a full step (see below), so later losses differ by ~1e-4
    (measured: step 2 loss 0.525771 vs 0.525870 on a 2-core AVX2 machine) for reasons unrelated to sharding.
    """
    mesh, step, fresh = setup[name]
    return [jax.device_get(step(fresh(), jax.device_put(b, batch_sharding(mesh)))[1]) for b in batches]


def test_sharded_step_equals_single_device_step(setup, batches):
    m1 = _first_steps(setup, "single", batches)
    m8 = _first_steps(setup, "sharded", batches)
    for a, b in zip(m1, m8, strict=True):
        assert a["num_clicks"] == b["num_clicks"]
        for key in ("loss", "iou", "grad_norm"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7)
    assert {int(m["num_clicks"]) for m in m1} != {0}, "exercise the click simulation"
    s8, _ = _run(setup, "sharded", batches, 1)
    # The sharded state really is laid out on all 8 devices, and each device sees 1 of the 8 images:
    # data parallelism with gradient all-reduces, no gathering of the batch.
    leaf = jax.tree.leaves(s8.params)[0]
    assert len(leaf.sharding.device_set) == 8 and leaf.sharding.is_fully_replicated
    mesh, step, _ = setup["sharded"]
    hlo = step.lower(s8, jax.device_put(batches[0], batch_sharding(mesh))).compile().as_text()
    assert "u8[1,112,112,3]" in hlo and "all-reduce" in hlo and "all-gather" not in hlo

    # After one step: gradients (Adam's first moment is 0.1·g) agree to float32 reduction-order noise.
    # Measured on a 2-core AVX2 machine: the largest difference is 6.6e-5 of the largest gradient entry
    # (the gradient norms agree to 3e-6; per leaf, small leaves such as a LayerNorm scale differ by up to
    # 1.3e-3 of their own scale). Sharding bugs (a missing all-reduce, a per-shard mean) are errors of 10-100 %.
    s1, _ = _run(setup, "single", batches, 1)
    s8, _ = _run(setup, "sharded", batches, 1)
    mu1, mu8 = (np.concatenate([np.ravel(a) for a in jax.tree.leaves(s.opt_state[0].mu)]) for s in (s1, s8))
    assert np.max(np.abs(mu1 - mu8)) <= 1e-3 * np.max(np.abs(mu1))
    # ... and so do the updated parameters, except where Adam normalises pure rounding noise into a full
    # step (gradients that are zero in exact arithmetic, e.g. attention key biases or biases before a
    # GroupNorm): Adam's first step moves a parameter by at most lr, so two such steps differ by ≤ 2·lr.
    lr = CONFIG.learning_rate
    diffs = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel()
                            for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s8.params), strict=True)])
    assert diffs.max() <= 2 * lr * (1 + 1e-5) and np.mean(diffs <= 1e-6) > 0.999


def test_frozen_encoder_has_no_optimizer_state(setup, batches):
    _, _, fresh = setup["sharded"]
    state = fresh()
    assert set(state.frozen) == {"encoder"} and "encoder" not in state.params
    n_trainable, size_trainable = count_leaves(state.params)
    n_opt, size_opt = count_leaves(state.opt_state)
    # Adam: one first and one second moment per trainable leaf, plus two step counters; nothing else.
    assert n_opt == 2 * n_trainable + 2 and size_opt == 2 * size_trainable + 2
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state.opt_state)]
    assert not any("encoder" in p for p in paths)
    encoder_before = jax.device_get(state.frozen)
    trainable_before = jax.device_get(state.params)
    state, _ = _run(setup, "sharded", batches, 1)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.frozen), encoder_before)
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), jax.device_get(state.params), trainable_before)
    assert all(jax.tree.leaves(changed["fusion"])) and all(jax.tree.leaves(changed["fuse"]))


def test_trained_encoder_gets_optimizer_state():
    config = dataclasses.replace(CONFIG, model=dataclasses.replace(CONFIG.model, train_encoder=True))
    tx = make_optimizer(config)
    state = create_train_state(config, init_params(config.model, 0), make_mesh(jax.devices()[:1]), tx)
    assert state.frozen == {} and "encoder" in state.params
    assert count_leaves(state.opt_state)[0] == 2 * count_leaves(state.params)[0] + 2


def test_tiny_model_overfits_a_fixed_batch(setup, batches):
    """The same 8 samples for 60 steps: the loss halves and the batch IoU goes from ~0.2 to > 0.9.

    (The normalised focal loss is a β-weighted mean of -log pt over the hardest pixels, so it falls much
    more slowly than the error: measured 0.33 → 0.15 while the IoU reaches 0.94.)"""
    mesh, step, fresh = setup["sharded"]
    state = fresh()
    batch = jax.device_put(batches[0], batch_sharding(mesh))
    losses = []
    ious = []
    for _ in range(60):
        state, m = step(state, batch)
        losses.append(float(m["loss"]))
        ious.append(float(m["iou"]))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < losses[0] / 2, (losses[0], losses[-5:])
    assert ious[0] < 0.5 and np.mean(ious[-5:]) > 0.9, (ious[0], ious[-5:])
