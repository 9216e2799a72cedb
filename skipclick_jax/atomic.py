"""Atomic outputs: everything is written to a hidden temporary sibling and `os.replace`d into place.

Readers (and a crash at any moment) see either the previous output or the complete new one, never a
partial file or directory; on failure the temporary is removed and nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:8]}"


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
    """Yield `(temporary path, open binary file)`; the file becomes `path` only if the block succeeds."""
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")  # same directory, so the final os.replace is atomic
    try:
        with open(tmp, "xb") as f:
            yield tmp, f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes, overwrite: bool = True) -> Path:
    """Write `data` to `path` atomically (replacing an existing file unless `overwrite` is False)."""
    with atomic_file(path, overwrite) as (_, f):
        f.write(data)
    return Path(path)


@contextmanager
def atomic_directory(out_dir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces `out_dir` only if the block succeeds."""
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists (pass overwrite=True / --overwrite to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out_dir, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        if out_dir.exists():
            old = _sibling(out_dir, "old")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
