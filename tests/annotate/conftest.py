"""Fixtures for the annotation server tests: one compiled tiny engine, image folders, live servers."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIZE = 112
SEED = 2  # random tiny weights whose masks are neither empty nor full on the test images


def write_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Three small synthetic PNGs (a bright disk on a dark, noisy background); name → (H, W)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = {"a.png": (90, 120), "b.png": (100, 80), "c.jpg": (64, 64)}
    for name, (h, w) in sizes.items():
        img = np.full((h, w, 3), 40, np.uint8)
        cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (200, 180, 50), -1)
        img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / name), img)
    return sizes


def png_bytes(h: int = 40, w: int = 50) -> bytes:
    import cv2

    img = np.zeros((h, w, 3), np.uint8)
    img[10:30, 10:40] = 200
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """The tiny model (random weights) saved as a checkpoint and loaded back, as `--checkpoint` does;
    compiled once for every test of the package."""
    from skipclick_jax import load_checkpoint
    from skipclick_jax.config import SkipClickConfig
    from skipclick_jax.inference import ClickEngine
    from skipclick_jax.model import init_params
    from skipclick_jax.weights import save_params

    config = SkipClickConfig.tiny()
    path = save_params(tmp_path_factory.mktemp("annotate") / "tiny", config, init_params(config, seed=SEED))
    model, params = load_checkpoint(path)
    return ClickEngine(model, params, SIZE, flip=True)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.headers["x-annotate-state"])


class Client:
    """A minimal HTTP client on a fresh connection per request (so tests can run it from many threads)."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = json.dumps(body).encode() if isinstance(body, dict) else body
            hdrs = {"Content-Type": "application/json"} if isinstance(body, dict) else {}
            conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)


@dataclass
class Live:
    app: Any
    server: Any
    client: Client
    images: Path
    masks: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture()
def serve(engine, tmp_path) -> Iterator[Callable[..., Live]]:
    """Factory: start an `AnnotationServer` on a free port over a fresh image folder; stopped at teardown."""
    from skipclick_jax.annotate import AnnotateApp, AnnotationServer

    started: list[AnnotationServer] = []

    def start(images: Path | None = None, masks: Path | None = None, **kwargs: Any) -> Live:
        if images is None:
            images = tmp_path / "images"
            if not images.exists():
                write_images(images)
        masks = masks or tmp_path / "masks"
        kwargs.setdefault("weights", "RANDOM weights (tiny, test)")
        kwargs.setdefault("random_weights", True)
        app = AnnotateApp(images, masks, engine, **kwargs)
        server = AnnotationServer(app, "127.0.0.1", 0)
        server.start_background()
        started.append(server)
        return Live(app, server, Client(server.port), images, masks)

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
