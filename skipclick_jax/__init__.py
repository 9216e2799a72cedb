"""SkipClick interactive segmentation in JAX/Flax.

    from skipclick_jax import SkipClick, load_checkpoint
    model, params = load_checkpoint(path)
    logits = model.apply({'params': params}, image, prev_mask, points)
"""

from .config import DinoV2Config, DinoV3Config, SkipClickConfig, preset
from .model import ImageFeatures, SkipClick
from .weights import load_checkpoint, save_params
from .weights.errors import CheckpointError

__all__ = [
    "CheckpointError", "DinoV2Config", "DinoV3Config", "ImageFeatures", "SkipClick", "SkipClickConfig",
    "load_checkpoint", "preset", "save_params",
]
