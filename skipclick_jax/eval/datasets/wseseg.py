"""WSESeg (10 winter-sports classes) and SHSeg (ski helmets) (SPEC §4, traps 28, 30).

Both use ``mask_<name>.png`` label images next to ``<name>.jpg`` images. Every distinct non-zero value of a
label image is one object; samples are ordered by mask file name, then ascending value. Images are decoded
with PIL, divided by 255 to float32 and grayscale is replicated to 3 channels (the network input is not
divided again). WSESeg classes live in ``<root>/<class>/`` except ``yt_sports``
(``<root>/yt_sports/skijump/annotated_frames/0/``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .base import (
    DatasetError,
    EvalDataset,
    EvalSample,
    check_same_size,
    read_label_pil,
    read_rgb_float_pil,
    require_dir,
)

#: WSESeg classes in the paper's column order.
WSESEG_CLASSES: tuple[str, ...] = (
    "flickr_bobsleighs", "flickr_curling_stone", "flickr_ski_helmets", "flickr_snow_kites", "yt_sports",
    "flickr_curling_brooms", "flickr_ski_goggles", "flickr_ski_misc", "flickr_slalom_obstacles",
    "flickr_snowboards",
)


def wseseg_class_dir(root: Path, class_name: str) -> Path:
    """Folder of one WSESeg class."""
    if class_name not in WSESEG_CLASSES:
        raise ValueError(f"unknown WSESeg class {class_name!r}; expected one of {', '.join(WSESEG_CLASSES)}")
    if class_name == "yt_sports":
        return root / "yt_sports" / "skijump" / "annotated_frames" / "0"
    return root / class_name


class MaskPrefixDataset(EvalDataset):
    """Flat folder of ``mask_<name>.png`` + ``<name>.jpg``; one sample per non-zero label value.

    Sample ids are ``<name>/<value>``.
    """

    name = "SHSeg"

    def __init__(self, root: str | Path, skip_corrupt: bool = False) -> None:
        super().__init__(root, skip_corrupt)
        self._last: tuple[Path, np.ndarray, np.ndarray] | None = None

    @property
    def folder(self) -> Path:
        return self.root

    def _build_index(self) -> list[tuple[Path, int]]:
        folder = require_dir(self.folder, self.name)
        index: list[tuple[Path, int]] = []
        for mask_path in sorted(folder.glob("mask_*.png"), key=lambda p: p.name):
            try:
                labels = read_label_pil(mask_path)
            except DatasetError as err:
                self._problem(str(err))
                continue
            values = np.unique(labels)
            if values.size and values[0] != 0:
                # The reference drops the smallest value, assuming it is 0; we keep every non-zero value.
                warnings.warn(f"{self.name}: {mask_path} has no background pixel; the reference evaluation "
                              f"would have skipped its label {values[0]}", stacklevel=2)
            index.extend((mask_path, int(v)) for v in values if v != 0)
        if not index:
            raise DatasetError(f"{self.name}: no mask_*.png with objects found in {folder}")
        return index

    @staticmethod
    def image_path(mask_path: Path) -> Path:
        """``mask_<name>.png`` → ``<name>.jpg`` in the same folder."""
        return mask_path.with_name(mask_path.name[len("mask_"):-len(".png")] + ".jpg")

    def _load(self, ref: tuple[Path, int]) -> EvalSample:
        mask_path, value = ref
        if self._last is None or self._last[0] != mask_path:
            image_path = self.image_path(mask_path)
            image = read_rgb_float_pil(image_path)
            labels = read_label_pil(mask_path)
            check_same_size(image, labels, image_path, mask_path)
            self._last = (mask_path, image, labels)
        _, image, labels = self._last
        gt = (labels == value).astype(np.int32)
        return EvalSample(f"{self.image_path(mask_path).stem}/{value}", image, gt)

    def ids(self) -> list[str]:
        return [f"{self.image_path(m).stem}/{v}" for m, v in self.index]


class SHSegDataset(MaskPrefixDataset):
    """SHSeg: flat folder (534 masks on 496 images)."""

    name = "SHSeg"


class WSESegDataset(MaskPrefixDataset):
    """One WSESeg class; ``root`` is the WSESeg root folder."""

    def __init__(self, root: str | Path, class_name: str, skip_corrupt: bool = False) -> None:
        super().__init__(root, skip_corrupt)
        self.class_dir = wseseg_class_dir(self.root, class_name)
        self.class_name = class_name
        self.name = f"WSESeg_{class_name}"

    @property
    def folder(self) -> Path:
        return self.class_dir
