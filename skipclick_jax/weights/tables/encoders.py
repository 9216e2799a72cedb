"""The hub table of either encoder family, chosen by its configuration."""

from __future__ import annotations

from ...config import DinoV3Config, Encoder
from . import Entry
from .dinov2 import dinov2_entries
from .dinov3 import dinov3_entries


def encoder_entries(config: Encoder, torch_prefix: str = "", flax_path: tuple[str, ...] = ()) -> list[Entry]:
    """DINOv2 or DINOv3 hub layout ↔ the `DinoV2` / `DinoV3` module."""
    table = dinov3_entries if isinstance(config, DinoV3Config) else dinov2_entries
    return table(config, torch_prefix, flax_path)
