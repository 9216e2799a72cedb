"""Training: the paper's recipe (SPEC 5) on a sharded, resumable JAX loop.

    from skipclick_jax.train import preset, train
    result = train(preset("tiny"), "runs/tiny", source=my_source)
    model, params = skipclick_jax.load_checkpoint(result.export_dir)

Modules: `config` (TrainConfig, presets, overrides), `loss` (normalised focal loss, batch IoU), `clicks`
(training click rule with OpenCV's mask-5 distance transform, on device), `state` (TrainState, optimiser,
mesh), `step` (the jitted step), `checkpointing` (Orbax manager + export), `loop` (`train`), `command`
(`skipclick train`), `bench` (step images/s and FLOPs: `skipclick bench-train`). Names are
imported lazily so that `skipclick --help` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config", "apply_overrides": "config", "load_config": "config", "preset": "config",
    "PRESETS": "config",
    "normalized_focal_loss": "loss", "batch_iou": "loss",
    "add_next_points": "clicks", "chamfer_distance_5x5": "clicks",
    "TrainState": "state", "create_train_state": "state", "make_mesh": "state", "make_optimizer": "state",
    "make_train_step": "step", "train_step": "step",
    "TrainCheckpointer": "checkpointing", "export_params": "checkpointing",
    "train": "loop", "TrainResult": "loop", "NonFiniteLossError": "loop", "initial_params": "loop",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
