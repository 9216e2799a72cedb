"""Flax (linen) modules of SkipClick."""

from .clicks import ClickOffsets, click_offsets, disk_maps
from .dinov2 import DinoV2
from .dinov3 import DinoV3
from .init import init_params
from .skipclick import ImageFeatures, SkipClick, param_shapes, prepare_variables

__all__ = [
    "ClickOffsets", "DinoV2", "DinoV3", "ImageFeatures", "SkipClick", "click_offsets", "disk_maps", "init_params",
    "param_shapes", "prepare_variables",
]
