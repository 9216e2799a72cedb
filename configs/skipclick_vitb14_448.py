"""SkipClick, the released model — paper Tab. 1/4 row "+ Skip Connections" (WSESeg avg NoC@85/90 6.494 / 9.163,
GrabCut NoC@90 1.44).

Reproduces `models/iter_mask/featurevit_base448_cocolvis_itermask_intermediate_skip.py` (MODEL_NAME
`cocolvis_featurevit_base448_intermediate_plus4_skip`): frozen DINOv2 ViT-B/14-reg, taps 2/5/8/11 fused, a
4-block fusion transformer, SimpleFPN with skip connections, trained on COCO+LVIS with the recipe of SPEC 5.
Every field of the recipe is spelled out here; the other configs differ only in the model.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.data.config import AugmentConfig, SamplerConfig, TrainDataConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        name="skipclick_vitb14_448",
        model=SkipClickConfig.skipclick_vitb14_448(),
        data=TrainDataConfig(
            augment=AugmentConfig(crop_size=(448, 448), scale_range=(0.75, 1.40), flip_prob=0.5),
            sampler=SamplerConfig(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15,
                                  max_num_merged_objects=2),
            stuff_prob=0.30,
            min_object_area=1000,
            keep_background_prob=0.05,
            epoch_len=30000,
        ),
        batch_size=32,
        num_epochs=55,
        learning_rate=5e-5,
        adam_b1=0.9,
        adam_b2=0.999,
        adam_eps=1e-8,
        lr_milestones=(50, 55),
        lr_decay=0.1,
        max_num_next_clicks=3,
        loss_alpha=0.5,
        loss_gamma=2.0,
        compute_dtype="float32",
        checkpoint_every_steps=0,  # once per epoch
    )
