"""Weights and file formats: key tables, readers and writers, and one entry point that loads any source.

    from skipclick_jax.weights import load_checkpoint, load_encoder, load_weights
    model, params = load_checkpoint("cocolvis_skipclick.pth")        # .pth, .safetensors or a converted dir
    config, encoder = load_encoder("dinov2_vitb14_reg4_pretrain.pth")  # hub .pth, safetensors, HF directory
    export_checkpoint("converted/skipclick", "skipclick.pth")           # what `skipclick export` does

Layout: `tables/` (one key table per model family, each entry used in both directions), `mapping` (tables
applied strictly; streaming views for writers), `records` (the original config record, both ways), one
module per file format with its reader and writer (`pth`, `safetensors`, `orbax`, `hf_dir`), `encoders`
(encoder weights in hub or HF names), `load` (the entry point), and the `skipclick convert` / `skipclick
export` commands (`convert`, `export`).
"""

from .convert import ConversionReport, convert_file
from .errors import CheckpointError
from .export import ExportReport, export_checkpoint, output_format
from .hf_dir import read_hf_dir, save_hf_dir
from .load import Weights, load_checkpoint, load_encoder, load_weights
from .orbax import read_config, save_encoder, save_params
from .pth import read_encoder_pth, read_pth, read_skipclick_pth, save_encoder_pth, save_original_pth
from .records import extractor_type, infer_config, original_record, unrecorded_fields
from .safetensors import (
    SafetensorsFile,
    read_encoder_safetensors,
    read_skipclick_safetensors,
    save_encoder_safetensors,
    save_skipclick_safetensors,
    write_safetensors,
)

__all__ = [
    "CheckpointError", "ConversionReport", "ExportReport", "SafetensorsFile", "Weights", "convert_file",
    "export_checkpoint", "extractor_type", "infer_config", "load_checkpoint", "load_encoder", "load_weights",
    "original_record", "output_format", "read_config", "read_encoder_pth", "read_encoder_safetensors",
    "read_hf_dir", "read_pth", "read_skipclick_pth", "read_skipclick_safetensors", "save_encoder_pth",
    "save_encoder_safetensors", "save_encoder", "save_hf_dir", "save_original_pth", "save_params",
    "save_skipclick_safetensors", "unrecorded_fields", "write_safetensors",
]
