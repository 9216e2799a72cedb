"""SkipClick around DINOv3 — the repository README's "SkipClick (DINOv3)" row, its best released model (NoC@90:
GrabCut 1.42, Berkeley 2.45, SBD 6.16, DAVIS 4.79, HQSeg-44K 5.77).

Reproduces `models/iter_mask/featurevit_dinov3_base448_cocolvis_itermask_intermediate_skip.py` (branch master,
MODEL_NAME `cocolvis_featurevit_dinov3_base448_intermediate_plus4_skip`): frozen DINOv3 ViT-B/16 (patch 16, RoPE,
4 storage tokens), taps 2/5/8/11 through its final LayerNorm, fused; 28×28 fusion grid at 448; otherwise the
released DINOv2 model and the same training recipe (its PadIfNeeded value=0.0 is the default's behaviour).

Training trap, reproduced by default (`dinov3_train_rope_rescale`): the original's loss pass runs the frozen
DINOv3 in train mode, whose RoPE multiplies the coordinates by a random factor per block (log-uniform in
[1/2, 2]); the simulated clicks run it in eval mode. Train from the hub weights:
`--encoder-weights dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth`.
"""

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="skipclick_dinov3_vitb16_448", model=SkipClickConfig.skipclick_dinov3_vitb16_448(),
                       dinov3_train_rope_rescale=True)
