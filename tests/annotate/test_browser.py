"""End to end in a real headless Chromium: open the page, click, see the overlay, undo, save, find the PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from .browser import canvas_digest, chromium_page, click_canvas, missing_browser, wait_idle
from .conftest import png_bytes

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))


def test_annotate_page_in_headless_chromium(serve, tmp_path):
    live = serve()
    screenshot = tmp_path / "annotate-page.png"
    with chromium_page() as page:
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.goto(live.url)
        wait_idle(page, "document.body.dataset.image === '0'")

        assert page.locator("#random-banner").is_visible()
        assert "RANDOM WEIGHTS" in page.inner_text("#random-banner")
        assert page.locator("#images li").all_inner_texts()[:3] == ["a.png", "b.png", "c.jpg"]
        before = canvas_digest(page)

        click_canvas(page, 0.5, 0.5)  # left: positive
        wait_idle(page, "window.annotate.stats.length === 1")
        assert int(page.get_attribute("body", "data-area")) > 0
        with_mask = canvas_digest(page)
        assert with_mask != before  # the overlay (and the click marker) were drawn
        latency = page.evaluate("window.annotate.stats[0]")
        assert 0 < latency["fetch"] <= latency["total"] and latency["model"] > 0
        assert page.inner_text("#lat-total").endswith("ms")

        page.keyboard.press("u")
        wait_idle(page, "document.body.dataset.clicks === '0'")
        assert canvas_digest(page) == before  # undo removed overlay and marker

        click_canvas(page, 0.15, 0.15, button="right")  # right: negative
        click_canvas(page, 0.5, 0.5)  # queued behind the first; answered in order
        wait_idle(page, "window.annotate.stats.length === 3")
        clicks = live.client.get("/api/images/0/overlay.png").state["clicks"]
        assert [c["positive"] for c in clicks] == [False, True]
        assert page.inner_text("#clicks") == "2"

        page.keyboard.press("s")
        wait_idle(page, "document.getElementById('message').textContent.startsWith('saved a/1.png')")
        page.screenshot(path=str(screenshot))

        # Uploads: a file that is not an image gets the server's message; a real one is listed and opened.
        page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"}])
        wait_idle(page, "document.getElementById('message').className === 'error'")
        assert "400" in page.inner_text("#message") and "could not be decoded" in page.inner_text("#message")
        page.set_input_files("#upload", files=[{"name": "new.png", "mimeType": "image/png", "buffer": png_bytes()}])
        wait_idle(page, "document.body.dataset.image === '3'")
        assert page.locator("#images li").count() == 4 and page.inner_text("#image-name") == "new.png"
        problems = [p for p in problems if "400 (Bad Request)" not in p]  # the refused upload, on purpose
        assert not problems, problems

    png = live.masks / "a" / "1.png"
    assert png.is_file()
    saved = np.array(Image.open(png)) > 0
    current = np.array(Image.open(io.BytesIO(live.client.get("/api/images/0/mask.png").body))) > 0
    assert saved.shape == (90, 120) and saved.any() and np.array_equal(saved, current)
    assert screenshot.stat().st_size > 0
    print(f"screenshot: {screenshot}")
