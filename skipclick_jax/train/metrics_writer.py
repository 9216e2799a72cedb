"""Metric sinks of the training loop: a JSON-lines file and TensorBoard event files.

The event-file writer is self-contained (TFRecord framing with masked CRC-32C around hand-encoded
`tensorflow.Event` protos carrying scalar summaries), so logging needs neither TensorFlow nor
tensorboardX; TensorBoard reads the files as usual (`tensorboard --logdir <workdir>/tensorboard`).
"""

from __future__ import annotations

import json
import math
import socket
import struct
import time
from pathlib import Path
from typing import Any


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + payload


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def encode_event(wall_time: float, step: int | None = None, file_version: str | None = None,
                 scalars: dict[str, float] | None = None) -> bytes:
    """A serialised `tensorflow.Event` (wall_time=1, step=2, file_version=3, summary=5; Summary.value=1;
    Value.tag=1, Value.simple_value=2)."""
    out = _field(1, 1, struct.pack("<d", wall_time))
    if step is not None:
        out += _field(2, 0, _varint(step & 0xFFFFFFFFFFFFFFFF))
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if scalars:
        values = b"".join(
            _bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack("<f", value)))
            for tag, value in scalars.items()
        )
        out += _bytes_field(5, values)
    return out


def tfrecord(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


class EventFileWriter:
    """Appends scalar summaries to a new `events.out.tfevents.*` file in `logdir`."""

    def __init__(self, logdir: str | Path):
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._file.write(tfrecord(encode_event(now, file_version="brain.Event:2")))
        self._file.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        finite = {k: float(v) for k, v in values.items() if v is not None}
        self._file.write(tfrecord(encode_event(time.time(), step=step, scalars=finite)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class MetricsWriter:
    """Per-step JSON lines (`<workdir>/metrics.jsonl`) and interval averages in TensorBoard.

    Only the writing process (process 0) opens files; elsewhere every call is a no-op.
    """

    def __init__(self, workdir: str | Path, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        workdir = Path(workdir)
        self._jsonl = open(workdir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        self._events = EventFileWriter(workdir / "tensorboard")

    def write_steps(self, rows: list[dict[str, Any]]) -> None:
        """One JSON line per step (`rows` carry a "step" key and plain floats/ints)."""
        if not self.enabled:
            return
        for row in rows:
            self._jsonl.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")
        self._jsonl.flush()

    def write_summary(self, step: int, values: dict[str, float]) -> None:
        """Scalars for TensorBoard under `train/<name>`."""
        if not self.enabled:
            return
        self._events.scalars(step, {f"train/{k}": v for k, v in values.items()})
        self._events.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._events.close()


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan" / "inf": keep the file valid JSON
    return v
