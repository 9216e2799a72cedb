"""Flax → PyTorch export and lossless round trips: original `.pth`, safetensors, Hugging Face DINOv2.

    from skipclick_jax.export import export_checkpoint, save_original_pth, save_skipclick_safetensors
    export_checkpoint("run/ckpt", "skipclick.pth")            # what `skipclick export` does
    save_original_pth("skipclick.pth", model.config, params)  # from parameters in memory (sharded or not)

Every conversion uses the key table of `skipclick_jax.convert.mapping` (exact permutations) plus, for Hugging
Face names, the small encoder table in `hf_dinov2`; writes are atomic; safetensors writes stream one tensor
at a time from (possibly sharded) device arrays.
"""

from .command import ExportReport, export_checkpoint, output_format
from .formats import (
    read_dinov2_safetensors,
    read_hf_dinov2_dir,
    read_skipclick_safetensors,
    save_dinov2_safetensors,
    save_hf_dinov2_dir,
    save_skipclick_safetensors,
)
from .hf_dinov2 import config_from_hf, hf_config
from .load import Weights, load_dinov2_weights, load_weights
from .original import extractor_type, original_record, save_dinov2_pth, save_original_pth, unrecorded_fields
from .safetensors_io import SafetensorsFile, write_safetensors
from .tensors import TensorSource, torch_sources

__all__ = [
    "ExportReport", "SafetensorsFile", "TensorSource", "Weights", "config_from_hf", "export_checkpoint",
    "extractor_type", "hf_config", "load_dinov2_weights", "load_weights", "original_record", "output_format",
    "read_dinov2_safetensors", "read_hf_dinov2_dir", "read_skipclick_safetensors", "save_dinov2_pth",
    "save_dinov2_safetensors", "save_hf_dinov2_dir", "save_original_pth", "save_skipclick_safetensors",
    "torch_sources", "unrecorded_fields", "write_safetensors",
]
