"""Independent PyTorch reference of SkipClick and DINOv2 for parity tests of the JAX port.

Written from the original sources' behaviour (isegm ``FeatureVitModel``, facebookresearch/dinov2) and
/work/shared/reference/SPEC.md; it shares no code with ``skipclick_jax``. State-dict keys, shapes and
checkpoint layouts are those of the originals, so checkpoints written here exercise the real conversion path.
"""

from .checkpoints import (
    IsegmStub,
    load_original_checkpoint,
    original_config,
    save_dinov2_hub_checkpoint,
    save_original_checkpoint,
)
from .dinov2 import ReferenceDinoV2, dinov2_kwargs
from .predictor import ReferencePredictor
from .random_init import randomize_
from .skipclick import IMAGENET_MEAN, IMAGENET_STD, ReferenceSkipClick, click_disk_maps

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IsegmStub",
    "ReferenceDinoV2",
    "ReferencePredictor",
    "ReferenceSkipClick",
    "click_disk_maps",
    "dinov2_kwargs",
    "load_original_checkpoint",
    "original_config",
    "randomize_",
    "save_dinov2_hub_checkpoint",
    "save_original_checkpoint",
]
