"""Tiny CPU-sized run (no paper row): the tiny model (48-wide 4-block encoder, 112 px) with every code path
of the full one, for tests, smoke runs and quick starts on synthetic data.

Differs from the paper's recipe on purpose: batch 8, 64-sample epochs, 4 epochs, lr 1e-3 (decayed ×0.1 at
epoch 3), a checkpoint every 4 steps, per-step logging and in-process data loading.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.data.config import AugmentConfig, TrainDataConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        name="tiny",
        model=SkipClickConfig.tiny(),
        data=TrainDataConfig(augment=AugmentConfig(crop_size=(112, 112)), min_object_area=100, epoch_len=64),
        batch_size=8,
        num_epochs=4,
        learning_rate=1e-3,
        lr_milestones=(3,),
        checkpoint_every_steps=4,
        log_every_steps=1,
        num_workers=0,
    )
