"""The safetensors file format, written by streaming and read without torch.

Layout (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, N bytes of
JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}` (padded with
spaces to a multiple of 8), then the tensor bytes, little-endian, C order, offsets relative to the end of
the header. There is no pickle anywhere, so reading a file never runs code from it.

The writer emits the header first and then each tensor as it is fetched (`TensorSource.fetch`), so peak
host memory is one tensor; the output appears atomically. The reader validates the header against the
file size (a truncated download fails with a clear message) and reads tensors one at a time.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, check_writable
from ..convert.torch_io import CheckpointError
from .tensors import TensorSource

_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit as well
# safetensors dtype name → (item size, numpy dtype name); "bfloat16" comes from ml_dtypes (a JAX dependency).
_DTYPES = {"F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, "bfloat16"), "F64": (8, "<f8"), "I64": (8, "<i8"),
           "I32": (4, "<i4"), "I16": (2, "<i2"), "I8": (1, "i1"), "U8": (1, "u1"), "BOOL": (1, "?")}


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def write_safetensors(
    path: str | Path,
    sources: Sequence[TensorSource],
    metadata: dict[str, str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write float32 tensors to `path` in safetensors format, header first, one tensor at a time."""
    check_writable(path, overwrite)
    header: dict[str, Any] = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"safetensors metadata must map str to str; offending keys: {bad}")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for s in sources:
        if s.name in header:
            raise ValueError(f"duplicate tensor name {s.name!r}")
        nbytes = 4 * math.prod(s.shape)
        header[s.name] = {"dtype": "F32", "shape": list(s.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # keep the tensor data 8-byte aligned, as the reference writer does

    with atomic_file(path, overwrite) as (_, f):
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for s in sources:
            array = np.ascontiguousarray(s.fetch(), dtype="<f4")
            if tuple(array.shape) != s.shape:
                raise AssertionError(f"{s.name}: produced {array.shape}, header says {s.shape}")
            f.write(memoryview(array).cast("B"))
            del array  # release before fetching the next one
    return Path(path)


class SafetensorsFile:
    """A validated safetensors file: `names`, `metadata`, `shape(name)`, `read(name)`; no torch needed."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such file")
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{self.path}: not a safetensors file ({size} bytes, too short for a header)")
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                raise CheckpointError(
                    f"{self.path}: not a safetensors file or truncated (header length {n}, file size {size})")
            try:
                header = json.loads(f.read(n).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise CheckpointError(f"{self.path}: not a safetensors file (bad JSON header: {e})") from e
        if not isinstance(header, dict):
            raise CheckpointError(f"{self.path}: not a safetensors file (header is not a JSON object)")
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._data_start = 8 + n
        self._entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, info in header.items():
            self._entries[name] = self._validated(name, info)
        self._check_layout(size - self._data_start)

    def _validated(self, name: str, info: Any) -> tuple[str, tuple[int, ...], int, int]:
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{self.path}: malformed header entry for {name!r}: {info!r}") from e
        if dtype not in _DTYPES:
            raise CheckpointError(f"{self.path}: tensor {name!r} has unknown dtype {dtype!r}")
        if end - begin != _DTYPES[dtype][0] * math.prod(shape):
            raise CheckpointError(f"{self.path}: tensor {name!r}: {end - begin} bytes for shape {shape} {dtype}")
        return dtype, shape, int(begin), int(end)

    def _check_layout(self, available: int) -> None:
        spans = sorted((b, e, name) for name, (_, _, b, e) in self._entries.items())
        position = 0
        for begin, end, name in spans:
            if begin != position:
                raise CheckpointError(f"{self.path}: tensor data of {name!r} is not contiguous (offset {begin}, "
                                      f"expected {position})")
            position = end
        if position > available:
            raise CheckpointError(f"{self.path}: truncated file: the header announces {position} bytes of tensor "
                                  f"data, only {available} are present")
        if position < available:
            raise CheckpointError(f"{self.path}: {available - position} unexpected bytes after the tensor data")

    @property
    def names(self) -> list[str]:
        """Tensor names in header order."""
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][1]

    def read(self, name: str) -> np.ndarray:
        """One tensor as a numpy array; floating-point tensors are returned as float32 (F16/BF16 exactly)."""
        dtype_name, shape, begin, end = self._entries[name]
        if dtype_name == "F64":
            raise CheckpointError(f"{self.path}: tensor {name!r} is float64; converting it would lose precision")
        buf = bytearray(end - begin)
        with open(self.path, "rb") as f:
            f.seek(self._data_start + begin)
            if f.readinto(buf) != len(buf):  # the file shrank since it was opened
                raise CheckpointError(f"{self.path}: truncated while reading {name!r}")
        array = np.frombuffer(buf, dtype=_numpy_dtype(_DTYPES[dtype_name][1])).reshape(shape)
        return array.astype(np.float32) if dtype_name in ("F16", "BF16") else array

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) pairs in header order, read lazily."""
        for name in self._entries:
            yield name, self.read(name)

    def read_all(self) -> dict[str, np.ndarray]:
        return dict(self.items())
