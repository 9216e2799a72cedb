"""Paper Tab. 1/4 row "+ Frozen Backbone" (WSESeg avg NoC@85/90 9.416 / 11.951, GrabCut NoC@90 1.72).

Reproduces `models/iter_mask/featurevit_base448_cocolvis_itermask.py` (MODEL_NAME
`cocolvis_featurevit_base448_plus4`): frozen DINOv2, a single tap, no fuse, no skips. As in the public
code, `use_intermediate=[11]` takes the *first* default tap, the output of block 2 (SPEC 1.15).
Training recipe: the paper's (SPEC 5), as in `skipclick_vitb14_448.py`.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="frozen_vitb14_448", model=SkipClickConfig.frozen_vitb14_448())
