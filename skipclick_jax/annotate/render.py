"""What the page draws: the image as JPEG and masks as tiny transparent palette PNGs.

A mask travels as a 1-bit palette PNG at the image's original resolution: index 0 fully transparent,
index 1 opaque in the given colour. It is a few kilobytes even for large images (masks are mostly runs),
PNG-decodes natively in the browser (`createImageBitmap`), and is drawn over the image with the page's
opacity, so the page does no per-pixel work.
"""

from __future__ import annotations

import io

import numpy as np

CURRENT_COLOR = (30, 144, 255)  # the object being clicked (blue, as `skipclick demo`)
SAVED_COLOR = (40, 200, 90)  # objects already saved for this image (green)


def overlay_png(mask: np.ndarray, color: tuple[int, int, int] = CURRENT_COLOR) -> bytes:
    """H×W bool → palette PNG: transparent background, opaque `color` where the mask is set."""
    from PIL import Image

    h, w = mask.shape
    img = Image.frombytes("P", (w, h), np.ascontiguousarray(mask, np.uint8).tobytes())
    img.putpalette([0, 0, 0, *color])
    buf = io.BytesIO()
    # compress_level 1: masks compress well anyway, and encode time counts towards click latency.
    img.save(buf, "PNG", transparency=b"\x00\xff", bits=1, compress_level=1)
    return buf.getvalue()


def image_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """The decoded image re-encoded for the browser: the page shows exactly the pixels (and EXIF
    orientation) the model sees, whatever the source format (TIFF, 16-bit PNG, ...)."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()
