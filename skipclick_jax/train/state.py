"""Train state, optimiser and their placement on the device mesh.

The parameter tree is split in two: `params` (trainable, differentiated, with Adam moments) and `frozen`
(the DINOv2 encoder unless `model.train_encoder`). The optimiser only ever sees `params`, so the frozen
encoder carries no optimiser state at all — not zero moments, no leaves — and is never differentiated.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..config import SkipClickConfig
from .config import TrainConfig

DATA_AXIS = "data"
ENCODER = "encoder"


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; saved as one Orbax item.

    step:      int32 scalar, number of optimiser steps taken
    params:    trainable parameters (float32)
    frozen:    parameters without gradients (the encoder when it is frozen; {} otherwise)
    opt_state: optax state of `params` only
    rng:       raw uint32 key data; step k uses fold_in(rng, k), so a resumed run draws the same numbers
    """

    step: jax.Array
    params: dict[str, Any]
    frozen: dict[str, Any]
    opt_state: Any
    rng: jax.Array

    def full_params(self) -> dict[str, Any]:
        """The complete SkipClick parameter tree (what `SkipClick.apply` and `save_params` take)."""
        return merge_params(self.params, self.frozen)


def split_params(params: dict[str, Any], config: SkipClickConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainable, frozen) top-level subtrees of a full parameter tree."""
    if config.train_encoder:
        return dict(params), {}
    trainable = {k: v for k, v in params.items() if k != ENCODER}
    return trainable, {ENCODER: params[ENCODER]}


def merge_params(trainable: dict[str, Any], frozen: dict[str, Any]) -> dict[str, Any]:
    return {**trainable, **frozen}


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """MultiStepLR as the original steps it (once per epoch): lr × decay^(number of milestones ≤ epoch)."""
    spe = config.steps_per_epoch
    boundaries: dict[int, float] = {}
    for m in config.lr_milestones:
        boundaries[m * spe] = boundaries.get(m * spe, 1.0) * config.lr_decay
    return optax.piecewise_constant_schedule(config.learning_rate, boundaries)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """torch.optim.Adam(lr, betas, eps, weight_decay=0) on the schedule (same update rule as optax.adam)."""
    return optax.adam(learning_rate_schedule(config), b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D data-parallel mesh over all (global) devices.

    Axis type Auto: the model code is sharding-agnostic and XLA propagates the batch sharding (the
    `jax.make_mesh` default, Explicit, would make every reshape of a sharded dimension spell it out).
    """
    devices = devices if devices is not None else jax.devices()
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def _put_replicated(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A host array (identical on every process) as a global replicated array, without a staging copy."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def create_train_state(
    config: TrainConfig, params: dict[str, Any], mesh: Mesh, tx: optax.GradientTransformation
) -> TrainState:
    """Place host parameters (e.g. `init_params` + loaded encoder) on the mesh and build the state.

    Every array is created directly with its final (replicated) sharding: parameters from host memory,
    optimiser moments by a jitted `tx.init` with `out_shardings`.
    """
    sharding = replicated(mesh)
    trainable, frozen = split_params(params, config.model)
    trainable = jax.tree.map(lambda x: _put_replicated(np.asarray(x, np.float32), sharding), trainable)
    frozen = jax.tree.map(lambda x: _put_replicated(np.asarray(x, np.float32), sharding), frozen)
    opt_shapes = jax.eval_shape(tx.init, trainable)
    opt_state = jax.jit(tx.init, out_shardings=jax.tree.map(lambda _: sharding, opt_shapes))(trainable)
    rng = jax.random.key_data(jax.random.key(config.seed))
    return TrainState(
        step=_put_replicated(np.int32(0), sharding),
        params=trainable,
        frozen=frozen,
        opt_state=opt_state,
        rng=_put_replicated(np.asarray(rng), sharding),
    )


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """The sharding tree of a (possibly abstract) state: everything replicated (data parallelism)."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda _: sharding, state)


def abstract_train_state(config: TrainConfig, mesh: Mesh, tx: optax.GradientTransformation) -> TrainState:
    """The state's structure as ShapeDtypeStructs carrying their shardings (restore target)."""
    from ..model import param_shapes

    shapes = param_shapes(config.model)
    trainable, frozen = split_params(shapes, config.model)
    state = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=trainable,
        frozen=frozen,
        opt_state=jax.eval_shape(tx.init, trainable),
        rng=jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))),
    )
    sharding = replicated(mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), state)


def count_leaves(tree: Any) -> tuple[int, int]:
    """(number of array leaves, number of scalars) of a pytree."""
    leaves = jax.tree.leaves(tree)
    return len(leaves), int(sum(np.size(x) for x in leaves))
