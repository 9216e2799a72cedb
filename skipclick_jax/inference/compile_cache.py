"""Persistent XLA compilation cache, so a second process skips the compile of the encode and click steps."""

from __future__ import annotations

import os
from pathlib import Path

import jax

DEFAULT_DIR = Path(os.environ.get("SKIPCLICK_CACHE_DIR", Path.home() / ".cache" / "skipclick_jax" / "xla"))


def enable_compilation_cache(directory: str | Path | None = None) -> Path:
    """Store compiled executables in `directory` (default `$SKIPCLICK_CACHE_DIR` or ~/.cache/skipclick_jax/xla).

    Every executable is cached, however fast it compiled: the click step's few seconds matter to a user
    waiting for the first click.
    """
    path = Path(directory) if directory is not None else DEFAULT_DIR
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
