"""A tiny SkipClick checkpoint on disk and its two deployable exports, made once for the deploy tests
(each export goes through `skipclick export`'s own function, as the command runs it)."""

from __future__ import annotations

import numpy as np
import pytest

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.model.init import init_params
from skipclick_jax.model.skipclick import SkipClick
from skipclick_jax.weights import export_checkpoint, load_checkpoint, save_params

SIZE = 112  # the tiny preset's training size: an 8×8 token grid


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """(path, model, params) of a tiny SkipClick with random weights, as `load_checkpoint` returns them."""
    config = SkipClickConfig.tiny()
    path = save_params(tmp_path_factory.mktemp("deploy") / "tiny", config, init_params(config, seed=5))
    model, params = load_checkpoint(path)
    assert isinstance(model, SkipClick)
    return path, model, params


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    """The ONNX export directory of the tiny checkpoint (`skipclick export CKPT OUT --format onnx`)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("onnx") / "tiny_onnx"
    report = export_checkpoint(tiny_checkpoint[0], out, fmt="onnx")
    assert report.fmt == "onnx" and report.out == out
    return out


@pytest.fixture(scope="session")
def tiny_stablehlo(tiny_checkpoint, tmp_path_factory):
    """The StableHLO export directory of the tiny checkpoint (`--format stablehlo`)."""
    out = tmp_path_factory.mktemp("stablehlo") / "tiny_stablehlo"
    export_checkpoint(tiny_checkpoint[0], out, fmt="stablehlo")
    return out


def click_states(size: int, batch: int, seed: int) -> list[np.ndarray]:
    """Several click states as float64 (batch, 2N, 3) points: no click, one positive, positives and negatives
    with fractional coordinates, clicks on the borders, and more rows than clicks (padding)."""
    rng = np.random.default_rng(seed)

    def state(n_pos: int, n_neg: int, slots: int) -> np.ndarray:
        points = np.full((batch, 2 * slots, 3), -1.0)
        for b in range(batch):
            points[b, :n_pos, :2] = rng.uniform(0, size - 1, (n_pos, 2))
            points[b, slots:slots + n_neg, :2] = rng.uniform(0, size - 1, (n_neg, 2))
            points[b, :n_pos, 2] = np.arange(n_pos)
            points[b, slots:slots + n_neg, 2] = np.arange(n_neg)
        return points

    borders = state(1, 1, 2)
    borders[:, 0, :2] = (0.0, size - 1.0)
    borders[:, 2, :2] = (size - 1.0, 0.25)
    return [state(0, 0, 1), state(1, 0, 1), state(3, 2, 3), state(5, 4, 24), borders]


CAPACITY = 24  # click slots per sign of the JAX reference: every state padded to it, so one compile serves all


@pytest.fixture(scope="session")
def jax_logits(tiny_checkpoint):
    """(images NHWC, prev NHWC, float64 points) → JAX logits NHWC, the points encoded on the host with the
    original's float64 arithmetic (as `SkipClick.decode` does for float64 numpy points), encode and decode
    jitted once."""
    import jax

    from skipclick_jax.model.clicks import click_offsets

    _, model, params = tiny_checkpoint
    encode = jax.jit(lambda p, x: model.apply({"params": p}, x, method=SkipClick.encode))
    decode = jax.jit(lambda p, f, prev, offsets: model.apply({"params": p}, f, prev, offsets,
                                                             method=SkipClick.decode))

    def logits(images: np.ndarray, prev: np.ndarray, points: np.ndarray) -> np.ndarray:
        n = points.shape[1] // 2
        pad = np.full((points.shape[0], CAPACITY - n, 3), -1.0)
        padded = np.concatenate([points[:, :n], pad, points[:, n:], pad], axis=1)
        offsets = click_offsets(padded, images.shape[1], images.shape[2])
        return np.asarray(decode(params, encode(params, images), prev, offsets))

    return logits
