"""Driving Debian's headless Chromium with Playwright (Python) for the annotation page.

Playwright's wheel brings its driver but no browser; we never run `playwright install` (no downloads
here) and point it at the system Chromium instead. The flags are the ones known to work on these
machines: the network is closed, so everything that would phone home is switched off, and each run gets
a fresh profile directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("SKIPCLICK_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JS: a cheap fingerprint of the canvas pixels (changes when anything drawn changes).
CANVAS_DIGEST = """() => {
  const c = document.getElementById('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 2166136261;
  for (let i = 0; i < d.length; i += 1) { h = Math.imul(h ^ d[i], 16777619) >>> 0; }
  return h;
}"""


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no 'playwright install')"
    return None


@contextmanager
def chromium_page(width: int = 1100, height: int = 800) -> Iterator[Any]:
    """A Playwright `Page` in a fresh headless Chromium profile; closed (and the profile removed) on exit.

    `bypass_csp`: the page's Content-Security-Policy forbids evaluating strings as script, which is how
    Playwright's `wait_for_function` works.
    """
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="skipclick-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=FLAGS,
                headless=True,
                bypass_csp=True,
                viewport={"width": width, "height": height},
            )
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def wait_idle(page: Any, condition: str = "true", timeout_s: float = 120) -> None:
    """Wait until the page's request queue is empty and `condition` (JS expression) holds."""
    page.wait_for_function(
        f"window.annotate && window.annotate.ready && window.annotate.busy === 0 && ({condition})",
        timeout=timeout_s * 1000,
    )


def click_canvas(page: Any, fx: float, fy: float, button: str = "left") -> None:
    """Click at a fraction (fx, fy) of the displayed canvas."""
    box = page.locator("#canvas").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"], button=button)


def canvas_digest(page: Any) -> int:
    return int(page.evaluate(CANVAS_DIGEST))
