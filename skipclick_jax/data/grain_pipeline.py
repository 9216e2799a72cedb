"""Grain input pipeline for training: random draws with replacement, per-host sharding, resumable iterators.

Stream layout. Global draw ``g = 0, 1, 2, ...`` picks image
``default_rng([seed, g, 0]).integers(len(source))`` (uniform with replacement, SPEC trap 34) and is turned
into a sample with ``default_rng([seed, g, 1])``, so every sample is a pure function of (seed, g),
independent of workers, threads and hosts. An epoch is ``epoch_len`` draws; each epoch is cut into
``epoch_len // global_batch`` global batches (the remainder is dropped, like the original's ``drop_last``:
937 steps of 32 for 30000 draws). Within global batch ``s`` of epoch ``e``, host ``h`` takes the draws
``e*epoch_len + s*global_batch + h*batch_size + [0, batch_size)``, so the hosts' streams are disjoint and
together cover every kept draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import grain
import numpy as np

from skipclick_jax.data.config import TrainDataConfig
from skipclick_jax.data.pipeline import make_training_sample
from skipclick_jax.data.records import Record

# "Infinite" stream for num_epochs=None: a billion epochs, far more than any run, still a finite length.
_UNBOUNDED_EPOCHS = 10**9


class RecordSource(Protocol):
    """What the pipeline needs from a source: random access to raw records."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Record: ...


@dataclass(frozen=True)
class DrawSchedule:
    """Maps this host's k-th element to its global draw index (see the module docstring)."""

    epoch_len: int
    batch_size: int  # per host
    shard_index: int = 0
    shard_count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.shard_index < self.shard_count:
            raise ValueError(f"shard_index {self.shard_index} not in [0, {self.shard_count})")
        if self.batch_size < 1 or self.steps_per_epoch < 1:
            raise ValueError(f"epoch_len {self.epoch_len} is below the global batch {self.global_batch}")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.shard_count

    @property
    def steps_per_epoch(self) -> int:
        return self.epoch_len // self.global_batch

    def global_index(self, k: int) -> int:
        step, pos = divmod(k, self.batch_size)
        epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
        return (epoch * self.epoch_len + step_in_epoch * self.global_batch
                + self.shard_index * self.batch_size + pos)


class RandomDrawDataset(grain.MapDataset):
    """This host's draws: element k = {"index": g, "record": parent[image drawn uniformly from (seed, g)]}."""

    def __init__(self, parent: grain.MapDataset, schedule: DrawSchedule, seed: int, num_epochs: int):
        super().__init__(parent)
        self._schedule = schedule
        self._seed = seed
        self._length = num_epochs * schedule.steps_per_epoch * schedule.batch_size

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        return f"RandomDrawDataset(seed={self._seed}, schedule={self._schedule})"

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        g = self._schedule.global_index(index % self._length)
        image_index = int(np.random.default_rng([self._seed, g, 0]).integers(len(self._parent)))
        return {"index": g, "record": self._parent[image_index]}


@dataclass(frozen=True)
class MakeSample:
    """Picklable map function: draw → training sample, seeded by (seed, g)."""

    config: TrainDataConfig
    seed: int
    with_index: bool = False

    def __call__(self, element: dict[str, Any]) -> dict[str, np.ndarray]:
        g = element["index"]
        sample = dict(make_training_sample(element["record"], np.random.default_rng([self.seed, g, 1]),
                                           self.config))
        if self.with_index:
            sample["index"] = np.int64(g)
        return sample


def make_train_map_dataset(source: RecordSource, config: TrainDataConfig, seed: int, batch_size: int,
                           shard_index: int = 0, shard_count: int = 1, *, num_epochs: int | None = None,
                           with_index: bool = False) -> grain.MapDataset:
    """This host's stream of unbatched training samples as a random-access ``MapDataset``."""
    if seed < 0:
        raise ValueError("seed must be non-negative")
    if num_epochs is not None and num_epochs < 1:
        raise ValueError("num_epochs must be None or >= 1")
    schedule = DrawSchedule(config.epoch_len, batch_size, shard_index, shard_count)
    draws = RandomDrawDataset(grain.MapDataset.source(source), schedule, seed,
                              _UNBOUNDED_EPOCHS if num_epochs is None else num_epochs)
    return draws.map(MakeSample(config, seed, with_index))


def make_train_dataset(source: RecordSource, config: TrainDataConfig, seed: int, batch_size: int,
                       shard_index: int = 0, shard_count: int = 1, num_workers: int = 0, *,
                       num_epochs: int | None = None, num_threads: int = 2, prefetch_buffer_size: int = 2,
                       with_index: bool = False) -> grain.IterDataset:
    """Batched, sharded, resumable training stream.

    Args:
        source: random-access raw records (any source of this package, or a ``TfdsSource``).
        config: sample pipeline and epoch definition.
        seed: non-negative; the stream is a pure function of it.
        batch_size: **per-host** batch (global batch = batch_size * shard_count), drop_remainder per epoch.
        shard_index, shard_count: this host, e.g. ``jax.process_index()``, ``jax.process_count()``.
        num_workers: >0 adds ``mp_prefetch`` with that many worker processes (same batches, same order).
        num_epochs: None = unbounded stream; else exactly ``num_epochs * steps_per_epoch`` batches.
        num_threads, prefetch_buffer_size: ``grain.ReadOptions`` of the (per-process) reader; the buffer
            counts batches, keep it small.
        with_index: also emit ``index`` (int64, the global draw index) per sample, for debugging and tests.

    Returns:
        An IterDataset of dicts ``image`` uint8 (B, S, S, 3), ``points`` float32 (B, 2N, 3), ``mask``
        float32 (B, S, S). Its iterators support ``get_state()`` / ``set_state()`` for exact resumption.
    """
    samples = make_train_map_dataset(source, config, seed, batch_size, shard_index, shard_count,
                                     num_epochs=num_epochs, with_index=with_index)
    ds = samples.batch(batch_size, drop_remainder=True).to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size))
    if num_workers > 0:
        _ensure_absl_flags_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return ds


def steps_per_epoch(config: TrainDataConfig, global_batch: int) -> int:
    """Training steps per epoch (937 for the defaults at global batch 32)."""
    return config.epoch_len // global_batch


def _ensure_absl_flags_parsed() -> None:
    """Grain's worker processes read absl flags; outside ``absl.app.run`` they are unparsed and grain raises
    UnparsedFlagAccessError. Marking them parsed keeps the defaults (no-op if already parsed)."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
