"""File-name safety for the annotation server: every byte it writes lands inside MASKS_DIR.

Requests never carry paths. Images are referred to by a server-issued integer id; the only client-chosen
name is an upload's, which is validated (`check_upload_name`) and then reduced to a safe component. All
output paths go through `safe_join`, which refuses anything that would resolve outside the root — a second
line of defence behind the name checks — and writes are atomic (`skipclick_jax.atomic`), so a crash mid-request
never leaves a truncated PNG or JSON behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Extensions OpenCV decodes and the folder listing accepts (lower case, with the dot).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_NAME_LENGTH = 200

_UNSAFE_CHARS = re.compile(r"[^\w.\-]+")  # \w is Unicode-aware: accented names stay readable


class UnsafeNameError(ValueError):
    """A client-supplied file name that could escape the output folder or is otherwise unusable."""


def safe_component(name: str, fallback: str = "image") -> str:
    """Reduce `name` to one harmless path component: word characters, '.', '-'; no leading dots.

    Runs of other characters (spaces, separators, control characters) become '_'; the result is never
    empty, '.', '..' or hidden, and at most `MAX_NAME_LENGTH` characters long.
    """
    out = _UNSAFE_CHARS.sub("_", name).lstrip(".")[:MAX_NAME_LENGTH].rstrip(".")
    return out or fallback


def check_upload_name(name: str) -> tuple[str, str]:
    """Validate an upload's file name; returns (safe stem, lower-case extension).

    Rejected (with a message saying why): empty names, anything with a path separator ('/' or '\\'),
    NUL or other control characters, '.'/'..' and hidden names, over-long names and extensions that are
    not images. Percent-decoding happens before this check, so encoded slashes are caught too.
    """
    if not name:
        raise UnsafeNameError("the upload needs a file name (?name=picture.jpg)")
    if len(name) > MAX_NAME_LENGTH:
        raise UnsafeNameError(f"file name is longer than {MAX_NAME_LENGTH} characters")
    if "/" in name or "\\" in name:
        raise UnsafeNameError(f"file name {name!r} contains a path separator; give a plain file name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafeNameError(f"file name {name!r} contains NUL or control characters")
    if name in (".", "..") or name.startswith("."):
        raise UnsafeNameError(f"file name {name!r} is hidden or a relative path")
    stem, ext = os.path.splitext(name)
    if ext.lower() not in IMAGE_EXTENSIONS:
        raise UnsafeNameError(f"file name {name!r} does not end in an image extension ({', '.join(IMAGE_EXTENSIONS)})")
    return safe_component(stem, "upload"), ext.lower()


def safe_join(root: Path, *parts: str) -> Path:
    """`root / parts...`, refusing components that are not plain names or a result outside `root`."""
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise UnsafeNameError(f"refusing path component {part!r}")
    root = root.resolve()
    path = root.joinpath(*parts)
    # resolve() follows symlinks: a link planted inside MASKS_DIR cannot redirect a write elsewhere.
    if not path.resolve().is_relative_to(root):
        raise UnsafeNameError(f"{path} lies outside {root}")
    return path


