"""Click-to-overlay latency of `skipclick annotate` in headless Chromium (not a test; a measurement).

Starts the server in this process on a free port over one synthetic image, opens the page in Debian's
Chromium, waits for the warm-up compile and the image's encode, then clicks N times (alternating positive
and negative, spread over the image), each after the previous overlay was drawn, and prints what the page
measured: click → overlay drawn (`total`), click → reply received (`fetch`), the server's handling time
and the model step alone. The first click is reported separately (it is not a compile: warm-up and the
per-image-size resizes are compiled before the page is ready).

    python -m tests.annotate.measure_latency --preset tiny --size 112 --clicks 20
    python -m tests.annotate.measure_latency --preset skipclick_vitb14_448 --size 448 --clicks 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_image(folder: Path, h: int, w: int) -> None:
    import cv2

    rng = np.random.default_rng(0)
    img = np.full((h, w, 3), 50, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (210, 170, 60), -1)
    cv2.rectangle(img, (w // 10, h // 10), (w // 4, h // 3), (60, 200, 90), -1)
    img = np.clip(img + rng.integers(0, 25, img.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(folder / "synthetic.png"), img)


def summary(values: list[float]) -> str:
    v = sorted(values)
    p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
    return f"median {statistics.median(v):7.1f} ms   p90 {p90:7.1f} ms   min {v[0]:7.1f} ms"


def main() -> int:
    import jax

    from skipclick_jax.annotate import AnnotateApp, AnnotationServer
    from skipclick_jax.config import preset
    from skipclick_jax.inference import ClickEngine
    from skipclick_jax.model import SkipClick, init_params
    from skipclick_jax.weights import load_checkpoint

    from .browser import chromium_page, click_canvas, missing_browser, wait_idle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--checkpoint")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--no-flip", dest="flip", action="store_false")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--image", default="480x640", help="synthetic image size HxW")
    args = ap.parse_args()
    if (why := missing_browser()) is not None:
        raise SystemExit(why)

    if args.checkpoint:
        model, params = load_checkpoint(args.checkpoint, dtype=args.dtype)
        weights = args.checkpoint
    else:
        config = preset(args.preset)
        model, params = SkipClick(config, dtype=args.dtype), init_params(config, seed=2)
        weights = f"random {args.preset}"
    engine = ClickEngine(model, params, args.size, flip=args.flip)
    h, w = (int(v) for v in args.image.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        synthetic_image(images, h, w)
        app = AnnotateApp(images, Path(tmp) / "masks", engine, weights=weights, random_weights=not args.checkpoint,
                          dtype=args.dtype)
        t0 = time.perf_counter()
        app.warmup().result()
        print(f"{weights}, S={args.size}, flip={args.flip}, {args.dtype}, {jax.devices()[0].platform}, "
              f"image {w}×{h}; warm-up compile {time.perf_counter() - t0:.1f} s")
        server = AnnotationServer(app, "127.0.0.1", 0)
        server.start_background()
        try:
            with chromium_page() as page:
                page.goto(server.url)
                wait_idle(page, "document.body.dataset.image === '0'", timeout_s=600)
                print(page.inner_text("#message"))
                rng = np.random.default_rng(0)
                for k in range(args.clicks):
                    fx, fy = rng.uniform(0.1, 0.9, 2)
                    click_canvas(page, fx, fy, "left" if k % 3 != 2 else "right")
                    wait_idle(page, f"window.annotate.stats.length === {k + 1}", timeout_s=600)
                stats = page.evaluate("window.annotate.stats")
        finally:
            server.shutdown()
            server.server_close()
    print(f"first click: total {stats[0]['total']:.1f} ms, model {stats[0]['model']:.1f} ms")
    rest = stats[1:] or stats
    for key, label in [("total", "click → overlay drawn"), ("fetch", "click → reply"), ("server", "server"),
                       ("model", "model step")]:
        print(f"{label:22s} {summary([s[key] for s in rest])}   (n={len(rest)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
