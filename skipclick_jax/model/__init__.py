"""Flax (linen) modules of SkipClick."""

from .clicks import ClickOffsets, click_offsets, disk_maps
from .dinov2 import DinoV2
from .skipclick import ImageFeatures, SkipClick

__all__ = ["ClickOffsets", "DinoV2", "ImageFeatures", "SkipClick", "click_offsets", "disk_maps"]
