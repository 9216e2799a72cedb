"""Dataset readers on tiny fixtures written in each dataset's exact on-disk layout (SPEC §4)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from skipclick_jax.eval.datasets import (
    DATASET_NAMES,
    WSESEG_DATASETS,
    DatasetError,
    EvalSample,
    eval_size,
    expand_dataset_names,
    get_dataset,
    parse_eval_mode,
)


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[:, :, ::-1].copy())  # RGB → BGR on disk
    return path


def write_gray(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)
    return path


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---------------------------------------------------------------------------------------------- GrabCut


def make_grabcut(root: Path, images_dir: str = "data_GT", masks_dir: str = "boundary_GT") -> dict:
    a, b = rgb(6, 8, 0), rgb(5, 4, 1)
    write_rgb(root / images_dir / "a.png", a)
    write_rgb(root / images_dir / "b.bmp", b)
    (root / images_dir / "Thumbs.db").write_bytes(b"not an image")  # ignored
    ma = np.zeros((6, 8), np.uint8)
    ma[0, :6] = [0, 1, 64, 127, 128, 129]
    ma[1:4, 2:6] = 255
    ma[4, 1] = 128
    write_gray(root / masks_dir / "a.bmp", ma)
    mb = np.zeros((5, 4), np.uint8)
    mb[1:4, 1:3] = 255
    write_gray(root / masks_dir / "b.png", mb)
    return {"a": a, "b": b, "ma": ma, "mb": mb}


@pytest.mark.parametrize("name, images_dir, masks_dir", [("GrabCut", "data_GT", "boundary_GT"),
                                                          ("Berkeley", "images", "masks")])
def test_grabcut_and_berkeley(tmp_path, name, images_dir, masks_dir):
    fx = make_grabcut(tmp_path, images_dir, masks_dir)
    ds = get_dataset(name, tmp_path)
    assert ds.name == name and len(ds) == 2 and ds.ids() == ["a", "b"]
    s = ds[0]
    assert isinstance(s, EvalSample) and s.id == "a"
    assert s.image.dtype == np.uint8 and s.image.shape == (6, 8, 3)
    np.testing.assert_array_equal(s.image, fx["a"])  # RGB, not BGR
    expected = np.zeros((6, 8), np.int32)
    expected[0, :6] = [0, 1, 0, 0, -1, 1]  # 128 → ignore, > 128 → object, a stored 1 stays object
    expected[1:4, 2:6] = 1
    expected[4, 1] = -1
    np.testing.assert_array_equal(s.gt, expected)
    assert s.gt.dtype == np.int32
    s = ds[1]
    np.testing.assert_array_equal(s.image, fx["b"])
    np.testing.assert_array_equal(s.gt, (fx["mb"] > 128).astype(np.int32))
    assert [x.id for x in ds] == ["a", "b"]


def test_grabcut_missing_mask_and_corrupt_image(tmp_path):
    make_grabcut(tmp_path)
    write_rgb(tmp_path / "data_GT" / "c.png", rgb(3, 3, 5))  # no mask
    with pytest.raises(DatasetError, match=r"no mask for image .*c\.png"):
        len(get_dataset("GrabCut", tmp_path))
    with pytest.warns(UserWarning, match="no mask"):
        assert len(get_dataset("GrabCut", tmp_path, skip_corrupt=True)) == 2
    (tmp_path / "data_GT" / "c.png").unlink()

    (tmp_path / "data_GT" / "a.png").write_bytes(b"\x89PNG garbage")
    ds = get_dataset("GrabCut", tmp_path)
    with pytest.raises(DatasetError, match=r"cannot decode image file: .*a\.png"):
        list(ds)
    with pytest.warns(UserWarning, match=r"a\.png"):
        assert [s.id for s in get_dataset("GrabCut", tmp_path, skip_corrupt=True)] == ["b"]


@pytest.mark.parametrize("name", ["GrabCut", "Berkeley", "DAVIS", "COCO_MVal"])
def test_empty_object_mask_is_an_error_or_counted_skip(tmp_path, name):
    """An all-background mask has no IoU (0/0): it must never reach the metrics as NaN."""
    layout = {"GrabCut": ("data_GT", "boundary_GT"), "Berkeley": ("images", "masks"),
              "DAVIS": ("img", "gt"), "COCO_MVal": ("img", "gt")}[name]
    make_grabcut(tmp_path, *layout)
    write_gray(tmp_path / layout[1] / "b.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"sample b .*b\.png.*object mask is empty"):
        list(get_dataset(name, tmp_path))
    ds = get_dataset(name, tmp_path, skip_corrupt=True)
    with pytest.warns(UserWarning, match="object mask is empty"):
        assert [s.id for s in ds] == ["a"]
    assert len(ds.skipped) == 1 and "b.png" in ds.skipped[0]


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match="directory not found: .*data_GT"):
        len(get_dataset("GrabCut", tmp_path / "nowhere"))


def test_mask_size_mismatch(tmp_path):
    make_grabcut(tmp_path)
    write_gray(tmp_path / "boundary_GT" / "b.png", np.zeros((7, 7), np.uint8))
    with pytest.raises(DatasetError, match=r"b\.png is 7x7 but image .*b\.bmp is 4x5"):
        get_dataset("GrabCut", tmp_path)[1]


# ------------------------------------------------------------------------------------------ DAVIS-like


@pytest.mark.parametrize("name", ["DAVIS", "COCO_MVal"])
def test_davis_layout(tmp_path, name):
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :8] = (255, 0, 0)  # red half in RGB
    write_rgb(tmp_path / "img" / "bear_00001.jpg", image)
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[2:6, 2:6] = (0, 0, 200)  # colour mask
    mask[10, 10] = (3, 0, 0)  # soft edge value: still foreground
    (tmp_path / "gt").mkdir()
    assert cv2.imwrite(str(tmp_path / "gt" / "bear_00001.png"), mask)
    ds = get_dataset(name, tmp_path)
    (s,) = list(ds)
    assert s.id == "bear_00001"
    assert s.image[:, :8, 0].min() > 200 and s.image[:, :8, 2].max() < 50  # decoded as RGB
    expected = np.zeros((16, 16), np.int32)
    expected[2:6, 2:6] = 1
    expected[10, 10] = 1
    np.testing.assert_array_equal(s.gt, expected)


# ----------------------------------------------------------------------------------------------- SBD


def write_sbd_mat(path: Path, inst: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(inst.max())
    savemat(str(path), {"GTinst": {"Segmentation": inst.astype(np.uint8),
                                   "Boundaries": np.zeros((n, 1), np.uint8),
                                   "Categories": np.full((n, 1), 15, np.uint8)}})


def make_sbd(root: Path) -> dict:
    inst1 = np.zeros((6, 7), np.uint8)
    inst1[1:3, 1:4] = 1
    inst1[4:6, 2:6] = 2
    inst2 = np.zeros((5, 5), np.uint8)
    inst2[1:4, 1:4] = 3
    images = {"2008_000002": rgb(6, 7, 1), "2008_000003": rgb(5, 5, 2)}
    for k, im in images.items():
        write_rgb(root / "img" / f"{k}.jpg", im)
    write_sbd_mat(root / "inst" / "2008_000002.mat", inst1)
    write_sbd_mat(root / "inst" / "2008_000003.mat", inst2)
    (root / "val.txt").write_text("2008_000002\n2008_000003\n\n")
    return {"inst1": inst1, "inst2": inst2}


def test_sbd_instances_and_no_writes_into_dataset(tmp_path):
    root = tmp_path / "SBD"
    fx = make_sbd(root)
    before = all_files(root)
    ds = get_dataset("SBD", root)
    assert ds.ids() == ["2008_000002/1", "2008_000002/2", "2008_000003/3"]
    samples = list(ds)
    np.testing.assert_array_equal(samples[1].gt, (fx["inst1"] == 2).astype(np.int32))
    np.testing.assert_array_equal(samples[2].gt, (fx["inst2"] == 3).astype(np.int32))
    assert samples[0].image.shape == (6, 7, 3) and samples[0].image.dtype == np.uint8
    assert set(np.unique(samples[0].gt)) == {0, 1}
    assert all_files(root) == before  # the reference would have written val_images_and_ids_list.pkl


def test_sbd_cache_outside_dataset(tmp_path):
    root = tmp_path / "SBD"
    make_sbd(root)
    cache = tmp_path / "cache"
    ids = get_dataset("SBD", root, cache_dir=cache).ids()
    assert len(list(cache.glob("sbd_val_*.json"))) == 1
    os.remove(root / "inst" / "2008_000003.mat")  # the index now comes from the cache …
    ds = get_dataset("SBD", root, cache_dir=cache)
    assert ds.ids() == ids
    with pytest.raises(DatasetError, match=r"missing instance file: .*2008_000003\.mat"):
        list(ds)  # … but loading still reports the missing file


def test_sbd_errors(tmp_path):
    root = tmp_path / "SBD"
    make_sbd(root)
    (root / "inst" / "2008_000003.mat").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"cannot read SBD instance file: .*2008_000003\.mat"):
        len(get_dataset("SBD", root))
    with pytest.warns(UserWarning, match="2008_000003"):
        assert len(get_dataset("SBD", root, skip_corrupt=True)) == 2
    (root / "val.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing id list: .*val\.txt"):
        len(get_dataset("SBD", root))


# --------------------------------------------------------------------------------------------- HQSeg

HQ_DIRS = [("DIS5K/DIS-VD/im", "DIS5K/DIS-VD/gt"),
           ("thin_object_detection/ThinObject5K/images_test",
            "thin_object_detection/ThinObject5K/masks_test"),
           ("thin_object_detection/COIFT/images", "thin_object_detection/COIFT/masks"),
           ("thin_object_detection/HRSOD/images", "thin_object_detection/HRSOD/masks_max255")]


def make_hqseg(root: Path) -> None:
    for i, (im_dir, gt_dir) in enumerate(HQ_DIRS):
        for stem in ("b", "a") if i != 1 else ("a",):
            write_rgb(root / im_dir / f"{stem}.jpg", rgb(8, 9, i))
            m = np.zeros((8, 9), np.uint8)
            m[2:5, 3:7] = 255
            m[6, 1] = 1  # soft edge value → foreground
            write_gray(root / gt_dir / f"{stem}.png", m)
    (root / "DIS5K/DIS-TR/im").mkdir(parents=True)  # train split folders are not read


def test_hqseg_val(tmp_path):
    make_hqseg(tmp_path)
    ds = get_dataset("HQSeg", tmp_path)
    assert ds.ids() == ["DIS5K-VD/a", "DIS5K-VD/b", "ThinObject5k-TE/a", "COIFT/a", "COIFT/b", "HRSOD/a",
                        "HRSOD/b"]
    s = ds[2]
    assert s.image.dtype == np.uint8 and s.image.shape == (8, 9, 3)
    assert s.gt.sum() == 13 and s.gt[6, 1] == 1 and s.gt.min() == 0


def test_hqseg_missing_subset(tmp_path):
    make_hqseg(tmp_path)
    for p in (tmp_path / "thin_object_detection/COIFT/images").iterdir():
        p.unlink()
    (tmp_path / "thin_object_detection/COIFT/images").rmdir()
    with pytest.raises(DatasetError, match=r"COIFT missing: directory not found: .*COIFT/images"):
        len(get_dataset("HQSeg", tmp_path))
    with pytest.warns(UserWarning, match="COIFT"):
        assert len(get_dataset("HQSeg", tmp_path, skip_corrupt=True)) == 5
    os.remove(tmp_path / "DIS5K/DIS-VD/gt/a.png")
    with pytest.warns(UserWarning, match="COIFT"):
        ds = get_dataset("HQSeg", tmp_path, skip_corrupt=True)
        assert len(ds) == 5
    with pytest.raises(DatasetError, match=r"missing mask file: .*DIS-VD/gt/a\.png"):
        ds[0]  # indexing always raises; only iteration skips
    with pytest.warns(UserWarning, match=r"a\.png"):
        assert [s.id for s in ds] == ["DIS5K-VD/b", "ThinObject5k-TE/a", "HRSOD/a", "HRSOD/b"]


# -------------------------------------------------------------------------------------- WSESeg / SHSeg


def write_palette_mask(path: Path, labels: np.ndarray) -> None:
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = np.random.default_rng(0).integers(0, 256, 768).astype(np.uint8)
    palette[:3] = 0
    im.putpalette(palette.tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def pil_float(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path)) / 255.0
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=2)
    return arr.astype(np.float32)


def test_wseseg_classes_palette_masks_and_float_images(tmp_path):
    bob = tmp_path / "flickr_bobsleighs"
    labels = np.zeros((10, 12), np.uint8)
    labels[1:4, 1:4] = 7
    labels[5:9, 6:11] = 3
    write_palette_mask(bob / "mask_run_2.png", labels)
    Image.fromarray(rgb(10, 12, 4)).save(bob / "run_2.jpg")
    labels_b = np.zeros((10, 12), np.uint8)
    labels_b[2:5, 2:9] = 1
    write_palette_mask(bob / "mask_run_1.png", labels_b)
    Image.fromarray(rgb(10, 12, 5)).save(bob / "run_1.jpg")

    ds = get_dataset("WSESeg_flickr_bobsleighs", tmp_path)
    assert ds.name == "WSESeg_flickr_bobsleighs"
    assert ds.ids() == ["run_1/1", "run_2/3", "run_2/7"]  # mask file order, then ascending value
    s = ds[1]
    assert s.image.dtype == np.float32 and s.image.shape == (10, 12, 3)
    assert 0.0 <= s.image.min() and s.image.max() <= 1.0
    # PIL decoding, /255 once.
    np.testing.assert_array_equal(s.image, pil_float(bob / "run_2.jpg"))
    np.testing.assert_array_equal(s.gt, (labels == 3).astype(np.int32))  # palette indices, not colours

    # yt_sports lives in a nested folder; a grayscale image becomes 3 identical channels.
    yt = tmp_path / "yt_sports/skijump/annotated_frames/0"
    lab = np.zeros((6, 6), np.uint8)
    lab[1:5, 2:4] = 200
    yt.mkdir(parents=True)
    Image.fromarray(lab, mode="L").save(yt / "mask_frame0001.png")
    Image.fromarray(rgb(6, 6, 6)[:, :, 0], mode="L").save(yt / "frame0001.jpg")
    (s,) = list(get_dataset("WSESeg_yt_sports", tmp_path))
    assert s.id == "frame0001/200" and s.image.shape == (6, 6, 3)
    np.testing.assert_array_equal(s.image[:, :, 0], s.image[:, :, 2])
    assert s.gt.sum() == 8


def test_wseseg_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        get_dataset("WSESeg_flickr_toboggans", tmp_path)
    bob = tmp_path / "flickr_bobsleighs"
    labels = np.zeros((4, 4), np.uint8)
    labels[1:3, 1:3] = 5
    write_palette_mask(bob / "mask_x.png", labels)
    ds = get_dataset("WSESeg_flickr_bobsleighs", tmp_path)
    with pytest.raises(DatasetError, match=r"missing image file: .*flickr_bobsleighs/x\.jpg"):
        ds[0]
    # A label image without background: every non-zero value is kept, with a warning.
    write_palette_mask(bob / "mask_x.png", np.full((4, 4), 2, np.uint8))
    with pytest.warns(UserWarning, match="no background"):
        assert get_dataset("WSESeg_flickr_bobsleighs", tmp_path).ids() == ["x/2"]


def test_shseg_flat_folder(tmp_path):
    lab = np.zeros((7, 5), np.uint8)
    lab[1:3, 1:3] = 1
    lab[4:6, 1:4] = 2
    Image.fromarray(lab, mode="L").save(tmp_path / "mask_skier_017.png")
    Image.fromarray(rgb(7, 5, 9)).save(tmp_path / "skier_017.jpg")
    ds = get_dataset("SHSeg", tmp_path)
    assert ds.ids() == ["skier_017/1", "skier_017/2"]
    samples = list(ds)
    assert samples[1].gt.sum() == 6 and samples[1].image.dtype == np.float32


# ------------------------------------------------------------------------------------------ PascalVOC

VOC_PALETTE = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 255: (224, 224, 192)}


def test_pascalvoc_gray_objects_and_ignore(tmp_path):
    idx = np.zeros((8, 10), np.uint8)
    idx[1:4, 1:5] = 1
    idx[5:7, 5:9] = 2
    idx[0, :] = 255  # boundary band → ignore
    pal = np.zeros(768, np.uint8)
    for k, c in VOC_PALETTE.items():
        pal[3 * k:3 * k + 3] = c
    im = Image.fromarray(idx, mode="P")
    im.putpalette(pal.tolist())
    (tmp_path / "SegmentationObject").mkdir()
    im.save(tmp_path / "SegmentationObject" / "2007_000032.png")
    write_rgb(tmp_path / "JPEGImages" / "2007_000032.jpg", rgb(8, 10, 3))
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n")
    ds = get_dataset("PascalVOC", tmp_path)
    # Grey values of the palette colours (cv2 BGR2GRAY): (128,0,0) → 38, (0,128,0) → 75; boundary → 220.
    assert ds.ids() == ["2007_000032/38", "2007_000032/75"]
    s = ds[1]
    expected = (idx == 2).astype(np.int32)
    expected[0, :] = -1
    np.testing.assert_array_equal(s.gt, expected)


# ------------------------------------------------------------------------------------------- registry


def test_registry_names_and_sizes(tmp_path):
    assert len(WSESEG_DATASETS) == 10 and set(WSESEG_DATASETS) <= set(DATASET_NAMES)
    for name in ("GrabCut", "Berkeley", "DAVIS", "SBD", "HQSeg", "SHSeg", "PascalVOC", "COCO_MVal", "folder",
                 "coco-json"):
        assert name in DATASET_NAMES
        get_dataset(name, tmp_path)  # construction is lazy: no file access yet
    assert get_dataset("grabcut", tmp_path).name == "GrabCut"
    with pytest.raises(ValueError, match="unknown dataset 'Foo'"):
        get_dataset("Foo", tmp_path)
    assert eval_size("GrabCut") == (448, 448) and eval_size("SBD") == (448, 448)
    assert eval_size("DAVIS") == (672, 672)
    assert eval_size("HQSeg") == eval_size("SHSeg") == eval_size("WSESeg_yt_sports") == (896, 896)
    assert eval_size("folder") == (448, 448)
    assert eval_size("DAVIS", "fixed400") == (400, 400)
    assert eval_size("GrabCut", "fixed400,600") == (400, 600)
    assert parse_eval_mode("cvpr") == "cvpr"
    for bad in ("fixed", "fixedx", "fixed400,", "fixed1,2,3", "fixed0", "paper"):
        with pytest.raises(ValueError, match="invalid eval mode"):
            parse_eval_mode(bad)
    assert expand_dataset_names("GrabCut, WSESeg,davis") == ["GrabCut", *WSESEG_DATASETS, "DAVIS"]


def test_no_warnings_on_clean_fixture(tmp_path):
    make_grabcut(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(get_dataset("GrabCut", tmp_path))) == 2
