"""Atomic single-file output: write a hidden temporary sibling, then `os.replace` it into place."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def check_writable(path: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing output unless `overwrite`; return the absolute path."""
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    if path.is_dir():
        raise FileExistsError(f"{path} is a directory; expected a file path")
    return path


@contextmanager
def atomic_file(path: str | Path, overwrite: bool = False) -> Iterator[tuple[Path, BinaryIO]]:
    """Yield `(temporary path, open binary file)`; the file becomes `path` only if the block succeeds.

    The temporary file lives in the destination directory (same filesystem, so the final `os.replace`
    is atomic) and is removed on any failure, so readers never see a partial checkpoint.
    """
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "xb") as f:
            yield tmp, f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
