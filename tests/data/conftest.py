"""Shared synthetic datasets (written once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skipclick_jax.data import synthetic


@pytest.fixture(scope="session")
def cocolvis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cocolvis")
    synthetic.write_cocolvis(root, "train", num_images=12, seed=0)
    synthetic.write_cocolvis(root, "val", num_images=4, seed=1)
    return root


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    synthetic.write_folder(root, num_images=8, seed=3)
    synthetic.write_coco_json(root, num_images=8, seed=3, write_images=False)
    return root
