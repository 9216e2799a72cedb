"""Repository configuration with DINOv2 ViT-g/14-reg (not in the paper's tables).

Reproduces `models/iter_mask/featurevit_giant448_cocolvis_itermask_intermediate.py` (MODEL_NAME
`cocolvis_featurevit_giant448_intermediate_plus4`): frozen ViT-g taps 2/5/8/11 fused into 1536 channels,
no skip connections, FPN widths 240/480/960/1920. Training recipe: SPEC 5, as in `skipclick_vitb14_448.py`.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="intermediate_vitg14_448", model=SkipClickConfig.intermediate_vitg14_448())
