"""Small synthetic datasets for tests and smoke runs, written in the real on-disk layouts.

Scenes are random shapes (ellipses, polygons, squares) painted over a noisy gradient, with a deterministic
mix of cases per image (``i % 4``):

0. a few objects, some with children (and grandchildren), two stuff regions, one tiny object;
1. a few isolated objects, no stuff;
2. only tiny objects (area < 1000 px) plus one stuff region, so most samples end up background-only;
3. many overlapping objects plus stuff.

Writers: :func:`write_cocolvis` (RITM layout, SPEC 4.1, pickles exactly as RITM writes them), and
:func:`write_folder` / :func:`write_coco_json`, which share one scene sequence so that the same root can
hold both layouts of the same data.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from skipclick_jax.coco_masks import rle_encode
from skipclick_jax.data.records import pack_masks

MIN_INSTANCE_AREA = 80  # RITM's creation threshold
MIN_STUFF_AREA = 500


@dataclass
class Scene:
    """One synthetic image with its instance masks (parents given by index) and stuff masks."""

    image: np.ndarray  # uint8 (H, W, 3) RGB
    instances: list[np.ndarray]  # bool (H, W)
    parents: list[int | None]
    stuff: list[np.ndarray]


def _ellipse(rng: np.random.Generator, shape: tuple[int, int], center: tuple[float, float], radius: float
             ) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    axes = (max(2, int(radius * rng.uniform(0.6, 1.0))), max(2, int(radius * rng.uniform(0.6, 1.0))))
    cv2.ellipse(mask, (int(center[1]), int(center[0])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask.astype(bool)


def _polygon(rng: np.random.Generator, shape: tuple[int, int], center: tuple[float, float], radius: float
             ) -> np.ndarray:
    n = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.5, 1.0, n)
    pts = np.stack([center[1] + radii * np.cos(angles), center[0] + radii * np.sin(angles)], axis=1)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


def _random_object(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    for _ in range(10):  # thin random triangles can come out too small: retry a few times
        radius = rng.uniform(0.08, 0.25) * min(h, w)
        center = (rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w)
        make = _ellipse if rng.random() < 0.5 else _polygon
        mask = make(rng, shape, center, radius)
        if mask.sum() >= 1000:
            break
    return mask


def _child_of(rng: np.random.Generator, parent: np.ndarray) -> np.ndarray | None:
    inner = cv2.erode(parent.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=2)
    candidates = np.flatnonzero(inner)
    if len(candidates) == 0:
        return None
    cy, cx = divmod(int(candidates[rng.integers(len(candidates))]), parent.shape[1])
    radius = 0.4 * np.sqrt(parent.sum() / np.pi)
    child = _ellipse(rng, parent.shape, (cy, cx), radius) & parent
    return child if child.sum() >= MIN_INSTANCE_AREA else None


def _tiny(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    side = int(rng.integers(9, 20))  # 81..361 px: kept at creation, removed by min_object_area=1000
    y, x = int(rng.integers(0, shape[0] - side)), int(rng.integers(0, shape[1] - side))
    mask = np.zeros(shape, bool)
    mask[y:y + side, x:x + side] = True
    return mask


def _paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    colour = rng.integers(0, 256, 3)
    noise = rng.normal(0, 10, (int(mask.sum()), 3))
    image[mask] = np.clip(colour + noise, 0, 255).astype(np.uint8)


def random_scene(rng: np.random.Generator, height: int, width: int, kind: int) -> Scene:
    """One scene of the given kind (0-3, see the module docstring)."""
    shape = (height, width)
    top, bottom = np.array(rng.integers(0, 256, 3)), np.array(rng.integers(0, 256, 3))
    t = np.linspace(0, 1, height)[:, None, None]
    noise = rng.normal(0, 12, (height, width, 3))
    image = np.clip(top * (1 - t) + bottom * t + noise, 0, 255).astype(np.uint8)

    instances: list[np.ndarray] = []
    parents: list[int | None] = []

    def add(mask: np.ndarray | None, parent: int | None = None) -> int | None:
        if mask is None or mask.sum() < MIN_INSTANCE_AREA:
            return None
        instances.append(mask)
        parents.append(parent)
        return len(instances) - 1

    num_objects = {0: (2, 5), 1: (1, 4), 2: (0, 1), 3: (4, 8)}[kind]
    for _ in range(int(rng.integers(*num_objects))):
        obj = add(_random_object(rng, shape))
        if kind == 0 and obj is not None and rng.random() < 0.6:
            child = add(_child_of(rng, instances[obj]), obj)
            if child is not None and rng.random() < 0.5:
                add(_child_of(rng, instances[child]), child)
    for _ in range({0: 1, 1: 0, 2: int(rng.integers(1, 4)), 3: 0}[kind]):
        add(_tiny(rng, shape))

    stuff: list[np.ndarray] = []
    if kind != 1:
        taken = np.logical_or.reduce(instances) if instances else np.zeros(shape, bool)
        rows = np.arange(height)[:, None]
        bands = [rows >= int(rng.uniform(0.6, 0.8) * height)]
        if kind == 0:
            bands.append(rows < int(rng.uniform(0.15, 0.3) * height))
        for band in bands:
            region = np.broadcast_to(band, shape) & ~taken
            if region.sum() > MIN_STUFF_AREA:
                stuff.append(region)

    for region in stuff:
        _paint(rng, image, region)
    for mask in instances:  # parents are added before their children, so children end up on top
        _paint(rng, image, mask)
    return Scene(image, instances, parents, stuff)


def iter_scenes(num_images: int, seed: int, size_range: tuple[int, int] = (200, 640)) -> Iterator[Scene]:
    """The deterministic scene sequence shared by all writers (image sizes vary in ``size_range``)."""
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        h, w = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, 2))
        yield random_scene(rng, h, w, i % 4)


def _hierarchy(parents: list[int | None]) -> dict[int, dict | None]:
    """RITM's hannotation hierarchy: None for isolated objects, else children / parent / node_level."""
    out: dict[int, dict | None] = {}
    for i, parent in enumerate(parents):
        children = [j for j, p in enumerate(parents) if p == i]
        level, p = 0, parent
        while p is not None:
            level, p = level + 1, parents[p]
        out[i] = None if parent is None and not children else {
            "children": children, "parent": parent, "node_level": level}
    return out


def write_cocolvis(root: str | Path, split: str = "train", num_images: int = 12, seed: int = 0,
                   size_range: tuple[int, int] = (200, 640)) -> Path:
    """Writes ``<root>/<split>/{images,masks,hannotation.pickle}`` as RITM does; returns the split dir.

    Mask pickles hold (list of PNG buffers as returned by ``cv2.imencode`` — 1-D uint8 ndarrays —, list of
    (layer, value) tuples); masks are ordered instances first, then stuff.
    """
    split_dir = Path(root) / split
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    (split_dir / "masks").mkdir(parents=True, exist_ok=True)
    annotation = {}
    for i, scene in enumerate(iter_scenes(num_images, seed, size_range)):
        image_id = f"{i + 1:012d}"
        bgr = cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(split_dir / "images" / f"{image_id}.jpg"), bgr)
        layers, mapping = pack_masks(scene.instances + scene.stuff, scene.image.shape[:2])
        encoded = [cv2.imencode(".png", np.ascontiguousarray(layers[:, :, li]))[1]
                   for li in range(layers.shape[2])]
        with open(split_dir / "masks" / f"{image_id}.pickle", "wb") as f:
            pickle.dump((encoded, [tuple(m) for m in mapping]), f)
        annotation[image_id] = {"num_instance_masks": len(scene.instances),
                                "hierarchy": _hierarchy(scene.parents)}
    with open(split_dir / "hannotation.pickle", "wb") as f:
        pickle.dump(annotation, f, protocol=pickle.HIGHEST_PROTOCOL)
    return split_dir


def write_folder(root: str | Path, num_images: int = 8, seed: int = 0,
                 size_range: tuple[int, int] = (200, 640)) -> Path:
    """Writes ``<root>/images/img_XXXX.jpg`` and ``<root>/masks/img_XXXX_<k>.png`` (instances only, 0/255).

    Extras that exercise the reader: the first mask is a 3-channel PNG non-zero only in one channel (value
    1), and one additional image has no masks at all.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, scene in enumerate(iter_scenes(num_images, seed, size_range)):
        stem = f"img_{i:04d}"
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        for k, mask in enumerate(scene.instances):
            out = mask.astype(np.uint8) * 255
            if i == 0 and k == 0:
                out = np.zeros((*mask.shape, 3), np.uint8)
                out[mask, 2] = 1
            cv2.imwrite(str(root / "masks" / f"{stem}_{k}.png"), out)
    empty = np.full((64, 80, 3), 127, np.uint8)
    cv2.imwrite(str(root / "images" / f"img_{num_images:04d}.jpg"), empty)
    return root


def write_coco_json(root: str | Path, num_images: int = 8, seed: int = 0,
                    size_range: tuple[int, int] = (200, 640), write_images: bool = True) -> Path:
    """Writes ``<root>/annotations.json`` (and optionally the images) for :func:`write_folder`'s scenes.

    Instance k of an image is stored as a polygon (k % 3 == 0, from its outer contour), compressed RLE
    (k % 3 == 1) or uncompressed RLE (k % 3 == 2); each image also gets one ``iscrowd`` annotation.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, scene in enumerate(iter_scenes(num_images, seed, size_range)):
        h, w = scene.image.shape[:2]
        file_name = f"img_{i:04d}.jpg"
        if write_images:
            cv2.imwrite(str(root / "images" / file_name), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": file_name, "height": h, "width": w})
        for k, mask in enumerate(scene.instances):
            if k % 3 == 0:
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                               cv2.CHAIN_APPROX_SIMPLE)
                # Contour points are pixel indices; COCO polygons live in continuous coordinates where
                # pixel (x, y) is centred at (x + 0.5, y + 0.5).
                segmentation = [(c.reshape(-1) + 0.5).tolist() for c in contours if len(c) >= 3]
            else:
                segmentation = rle_encode(mask, compressed=k % 3 == 1)
            ys, xs = np.nonzero(mask)
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                "segmentation": segmentation, "area": int(mask.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1],
            })
        crowd = np.zeros((h, w), bool)
        crowd[: h // 4, : w // 4] = True
        annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 1,
                            "segmentation": rle_encode(crowd, compressed=False), "area": int(crowd.sum()),
                            "bbox": [0, 0, w // 4, h // 4]})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "object"}]}))
    return path
