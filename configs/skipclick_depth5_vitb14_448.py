"""Paper Tab. 6 (appendix B), fusion-transformer depth 5 (WSESeg avg NoC@85/90 6.689 / 9.310).

Reproduces `models/iter_mask/post_depth_ablation/featurevit_base448_cocolvis_itermask_intermediate_skip_p5.py`
(MODEL_NAME `cocolvis_featurevit_base448_intermediate_plus5_skip`): the full SkipClick model with 5
EncoderStack blocks instead of 4. Training recipe: SPEC 5, as in `skipclick_vitb14_448.py`.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="skipclick_depth5_vitb14_448", model=SkipClickConfig.skipclick_depth_vitb14_448(5))
