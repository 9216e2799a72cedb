"""Resumable evaluation: every finished sample is appended to a JSON-lines log next to ``--out``.

A long evaluation (SBD has 6671 objects) killed for any reason — ``kill -9``, a lost node, Ctrl-C — and
rerun with the same command continues from its finished samples and ends with the same results as an
uninterrupted run (the protocol is deterministic, and ``--batch``/``exact`` gives per-sample results
identical to the session loop).

Log format (``<out>.progress.jsonl``), one JSON object per line, each written with a single ``write`` and
``fsync``'d before the sample counts as done:

    {"run": {...}}                                  first line: what the results depend on
    {"dataset": NAME, "ids_sha256": H, "count": N}  when a dataset starts: the exact sample list
    {"dataset": NAME, "index": i, "id", "clicks", "ious"}   one per finished sample

A line cut short by the kill is discarded (and cut off the file) on resume. A log written with other
settings, weights or samples is refused with a message saying which, so results never mix runs. The log is
removed once the final results file is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .loop import SampleResult


class ResumeError(ValueError):
    """The progress log belongs to a different evaluation than the one requested."""


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


class ProgressLog:
    """Finished samples of one evaluation run (see the module docstring)."""

    def __init__(self, path: str | Path, run: dict[str, Any]):
        self.path = Path(path)
        self.run = json.loads(json.dumps(run))  # as it reads back from the file
        self._datasets: dict[str, dict[str, Any]] = {}
        self._done: dict[str, dict[int, SampleResult]] = {}
        if self.path.exists():
            self._load()
        else:
            self._append({"run": self.run})

    @property
    def resumed(self) -> int:
        """Samples already finished when the log was opened."""
        return sum(len(d) for d in self._done.values())

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        good = 0  # bytes of complete, valid lines
        records = []
        for line in lines[:-1]:  # the last element is what follows the final newline: a torn line or b""
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good += len(line) + 1
        if good < len(raw):
            with open(self.path, "r+b") as f:  # drop the torn tail so that new lines start clean
                f.truncate(good)
        if not records or "run" not in records[0]:
            raise ResumeError(f"{self.path}: not an evaluation progress log; remove it or choose another --out")
        if records[0]["run"] != self.run:
            diff = sorted(k for k in set(self.run) | set(records[0]["run"])
                          if self.run.get(k) != records[0]["run"].get(k))
            raise ResumeError(f"{self.path}: progress of an evaluation with different {', '.join(diff)}; rerun "
                              "with the same arguments to resume it, or remove the file to start over")
        for r in records[1:]:
            if "ids_sha256" in r:
                self._datasets[r["dataset"]] = r
            else:
                result = SampleResult(clicks=[tuple(c) for c in r["clicks"]], ious=list(r["ious"]), id=r["id"])
                self._done.setdefault(r["dataset"], {})[int(r["index"])] = result

    def start_dataset(self, name: str, ids: Sequence[str]) -> dict[int, SampleResult]:
        """Declare the samples of a dataset; returns those already finished (by index)."""
        entry = {"dataset": name, "ids_sha256": ids_digest(ids), "count": len(ids)}
        known = self._datasets.get(name)
        if known is None:
            self._datasets[name] = entry
            self._append(entry)
        elif known != entry:
            raise ResumeError(f"{self.path}: the samples of {name} changed since the interrupted run "
                              f"({known['count']} then, {len(ids)} now); remove the file to start over")
        return dict(self._done.get(name, {}))

    def record(self, name: str, index: int, result: SampleResult) -> None:
        """Append one finished sample (durable when this returns)."""
        self._append({"dataset": name, "index": index, "id": result.id,
                      "clicks": [[int(y), int(x), bool(p)] for y, x, p in result.clicks],
                      "ious": [float(v) for v in result.ious]})
        self._done.setdefault(name, {})[index] = result

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, allow_nan=False) + "\n").encode()
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def finish(self) -> None:
        """The evaluation is complete (its results are written): remove the log."""
        self.path.unlink(missing_ok=True)
