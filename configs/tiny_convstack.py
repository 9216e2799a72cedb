"""Tiny CPU-sized run around the tiny conv-modulation-stack model — no paper row: the `tiny` run's recipe, for
tests, smoke runs and quick starts on synthetic data.
"""

from skipclick_jax.train.config import TrainConfig, tiny


def get_config() -> TrainConfig:
    return tiny("tiny_convstack")  # the package's preset, so the file and `--config tiny_convstack` cannot drift apart
