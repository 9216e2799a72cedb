"""The image list (folder images plus uploads) and image decoding with clear, status-carrying errors.

Each image gets a server-issued integer id (its position in the list) and a *key*: the name of its mask
folder, `MASKS_DIR/<key>/`. The key is the file stem made safe (`paths.safe_component`); when two images
share a stem (`a.jpg`, `a.png`) the later one gets the extension appended (`a_png`), then a counter.
Folder images come first, sorted by name, then uploads (`MASKS_DIR/uploads/`), so keys are stable across
restarts as long as the folder does not change.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomic
from .paths import IMAGE_EXTENSIONS, check_upload_name, safe_component, safe_join

UPLOADS = "uploads"  # sub-folder of MASKS_DIR holding uploaded images
RESERVED_KEYS = {UPLOADS, "annotations.json"}
DEFAULT_MAX_PIXELS = 80_000_000  # ~9k×9k: a full-resolution float map of that size is already 320 MB


class ImageError(Exception):
    """An image that cannot be used; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ImageEntry:
    id: int
    name: str  # file name as listed (folder) or as stored (upload)
    path: Path
    key: str  # mask folder name under MASKS_DIR
    uploaded: bool

    def public(self) -> dict:
        """What the API shows: never the server-side path."""
        return {"id": self.id, "name": self.name, "key": self.key, "uploaded": self.uploaded}


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes of an image file → (H, W, 3) uint8 RGB; `ImageError` (400/413) when it cannot be used.

    The pixel count is read from the header (Pillow, lazily) before decoding, so a small file that
    expands to gigabytes (a decompression bomb) is refused without being decoded. OpenCV does the decoding
    and applies the EXIF orientation, as browsers do when they show the file.
    """
    import cv2
    from PIL import Image

    if not data:
        raise ImageError(400, "the image file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            with Image.open(io.BytesIO(data)) as probe:
                w, h = probe.size
    except Image.DecompressionBombError:
        raise ImageError(413, f"the image has too many pixels (limit {max_pixels:,})") from None
    except Exception:  # Pillow may not know a format OpenCV reads: the decode below decides
        w = h = 0
    if w * h > max_pixels:
        raise ImageError(413, f"the image is {w}×{h} = {w * h:,} pixels; the limit is {max_pixels:,}")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None or arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(400, "the file could not be decoded as an image (JPEG, PNG, BMP, TIFF or WebP expected)")
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise ImageError(413, f"the image is {arr.shape[1]}×{arr.shape[0]} pixels; the limit is {max_pixels:,}")
    return np.ascontiguousarray(arr[..., ::-1])


def read_image(entry: ImageEntry, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an entry's file (RGB uint8); `ImageError` if it vanished or is not a usable image."""
    try:
        data = entry.path.read_bytes()
    except OSError as e:
        raise ImageError(404, f"{entry.name}: cannot be read ({e.strerror or e})") from None
    try:
        return decode_image(data, max_pixels)
    except ImageError as e:
        raise ImageError(e.status if e.status != 400 else 422, f"{entry.name}: {e.message}") from None


def _is_image_file(path: Path) -> bool:
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith(".")
        and path.is_file()
        and os.access(path, os.R_OK)
    )


class ImageCatalog:
    """The images on offer: folder images (read-only) and uploads (stored under MASKS_DIR/uploads)."""

    def __init__(self, images_dir: str | Path, masks_dir: str | Path):
        self.images_dir = Path(images_dir)
        self.masks_dir = Path(masks_dir)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"images folder not found: {self.images_dir}")
        self._lock = threading.Lock()
        self._entries: list[ImageEntry] = []
        self._keys: set[str] = set()
        for path in sorted(p for p in self.images_dir.iterdir() if _is_image_file(p)):
            self._add(path.name, path, uploaded=False)
        uploads = self.masks_dir / UPLOADS
        if uploads.is_dir():
            for path in sorted(p for p in uploads.iterdir() if _is_image_file(p)):
                self._add(path.name, path, uploaded=True)

    def _unique_key(self, stem: str, ext: str) -> str:
        base = safe_component(stem)
        candidates = [base, f"{base}_{ext.lstrip('.')}"] + [f"{base}-{k}" for k in range(2, 10_000)]
        for key in candidates:
            if key not in self._keys and key not in RESERVED_KEYS:
                return key
        raise RuntimeError(f"no free mask folder name for {stem!r}")

    def _add(self, name: str, path: Path, uploaded: bool) -> ImageEntry:
        stem, ext = os.path.splitext(name)
        entry = ImageEntry(len(self._entries), name, path, self._unique_key(stem, ext), uploaded)
        self._entries.append(entry)
        self._keys.add(entry.key)
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[ImageEntry]:
        with self._lock:
            return list(self._entries)

    def get(self, image_id: int) -> ImageEntry | None:
        with self._lock:
            return self._entries[image_id] if 0 <= image_id < len(self._entries) else None

    def add_upload(self, name: str, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ImageEntry, np.ndarray]:
        """Validate the name and the bytes, store the file as `MASKS_DIR/uploads/<unique name>`, list it.

        Raises `UnsafeNameError` for a bad name and `ImageError` for bytes that are not a usable image;
        nothing is written in either case. The stored stem is made unique among all mask keys, so the
        upload's key is its stem (also after a restart).
        """
        stem, ext = check_upload_name(name)
        rgb = decode_image(data, max_pixels)
        with self._lock:
            stored = stem
            for k in range(2, 10_000):
                path = safe_join(self.masks_dir, UPLOADS, stored + ext)
                if stored not in self._keys and stored not in RESERVED_KEYS and not path.exists():
                    break
                stored = f"{stem}-{k}"
            write_bytes_atomic(path, data)
            entry = self._add(stored + ext, path, uploaded=True)
        return entry, rgb
