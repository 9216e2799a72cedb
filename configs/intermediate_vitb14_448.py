"""Paper Tab. 1/4 row "+ Intermediate Features" (WSESeg avg NoC@85/90 7.285 / 10.344, GrabCut NoC@90 1.40).

Reproduces `models/iter_mask/featurevit_base448_cocolvis_itermask_intermediate.py` (MODEL_NAME
`cocolvis_featurevit_base448_intermediate_plus4`): frozen DINOv2 taps 2/5/8/11 fused, no skip connections.
Training recipe: the paper's (SPEC 5), as in `skipclick_vitb14_448.py`.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="intermediate_vitb14_448", model=SkipClickConfig.intermediate_vitb14_448())
