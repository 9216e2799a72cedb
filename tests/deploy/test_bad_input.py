"""Clear refusals: the ONNX Runtime wrapper names the input, the expected shape/dtype and what it got; an
export the format cannot express, or one that fails halfway, leaves nothing behind."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from skipclick_jax.cli import main
from skipclick_jax.config import SkipClickConfig
from skipclick_jax.deploy import UnsupportedExport
from skipclick_jax.deploy.stablehlo import export_stablehlo
from skipclick_jax.deploy.to_onnx import export_onnx
from skipclick_jax.model.skipclick import SkipClick, param_shapes
from skipclick_jax.weights import CheckpointError, export_checkpoint

from .conftest import SIZE


def test_wrapper_rejects_wrong_shapes_and_dtypes(tiny_onnx):
    pytest.importorskip("onnxruntime")
    from skipclick_jax.deploy.ort_model import OnnxSkipClick

    pair = OnnxSkipClick(tiny_onnx)
    image = np.zeros((2, 3, SIZE, SIZE), np.float32)
    with pytest.raises(TypeError, match=re.escape("image: expected dtype float32, got float64")):
        pair.encode(image.astype(np.float64))
    with pytest.raises(ValueError, match=re.escape(f"image: expected shape ('batch', 3, {SIZE}, {SIZE}), got (2, "
                                                   f"{SIZE}, {SIZE}, 3)")):
        pair.encode(np.zeros((2, SIZE, SIZE, 3), np.float32))  # NHWC instead of NCHW
    with pytest.raises(ValueError, match="axis 2 must be 112"):
        pair.encode(np.zeros((1, 3, 224, 224), np.float32))
    with pytest.raises(TypeError, match="expected a numpy array"):
        pair.encode(image.tolist())

    features = pair.encode(image)
    prev = np.zeros((2, 1, SIZE, SIZE), np.float32)
    points = np.full((2, 2, 3), -1.0)
    pair.click(features, prev, points)  # the well-formed call works
    with pytest.raises(TypeError, match=re.escape("points: expected dtype float64, got float32")):
        pair.click(features, prev, points.astype(np.float32))
    with pytest.raises(ValueError, match="points: axis 1 \\(2\\*n\\) must be an even number"):
        pair.click(features, prev, np.full((2, 3, 3), -1.0))
    with pytest.raises(ValueError, match="image: axis 0 \\(batch\\) must be >= 1, got 0"):
        pair.encode(np.zeros((0, 3, SIZE, SIZE), np.float32))
    with pytest.raises(ValueError, match="prev_mask: axis 0 is the batch dimension, 2 for the earlier inputs, got 1"):
        pair.click(features, prev[:1], points)
    with pytest.raises(ValueError, match=re.escape("features: expected the encoder's outputs ['tokens', 'skip0'")):
        pair.click({"tokens": features["tokens"]}, prev, points)


def _leftovers(parent) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_weights_over_the_protobuf_limit_are_refused_before_any_work(tmp_path):
    """DINOv2 ViT-g (1.1 B parameters, 4.4 GB) cannot live in one self-contained ONNX file: refused from the
    parameter shapes alone, nothing written."""
    config = SkipClickConfig.intermediate_vitg14_448()
    with pytest.raises(UnsupportedExport, match="encoder.onnx would hold 4.*GiB.*limited to 2 GiB.*stablehlo"):
        export_onnx(config, param_shapes(config), tmp_path / "giant")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["onnx", "stablehlo"])
def test_size_must_be_a_multiple_of_the_patch(tiny_checkpoint, tmp_path, fmt):
    path, model, params = tiny_checkpoint
    with pytest.raises(UnsupportedExport, match="network size 100 must be a positive multiple of the patch size 14"):
        export_checkpoint(path, tmp_path / "out", fmt=fmt, size=100)
    assert _leftovers(tmp_path) == []


def test_failure_halfway_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    """The click graph's export fails after encoder.onnx was written: the directory does not appear."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    _, model, params = tiny_checkpoint
    written = []

    def fake_export(module, args, path, **kwargs):  # stands for the tracer: writes a file, then fails
        if written:
            raise RuntimeError("simulated exporter failure")
        path.write_bytes(b"graph")
        written.append(path)

    monkeypatch.setattr(torch.onnx, "export", fake_export)
    with pytest.raises(RuntimeError, match="simulated"):
        export_onnx(model.config, params, tmp_path / "out")
    assert written[0].name == "encoder.onnx" and not written[0].exists()  # removed with the temporary directory
    assert _leftovers(tmp_path) == []


def test_stablehlo_failure_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    _, model, params = tiny_checkpoint
    monkeypatch.setattr(jax.export.Exported, "serialize", lambda self: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        export_stablehlo(SkipClick(model.config), params, tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_command_refusals(tiny_checkpoint, tmp_path, capsys):
    path = tiny_checkpoint[0]
    assert main(["export", str(path), str(tmp_path / "e"), "--format", "stablehlo", "--size", "100"]) == 2
    assert "error: network size 100 must be a positive multiple of the patch size 14" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="--format onnx exports a whole SkipClick model"):
        export_checkpoint(path, tmp_path / "a", fmt="onnx", dinov2_only=True)
    with pytest.raises(CheckpointError, match="--size applies to --format onnx / stablehlo only"):
        export_checkpoint(path, tmp_path / "b.pth", size=224)
    with pytest.raises(CheckpointError, match="--hf-names names weights"):
        export_checkpoint(path, tmp_path / "c", fmt="stablehlo", hf_names=True, dinov2_only=True)
    (tmp_path / "d").mkdir()
    with pytest.raises(FileExistsError):
        export_checkpoint(path, tmp_path / "d", fmt="onnx")
    assert _leftovers(tmp_path) == ["d"]
