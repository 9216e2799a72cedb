"""SBD evaluation split: one sample per (image, instance id) (SPEC §4; 6671 instances in ``val``).

Layout: ``img/<id>.jpg``, ``inst/<id>.mat`` (MATLAB struct ``GTinst`` whose first field is the instance map),
id list ``<split>.txt``. Samples: ids in file order, instances in ascending label order;
mask = (map == label).

The reference caches the (image, instance) list as a pickle *inside the dataset folder*; here the list is
rebuilt in memory (a few seconds for ``val``) or, with ``cache_dir``, cached as JSON outside the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .base import DatasetError, EvalDataset, EvalSample, check_same_size, read_rgb, require_dir


def read_sbd_instances(path: Path) -> np.ndarray:
    """Instance map (H×W int32, 0 = background) of an SBD ``inst/*.mat`` file."""
    from scipy.io import loadmat

    if not path.is_file():
        raise DatasetError(f"missing instance file: {path}")
    try:
        inst = np.asarray(loadmat(str(path))["GTinst"][0][0][0])
    except Exception as err:  # scipy raises several types for broken files
        raise DatasetError(f"cannot read SBD instance file: {path} ({type(err).__name__}: {err})") from err
    if inst.ndim != 2 or not np.issubdtype(inst.dtype, np.integer):
        raise DatasetError(f"unexpected GTinst instance map {inst.dtype}{inst.shape} in {path}")
    return inst.astype(np.int32)


def instance_labels(inst: np.ndarray) -> list[int]:
    """Non-zero labels present in the map, ascending."""
    return [int(v) for v in np.unique(inst) if v != 0]


class SBDDataset(EvalDataset):
    """SBD instances of one split. Sample ids are ``<image id>/<instance label>``."""

    name = "SBD"

    def __init__(self, root: str | Path, split: str = "val", skip_corrupt: bool = False,
                 cache_dir: str | Path | None = None) -> None:
        super().__init__(root, skip_corrupt)
        if split not in ("train", "val"):
            raise ValueError(f"SBD split must be 'train' or 'val', got {split!r}")
        self.split = split
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._last: tuple[str, np.ndarray, np.ndarray] | None = None

    def _image_ids(self) -> list[str]:
        require_dir(self.root, self.name)
        list_path = self.root / f"{self.split}.txt"
        if not list_path.is_file():
            raise DatasetError(f"{self.name}: missing id list: {list_path}")
        return [line.strip() for line in list_path.read_text().splitlines() if line.strip()]

    def _cache_path(self, image_ids: list[str]) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha1(f"{self.root.resolve()}\n{self.split}\n".encode() + "\n".join(image_ids).encode())
        return self.cache_dir / f"sbd_{self.split}_{key.hexdigest()[:16]}.json"

    def _build_index(self) -> list[tuple[str, int]]:
        image_ids = self._image_ids()
        cache = self._cache_path(image_ids)
        if cache is not None and cache.is_file():
            return [(str(a), int(b)) for a, b in json.loads(cache.read_text())]
        index: list[tuple[str, int]] = []
        for image_id in image_ids:
            try:
                labels = instance_labels(read_sbd_instances(self.root / "inst" / f"{image_id}.mat"))
            except DatasetError as err:
                self._problem(str(err))
                continue
            index.extend((image_id, label) for label in labels)
        if cache is not None and not self.skip_corrupt:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(index))
            os.replace(tmp, cache)
        return index

    def _load(self, ref: tuple[str, int]) -> EvalSample:
        image_id, label = ref
        # Consecutive samples usually share the image: keep the last decoded pair.
        if self._last is None or self._last[0] != image_id:
            image_path = self.root / "img" / f"{image_id}.jpg"
            mat_path = self.root / "inst" / f"{image_id}.mat"
            image = read_rgb(image_path)
            inst = read_sbd_instances(mat_path)
            check_same_size(image, inst, image_path, mat_path)
            self._last = (image_id, image, inst)
        _, image, inst = self._last
        return EvalSample(f"{image_id}/{label}", image, (inst == label).astype(np.int32))

    def ids(self) -> list[str]:
        return [f"{a}/{b}" for a, b in self.index]
