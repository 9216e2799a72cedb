"""`skipclick demo`: a simulated 20-click session on the bundled image and mask.

Clicks come from the evaluation clicker (SPEC 3.5); the image is encoded once and each click runs only
the compiled click step. Prints per-click IoU and milliseconds and writes an overlay PNG.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .atomic import write_bytes_atomic

# Package data (installed with the wheel), so the demo runs from any directory after `pip install`.
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
RANDOM_BANNER = (
    "NOTE: the weights are RANDOM (no --checkpoint given), so the masks and IoUs below are meaningless;\n"
    "      the run shows the pipeline and its speed. Pass --checkpoint with converted SkipClick weights."
)


def _read_inputs(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FileNotFoundError(f"{image_path}: missing or not an image")
    if mask is None:
        raise FileNotFoundError(f"{mask_path}: missing or not an image")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {image.shape[:2]} sizes differ")
    gt = (mask > 127).astype(np.int32)
    if not gt.any():
        raise ValueError(f"{mask_path}: the mask is empty")
    return image[..., ::-1].copy(), gt


def write_overlay(path: Path, image: np.ndarray, mask: np.ndarray, clicks: list) -> None:
    """Image with the mask tinted blue and clicks as green (positive) / red (negative) dots; atomic write."""
    import cv2

    out = image.astype(np.float32).copy()
    out[mask] = 0.5 * out[mask] + 0.5 * np.array([30, 144, 255], np.float32)
    bgr = np.ascontiguousarray(out.astype(np.uint8)[..., ::-1])
    for c in clicks:
        color = (0, 200, 0) if c.is_positive else (0, 0, 230)
        cv2.circle(bgr, (int(c.x), int(c.y)), 5, color, -1, lineType=cv2.LINE_AA)
        cv2.circle(bgr, (int(c.x), int(c.y)), 5, (255, 255, 255), 1, lineType=cv2.LINE_AA)
    ok, data = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    write_bytes_atomic(path, data.tobytes())


def run(args: argparse.Namespace) -> int:
    import jax

    from .config import preset
    from .eval.clicker import Clicker
    from .eval.metrics import iou
    from .inference import ClickSession, enable_compilation_cache
    from .model import SkipClick, init_params
    from .weights import load_checkpoint

    if args.cache_dir:
        enable_compilation_cache(args.cache_dir)
    image, gt = _read_inputs(Path(args.image), Path(args.mask))
    if args.checkpoint:
        model, params = load_checkpoint(args.checkpoint, dtype=args.dtype)
        source = f"weights from {args.checkpoint}"
    else:
        config = preset(args.preset)
        model, params = SkipClick(config, dtype=args.dtype), init_params(config, seed=args.seed)
        source = f"RANDOM weights ({args.preset}, seed {args.seed})"
    size = args.size or model.config.image_size  # default: the size the weights were trained at
    print(f"SkipClick demo — {source}; network size {size}, flip TTA {'on' if args.flip else 'off'}, "
          f"{args.dtype}, device {jax.devices()[0].platform}")
    if not args.checkpoint:
        print(RANDOM_BANNER)
    session = ClickSession(model, params, size=size, flip=args.flip)

    t0 = time.perf_counter()
    session.set_image(image)
    jax.block_until_ready(session.features)
    print(f"image {image.shape[1]}×{image.shape[0]} encoded once in {1e3 * (time.perf_counter() - t0):.0f} ms "
          "(first call: includes compilation)")

    clicker, pred = Clicker(gt), np.zeros(gt.shape, bool)
    print(f"{'click':>5}  {'kind':8} {'y':>4} {'x':>4}  {'IoU':>6}  {'ms':>7}")
    for k in range(1, args.clicks + 1):
        click = clicker.next_click(pred)
        t0 = time.perf_counter()
        prob = session.add_click(click.y, click.x, click.is_positive)
        ms = 1e3 * (time.perf_counter() - t0)
        pred = prob > np.float32(0.49)
        note = "  (includes compilation)" if k == 1 else ""
        kind = "positive" if click.is_positive else "negative"
        print(f"{k:5d}  {kind:8} {click.y:4d} {click.x:4d}  {iou(gt, pred):6.3f}  {ms:7.1f}{note}")
    out = Path(args.out)
    write_overlay(out, image, pred, session.clicks)
    print(f"overlay written to {out}" + (" (random weights: the mask is meaningless)" if not args.checkpoint else ""))
    return 0


def register(subparsers) -> None:
    """`skipclick demo [--checkpoint CKPT] [--image IMG --mask MASK] [--clicks 20] [--out PNG]`."""
    p = subparsers.add_parser("demo", help="simulated 20-click session on the bundled image (random weights default)")
    p.add_argument("--checkpoint", help="converted directory, original .pth or .safetensors (default: random weights)")
    p.add_argument("--image", default=str(DEMO_DATA / "image.jpg"), help="image file (default: the bundled one)")
    p.add_argument("--mask", default=str(DEMO_DATA / "mask.png"), help="object mask (non-zero = object)")
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--size", type=int, default=None,
                   help="network input size S (a multiple of the patch size; default: the training size)")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="disable horizontal-flip averaging")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--preset", default="skipclick_vitb14_448", help="architecture for random weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="demo_overlay.png", help="overlay PNG to write")
    p.add_argument("--cache-dir", default=None, help="persistent XLA compilation cache directory")
    p.set_defaults(run=run)
