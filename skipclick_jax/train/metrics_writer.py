"""Metric sinks of the training loop: a JSON-lines file and TensorBoard event files (tensorboardX).

Resuming keeps each step once in both: `metrics.jsonl` is rewritten (atomically) without the rows past
the restored step — the killed process may have logged steps whose state was never checkpointed — and the
new TensorBoard event file starts with tensorboardX's `purge_step`, the marker that makes TensorBoard drop
the earlier files' events from that step on (`tensorboard --logdir <workdir>/tensorboard`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..atomic import write_bytes_atomic

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep the rows of `path` with step ≤ `last_step` (and drop a line cut short by a kill)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line
        if row.get("step", 0) <= last_step:
            kept.append(line + "\n")
    write_bytes_atomic(path, "".join(kept).encode())


class MetricsWriter:
    """Per-step JSON lines (`<workdir>/metrics.jsonl`) and interval averages in TensorBoard.

    `start_step` is the step the run (re)starts from: logged steps after it are forgotten. Only the
    writing process (process 0) opens files; elsewhere every call is a no-op.
    """

    def __init__(self, workdir: str | Path, enabled: bool = True, start_step: int = 0):
        self.enabled = enabled
        if not enabled:
            return
        from tensorboardX import SummaryWriter

        workdir = Path(workdir)
        truncate_jsonl(workdir / METRICS_FILE, start_step)
        self._jsonl = open(workdir / METRICS_FILE, "a")  # noqa: SIM115 - closed in close()
        # The suffix keeps a restarted run's file apart from the previous one even within the same second.
        self._events = SummaryWriter(str(workdir / TENSORBOARD_DIR), purge_step=start_step + 1 if start_step else None,
                                     filename_suffix=f".start{start_step}.{os.getpid()}")

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
        for name, value in values.items():
            if value is not None:
                self._events.add_scalar(f"train/{name}", float(value), step)
        self._events.flush()

    def write_eval(self, step: int, values: dict[str, float], improved: bool = False) -> None:
        """An evaluation: one JSON line `{"step", "eval/<name>": ..., "eval/best": bool}` (names as
        `skipclick evaluate` writes them: NoC@85, NoC@90, mIoU@k, ...) and TensorBoard scalars
        `eval/<name>` with "@" written "_" (TensorBoard's tag alphabet: eval/NoC_90, eval/mIoU_1)."""
        if not self.enabled:
            return
        row = {"step": step, **{f"eval/{k}": float(v) for k, v in values.items()}, "eval/best": improved}
        self._jsonl.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")
        self._jsonl.flush()
        for name, value in values.items():
            self._events.add_scalar(f"eval/{name.replace('@', '_')}", float(value), step)
        self._events.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._events.close()


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan" / "inf": keep the file valid JSON
    return v
