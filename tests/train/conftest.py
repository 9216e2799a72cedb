"""Fixtures of the training tests: a synthetic COCO+LVIS split and a shared XLA compilation cache.

Compiling the tiny model's train step takes ~40 s on a 2-core CPU; every test here (and the subprocess
of the kill-and-resume test) uses the same tiny configuration, so a session-wide persistent compilation
cache turns all but the first compilation into a load.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from skipclick_jax.data import synthetic


@pytest.fixture(scope="session")
def cocolvis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cocolvis")
    synthetic.write_cocolvis(root, "train", num_images=12, seed=0)
    return root


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A persistent compilation cache for this folder's tests, shared with their subprocesses."""
    directory = tmp_path_factory.mktemp("xla_cache")
    saved = {k: os.environ.get(k) for k in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    old_dir = jax.config.jax_compilation_cache_dir
    old_min = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    compilation_cache.reset_cache()  # the cache is set up at the first compilation; make it look again
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(directory)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    yield directory
    jax.config.update("jax_compilation_cache_dir", old_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old_min)
    compilation_cache.reset_cache()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
