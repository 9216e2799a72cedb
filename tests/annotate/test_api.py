"""The annotation server's HTTP API: clicks, saving, COCO output, uploads, safety and concurrency."""

from __future__ import annotations

import argparse
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skipclick_jax.annotate import AnnotationServer, command
from skipclick_jax.coco_masks import rle_decode

from .conftest import png_bytes


def overlay_mask(body: bytes) -> np.ndarray:
    """Decode an overlay PNG (palette: 0 transparent, 1 object) to an H×W bool mask."""
    img = Image.open(io.BytesIO(body))
    assert img.mode == "P" and img.info.get("transparency") == 0
    return np.array(img) == 1


def gray_mask(body: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(body))) > 0


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_info_list_and_page(serve):
    live = serve()
    info = live.client.get("/api/info").json()
    assert info["random_weights"] is True and info["threshold"] == 0.5 and info["size"] == 112
    images = live.client.get("/api/images").json()
    assert [i["name"] for i in images] == ["a.png", "b.png", "c.jpg"]
    assert [i["id"] for i in images] == [0, 1, 2]
    assert all("path" not in i for i in images)  # the API never shows server paths
    page = live.client.get("/")
    assert page.status == 200 and b"/static/app.js" in page.body
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert live.client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert live.client.get("/static/missing.js").status == 404


def test_open_click_undo_reset(serve):
    c = serve().client
    st = c.post("/api/images/0/open").json()
    assert (st["width"], st["height"], st["object"], st["clicks"]) == (120, 90, 1, [])
    assert c.get("/api/images/0/image.jpg").headers["content-type"] == "image/jpeg"

    r = c.post("/api/images/0/click", {"x": 60, "y": 45, "positive": True})
    assert r.status == 200 and r.headers["content-type"] == "image/png"
    mask = overlay_mask(r.body)
    assert mask.shape == (90, 120)  # the original resolution
    state = r.state
    assert state["clicks"] == [{"x": 60.0, "y": 45.0, "positive": True}]
    assert state["area"] == mask.sum() > 0 and state["dirty"]
    assert state["model_ms"] > 0 and state["server_ms"] >= state["model_ms"]
    assert np.array_equal(gray_mask(c.get("/api/images/0/mask.png").body), mask)

    r2 = c.post("/api/images/0/click", {"x": 5, "y": 5, "positive": False})
    assert len(r2.state["clicks"]) == 2 and r2.state["clicks"][1]["positive"] is False
    undo = c.post("/api/images/0/undo")
    assert undo.state["clicks"] == state["clicks"]
    assert np.array_equal(overlay_mask(undo.body), mask)  # back to the first click's mask
    assert c.post("/api/images/0/undo").state["area"] == 0
    c.post("/api/images/0/click", {"x": 60, "y": 45})
    reset = c.post("/api/images/0/reset")
    assert reset.state["clicks"] == [] and not overlay_mask(reset.body).any()


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"y": 3}, 400, "numeric 'x'"),
        ({"x": True, "y": 3}, 400, "numeric 'x'"),
        ({"x": 1, "y": 3, "positive": "yes"}, 400, "'positive'"),
        ({"x": 500, "y": 3}, 400, "outside"),
        (b"not json", 400, "valid JSON"),
    ],
)
def test_bad_clicks_are_refused(serve, body, status, words):
    c = serve().client
    r = c.post("/api/images/0/click", body)
    assert r.status == status and words in r.json()["error"]
    assert c.get("/api/images/0/overlay.png").state["clicks"] == []


def test_unknown_images_and_routes(serve):
    c = serve().client
    assert c.post("/api/images/7/open").status == 404
    assert "no image with id 7" in c.post("/api/images/7/click", {"x": 1, "y": 1}).json()["error"]
    assert c.get("/api/images/0/click").status == 404  # wrong method
    assert c.post("/api/images/0/explode").status == 404


def test_save_and_next_object(serve):
    live = serve()
    c = live.client
    assert c.post("/api/images/0/save").status == 409  # no clicks yet
    mask = overlay_mask(c.post("/api/images/0/click", {"x": 60, "y": 45}).body)
    saved = c.post("/api/images/0/save").json()
    assert saved["saved"] == "a/1.png" and saved["saved_objects"] == [1] and not saved["dirty"]
    png = live.masks / "a" / "1.png"
    assert np.array_equal(gray_mask(png.read_bytes()), mask)
    assert set(np.unique(np.array(Image.open(png)))) <= {0, 255}

    nxt = c.post("/api/images/0/next").json()  # already saved: nothing to write, move on
    assert nxt["saved"] is None and nxt["object"] == 2 and nxt["clicks"] == []
    assert c.post("/api/images/0/next").json()["object"] == 2  # nothing clicked: no gap in the indices
    c.post("/api/images/0/click", {"x": 30, "y": 20})
    nxt = c.post("/api/images/0/next").json()  # unsaved clicks: saved on the way
    assert nxt["saved"] == "a/2.png" and nxt["object"] == 3 and nxt["saved_objects"] == [1, 2]
    assert sorted(os.listdir(live.masks / "a")) == ["1.png", "2.png"]
    saved_overlay = overlay_mask(c.get("/api/images/0/saved.png").body)
    assert np.array_equal(saved_overlay, mask | gray_mask((live.masks / "a" / "2.png").read_bytes()))
    assert c.get("/api/images").json()[0]["saved_objects"] == 2

    # A new server on the same folder continues after the saved objects.
    again = serve(images=live.images, masks=live.masks).client
    assert again.post("/api/images/0/open").json()["object"] == 3


def test_coco_json_mirrors_the_pngs(serve):
    live = serve(coco=True)
    c = live.client
    for image_id, (x, y) in [(0, (60, 45)), (0, (10, 10)), (1, (40, 50))]:
        c.post(f"/api/images/{image_id}/click", {"x": x, "y": y})
        assert c.post(f"/api/images/{image_id}/next").json()["saved"]
    data = json.loads((live.masks / "annotations.json").read_text())
    assert [im["file_name"] for im in data["images"]] == ["a.png", "b.png"]
    assert len(data["annotations"]) == 3 and data["categories"][0]["id"] == 1
    for ann in data["annotations"]:
        image = next(im for im in data["images"] if im["id"] == ann["image_id"])
        png = live.masks / image["mask_dir"] / f"{ann['object_index']}.png"
        decoded = rle_decode(ann["segmentation"]).astype(bool)
        assert decoded.shape == (image["height"], image["width"])
        assert np.array_equal(decoded, gray_mask(png.read_bytes()))
        assert ann["area"] == decoded.sum()
        x, y, w, h = ann["bbox"]
        ys, xs = np.nonzero(decoded)
        assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
    # Restarting rebuilds the same JSON from the PNGs on disk.
    before = (live.masks / "annotations.json").read_bytes()
    serve(images=live.images, masks=live.masks, coco=True)
    assert (live.masks / "annotations.json").read_bytes() == before


BAD_NAMES = [
    "../evil.png",
    "..%2Fevil.png",
    "..%2F..%2Fevil.png",
    "%2Ftmp%2Fevil.png",
    "sub%5C..%5Cevil.png",
    "evil%00.png",
    "..",
    ".hidden.png",
    "notes.txt",
    "",
]


def test_path_traversal_is_refused(serve, tmp_path):
    live = serve()
    before = files_under(tmp_path)
    for name in BAD_NAMES:
        r = live.client.post(f"/api/upload?name={name}", png_bytes(), headers={"Content-Type": "image/png"})
        assert r.status == 400, name
        assert r.json()["error"], name
    for path in ["/static/../../etc/passwd", "/api/images/..%2F0/click", "/api/images/0/..%2F..%2Fx",
                 "/api/images/%2e%2e/open", "/..%2f..%2fetc%2fpasswd"]:
        assert live.client.get(path).status == 404, path
        assert live.client.post(path, {"x": 1, "y": 1}).status == 404, path
    assert files_under(tmp_path) == before  # nothing written anywhere, inside MASKS_DIR or out
    assert len(live.client.get("/api/images").json()) == 3


def test_symlinks_in_the_masks_folder_cannot_redirect_writes(serve, tmp_path):
    masks, outside = tmp_path / "masks", tmp_path / "outside"
    masks.mkdir()
    outside.mkdir()
    (masks / "a").symlink_to(outside, target_is_directory=True)
    (masks / "uploads").symlink_to(outside, target_is_directory=True)
    c = serve(masks=masks).client
    c.post("/api/images/0/click", {"x": 60, "y": 45})
    r = c.post("/api/images/0/save")
    assert r.status == 403 and "outside the masks folder" in r.json()["error"]
    r = c.post("/api/upload?name=x.png", png_bytes(), headers={"Content-Type": "image/png"})
    assert r.status == 400 and "outside" in r.json()["error"]
    assert list(outside.iterdir()) == []
    assert c.get("/api/images").status == 200


def test_upload_then_annotate(serve):
    live = serve()
    c = live.client
    r = c.post("/api/upload?name=my%20photo%20(1).PNG", png_bytes(40, 50), headers={"Content-Type": "image/png"})
    assert r.status == 201
    entry = r.json()
    assert entry["id"] == 3 and entry["uploaded"] and entry["name"] == "my_photo_1_.png"
    assert (live.masks / "uploads" / "my_photo_1_.png").is_file()
    assert c.post("/api/upload?name=a.png", png_bytes(), headers={"Content-Type": "image/png"}).json()["key"] == "a-2"
    st = c.post("/api/images/3/open").json()
    assert (st["width"], st["height"]) == (50, 40)
    c.post("/api/images/3/click", {"x": 20, "y": 20})
    assert c.post("/api/images/3/save").json()["saved"] == "my_photo_1_/1.png"
    assert [i["name"] for i in serve(images=live.images, masks=live.masks).client.get("/api/images").json()] == [
        "a.png", "b.png", "c.jpg", "a-2.png", "my_photo_1_.png"]


def test_oversized_upload_is_refused_with_413(serve):
    live = serve(max_upload_bytes=1000)
    r = live.client.post("/api/upload?name=big.png", b"\x89PNG" + bytes(5000), headers={"Content-Type": "image/png"})
    assert r.status == 413
    assert "exceeds the limit" in r.json()["error"] and "--max-upload-mb" in r.json()["error"]
    assert not (live.masks / "uploads").exists()
    assert live.client.get("/api/images").status == 200  # still serving


def test_big_image_dimensions_are_refused(serve):
    live = serve(max_pixels=1000)
    r = live.client.post("/api/upload?name=wide.png", png_bytes(40, 50), headers={"Content-Type": "image/png"})
    assert r.status == 413 and "2,000 pixels" in r.json()["error"]


@pytest.mark.parametrize("data", [b"definitely not an image", b"\x89PNG\r\n\x1a\n" + bytes(64), b""])
def test_undecodable_upload_is_refused_with_400(serve, data):
    live = serve()
    r = live.client.post("/api/upload?name=broken.png", data, headers={"Content-Type": "image/png"})
    assert r.status == 400
    assert "decoded" in r.json()["error"] or "empty" in r.json()["error"]
    assert not (live.masks / "uploads").exists()


def test_unreadable_folder_image_reports_clearly(serve, tmp_path):
    images = tmp_path / "images"
    from .conftest import write_images

    write_images(images)
    (images / "zz_broken.png").write_bytes(b"garbage")
    c = serve(images=images).client
    r = c.post("/api/images/3/open")
    assert r.status == 422 and "zz_broken.png" in r.json()["error"]
    assert c.post("/api/images/0/open").status == 200


def test_concurrent_clicks_keep_the_session_consistent(serve):
    live = serve()
    c = live.client
    c.post("/api/images/0/open")
    threads, per_thread = 6, 3
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        try:
            for j in range(per_thread):
                r = c.post("/api/images/0/click", {"x": 10 + 15 * k, "y": 10 + 20 * j, "positive": (k + j) % 2 == 0})
                c.get("/api/images/0/overlay.png")  # readers interleave with the writers
                with lock:
                    results.append(r.status)
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and results == [200] * threads * per_thread
    clicks = c.get("/api/images/0/overlay.png").state["clicks"]
    assert len(clicks) == threads * per_thread
    sent = {(10 + 15 * k, 10 + 20 * j) for k in range(threads) for j in range(per_thread)}
    assert {(cl["x"], cl["y"]) for cl in clicks} == sent
    session = live.app._sessions[0].session
    assert len(session.clicks) == len(session._history) == threads * per_thread


def test_a_crashing_request_returns_500_and_keeps_saved_masks(serve, monkeypatch):
    live = serve(coco=True)
    c = live.client
    c.post("/api/images/0/click", {"x": 60, "y": 45})
    assert c.post("/api/images/0/save").status == 200
    kept = files_under(live.masks)
    session = live.app._sessions[0].session

    def boom(*args, **kwargs):
        raise RuntimeError("device on fire")

    monkeypatch.setattr(session, "add_click", boom)
    r = c.post("/api/images/0/click", {"x": 10, "y": 10})
    assert r.status == 500 and "device on fire" in r.json()["error"]
    monkeypatch.undo()
    assert files_under(live.masks) == kept  # masks and annotations.json untouched
    state = c.get("/api/images/0/overlay.png").state
    assert len(state["clicks"]) == 1  # the failed click left the session as it was
    assert c.post("/api/images/0/click", {"x": 10, "y": 10}).status == 200


def test_prefetch_encodes_the_next_image(serve):
    live = serve()
    first = live.client.post("/api/images/0/open").json()
    assert first["prefetched"] is False
    live.app._pending[1].result(timeout=120)
    assert live.client.post("/api/images/1/open").json()["prefetched"] is True


def test_oversized_upload_sent_in_full_by_urllib_gets_the_413(serve):
    """An ordinary client sends the whole body before reading the answer; the 413 must still reach it
    (before the fix the server closed first and urllib failed with a broken pipe / connection reset)."""
    import urllib.error
    import urllib.request

    live = serve(max_upload_bytes=1000)
    body = b"\x89PNG" + bytes(8 * 1024 * 1024)  # far more than the socket buffers hold
    request = urllib.request.Request(f"{live.url}api/upload?name=big.png", data=body, method="POST",
                                     headers={"Content-Type": "image/png"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    assert "exceeds the limit" in json.loads(caught.value.read())["error"]
    assert not (live.masks / "uploads").exists()
    assert live.client.get("/api/images").status == 200  # and the server keeps serving


def test_two_host_headers_are_a_bad_request(serve):
    import socket

    live = serve()
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=30) as sock:
        sock.sendall(f"GET /api/images HTTP/1.1\r\nHost: 127.0.0.1:{live.server.port}\r\n"
                     "Host: evil.example\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):  # the server closes the connection after the error
            chunks.append(chunk)
    reply = b"".join(chunks).decode("latin-1")
    assert reply.startswith("HTTP/1.1 400") and "more than one Host header" in reply


def test_foreign_hosts_and_origins_are_refused(serve):
    live = serve()
    c = live.client
    assert c.get("/api/images", headers={"Host": "evil.example:80"}).status == 403
    assert c.get("/api/images", headers={"Host": f"localhost:{live.server.port}"}).status == 200
    r = c.post("/api/images/0/click", {"x": 1, "y": 1}, headers={"Origin": "http://evil.example"})
    assert r.status == 403 and "cross-origin" in r.json()["error"]
    same = {"Origin": f"http://127.0.0.1:{live.server.port}"}
    assert c.post("/api/images/0/click", {"x": 1, "y": 1}, headers=same).status == 200


def test_binds_to_loopback_by_default(serve):
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["annotate", "imgs", "--out", "masks"])
    assert (args.host, args.port, args.threshold, args.coco) == ("127.0.0.1", 8000, 0.5, False)
    assert args.size is None  # the checkpoint's training size
    assert AnnotationServer.__init__.__defaults__ == ("127.0.0.1", 8000)
    live = serve()
    assert live.server.server_address[0] == "127.0.0.1" and live.server.loopback_only


def test_second_image_of_a_size_compiles_nothing(serve, tmp_path, compile_counter):
    """With loaded weights (the `engine` fixture), after the first click on the first image of a size: no
    compilation at all, neither at later clicks nor when opening the next image of that size (before the
    fix the second click recompiled the click step: 2–4 s at full size)."""
    import cv2

    folder = tmp_path / "same_size"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("p.png", "q.png"):
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (70, 110, 3), dtype=np.uint8))
    live = serve(images=folder)
    c = live.client
    live.app.warmup().result()
    compiled = {}  # request → compilations it caused
    for image_id in (0, 1):
        before = compile_counter[0]
        assert c.post(f"/api/images/{image_id}/open").status == 200
        compiled[f"open {image_id}"] = compile_counter[0] - before
        for k in range(10):
            before = compile_counter[0]
            r = c.post(f"/api/images/{image_id}/click", {"x": 10 + 9 * k, "y": 5 + 6 * k, "positive": k % 3 != 2})
            assert r.status == 200
            compiled[f"click {k} on {image_id}"] = compile_counter[0] - before
    # Only the first image of this size compiles its resizes (when opened and at its first click).
    assert {k for k, v in compiled.items() if v} <= {"open 0", "click 0 on 0"}, compiled
