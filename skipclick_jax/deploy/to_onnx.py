"""`encoder.onnx` + `click.onnx` + `metadata.json`: the SkipClick split as an ONNX pair for ONNX Runtime.

Route: the package's PyTorch SkipClick (`skipclick_jax.pytorch`, loaded with the same weights) is traced
with `torch.onnx.export(dynamo=True)` into two graphs with a dynamic batch and a dynamic number of click
rows. Needs the `onnx` extra (torch, onnx, onnxscript); running the graphs needs onnxruntime only.

    encoder.onnx  image (B, 3, S, S) float32 RGB in [0, 1] (normalised inside)
                  → tokens (B, g·g, D) [, skip0..skip3: the image halves of the FPN first layers, NCHW]
    click.onnx    tokens [, skip0..skip3], prev_mask (B, 1, S, S) float32, points (B, 2N, 3) float64
                  → logits, probabilities (B, 1, S, S) float32

Each graph is one self-contained file (weights inside), so a checkpoint whose encoder weights exceed
protobuf's 2 GiB limit cannot be expressed and is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..atomic import atomic_directory
from ..config import SkipClickConfig
from ..model.skipclick import SkipClick
from .errors import UnsupportedExport
from .metadata import build_record, points_doc, tensor_spec, write_metadata
from .size import EXAMPLE_BATCH, EXAMPLE_SLOTS, fusion_pos_embed, network_size

ENCODER_FILE = "encoder.onnx"
CLICK_FILE = "click.onnx"
PROTOBUF_LIMIT = 2**31 - 1  # bytes: the largest ONNX file that holds its own weights
OPSET = 18


def weight_bytes(params: Any) -> tuple[int, int]:
    """float32 bytes of (the encoder's weights, the rest): an upper bound of what each graph stores."""
    size = lambda tree: 4 * sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
    return size(params["encoder"]), size({k: v for k, v in params.items() if k != "encoder"})


def check_expressible(config: SkipClickConfig, params: Any) -> None:
    """Refuse what a self-contained ONNX pair cannot hold (checked on shapes only, before any work)."""
    encoder, rest = weight_bytes(params)
    for name, n in ((ENCODER_FILE, encoder + rest), (CLICK_FILE, rest)):
        if n > PROTOBUF_LIMIT:
            raise UnsupportedExport(
                f"{name} would hold {n / 2**30:.2f} GiB of weights ({config.encoder_name}); a self-contained ONNX "
                f"file is limited to 2 GiB (protobuf). Use --format stablehlo for this checkpoint.")


def _require_exporter() -> Any:
    try:
        import onnx  # noqa: F401  (torch.onnx needs both)
        import onnxscript  # noqa: F401
        import torch
    except ImportError as e:
        raise ImportError(f"ONNX export needs the onnx extra: pip install 'skipclick-jax[onnx]' ({e})") from None
    return torch


@contextlib.contextmanager
def quiet_tracer() -> Iterator[None]:
    """Silence the exporter's progress prints, its "torchvision is not installed" log lines and the tracing
    stack's deprecation warnings: notes about torch internals, not about the model being exported."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(config: SkipClickConfig, params: Any, out_dir: str | Path, *, size: int | None = None,
                overwrite: bool = False) -> Path:
    """Write `encoder.onnx`, `click.onnx` and `metadata.json` into `out_dir` (atomically: all or nothing).

    Args:
        config, params: the SkipClick configuration and its (float32) Flax parameters.
        size: the network input side S (default: the training size); fixed in the graphs.
        overwrite: replace an existing `out_dir`.
    """
    size = network_size(config, size)
    check_expressible(config, params)
    torch = _require_exporter()
    from ..pytorch import torch_model
    from .torch_graphs import ClickGraph, EncoderGraph, SkipClickGraph, click_model, freeze_size_constants

    model = torch_model(config, params)
    freeze_size_constants(model, size)
    pos_embed = fusion_pos_embed(SkipClick(config), params, size)
    encoder = EncoderGraph(model, size).eval()
    click = (SkipClickGraph if config.skip_connections else ClickGraph)(click_model(model), size, pos_embed).eval()

    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((EXAMPLE_BATCH, 3, size, size), dtype=np.float32))
    with torch.no_grad():
        features = encoder(image)
    names = ["tokens"] + [f"skip{i}" for i in range(len(features) - 1)]
    prev = torch.zeros(EXAMPLE_BATCH, 1, size, size)
    points = torch.full((EXAMPLE_BATCH, 2 * EXAMPLE_SLOTS, 3), -1.0, dtype=torch.float64)
    points[:, 0] = torch.tensor([size / 3, size / 2, 0.0], dtype=torch.float64)

    batch = torch.export.Dim("batch", min=1)
    slots = torch.export.Dim("n", min=1)
    feature_dims = {n: {0: batch} for n in names}
    with atomic_directory(out_dir, overwrite) as tmp, quiet_tracer():
        torch.onnx.export(encoder, (image,), tmp / ENCODER_FILE, input_names=["image"], output_names=names,
                          dynamic_shapes={"image": {0: batch}}, dynamo=True, external_data=False,
                          opset_version=OPSET)
        torch.onnx.export(click, (*features, prev, points), tmp / CLICK_FILE,
                          input_names=[*names, "prev_mask", "points"], output_names=["logits", "probabilities"],
                          dynamic_shapes={**feature_dims, "prev_mask": {0: batch}, "points": {0: batch, 1: 2 * slots}},
                          dynamo=True, external_data=False, opset_version=OPSET)
        docs = ["image tokens entering the fusion stack (B, g·g, D)"]
        docs += ["image half of an FPN first layer (NCHW)"] * (len(names) - 1)
        feature_specs = [tensor_spec(n, ("batch", *f.shape[1:]), "float32", d)
                         for n, f, d in zip(names, features, docs, strict=True)]
        mask_shape = ("batch", 1, size, size)
        graphs = {
            "encoder": {"file": ENCODER_FILE,
                        "inputs": [tensor_spec("image", ("batch", 3, size, size), "float32", "RGB in [0, 1], NCHW")],
                        "outputs": feature_specs},
            "click": {"file": CLICK_FILE,
                      "inputs": [*feature_specs,
                                 tensor_spec("prev_mask", mask_shape, "float32", "previous probabilities"),
                                 tensor_spec("points", ("batch", "2*n", 3), "float64", points_doc(size))],
                      "outputs": [tensor_spec("logits", mask_shape, "float32", "mask logits at S"),
                                  tensor_spec("probabilities", mask_shape, "float32", "sigmoid of the logits")]},
        }
        write_metadata(tmp, build_record(config, size, "onnx", "NCHW", graphs) | {"opset": OPSET})
    return Path(out_dir)
