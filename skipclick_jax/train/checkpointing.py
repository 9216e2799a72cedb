"""Resumable training checkpoints (Orbax) and the exported parameters users load.

Layout of a work directory::

    <workdir>/train_config.json        the TrainConfig of the run
    <workdir>/checkpoints/<step>/      Orbax CheckpointManager steps (async, atomic), two items:
        state/                         TrainState: step, params, frozen, opt_state, rng (StandardSave)
        data/                          Grain iterator state, one JSON per process (grain's handler):
                                       process_<i>-of-<n>.json
    <workdir>/export/                  `skipclick_jax.load_checkpoint(<workdir>/export)` format
                                       (config.json + params/), refreshed at every checkpoint (or, with
                                       export_with_checkpoints=False, written when the run ends)

Resuming restores the newest complete step (Orbax never exposes a half-written one) with abstract
targets carrying their shardings, so arrays land directly on the mesh and optax keeps its types. The
state is replicated, so a checkpoint restores on any number of processes and devices. The data position
is restored from this process's iterator file when the process count is the one that wrote it; otherwise
(2 processes resuming a 1-process run, or the reverse) it is derived from the step: the stream is a pure
function of (seed, global draw index), and after `step` steps every host has consumed `step` batches.
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

    def restore(self, abstract_state: TrainState, data_iterator: Any, step: int | None = None,
                num_workers: int = 0) -> TrainState:
        """Restore the newest (or a given) step into `abstract_state`'s structure and shardings;
        `data_iterator` (a fresh iterator of the same dataset, `num_workers` Grain workers) is moved to the
        saved position (see the module docstring for a checkpoint written by another number of processes)."""
        step = self.manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if not self.has_data_state(step):
            state = self.restore_state(abstract_state, step)
            data_iterator.set_state(iterator_state_at(step, num_workers))
            return state
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

    def has_data_state(self, step: int) -> bool:
        """Whether `step` holds this process's iterator state for the current number of processes."""
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        return (self.directory / str(step) / "data" / name).exists()

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


def iterator_state_at(batches: int, num_workers: int = 0) -> dict[str, Any]:
    """Grain's iterator state after `batches` batches of `make_train_dataset` (each host's iterator yields
    one batch per step): `{"next_index": n}` in-process; with `mp_prefetch`, worker w yields batches
    w, w + W, …, so each worker's own position is the number of those below `batches`."""
    if num_workers == 0:
        return {"next_index": batches}
    w = num_workers
    return {
        "next_index_in_cycle": batches % w,
        "next_index_in_datasets": w,
        "iterators_in_use_indices": list(range(w)),
        "iterators_in_use_states": [{"next_index": (batches - i + w - 1) // w} for i in range(w)],
        "exhausted": [0] * w,
        "future_states": {},
    }


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
