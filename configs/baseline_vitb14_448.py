"""Paper Tab. 1/4 row "Baseline" (WSESeg avg NoC@85/90 9.463 / 12.031, GrabCut NoC@90 1.74).

Reproduces `models/iter_mask/featurevit_base448_cocolvis_itermask_unfrozen.py` (MODEL_NAME
`cocolvis_featurevit_base448_unfrozen_plus4`): as "+ Frozen Backbone" but the DINOv2 encoder is trained
(`trained_extractor=True`), so it is differentiated and carries Adam moments. Single tap = block 2 as in
the public code (SPEC 1.15: only blocks 0-2 then receive gradients). Training recipe: SPEC 5.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="baseline_vitb14_448", model=SkipClickConfig.baseline_vitb14_448())
