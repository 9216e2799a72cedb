"""Fixtures of the training tests: a synthetic COCO+LVIS split and a shared XLA compilation cache.

Compiling the tiny model's train step takes ~40 s on a 2-core CPU; every test here (and the subprocess
of the kill-and-resume test) uses the same tiny configuration, so a session-wide persistent compilation
cache turns all but the first compilation into a load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skipclick_jax.data import synthetic


@pytest.fixture(scope="session")
def cocolvis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cocolvis")
    synthetic.write_cocolvis(root, "train", num_images=12, seed=0)
    return root


@pytest.fixture(scope="session", autouse=True)
def compile_cache(shared_compilation_cache: Path) -> Path:
    """This folder's tests (and the subprocess of the kill-and-resume test) use the run's persistent
    compilation cache (tests/conftest.py): compiling the tiny train step takes ~40 s on a 2-core CPU."""
    return shared_compilation_cache
