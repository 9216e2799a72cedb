"""`skipclick annotate IMAGES_DIR --out MASKS_DIR`: serve the browser annotation tool.

Loads the weights (or random ones, said plainly on the console and in the page header), compiles the
encode and click steps on a background worker while the server already answers, and serves until
Ctrl-C / SIGTERM, then shuts down cleanly (saved masks are always complete files).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from .app import DEFAULT_MAX_UPLOAD_BYTES, DISPLAY_THRESHOLD

RANDOM_BANNER = (
    "NOTE: the weights are RANDOM (no --checkpoint given), so the masks are meaningless; the tool shows\n"
    "      the workflow and its speed. Pass --checkpoint with converted SkipClick weights."
)


def build_app(args: argparse.Namespace) -> Any:
    """The `AnnotateApp` for parsed arguments: weights, engine, folders."""
    from ..config import preset
    from ..inference import ClickEngine, enable_compilation_cache
    from ..model import SkipClick, init_params
    from ..weights import load_checkpoint
    from .app import AnnotateApp

    if args.cache_dir:
        enable_compilation_cache(args.cache_dir)
    if args.checkpoint:
        model, params = load_checkpoint(args.checkpoint, dtype=args.dtype)
        weights = f"weights from {Path(args.checkpoint).name}"
    else:
        try:
            config = preset(args.preset)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        model, params = SkipClick(config, dtype=args.dtype), init_params(config, seed=args.seed)
        weights = f"RANDOM weights ({args.preset}, seed {args.seed})"
    size = args.size or model.config.image_size  # default: the size the weights were trained at
    engine = ClickEngine(model, params, size, flip=args.flip)
    return AnnotateApp(
        args.images_dir,
        args.out,
        engine,
        weights=weights,
        random_weights=not args.checkpoint,
        threshold=args.threshold,
        coco=args.coco,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        prefetch=args.prefetch,
        dtype=args.dtype,
    )


def run(args: argparse.Namespace) -> int:
    import jax

    from .server import AnnotationServer

    if args.max_upload_mb <= 0:
        raise ValueError("--max-upload-mb must be positive")
    if not Path(args.images_dir).is_dir():
        raise FileNotFoundError(f"images folder not found: {args.images_dir}")
    app = build_app(args)
    try:
        server = AnnotationServer(app, args.host, args.port)
    except OSError as e:  # port taken, address not on this machine, ...
        app.close()
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    print(f"skipclick annotate — {app.weights}; network size {app.engine.size}, "
          f"flip TTA {'on' if args.flip else 'off'}, {args.dtype}, device {jax.devices()[0].platform}")
    if app.random_weights:
        print(RANDOM_BANNER)
    print(f"{len(app.catalog)} images in {args.images_dir}; masks go to {Path(args.out).resolve()}"
          + (" (+ annotations.json)" if args.coco else ""))
    if not server.loopback_only:
        print(f"WARNING: listening on {args.host}, reachable from other machines; there is no authentication.")
    app.warmup()  # compiles on the encode worker while the page loads
    print(f"serving on {server.url}  (Ctrl-C to stop)", flush=True)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("shutting down", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def register(subparsers: Any) -> None:
    """`skipclick annotate IMAGES_DIR --out MASKS_DIR [--checkpoint CKPT] [--host 127.0.0.1] [--port 8000] ...`."""
    p = subparsers.add_parser("annotate", help="browser annotation tool: clicks → masks, saved as PNG (and COCO)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images to annotate (read only)")
    p.add_argument("--out", required=True, metavar="MASKS_DIR",
                   help="output folder: MASKS_DIR/<image stem>/<object>.png (the only place written to)")
    p.add_argument("--checkpoint", help="converted directory, original .pth or .safetensors (default: random weights)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--size", type=int, default=None,
                   help="network input size S (a multiple of the patch size; default: the checkpoint's training size)")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="disable horizontal-flip averaging")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--preset", default="skipclick_vitb14_448", help="architecture for random weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--threshold", type=float, default=DISPLAY_THRESHOLD,
                   help="probability threshold of the shown and saved mask (0.5, as the original GUI)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20,
                   help="largest accepted upload in MiB")
    p.add_argument("--coco", action="store_true", help="also keep MASKS_DIR/annotations.json (COCO, RLE)")
    p.add_argument("--no-prefetch", dest="prefetch", action="store_false",
                   help="do not encode the next image ahead")
    p.add_argument("--cache-dir", default=None, help="persistent XLA compilation cache directory")
    p.set_defaults(run=run)
