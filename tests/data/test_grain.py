"""Grain pipeline: determinism, epoch/shard layout, iterator-state resume, multiprocess workers."""

from __future__ import annotations

import grain
import numpy as np
import pytest
from absl import flags

from skipclick_jax.data import CocoLvisSource, TrainDataConfig, make_train_dataset, steps_per_epoch
from skipclick_jax.data.config import AugmentConfig
from skipclick_jax.data.grain_pipeline import DrawSchedule, RandomDrawDataset

# Small crops keep these tests fast; the pipeline logic does not depend on the size.
CFG = TrainDataConfig(augment=AugmentConfig(crop_size=(96, 96)), min_object_area=200, epoch_len=24)


def _take(ds_or_iter, n):
    it = iter(ds_or_iter)
    return [next(it) for _ in range(n)]


def _assert_batches_equal(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


@pytest.fixture(scope="module")
def source(cocolvis_root):
    return CocoLvisSource(cocolvis_root, "train")


def test_batch_format_and_determinism(source):
    a = _take(make_train_dataset(source, CFG, seed=7, batch_size=4), 2)
    b = _take(make_train_dataset(source, CFG, seed=7, batch_size=4), 2)
    _assert_batches_equal(a, b)
    batch = a[0]
    assert set(batch) == {"image", "points", "mask"}
    assert batch["image"].shape == (4, 96, 96, 3) and batch["image"].dtype == np.uint8
    assert batch["points"].shape == (4, 48, 3) and batch["points"].dtype == np.float32
    assert batch["mask"].shape == (4, 96, 96) and batch["mask"].dtype == np.float32
    assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
    c = _take(make_train_dataset(source, CFG, seed=8, batch_size=4), 1)
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_epochs_and_shards_are_disjoint(source):
    assert DrawSchedule(30000, 32).steps_per_epoch == steps_per_epoch(TrainDataConfig(), 32) == 937
    streams = []
    for shard in range(2):
        ds = make_train_dataset(source, CFG, seed=1, batch_size=5, shard_index=shard, shard_count=2,
                                num_epochs=2, with_index=True)
        streams.append([b["index"].tolist() for b in ds])
    # epoch_len 24, global batch 10 -> 2 steps per epoch, draws 20..23 of each epoch dropped.
    assert streams[0] == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14], [24, 25, 26, 27, 28], [34, 35, 36, 37, 38]]
    assert streams[1] == [[5, 6, 7, 8, 9], [15, 16, 17, 18, 19], [29, 30, 31, 32, 33], [39, 40, 41, 42, 43]]
    # A draw's sample does not depend on which host or batch size produced it.
    single = _take(make_train_dataset(source, CFG, seed=1, batch_size=10, with_index=True), 1)[0]
    two = _take(make_train_dataset(source, CFG, seed=1, batch_size=5, shard_index=1, shard_count=2,
                                   with_index=True), 1)[0]
    np.testing.assert_array_equal(single["image"][5:], two["image"])
    np.testing.assert_array_equal(single["points"][5:], two["points"])


def test_draws_are_uniform_with_replacement(source):
    schedule = DrawSchedule(epoch_len=3000, batch_size=10)
    ids = grain.MapDataset.source([f"{i}" for i in range(len(source))])
    draws = RandomDrawDataset(ids, schedule, seed=3, num_epochs=1)
    counts = np.bincount([int(draws[k]["record"]) for k in range(len(draws))], minlength=len(source))
    expected = len(draws) / len(source)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_iterator_state_resume(source):
    ds = make_train_dataset(source, CFG, seed=3, batch_size=3)
    it = iter(ds)
    _take(it, 2)
    state = it.get_state()
    continued = _take(it, 2)
    fresh = iter(make_train_dataset(source, CFG, seed=3, batch_size=3))
    fresh.set_state(state)
    _assert_batches_equal(_take(fresh, 2), continued)


def test_multiprocess_workers_match_and_resume(source):
    flags.FLAGS.mark_as_parsed()  # grain reads absl flags in the worker setup
    reference = _take(make_train_dataset(source, CFG, seed=5, batch_size=2), 5)
    it = iter(make_train_dataset(source, CFG, seed=5, batch_size=2, num_workers=2))
    first = _take(it, 3)
    state = it.get_state()
    rest = _take(it, 2)
    _assert_batches_equal(first + rest, reference)
    resumed = iter(make_train_dataset(source, CFG, seed=5, batch_size=2, num_workers=2))
    resumed.set_state(state)
    _assert_batches_equal(_take(resumed, 2), rest)
