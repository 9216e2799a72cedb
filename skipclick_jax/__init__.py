"""SkipClick interactive segmentation in JAX/Flax.

    from skipclick_jax import SkipClick, load_checkpoint
    model, params = load_checkpoint(path)
    logits = model.apply({'params': params}, image, prev_mask, points)
"""

from .checkpoint import load_checkpoint, save_params
from .config import DinoV2Config, SkipClickConfig, preset
from .convert.torch_io import CheckpointError
from .model import ImageFeatures, SkipClick

__all__ = [
    "CheckpointError", "DinoV2Config", "ImageFeatures", "SkipClick", "SkipClickConfig", "load_checkpoint",
    "preset", "save_params",
]
