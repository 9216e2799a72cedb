"""Raw sources on the synthetic datasets, the restricted unpickler and the COCO mask codecs."""

from __future__ import annotations

import json
import os
import pickle

import cv2
import numpy as np
import pytest

from skipclick_jax.coco_masks import polygons_to_mask, rle_decode, rle_encode
from skipclick_jax.data import CocoJsonSource, CocoLvisSource, FolderSource, UnsafePickleError
from skipclick_jax.data.records import object_mask, pack_masks
from skipclick_jax.data.safe_pickle import safe_loads


def test_cocolvis_source_matches_files(cocolvis_root):
    src = CocoLvisSource(cocolvis_root, "train")
    split = cocolvis_root / "train"
    with open(split / "hannotation.pickle", "rb") as f:
        annotation = pickle.load(f)  # trusted here: we wrote it
    assert len(src) == 12 and [src.sample_id(i) for i in range(12)] == sorted(annotation)
    kinds = {"child": 0, "stuff": 0}
    for i in range(len(src)):
        rec = src[i]
        sid = rec["sample_id"]
        expected = cv2.cvtColor(cv2.imread(str(split / "images" / f"{sid}.jpg")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(rec["image"], expected)
        with open(split / "masks" / f"{sid}.pickle", "rb") as f:
            encoded, mapping = pickle.load(f)
        layers = np.stack([cv2.imdecode(x, cv2.IMREAD_UNCHANGED) for x in encoded], axis=2)
        np.testing.assert_array_equal(rec["layers"], layers)
        objs, info = rec["objects"], annotation[sid]
        assert [tuple(x) for x in zip(objs["layer"], objs["value"], strict=True)] == list(mapping)
        n_inst = info["num_instance_masks"]
        assert not objs["is_stuff"][:n_inst].any() and objs["is_stuff"][n_inst:].all()
        for obj_id, node in info["hierarchy"].items():
            parent = -1 if node is None or node["parent"] is None else node["parent"]
            assert objs["parent"][obj_id] == parent
            if node is not None:
                assert sorted(node["children"]) == [int(c) for c in np.flatnonzero(objs["parent"] == obj_id)]
        assert (objs["parent"][n_inst:] == -1).all()
        kinds["child"] += int((objs["parent"] >= 0).sum())
        kinds["stuff"] += int(objs["is_stuff"].sum())
        for obj_id in range(len(objs["layer"])):
            assert object_mask(rec["layers"], objs, obj_id).sum() >= 80
    assert kinds["child"] > 0 and kinds["stuff"] > 0  # the synthetic data exercises both
    assert len(CocoLvisSource(cocolvis_root, "val")) == 4


def test_cocolvis_source_pickles_without_index(cocolvis_root):
    src = CocoLvisSource(cocolvis_root)
    first = src[0]
    clone = pickle.loads(pickle.dumps(src))
    assert clone._samples is None
    np.testing.assert_array_equal(clone[0]["layers"], first["layers"])


def test_cocolvis_accepts_raw_bytes_layers(tmp_path, cocolvis_root):
    src = CocoLvisSource(cocolvis_root)
    enc = src.read_encoded(3)
    split = tmp_path / "train"
    (split / "images").mkdir(parents=True)
    (split / "masks").mkdir()
    (split / "images" / "x.jpg").write_bytes(enc["image"])
    mapping = list(zip(enc["objects"]["layer"].tolist(), enc["objects"]["value"].tolist(), strict=True))
    (split / "masks" / "x.pickle").write_bytes(pickle.dumps((enc["layers"], mapping)))
    n_inst = int((~enc["objects"]["is_stuff"]).sum())
    (split / "hannotation.pickle").write_bytes(pickle.dumps(
        {"x": {"num_instance_masks": n_inst, "hierarchy": dict.fromkeys(range(n_inst))}}))
    np.testing.assert_array_equal(CocoLvisSource(tmp_path)[0]["layers"], src[3]["layers"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler():
    with pytest.raises(UnsafePickleError, match="system"):
        safe_loads(pickle.dumps({"a": _Evil()}))
    with pytest.raises(UnsafePickleError):
        safe_loads(pickle.dumps(np.random.default_rng(0)))
    value = {"k": [1, "s", b"b", None, (2.5, True)], 3: {"x"}, "arr": np.arange(5, dtype=np.uint8)}
    for protocol in (2, 4, 5):
        out = safe_loads(pickle.dumps(value, protocol=protocol))
        assert out["k"] == value["k"] and out[3] == {"x"}
        np.testing.assert_array_equal(out["arr"], value["arr"])


def test_pack_masks_greedy_layers():
    a = np.zeros((8, 8), bool)
    a[:4] = True
    b = np.zeros((8, 8), bool)
    b[4:, :2] = True
    c = np.zeros((8, 8), bool)
    c[1:3, 1:3] = True  # inside a -> needs a second layer
    layers, mapping = pack_masks([c, a, b])
    assert layers.shape == (8, 8, 2)
    assert mapping == [(1, 1), (0, 1), (0, 2)]  # largest first: a, then b in layer 0; c in layer 1
    for mask, (li, v) in zip([c, a, b], mapping, strict=True):
        np.testing.assert_array_equal(layers[:, :, li] == v, mask)
    empty, none = pack_masks([], (3, 4))
    assert empty.shape == (3, 4, 1) and not empty.any() and none == []


def test_rle_codec_hand_cases():
    def runs_to_mask(runs, h, w):
        return np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8).reshape(w, h).T

    assert rle_encode(np.zeros((2, 2)))["counts"] == "4"
    assert rle_encode(runs_to_mask([0, 1, 3], 2, 2))["counts"] == "013"
    assert rle_encode(runs_to_mask([5, 2, 3, 1], 11, 1))["counts"] == "523O"  # 4th count stored as 1 - 2 = -1
    np.testing.assert_array_equal(rle_decode({"size": [11, 1], "counts": "523O"}), runs_to_mask([5, 2, 3, 1], 11, 1))
    assert rle_encode(np.zeros((10, 10)))["counts"] == "T3"  # 100 = 4 + 3 * 32: chr((4 | 0x20) + 48), chr(3 + 48)
    m = np.array([[1, 0], [0, 0]], np.uint8)
    assert rle_encode(m, compressed=False) == {"size": [2, 2], "counts": [0, 1, 3]}
    np.testing.assert_array_equal(rle_decode({"size": [2, 2], "counts": "013"}), m)
    m2 = np.array([[0, 1, 1], [0, 1, 0]], np.uint8)  # column-major: 0 0 1 1 1 0
    assert rle_encode(m2, compressed=False)["counts"] == [2, 3, 1]
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) < rng.random()
        for compressed in (True, False):
            np.testing.assert_array_equal(rle_decode(rle_encode(mask, compressed)), mask)
    with pytest.raises(ValueError):
        rle_decode({"size": [2, 2], "counts": [1, 1]})


def test_polygon_rasterisation():
    # pycocotools semantics: pixel (r, c) is in when its centre (c + .5, r + .5) is inside: x 1..4, y 1..3
    mask = polygons_to_mask([[1, 1, 5.4, 1, 5.4, 3.6, 1, 3.6]], 6, 8)
    expected = np.zeros((6, 8), np.uint8)
    expected[1:4, 1:5] = 1
    np.testing.assert_array_equal(mask, expected)


def test_folder_source(folder_root):
    src = FolderSource(folder_root)
    stems = {p.name.rsplit("_", 1)[0] for p in (folder_root / "masks").iterdir()}
    assert [src.sample_id(i) for i in range(len(src))] == sorted(stems)
    assert len(src) == 8  # the extra mask-less image is skipped
    assert len(FolderSource(folder_root, skip_empty=False)) == 9
    empty = FolderSource(folder_root, skip_empty=False)[8]
    assert empty["layers"].shape == (64, 80, 1) and len(empty["objects"]["layer"]) == 0
    for i in range(len(src)):
        rec = src[i]
        objs = rec["objects"]
        assert (objs["parent"] == -1).all() and not objs["is_stuff"].any()
        for k in range(len(objs["layer"])):
            raw = cv2.imread(str(folder_root / "masks" / f"{rec['sample_id']}_{k}.png"), cv2.IMREAD_UNCHANGED)
            truth = (raw.max(axis=2) if raw.ndim == 3 else raw) > 0
            np.testing.assert_array_equal(object_mask(rec["layers"], objs, k), truth)
    raw = cv2.imread(str(folder_root / "masks" / "img_0000_0.png"), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 3 and raw.max() == 1  # the colour mask with value 1 in one channel was read
    enc = src.read_encoded(2)
    assert enc["image"] == (folder_root / "images" / "img_0002.jpg").read_bytes()


def test_coco_json_source_matches_folder(folder_root):
    coco = CocoJsonSource(folder_root / "annotations.json", folder_root / "images")
    folder = FolderSource(folder_root)
    annotations = json.loads((folder_root / "annotations.json").read_text())["annotations"]
    assert len(coco) == len(folder)
    for i in range(len(coco)):
        a, b = coco[i], folder[i]
        assert a["sample_id"] == b["sample_id"]
        np.testing.assert_array_equal(a["image"], b["image"])
        n = len(b["objects"]["layer"])
        assert len(a["objects"]["layer"]) == n  # the crowd annotation is skipped
        anns = [x for x in annotations if x["image_id"] == i + 1 and not x["iscrowd"]]
        for k in range(n):
            ma, mb = object_mask(a["layers"], a["objects"], k), object_mask(b["layers"], b["objects"], k)
            if k % 3:  # RLE: exact
                np.testing.assert_array_equal(ma, mb)
            else:  # polygon: exactly its pycocotools rasterisation, and close to the mask it was traced from
                h, w = mb.shape
                np.testing.assert_array_equal(ma, polygons_to_mask(anns[k]["segmentation"], h, w).astype(bool))
                assert (ma & mb).sum() / (ma | mb).sum() > 0.6
    with_crowd = CocoJsonSource(folder_root / "annotations.json", folder_root / "images", skip_crowd=False)
    assert len(with_crowd[0]["objects"]["layer"]) == len(coco[0]["objects"]["layer"]) + 1
    assert pickle.loads(pickle.dumps(coco))._index is None
