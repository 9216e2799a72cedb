"""Tiny CPU-sized run (no paper row): the tiny model (48-wide 4-block encoder, 112 px) with every code path
of the full one, for tests, smoke runs and quick starts on synthetic data.

Differs from the paper's recipe on purpose: batch 8, 64-sample epochs, 4 epochs, lr 1e-3 (decayed ×0.1 at
epoch 3), a checkpoint every 4 steps, per-step logging and in-process data loading.
"""

from skipclick_jax.train.config import TrainConfig, tiny


def get_config() -> TrainConfig:
    return tiny()  # the package's preset, so the file and `--config tiny` cannot drift apart
