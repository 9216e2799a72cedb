"""Deployable artifacts of a SkipClick checkpoint: an ONNX encoder / click pair and serialized StableHLO.

    skipclick export CKPT OUT --format onnx       encoder.onnx + click.onnx + metadata.json (ONNX Runtime)
    skipclick export CKPT OUT --format stablehlo  encode.jax_export + click.jax_export + metadata.json

Modules: `to_onnx` (the ONNX export, traced from the package's PyTorch model), `torch_graphs` (the two
traced modules), `stablehlo` (the `jax.export` functions), `ort_model` (`OnnxSkipClick`: the pair on ONNX
Runtime with checked inputs), `timing` (`time_onnx_pair`), `metadata` (the JSON beside the graphs),
`size` (what both exporters share), `errors`. Only `stablehlo` and `metadata` import nothing optional;
`to_onnx` needs the `onnx` extra, `ort_model` / `timing` need onnxruntime.
"""

from .errors import UnsupportedExport
from .metadata import read_metadata

__all__ = ["UnsupportedExport", "read_metadata"]
