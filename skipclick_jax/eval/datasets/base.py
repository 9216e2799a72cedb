"""Common pieces of the evaluation dataset readers: the sample type, the base class and file readers.

Every reader builds a light index of "references" (file names, instance ids) first and decodes a sample only
when it is requested, so iteration streams through the dataset with one image in memory at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

#: File extensions accepted as images (compared case-insensitively).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                              ".pnm"})


class DatasetError(RuntimeError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True)
class EvalSample:
    """One object to segment.

    Attributes:
        id: stable identifier (image stem, or ``<stem>/<instance>`` when an image holds several objects).
        image: H×W×3 RGB, uint8 — or float32 in [0, 1] for WSESeg/SHSeg (SPEC §3.2, trap 30).
        gt: H×W int32 mask, 1 = object, 0 = background, −1 = ignore.
    """

    id: str
    image: np.ndarray
    gt: np.ndarray


class EvalDataset:
    """Base class: an indexable, iterable sequence of :class:`EvalSample`.

    Subclasses implement :meth:`_build_index` (list of references, cheap) and :meth:`_load` (reference →
    sample). With ``skip_corrupt=True`` iteration skips samples whose files cannot be read, with a warning;
    otherwise the first such file raises :class:`DatasetError`.
    """

    name = "dataset"

    def __init__(self, root: str | Path, skip_corrupt: bool = False) -> None:
        self.root = Path(root)
        self.skip_corrupt = skip_corrupt
        self._index: list[Any] | None = None
        self.skipped: list[str] = []  # why each skipped sample was skipped (with skip_corrupt)

    # -- to implement -------------------------------------------------------------------------------------
    def _build_index(self) -> list[Any]:
        raise NotImplementedError

    def _load(self, ref: Any) -> EvalSample:
        raise NotImplementedError

    # -- public -------------------------------------------------------------------------------------------
    @property
    def index(self) -> list[Any]:
        """The sample references (built on first use)."""
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> EvalSample:
        return self._checked(self.index[i])

    def __iter__(self) -> Iterator[EvalSample]:
        return self.iter_indices(range(len(self.index)))

    def iter_indices(self, indices: Iterable[int]) -> Iterator[EvalSample]:
        """The samples at ``indices``, in that order. Unreadable samples and samples whose object mask is
        empty raise a :class:`DatasetError`, or with ``skip_corrupt`` are skipped with a warning, the reason
        appended to :attr:`skipped`."""
        for i in indices:
            try:
                yield self._checked(self.index[i])
            except DatasetError as err:
                if not self.skip_corrupt:
                    raise
                self.skipped.append(str(err))
                warnings.warn(f"{self.name}: skipping sample: {err}", stacklevel=2)

    def _checked(self, ref: Any) -> EvalSample:
        sample = self._load(ref)
        if not np.any(np.asarray(sample.gt) == 1):
            # An object without pixels has no IoU (0/0) and would turn the metrics into NaN.
            raise DatasetError(f"sample {sample.id} ({describe_ref(ref)}): the object mask is empty")
        return sample

    def ids(self) -> list[str]:
        """Sample ids in order, without decoding images (override when ids need no loading)."""
        return [s.id for s in self]

    # -- helpers for subclasses ---------------------------------------------------------------------------
    def _problem(self, message: str) -> None:
        """Raise a DatasetError, or only warn when ``skip_corrupt`` (for index-time problems)."""
        if self.skip_corrupt:
            warnings.warn(f"{self.name}: {message}", stacklevel=3)
        else:
            raise DatasetError(f"{self.name}: {message}")


def describe_ref(ref: Any) -> str:
    """The files behind a sample reference (for messages), else the reference itself."""
    parts = ref if isinstance(ref, tuple) else (ref,)
    paths = [str(p) for p in parts if isinstance(p, Path)]
    return ", ".join(paths) if paths else str(ref)


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise a DatasetError naming it."""
    if not path.is_dir():
        raise DatasetError(f"{what}: directory not found: {path}")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (known extensions, no hidden files), sorted by name."""
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=lambda p: p.name)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image with OpenCV as H×W×3 uint8 RGB (OpenCV decodes BGR; alpha dropped, gray replicated)."""
    if not path.is_file():
        raise DatasetError(f"missing image file: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot decode image file: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask_color(path: Path) -> np.ndarray:
    """Read a mask as the reference does (``cv2.imread`` default flags): H×W×3 uint8, BGR order."""
    if not path.is_file():
        raise DatasetError(f"missing mask file: {path}")
    mask = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if mask is None:
        raise DatasetError(f"cannot decode mask file: {path}")
    return mask


def read_rgb_float_pil(path: Path) -> np.ndarray:
    """WSESeg/SHSeg image decoding: PIL, /255 → float32, grayscale replicated to 3 channels."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DatasetError(f"missing image file: {path}")
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB"):
                # The reference only handles L and RGB; anything else would give the wrong channel count.
                im = im.convert("RGB")
            arr = np.asarray(im)
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"cannot decode image file: {path} ({err})") from err
    # Same arithmetic as the reference: float64 division, then cast.
    image = arr / 255.0
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=2)
    return image.astype(np.float32)


def read_label_pil(path: Path) -> np.ndarray:
    """Read a 2-D label image with PIL (palette PNGs give their indices, as in the reference)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DatasetError(f"missing mask file: {path}")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"cannot decode mask file: {path} ({err})") from err
    if arr.ndim != 2:
        raise DatasetError(f"expected a single-channel label image, got shape {arr.shape}: {path}")
    return arr


def check_same_size(image: np.ndarray, gt: np.ndarray, image_path: Path, mask_path: Path) -> None:
    """Raise a DatasetError when the mask and image sizes differ."""
    if image.shape[:2] != gt.shape[:2]:
        raise DatasetError(f"mask {mask_path} is {gt.shape[1]}x{gt.shape[0]} but image {image_path} is "
                           f"{image.shape[1]}x{image.shape[0]}")


def match_by_stem(names: Sequence[Path], folder: Path, what: str) -> dict[str, Path]:
    """Map file stem → path for the files in ``folder``; duplicate stems are an error (ambiguous match)."""
    out: dict[str, Path] = {}
    for p in names:
        if p.stem in out:
            raise DatasetError(f"{what}: two files with stem {p.stem!r} in {folder}: "
                               f"{out[p.stem].name}, {p.name}")
        out[p.stem] = p
    return out
