"""`time_onnx_pair` times the exported pair's ONNX Runtime runs (what `skipclick bench --backend onnxruntime`
reports)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")

from skipclick_jax.deploy.timing import time_onnx_pair  # noqa: E402

from .conftest import SIZE  # noqa: E402


def test_time_onnx_pair(tiny_onnx):
    result = time_onnx_pair(tiny_onnx, SIZE, batch=2, calls=3)
    assert len(result["encode"]) == len(result["click"]) == 3
    assert all(t > 0 for t in [*result["encode"], *result["click"], result["encode_cold"], result["click_cold"]])
    assert (result["size"], result["batch"], result["device"]) == (SIZE, 2, "onnxruntime CPUExecutionProvider")


def test_wrong_size_or_calls(tiny_onnx):
    with pytest.raises(ValueError, match="exported at size 112; re-export with --size 224"):
        time_onnx_pair(tiny_onnx, 224, batch=1, calls=1)
    with pytest.raises(ValueError, match="calls and batch must be >= 1"):
        time_onnx_pair(tiny_onnx, SIZE, batch=1, calls=0)
