"""Resumable training checkpoints (Orbax) and the exported parameters users load.

Layout of a work directory::

    <workdir>/train_config.json        the TrainConfig of the run
    <workdir>/checkpoints/<step>/      Orbax CheckpointManager steps (async, atomic), two items:
        state/                         TrainState: step, params, frozen, opt_state, rng (StandardSave)
        data/                          Grain iterator state, one JSON per process (grain's handler)
    <workdir>/export/                  `skipclick_jax.load_checkpoint(<workdir>/export)` format
                                       (config.json + params/), refreshed at every checkpoint (or, with
                                       export_with_checkpoints=False, written when the run ends)

Resuming restores the newest complete step (Orbax never exposes a half-written one) with abstract
targets carrying their shardings, so arrays land directly on the mesh and optax keeps its types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from ..config import SkipClickConfig
from ..weights.orbax import save_params
from .config import TrainConfig
from .state import TrainState

CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "export"


def _as_dict(state: TrainState) -> dict[str, Any]:
    """The state as a plain dict (Orbax names the items by key); an empty `frozen` is left out."""
    out = {"step": state.step, "params": state.params, "opt_state": state.opt_state, "rng": state.rng}
    if state.frozen:
        out["frozen"] = state.frozen
    return out


class TrainCheckpointer:
    """An Orbax `CheckpointManager` saving the train state and the data iterator together."""

    def __init__(self, workdir: str | Path, config: TrainConfig):
        self.directory = Path(workdir).absolute() / CHECKPOINT_DIR
        options = ocp.CheckpointManagerOptions(
            max_to_keep=config.keep_checkpoints,
            keep_period=config.keep_period_steps or None,
            enable_async_checkpointing=True,
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state: TrainState, data_iterator: Any) -> None:
        """Start an async save of `state` (at its step) and the iterator's position.

        Returns once the arrays are copied off the devices and the iterator state is taken, so the state
        may be donated to the next step right away.
        """
        step = int(jax.device_get(state.step))
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_as_dict(state)),
            data=grain.checkpoint.CheckpointSave(data_iterator),
        )
        self.manager.save(step, args=args, force=True)

    def restore(self, abstract_state: TrainState, data_iterator: Any, step: int | None = None) -> TrainState:
        """Restore the newest (or a given) step into `abstract_state`'s structure and shardings;
        `data_iterator` (a fresh iterator of the same dataset) is moved to the saved position."""
        step = self.manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_as_dict(abstract_state)),
                data=grain.checkpoint.CheckpointRestore(data_iterator),
            ),
        )
        items = dict(restored["state"])
        items.setdefault("frozen", {})
        return TrainState(**items)

    def restore_state(self, abstract_state: TrainState, step: int | None = None) -> TrainState:
        """Only the train state (e.g. to export a checkpoint without the data pipeline)."""
        step = self.manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_as_dict(abstract_state)))
        )
        items = dict(restored["state"])
        items.setdefault("frozen", {})
        return TrainState(**items)

    def wait(self) -> None:
        """Block until pending saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def export_params(
    out_dir: str | Path, model_config: SkipClickConfig, params: Any, metadata: dict[str, Any] | None = None
) -> Path:
    """Write full parameters in the `skipclick_jax.load_checkpoint` format (`save_params`).

    Parameters are replicated, so every process holds them; process 0 alone writes (atomically replacing
    `out_dir`). All processes call this (the device-to-host copy is collective-free but keeps them in step).
    """
    host = jax.tree.map(lambda x: np.asarray(jax.device_get(x), np.float32), params)
    out_dir = Path(out_dir)
    if jax.process_index() == 0:
        save_params(out_dir, model_config, host, overwrite=True, metadata=metadata)
    return out_dir
