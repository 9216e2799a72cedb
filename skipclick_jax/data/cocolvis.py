"""COCO+LVIS in RITM's layout (SPEC 4.1), read without trusting its pickles.

Layout per split::

    <root>/<split>/images/<id>.jpg
    <root>/<split>/masks/<id>.pickle     (encoded_layers, objs_mapping)
    <root>/<split>/hannotation.pickle    {id: {"num_instance_masks": int, "hierarchy": {obj: None | {...}}}}

``encoded_layers`` is a list of PNG-encoded uint8 label images (ndarrays from ``cv2.imencode`` in the real
data; raw ``bytes`` are accepted too), ``objs_mapping`` one (layer, value) pair per mask. Masks
``0..num_instance_masks-1`` are instances, the rest COCO-panoptic stuff. A hierarchy entry ``None`` is an
isolated root; otherwise ``parent`` is an object id or None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skipclick_jax.data.records import EncodedRecord, ObjectTable, Record, decode_record, make_objects
from skipclick_jax.data.safe_pickle import safe_load


class CocoLvisSource:
    """Random-access reader of one split; samples are the annotation's image ids in sorted order.

    The annotation index is loaded lazily and dropped when pickled, so a Grain worker re-reads it from disk
    instead of receiving a copy of a (for the real dataset) ~100 MB Python structure.
    """

    def __init__(self, root: str | Path, split: str = "train", anno_file: str = "hannotation.pickle"):
        self.root = Path(root)
        self.split = split
        self.anno_file = anno_file
        self._split_path = self.root / split
        self._samples: list[tuple[str, dict[str, Any]]] | None = None
        if not (self._split_path / anno_file).is_file():
            raise FileNotFoundError(f"no {anno_file} in {self._split_path}")

    @property
    def samples(self) -> list[tuple[str, dict[str, Any]]]:
        if self._samples is None:
            index = safe_load(self._split_path / self.anno_file)
            if not isinstance(index, dict):
                raise ValueError(f"{self.anno_file} must hold a dict image_id -> info")
            self._samples = sorted(index.items())
        return self._samples

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_samples": None}

    def __len__(self) -> int:
        return len(self.samples)

    def sample_id(self, index: int) -> str:
        return str(self.samples[index][0])

    def read_encoded(self, index: int) -> EncodedRecord:
        """The sample with its original JPEG and PNG bytes (no re-encoding)."""
        image_id, info = self.samples[index]
        image = (self._split_path / "images" / f"{image_id}.jpg").read_bytes()
        masks_path = self._split_path / "masks" / f"{image_id}.pickle"
        packed = safe_load(masks_path)
        if not (isinstance(packed, tuple | list) and len(packed) == 2):
            raise ValueError(f"{masks_path}: expected (encoded_layers, objs_mapping)")
        encoded_layers, objs_mapping = packed
        layers = [np.asarray(x, np.uint8).tobytes() if isinstance(x, np.ndarray) else bytes(x)
                  for x in encoded_layers]
        objects = _objects_from_info(info, objs_mapping, str(image_id))
        return EncodedRecord(sample_id=str(image_id), image=image, layers=layers, objects=objects)

    def __getitem__(self, index: int) -> Record:
        return decode_record(self.read_encoded(index))


def _objects_from_info(info: dict[str, Any], objs_mapping: list[Any], sample_id: str) -> ObjectTable:
    """hannotation entry + objs_mapping → ObjectTable (parents from the hierarchy; stuff flagged)."""
    num_instances = int(info["num_instance_masks"])
    hierarchy = info.get("hierarchy") or {}
    if num_instances > len(objs_mapping):
        raise ValueError(f"{sample_id}: num_instance_masks exceeds the number of masks")
    parents: list[int | None] = []
    for obj_id in range(len(objs_mapping)):
        node = hierarchy.get(obj_id) if obj_id < num_instances else None
        # None (isolated object) and instances missing from the hierarchy are roots without children.
        parent = None if node is None else node.get("parent")
        if parent is not None and not 0 <= int(parent) < num_instances:
            raise ValueError(f"{sample_id}: object {obj_id} has an invalid parent {parent}")
        parents.append(None if parent is None else int(parent))
    mapping = [(int(layer), int(value)) for layer, value in objs_mapping]
    is_stuff = [obj_id >= num_instances for obj_id in range(len(objs_mapping))]
    return make_objects(mapping, parents, is_stuff)
