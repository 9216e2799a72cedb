"""What the exporters share: the network size check, the traced example shapes, the size-only constants."""

from __future__ import annotations

from typing import Any

import jax

from ..config import SkipClickConfig
from ..model.skipclick import SkipClick
from .errors import UnsupportedExport

# Traced example shapes. torch.export specialises dimensions that are 0 or 1 in the example, so the example
# batch is 2 and the example has 3 click slots per sign; the graphs accept any batch ≥ 1 and N ≥ 1.
EXAMPLE_BATCH = 2
EXAMPLE_SLOTS = 3


def network_size(config: SkipClickConfig, size: int | None) -> int:
    """The exported network input side: `size` (default the training size), a positive multiple of the patch."""
    size = config.image_size if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % config.patch_size:
        raise UnsupportedExport(f"network size {size!r} must be a positive multiple of the patch size "
                                f"{config.patch_size}")
    return size


def fusion_pos_embed(model: SkipClick, params: Any, size: int) -> jax.Array | None:
    """The fusion transformer's position embedding resized to S's token grid (None for the conv stack):
    it depends on the weights and S only, so exported graphs hold it as a constant."""
    if model.config.fusion_block != "transformer":
        return None
    grid = size // model.config.patch_size
    return model.apply({"params": params}, (grid, grid), method=lambda m, g: m.fusion.position_embedding(g))
