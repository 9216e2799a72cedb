"""TFDS ArrayRecord preparation and reading: bytes-exact round trip against the direct sources."""

from __future__ import annotations

import numpy as np
import pytest

from skipclick_jax.data import CocoJsonSource, CocoLvisSource, FolderSource

tfds = pytest.importorskip("tensorflow_datasets")

from skipclick_jax.data.tfds_records import TfdsSource, prepare_tfds  # noqa: E402


def _assert_same(direct, prepared):
    assert len(direct) == len(prepared)
    for i in range(len(direct)):
        a, b = direct.read_encoded(i), prepared.read_encoded(i)
        assert a["sample_id"] == b["sample_id"] and a["image"] == b["image"] and a["layers"] == b["layers"]
        ra, rb = direct[i], prepared[i]
        np.testing.assert_array_equal(ra["image"], rb["image"])
        np.testing.assert_array_equal(ra["layers"], rb["layers"])
        for key in ("layer", "value", "parent", "is_stuff"):
            assert ra["objects"][key].dtype == rb["objects"][key].dtype
            np.testing.assert_array_equal(ra["objects"][key], rb["objects"][key])


def test_prepare_and_read_round_trip(tmp_path, cocolvis_root, folder_root):
    tfds.disable_progress_bar()
    train, val = CocoLvisSource(cocolvis_root, "train"), CocoLvisSource(cocolvis_root, "val")
    out = prepare_tfds({"train": train, "val": val}, tmp_path / "cocolvis")
    assert any(p.name.startswith("skipclick_records-train.array_record") for p in out.iterdir())
    _assert_same(train, TfdsSource(tmp_path / "cocolvis", "train"))
    _assert_same(val, TfdsSource(tmp_path / "cocolvis", "val"))
    # The generic tfds entry point finds the registered builder too.
    ds = tfds.data_source("skipclick_records", data_dir=str(tmp_path / "cocolvis"), split="val")
    assert len(ds) == len(val)

    folder = FolderSource(folder_root, skip_empty=False)  # includes a record without objects
    coco = CocoJsonSource(folder_root / "annotations.json", folder_root / "images")
    prepare_tfds({"folder": folder, "coco": coco}, tmp_path / "folder")
    _assert_same(folder, TfdsSource(tmp_path / "folder", "folder"))
    _assert_same(coco, TfdsSource(tmp_path / "folder", "coco"))


def test_prepared_source_feeds_the_same_training_stream(tmp_path, cocolvis_root):
    from skipclick_jax.data import TrainDataConfig, make_train_dataset
    from skipclick_jax.data.config import AugmentConfig

    tfds.disable_progress_bar()
    direct = CocoLvisSource(cocolvis_root, "val")
    prepare_tfds({"val": direct}, tmp_path)
    cfg = TrainDataConfig(augment=AugmentConfig(crop_size=(64, 64)), epoch_len=8)
    a = next(iter(make_train_dataset(direct, cfg, seed=2, batch_size=4)))
    b = next(iter(make_train_dataset(TfdsSource(tmp_path, "val"), cfg, seed=2, batch_size=4)))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
