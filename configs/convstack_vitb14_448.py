"""The conv-modulation-stack experiment of the repository (branch master; no released weights, no paper row).

Reproduces `models/iter_mask/featureconv_base448_cocolvis_itermask_intermediate_skip.py` (`use_conv_stack=True`):
the released DINOv2 SkipClick with the 4-block fusion transformer replaced by 4 Conv2Former-style modulation
blocks (`models_conv.SimpleModulationStack`: depthwise 11×11 modulation, 3×3 positional conv in the MLP, no
position embedding), same training recipe.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="convstack_vitb14_448", model=SkipClickConfig.convstack_vitb14_448())
