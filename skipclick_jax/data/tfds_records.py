"""Prepare any source once into TFDS ArrayRecord shards, and read them back as a source.

No TensorFlow is needed: images and mask layers are stored as the encoded bytes the source provides
(``read_encoded``: the original JPEG/PNG file bytes, PNG label layers), in plain string tensors rather
than ``tfds.features.Image``. That keeps the bytes untouched and lets this package decode them exactly like
the direct sources do (``cv2.IMREAD_COLOR``, as the original's ``cv2.imread``; tfds' numpy Image decoder
uses IMREAD_UNCHANGED, which differs for grayscale or EXIF-rotated JPEGs). Shuffling at preparation is
disabled, so index i of the prepared split is index i of the source.

On-disk: ``<data_dir>/skipclick_records/1.0.0/skipclick_records-<split>.array_record-XXXXX-of-YYYYY`` plus
``dataset_info.json`` / ``features.json``. Preparing an already prepared ``data_dir`` is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from skipclick_jax.data.records import EncodedRecord, ObjectTable, Record, decode_record

BUILDER_NAME = "skipclick_records"


class EncodableSource(Protocol):
    """A source that can hand out its samples still encoded."""

    def __len__(self) -> int: ...

    def read_encoded(self, index: int) -> EncodedRecord: ...


def _features() -> tfds.features.FeaturesDict:
    int_vector = tfds.features.Tensor(shape=(None,), dtype=np.int32)
    return tfds.features.FeaturesDict({
        "sample_id": tfds.features.Text(),
        "image": tfds.features.Tensor(shape=(), dtype=np.object_),  # JPEG/PNG file bytes
        "layers": tfds.features.Tensor(shape=(None,), dtype=np.object_),  # one 8-bit PNG per label layer
        "objects": tfds.features.FeaturesDict({
            "layer": int_vector,
            "value": int_vector,
            "parent": int_vector,
            "is_stuff": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
        }),
    })


class SkipclickRecords(tfds.core.GeneratorBasedBuilder):
    """Raw SkipClick training records (image + RITM-style label layers + object table).

    Construct with ``sources={"train": source, ...}`` to prepare; without ``sources`` to read.
    """

    VERSION = tfds.core.Version("1.0.0")
    # tfds derives this from the package via importlib_resources, which is not installed here (and its
    # absence raises while preparing). The module file itself is the right answer anyway.
    code_path = epath.Path(__file__)
    RELEASE_NOTES = {"1.0.0": "Encoded image, PNG label layers, object table (layer/value/parent/is_stuff)."}

    def __init__(self, *, sources: Mapping[str, EncodableSource] | None = None, **kwargs: Any):
        self._sources = dict(sources or {})
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="SkipClick raw training records (see skipclick_jax.data.records).",
            features=_features(),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
        if not self._sources:
            raise ValueError("pass sources={'train': source, ...} to prepare this dataset")
        return {split: self._generate_examples(source) for split, source in self._sources.items()}

    def _generate_examples(self, source: EncodableSource) -> Iterator[tuple[int, dict[str, Any]]]:
        for index in range(len(source)):
            enc = source.read_encoded(index)
            yield index, {
                "sample_id": enc["sample_id"],
                "image": enc["image"],
                "layers": np.array(enc["layers"], dtype=object).reshape(-1),
                "objects": {k: np.asarray(v) for k, v in enc["objects"].items()},
            }


def prepare_tfds(sources: Mapping[str, EncodableSource], data_dir: str | Path) -> Path:
    """Writes every split of ``sources`` as ArrayRecord shards under ``data_dir``; returns the version dir."""
    builder = SkipclickRecords(data_dir=str(data_dir), file_format="array_record", sources=sources)
    builder.download_and_prepare()
    return Path(builder.data_dir)


class TfdsSource:
    """Random-access reader of a prepared split, yielding the same records as the direct source."""

    def __init__(self, data_dir: str | Path, split: str = "train"):
        self.data_dir = Path(data_dir)
        self.split = split
        self._ds = SkipclickRecords(data_dir=str(data_dir)).as_data_source(split=split)

    def __len__(self) -> int:
        return len(self._ds)

    def read_encoded(self, index: int) -> EncodedRecord:
        ex = self._ds[index]
        sid = ex["sample_id"]
        objects = ex["objects"]
        return EncodedRecord(
            sample_id=sid.decode("utf-8") if isinstance(sid, bytes) else str(sid),
            image=bytes(ex["image"]),
            layers=[bytes(x) for x in ex["layers"]],
            objects=ObjectTable(
                layer=np.asarray(objects["layer"], np.int32),
                value=np.asarray(objects["value"], np.int32),
                parent=np.asarray(objects["parent"], np.int32),
                is_stuff=np.asarray(objects["is_stuff"], bool),
            ),
        )

    def sample_id(self, index: int) -> str:
        return self.read_encoded(index)["sample_id"]

    def __getitem__(self, index: int) -> Record:
        return decode_record(self.read_encoded(index))
