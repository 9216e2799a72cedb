"""Key lists of the released SkipClick checkpoints (names, shapes, dtypes; facts of the file format),
recorded from the official checkpoints. Each line: key<TAB>[shape]<TAB>dtype[<TAB>buffer]."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def released_keys(model: str) -> list[tuple[str, list[int], str, bool]]:
    """(key, shape, dtype, is_buffer) in state-dict order for 'dinov2', 'dinov3' or 'convstack'."""
    rows = []
    for line in (HERE / f"skipclick_{model}.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype, *rest = line.split("\t")
        dims = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
        rows.append((key, dims, dtype.strip(), rest[:1] == ["buffer"]))
    return rows
