"""Tiny CPU-sized run around the tiny DINOv3 model (48-wide 4-block DINOv3 encoder, patch 16, 112 px) — no
paper row: the `tiny` run's recipe, for tests, smoke runs and quick starts on synthetic data.
"""

from skipclick_jax.train.config import TrainConfig, tiny


def get_config() -> TrainConfig:
    return tiny("tiny_dinov3")  # the package's preset, so the file and `--config tiny_dinov3` cannot drift apart
