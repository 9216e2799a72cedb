"""The annotation logic behind the HTTP layer: images, per-image click sessions, prefetching, saving.

Concurrency model (the HTTP server runs one thread per connection):

* One `ImageSession` per opened image, each with its own lock; every read or change of its clicks,
  object index or saved state happens under that lock, so concurrent requests on one image are applied
  one after the other and none is lost or half-applied. Different images proceed in parallel.
* All sessions share one compiled `ClickEngine` (jitted functions are safe to call from several threads).
* Encoding (the heavy DINOv2 pass) runs on a single background worker: opening an image waits for its
  encode, and after each open the *next* image in the list is encoded ahead, so moving on is instant.
  One worker, not more, because on a CPU two encodes would only slow each other (and the clicks) down.
* `ClickSession.add_click` commits its state only after the step succeeded, so a request that raises
  (bad input, a device error) leaves the session as it was, and saved masks are files written atomically
  (`store.MaskStore`) that no later failure touches.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..inference import ClickEngine, ClickSession
from ..inference import encode_image as session_encode_image
from ..model.skipclick import ImageFeatures
from .images import DEFAULT_MAX_PIXELS, ImageCatalog, ImageEntry, ImageError, read_image
from .paths import UnsafeNameError
from .render import SAVED_COLOR, image_jpeg, overlay_png
from .store import MaskStore, encode_mask_png

DISPLAY_THRESHOLD = 0.5  # the original Qt demo shows probability > 0.5 (the evaluation uses 0.49)
DEFAULT_MAX_UPLOAD_BYTES = 32 * 1024 * 1024


class ApiError(Exception):
    """A request the server refuses; `status` is the HTTP status, `message` is shown to the annotator."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Prepared:
    """A decoded and encoded image, ready for clicks."""

    rgb: np.ndarray  # (H, W, 3) uint8
    features: ImageFeatures
    encode_ms: float


def encode_image(engine: ClickEngine, rgb: np.ndarray) -> Prepared:
    """Resize to the network size and encode (as `ClickSession.set_image`), waiting for the result so the
    time is spent on the worker thread, not in the first click; also compiles this image size's resizes."""
    t0 = time.perf_counter()
    features, _ = session_encode_image(engine, rgb)
    features = jax.block_until_ready(features)
    encode_ms = 1e3 * (time.perf_counter() - t0)
    # The click path resizes the previous mask H×W → S×S and the result S×S → H×W; both are compiled per
    # image size. Doing it here, on the worker, keeps that compile out of the image's first click.
    h, w = rgb.shape[:2]
    s = engine.size
    jax.block_until_ready(engine.to_network(np.zeros((1, h, w, 1), np.float32)))
    jax.block_until_ready(engine.to_image(np.zeros((1, s, s, 1), np.float32), (h, w)))
    return Prepared(rgb, features, encode_ms)


class ImageSession:
    """Clicks on one image: the current object's click session, its index and whether it is saved."""

    def __init__(self, entry: ImageEntry, prepared: Prepared, engine: ClickEngine, threshold: float, index: int):
        self.entry = entry
        self.rgb = prepared.rgb
        self.encode_ms = prepared.encode_ms
        self.lock = threading.Lock()
        self.session = ClickSession(engine=engine, threshold=threshold)
        self.session.set_features(prepared.features, self.rgb.shape[:2])
        self.object = index
        self.saved_clicks: tuple | None = None  # the clicks as of the last save of the current object
        self._jpeg: bytes | None = None

    @property
    def hw(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]

    @property
    def dirty(self) -> bool:
        """Clicks on the current object that are not saved yet."""
        clicks = tuple(self.session.clicks)
        return bool(clicks) and clicks != self.saved_clicks

    def mask(self) -> np.ndarray:
        return self.session.mask

    def jpeg(self) -> bytes:
        if self._jpeg is None:
            self._jpeg = image_jpeg(self.rgb)
        return self._jpeg

    def state(self, saved_objects: list[int]) -> dict[str, Any]:
        h, w = self.hw
        return {
            "id": self.entry.id,
            "name": self.entry.name,
            "key": self.entry.key,
            "width": w,
            "height": h,
            "object": self.object,
            "clicks": [{"x": c.x, "y": c.y, "positive": c.is_positive} for c in self.session.clicks],
            "dirty": self.dirty,
            "saved_objects": saved_objects,
        }


class AnnotateApp:
    """Everything the HTTP endpoints do, without HTTP (see `server.py` for the routes).

    Args:
        images_dir: folder of images to annotate (read only).
        masks_dir: output folder; the only place anything is written (masks, annotations.json, uploads/).
        engine: the compiled click step, shared by all image sessions.
        weights: one line describing the weights, shown in the page header.
        random_weights: the weights are random; the page says so plainly.
        threshold: display/save threshold on the probability map (0.5, as the original GUI).
        coco: keep `masks_dir/annotations.json` (COCO, RLE) in step with the saved PNGs.
        max_upload_bytes, max_pixels: upload size and decoded image size limits.
        prefetch: encode the next image in the background after each open.
        max_sessions: opened images kept in memory (features + clicks); the least recently used clean
            one is dropped first.
    """

    def __init__(
        self,
        images_dir: str | Path,
        masks_dir: str | Path,
        engine: ClickEngine,
        *,
        weights: str = "",
        random_weights: bool = False,
        threshold: float = DISPLAY_THRESHOLD,
        coco: bool = False,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        prefetch: bool = True,
        max_sessions: int = 8,
        cache_size: int = 3,
        dtype: str = "float32",
    ):
        self.engine = engine
        self.weights, self.random_weights, self.dtype = weights, random_weights, dtype
        self.threshold = threshold
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self.prefetch_enabled, self.max_sessions, self.cache_size = prefetch, max_sessions, cache_size
        self.catalog = ImageCatalog(images_dir, masks_dir)
        self.store = MaskStore(masks_dir, coco=coco, entries=self.catalog.entries())
        self._lock = threading.Lock()  # guards _sessions and _pending (never held during model work)
        self._sessions: OrderedDict[int, ImageSession] = OrderedDict()
        self._pending: OrderedDict[int, Future[Prepared]] = OrderedDict()
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate-encode")

    # --- lifecycle ---------------------------------------------------------------------------------
    def warmup(self) -> Future:
        """Compile the encode and click steps on the worker before the first image is opened."""

        def run() -> None:
            s = self.engine.size
            features = self.engine.encode(np.zeros((1, s, s, 3), np.float32))
            prev = np.zeros((1, s, s, 1), np.float32)
            jax.block_until_ready(self.engine.click(features, prev, [[(s / 2, s / 2, True)]]))

        return self._encoder.submit(run)

    def close(self) -> None:
        self._encoder.shutdown(wait=False, cancel_futures=True)

    # --- read-only endpoints -----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "random_weights": self.random_weights,
            "threshold": self.threshold,
            "size": self.engine.size,
            "flip": self.engine.flip,
            "dtype": self.dtype,
            "device": jax.devices()[0].platform,
            "coco": self.store.coco,
            "max_upload_bytes": self.max_upload_bytes,
        }

    def list_images(self) -> list[dict[str, Any]]:
        return [{**e.public(), "saved_objects": len(self.store.saved_objects(e))} for e in self.catalog.entries()]

    # --- sessions ----------------------------------------------------------------------------------
    def _entry(self, image_id: int) -> ImageEntry:
        entry = self.catalog.get(image_id)
        if entry is None:
            raise ApiError(404, f"no image with id {image_id} (the list has {len(self.catalog)})")
        return entry

    def _prepare(self, entry: ImageEntry, rgb: np.ndarray | None = None) -> Future[Prepared]:
        """The (possibly already running) encode of `entry`; a bounded cache of finished ones."""
        with self._lock:
            fut = self._pending.get(entry.id)
            if fut is None:
                fut = self._encoder.submit(self._load_and_encode, entry, rgb)
                self._pending[entry.id] = fut
                done = [k for k, f in self._pending.items() if f.done()]
                for k in done[: max(0, len(self._pending) - self.cache_size)]:
                    del self._pending[k]
            self._pending.move_to_end(entry.id)
            return fut

    def _load_and_encode(self, entry: ImageEntry, rgb: np.ndarray | None) -> Prepared:
        return encode_image(self.engine, read_image(entry, self.max_pixels) if rgb is None else rgb)

    def _prefetch(self, image_id: int) -> None:
        entry = self.catalog.get(image_id)
        if self.prefetch_enabled and entry is not None:
            with self._lock:
                if image_id in self._sessions or image_id in self._pending:
                    return
            self._prepare(entry)

    def _session(self, image_id: int) -> ImageSession:
        """The image's session, opening it (waiting for its encode) if needed."""
        entry = self._entry(image_id)
        with self._lock:
            s = self._sessions.get(image_id)
            if s is not None:
                self._sessions.move_to_end(image_id)
                return s
        fut = self._prepare(entry)
        try:
            prepared = fut.result()
        except Exception as e:
            with self._lock:
                if self._pending.get(image_id) is fut:
                    del self._pending[image_id]  # a retry reads and encodes again (the file may get fixed)
            if isinstance(e, ImageError):
                raise ApiError(e.status, e.message) from None
            raise
        with self._lock:
            s = self._sessions.get(image_id)
            if s is None:  # we won the race against a concurrent open of the same image
                s = ImageSession(entry, prepared, self.engine, self.threshold, self.store.next_index(entry))
                self._sessions[image_id] = s
                self._pending.pop(image_id, None)
                self._evict_sessions()
            return s

    def _evict_sessions(self) -> None:
        """Keep at most `max_sessions`: drop the least recently used without unsaved clicks first; never
        one a request is working on."""
        while len(self._sessions) > self.max_sessions:
            idle = [k for k, s in self._sessions.items() if not s.lock.locked()][:-1]
            if not idle:
                return
            clean = [k for k in idle if not self._sessions[k].dirty]
            del self._sessions[(clean or idle)[0]]

    def _state(self, s: ImageSession) -> dict[str, Any]:
        return s.state(self.store.saved_objects(s.entry))

    def open(self, image_id: int) -> dict[str, Any]:
        """Open (encode, or take the prefetched encode of) an image; starts encoding the next one."""
        with self._lock:
            pending = self._pending.get(image_id)
            ready = image_id in self._sessions or (pending is not None and pending.done())
        t0 = time.perf_counter()
        s = self._session(image_id)
        wait_ms = 1e3 * (time.perf_counter() - t0)
        self._prefetch(image_id + 1)
        with s.lock:
            return {**self._state(s), "encode_ms": s.encode_ms, "open_ms": wait_ms, "prefetched": ready}

    # --- click endpoints (all under the image's lock) --------------------------------------------------
    def _mask_response(self, s: ImageSession, prob: np.ndarray, model_ms: float) -> tuple[bytes, dict[str, Any]]:
        t0 = time.perf_counter()
        mask = prob > np.float32(self.threshold)
        png = overlay_png(mask)
        render_ms = 1e3 * (time.perf_counter() - t0)
        state = {**self._state(s), "area": int(mask.sum()), "model_ms": model_ms, "render_ms": render_ms}
        return png, state

    def click(self, image_id: int, y: float, x: float, positive: bool) -> tuple[bytes, dict[str, Any]]:
        s = self._session(image_id)
        with s.lock:
            t0 = time.perf_counter()
            try:
                prob = s.session.add_click(y, x, positive)
            except ValueError as e:
                raise ApiError(400, str(e)) from None
            return self._mask_response(s, prob, 1e3 * (time.perf_counter() - t0))

    def undo(self, image_id: int) -> tuple[bytes, dict[str, Any]]:
        s = self._session(image_id)
        with s.lock:
            return self._mask_response(s, s.session.undo(), 0.0)

    def reset(self, image_id: int) -> tuple[bytes, dict[str, Any]]:
        s = self._session(image_id)
        with s.lock:
            s.session.reset()
            return self._mask_response(s, s.session.probability, 0.0)

    def overlay(self, image_id: int) -> tuple[bytes, dict[str, Any]]:
        """The current object's overlay and state (a page re-opening an image with clicks on it)."""
        s = self._session(image_id)
        with s.lock:
            return self._mask_response(s, s.session.probability, 0.0)

    def mask_png(self, image_id: int) -> bytes:
        """The current object's mask as an 8-bit PNG (0/255), as `save` would write it."""
        s = self._session(image_id)
        with s.lock:
            return encode_mask_png(s.mask())

    def saved_overlay(self, image_id: int) -> bytes:
        """The union of this image's saved objects as an overlay (another colour)."""
        s = self._session(image_id)
        return overlay_png(self.store.saved_union(s.entry, s.hw), SAVED_COLOR)

    def image_jpeg(self, image_id: int) -> bytes:
        s = self._session(image_id)
        with s.lock:
            return s.jpeg()

    def _save_locked(self, s: ImageSession) -> str:
        if not s.session.clicks:
            raise ApiError(409, f"object {s.object} has no clicks yet: click on the object first")
        mask = s.mask()
        if not mask.any():
            raise ApiError(409, f"the mask of object {s.object} is empty: nothing to save")
        try:
            path = self.store.save(s.entry, s.object, mask)
        except UnsafeNameError as e:
            raise ApiError(403, f"refusing to write outside the masks folder: {e}") from None
        s.saved_clicks = tuple(s.session.clicks)
        return path

    def save(self, image_id: int) -> dict[str, Any]:
        """Write the current object's mask to `MASKS_DIR/<key>/<object>.png` (and the COCO JSON)."""
        s = self._session(image_id)
        with s.lock:
            path = self._save_locked(s)
            return {**self._state(s), "saved": path}

    def next_object(self, image_id: int) -> dict[str, Any]:
        """Save the current object if it has unsaved, non-empty clicks; then start a new object (clicks
        cleared). The index moves on only when the current object is on disk, so no gaps appear."""
        s = self._session(image_id)
        with s.lock:
            saved = None
            if s.dirty and s.mask().any():
                saved = self._save_locked(s)
            on_disk = self.store.saved_objects(s.entry)
            if s.object in on_disk:
                s.object = max(on_disk[-1], s.object) + 1
            s.session.reset()
            s.saved_clicks = None
            return {**self._state(s), "saved": saved}

    # --- uploads -------------------------------------------------------------------------------------
    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        """Store an uploaded image under MASKS_DIR/uploads and list it; its encode starts right away."""
        if len(data) > self.max_upload_bytes:
            raise ApiError(413, upload_too_large(len(data), self.max_upload_bytes))
        try:
            entry, rgb = self.catalog.add_upload(name, data, self.max_pixels)
        except UnsafeNameError as e:
            raise ApiError(400, str(e)) from None
        except ImageError as e:
            raise ApiError(e.status, f"upload {name!r} rejected: {e.message}") from None
        self._prepare(entry, rgb)
        return {**entry.public(), "saved_objects": 0}


def upload_too_large(size: int, limit: int) -> str:
    return (f"upload of {size / 2**20:.1f} MiB exceeds the limit of {limit / 2**20:.1f} MiB "
            "(start the server with a larger --max-upload-mb)")
