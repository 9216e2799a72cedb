"""Weight conversion between the original PyTorch checkpoints and Flax parameters."""

from .dinov2_hub import read_dinov2_pth
from .mapping import UNUSED_BY_FORWARD, Entry, dinov2_entries, skipclick_entries
from .skipclick_checkpoint import infer_config, read_skipclick_pth
from .strict import flax_to_torch, torch_to_flax
from .torch_io import CheckpointError, read_pth

__all__ = [
    "UNUSED_BY_FORWARD", "CheckpointError", "Entry", "dinov2_entries", "flax_to_torch", "infer_config",
    "read_dinov2_pth", "read_pth", "read_skipclick_pth", "skipclick_entries", "torch_to_flax",
]
