"""Independent PyTorch reference of SkipClick, DINOv2 and DINOv3 for parity tests of the JAX port.

Written from the original sources' behaviour (isegm ``FeatureVitModel`` incl. the DINOv3 and conv-modulation-stack
variants, facebookresearch/dinov2, facebookresearch/dinov3), /work/shared/reference/SPEC.md and
/work/notes/dinov3_convstack_spec.md; it shares no code with ``skipclick_jax``. State-dict keys, shapes and
checkpoint layouts are those of the originals, so checkpoints written here exercise the real conversion path.
"""

from .checkpoints import (
    DINOV3_REPO_PATH,
    DINOV3_WEIGHT_FILES,
    IsegmStub,
    load_original_checkpoint,
    original_config,
    save_dinov2_hub_checkpoint,
    save_dinov3_hub_checkpoint,
    save_original_checkpoint,
)
from .convstack import ReferenceModulationStack
from .dinov2 import ReferenceDinoV2, dinov2_kwargs
from .dinov3 import ReferenceDinoV3, RopeEmbedding, default_periods, dinov3_kwargs
from .predictor import ReferencePredictor
from .random_init import randomize_
from .skipclick import IMAGENET_MEAN, IMAGENET_STD, ReferenceSkipClick, click_disk_maps

__all__ = [
    "DINOV3_REPO_PATH",
    "DINOV3_WEIGHT_FILES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IsegmStub",
    "ReferenceDinoV2",
    "ReferenceDinoV3",
    "ReferenceModulationStack",
    "ReferencePredictor",
    "ReferenceSkipClick",
    "RopeEmbedding",
    "click_disk_maps",
    "default_periods",
    "dinov2_kwargs",
    "dinov3_kwargs",
    "load_original_checkpoint",
    "original_config",
    "randomize_",
    "save_dinov2_hub_checkpoint",
    "save_dinov3_hub_checkpoint",
    "save_original_checkpoint",
]
