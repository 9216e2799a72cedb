"""HQSeg-44K validation split (1537 images, one object each; SPEC §4).

Four sub-sets in this order, each ``*.jpg`` sorted by name with the mask ``<stem>.png`` in its mask folder;
mask = max over colour channels > 0 (soft edge values are foreground).
"""

from __future__ import annotations

from pathlib import Path

from .base import DatasetError, EvalDataset, EvalSample, check_same_size, read_mask_color, read_rgb
from .paired import decode_nonzero_mask

#: (sub-set name, image folder, mask folder) relative to the HQSeg-44K root.
HQSEG_VAL_SUBSETS: tuple[tuple[str, str, str], ...] = (
    ("DIS5K-VD", "DIS5K/DIS-VD/im", "DIS5K/DIS-VD/gt"),
    ("ThinObject5k-TE", "thin_object_detection/ThinObject5K/images_test",
     "thin_object_detection/ThinObject5K/masks_test"),
    ("COIFT", "thin_object_detection/COIFT/images", "thin_object_detection/COIFT/masks"),
    ("HRSOD", "thin_object_detection/HRSOD/images", "thin_object_detection/HRSOD/masks_max255"),
)


class HQSegDataset(EvalDataset):
    """HQSeg-44K val. Sample ids are ``<sub-set>/<stem>`` (stems are not unique across sub-sets)."""

    name = "HQSeg"

    def _build_index(self) -> list[tuple[str, Path, Path]]:
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: directory not found: {self.root}")
        index = []
        for subset, im_dir, gt_dir in HQSEG_VAL_SUBSETS:
            folder = self.root / im_dir
            if not folder.is_dir():
                self._problem(f"sub-set {subset} missing: directory not found: {folder}")
                continue
            # Only lower-case .jpg, as the reference's glob('*.jpg').
            for image in sorted(folder.glob("*.jpg"), key=lambda p: p.name):
                index.append((subset, image, self.root / gt_dir / f"{image.stem}.png"))
        if not index:
            raise DatasetError(f"{self.name}: no images found under {self.root}")
        return index

    def _load(self, ref: tuple[str, Path, Path]) -> EvalSample:
        subset, image_path, mask_path = ref
        image = read_rgb(image_path)
        gt = decode_nonzero_mask(read_mask_color(mask_path))
        check_same_size(image, gt, image_path, mask_path)
        return EvalSample(f"{subset}/{image_path.stem}", image, gt)

    def ids(self) -> list[str]:
        return [f"{subset}/{image.stem}" for subset, image, _ in self.index]
