"""The raw record format shared by every source, plus encode/decode helpers.

A *record* is what a source's ``__getitem__`` returns: one image with all of its object masks, before any
augmentation. Masks are stored the RITM way, as a stack of 8-bit label *layers*: each object is the set of
pixels whose value equals ``value`` in layer ``layer``. Overlapping objects (a child inside its parent)
live in different layers; disjoint objects may share one layer with different values.

``Record`` (decoded)::

    sample_id  str
    image      uint8 (H, W, 3), RGB
    layers     uint8 (H, W, L), L >= 1
    objects    ObjectTable with N entries; object id = position 0..N-1

``ObjectTable`` (parallel arrays)::

    layer      int32 (N,)  layer index of the object
    value      int32 (N,)  label value inside that layer (1..255)
    parent     int32 (N,)  parent object id, -1 for a root
    is_stuff   bool  (N,)  COCO-panoptic "stuff" region (COCO+LVIS only; always False elsewhere)

``EncodedRecord`` has the same keys but ``image`` is the encoded file (JPEG/PNG bytes, decoded with OpenCV
exactly like ``cv2.imread``) and ``layers`` is a list of single-channel 8-bit PNGs. Sources expose it through
``read_encoded`` so that the TFDS builder can store the original bytes without re-encoding, which makes the
prepare → read round trip bytes-exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import cv2
import numpy as np

MAX_OBJECTS_PER_LAYER = 255


class ObjectTable(TypedDict):
    """Per-object arrays; see the module docstring."""

    layer: np.ndarray
    value: np.ndarray
    parent: np.ndarray
    is_stuff: np.ndarray


class Record(TypedDict):
    """A decoded raw sample; see the module docstring."""

    sample_id: str
    image: np.ndarray
    layers: np.ndarray
    objects: ObjectTable


class EncodedRecord(TypedDict):
    """A raw sample with the image and mask layers still encoded."""

    sample_id: str
    image: bytes
    layers: list[bytes]
    objects: ObjectTable


def make_objects(
    mapping: Sequence[tuple[int, int]],
    parent: Sequence[int | None] | None = None,
    is_stuff: Sequence[bool] | None = None,
) -> ObjectTable:
    """Builds an ObjectTable from (layer, value) pairs; default: all roots, no stuff."""
    n = len(mapping)
    arr = np.asarray(mapping, dtype=np.int32).reshape(n, 2)
    parents = np.full(n, -1, np.int32) if parent is None else np.array(
        [-1 if p is None else p for p in parent], dtype=np.int32)
    stuff = np.zeros(n, bool) if is_stuff is None else np.asarray(is_stuff, dtype=bool)
    if parents.shape != (n,) or stuff.shape != (n,):
        raise ValueError("parent / is_stuff must have one entry per object")
    return ObjectTable(layer=arr[:, 0].copy(), value=arr[:, 1].copy(), parent=parents, is_stuff=stuff)


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
    """Decodes JPEG/PNG bytes to RGB uint8, exactly like the original's ``cv2.imread`` + BGR→RGB.

    IMREAD_COLOR (not UNCHANGED) so that grayscale files become 3-channel and EXIF orientation is applied,
    as ``cv2.imread`` does.
    """
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("could not decode image bytes")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_layer(data: bytes | np.ndarray) -> np.ndarray:
    """Decodes one PNG label layer to a 2-D uint8 array (``cv2.IMREAD_UNCHANGED``, as in RITM)."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    layer = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if layer is None or layer.ndim != 2 or layer.dtype != np.uint8:
        raise ValueError("a mask layer must be a single-channel 8-bit PNG")
    return layer


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG encoding of a 2-D uint8 array (or a BGR image)."""
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_record(encoded: EncodedRecord) -> Record:
    """EncodedRecord → Record. Validates that all layers have the image's size."""
    image = decode_image(encoded["image"])
    layers = [decode_layer(x) for x in encoded["layers"]]
    if not layers:
        layers = [np.zeros(image.shape[:2], np.uint8)]
    for layer in layers:
        if layer.shape != image.shape[:2]:
            raise ValueError(
                f"{encoded['sample_id']}: mask layer {layer.shape} does not match image {image.shape[:2]}")
    return Record(sample_id=encoded["sample_id"], image=image, layers=np.stack(layers, axis=2),
                  objects=encoded["objects"])


def encode_layers(layers: np.ndarray) -> list[bytes]:
    """(H, W, L) uint8 → list of L PNG byte strings."""
    return [encode_png(np.ascontiguousarray(layers[:, :, i])) for i in range(layers.shape[2])]


def pack_masks(masks: Sequence[np.ndarray], shape: tuple[int, int] | None = None
               ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Packs binary masks into label layers with RITM's greedy rule.

    Masks are visited from the largest to the smallest; each goes into the first layer where all of its
    pixels are still free and that holds fewer than 255 objects, else into a new layer. Returns the
    (H, W, L) uint8 stack (L >= 1) and the (layer, value) mapping in the input order.

    Args:
        masks: boolean (or 0/non-0) arrays of one common (H, W) shape.
        shape: (H, W), required only when ``masks`` is empty.
    """
    if not masks:
        if shape is None:
            raise ValueError("shape is required when there are no masks")
        return np.zeros((*shape, 1), np.uint8), []
    bool_masks = [np.asarray(m) != 0 for m in masks]
    layers = [np.zeros(bool_masks[0].shape, np.uint8)]
    counts = [0]
    mapping: list[tuple[int, int]] = [(0, 0)] * len(bool_masks)
    # Stable sort on decreasing area; ties keep the input order.
    order = sorted(range(len(bool_masks)), key=lambda i: -int(bool_masks[i].sum()))
    for i in order:
        mask = bool_masks[i]
        for li, layer in enumerate(layers):
            if counts[li] < MAX_OBJECTS_PER_LAYER and not layer[mask].any():
                break
        else:
            layers.append(np.zeros_like(layers[0]))
            counts.append(0)
            li = len(layers) - 1
        counts[li] += 1
        layers[li][mask] = counts[li]
        mapping[i] = (li, counts[li])
    return np.stack(layers, axis=2), mapping


def object_mask(layers: np.ndarray, objects: ObjectTable, obj_id: int) -> np.ndarray:
    """Boolean mask of object ``obj_id``."""
    return layers[:, :, int(objects["layer"][obj_id])] == int(objects["value"][obj_id])


def children_of(objects: ObjectTable, obj_id: int) -> list[int]:
    """Ids whose parent is ``obj_id`` (ascending)."""
    return [int(i) for i in np.flatnonzero(objects["parent"] == obj_id)]


def root_ids(objects: ObjectTable) -> list[int]:
    """Ids of objects without a parent (ascending)."""
    return [int(i) for i in np.flatnonzero(objects["parent"] < 0)]
