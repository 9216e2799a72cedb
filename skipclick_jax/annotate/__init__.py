"""`skipclick annotate`: a browser annotation tool on top of the compiled click step.

A standard-library HTTP server (`server.AnnotationServer`) serves one plain HTML/JS/canvas page and a
small JSON/binary API; `app.AnnotateApp` holds the images, one click session per opened image (sharing a
compiled `ClickEngine`), a background encoder that prepares the next image ahead, and the mask store
(`MASKS_DIR/<image key>/<object index>.png`, optional COCO `annotations.json`). The command lives in
`command.py` (`register(subparsers)`).
"""

from .app import DISPLAY_THRESHOLD, AnnotateApp, ApiError
from .server import AnnotationServer

__all__ = ["DISPLAY_THRESHOLD", "AnnotateApp", "AnnotationServer", "ApiError"]
