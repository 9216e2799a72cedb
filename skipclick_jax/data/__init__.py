"""Training data: raw sources, the SkipClick sample pipeline (SPEC 5.2-5.4) and the Grain input pipeline.

Sources return raw records (see :mod:`skipclick_jax.data.records`); :func:`make_training_sample` turns one
into a model sample; :func:`make_train_dataset` builds the batched, sharded, resumable Grain stream.
The TFDS builder/reader (:mod:`skipclick_jax.data.tfds_records`) is imported lazily because importing
tensorflow_datasets is comparatively slow and Grain worker processes do not need it.
"""

from skipclick_jax.data.cocolvis import CocoLvisSource
from skipclick_jax.data.config import AugmentConfig, SamplerConfig, TrainDataConfig
from skipclick_jax.data.folder import CocoJsonSource, FolderSource
from skipclick_jax.data.grain_pipeline import make_train_dataset, make_train_map_dataset, steps_per_epoch
from skipclick_jax.data.pipeline import TrainingSample, make_training_sample
from skipclick_jax.data.records import EncodedRecord, ObjectTable, Record
from skipclick_jax.data.safe_pickle import UnsafePickleError, safe_load

_LAZY = {"SkipclickRecords", "TfdsSource", "prepare_tfds"}


def __getattr__(name: str):
    if name in _LAZY:
        from skipclick_jax.data import tfds_records

        return getattr(tfds_records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AugmentConfig",
    "CocoJsonSource",
    "CocoLvisSource",
    "EncodedRecord",
    "FolderSource",
    "ObjectTable",
    "Record",
    "SamplerConfig",
    "SkipclickRecords",
    "TfdsSource",
    "TrainDataConfig",
    "TrainingSample",
    "UnsafePickleError",
    "make_train_dataset",
    "make_train_map_dataset",
    "make_training_sample",
    "prepare_tfds",
    "safe_load",
    "steps_per_epoch",
]
