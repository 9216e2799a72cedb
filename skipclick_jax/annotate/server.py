"""HTTP layer: a standard-library `ThreadingHTTPServer` serving the page and a small JSON/binary API.

Endpoints (ids are the integers of `GET /api/images`; no request ever carries a file path):

=======  ====================================  =============================================================
GET      /                                     the page (static/index.html, app.js, app.css)
GET      /api/info                             weights (random or not), threshold, size, limits
GET      /api/images                           [{id, name, key, uploaded, saved_objects}]
POST     /api/upload?name=FILE.jpg             raw image bytes as the body → the new list entry
POST     /api/images/ID/open                   encode (or take the prefetched encode) → state JSON
GET      /api/images/ID/image.jpg              the decoded image, re-encoded for display
POST     /api/images/ID/click                  {"x": col, "y": row, "positive": bool} → overlay PNG
POST     /api/images/ID/undo                   → overlay PNG
POST     /api/images/ID/reset                  → overlay PNG (empty)
GET      /api/images/ID/overlay.png            current overlay PNG
GET      /api/images/ID/mask.png               current mask, 8-bit 0/255 PNG at original resolution
GET      /api/images/ID/saved.png              union of the saved objects, overlay PNG
POST     /api/images/ID/save                   write MASKS_DIR/<key>/<object>.png → state JSON + "saved"
POST     /api/images/ID/next                   save if needed, start the next object → state JSON
=======  ====================================  =============================================================

Overlay responses carry the session state as JSON in the `X-Annotate-State` header (clicks, object index,
mask area, `model_ms`, `render_ms` and `server_ms`, the whole request as the server saw it). Errors are
JSON `{"error": message}` with a 4xx status, or 500 for a failure inside the server (logged; the session
and saved masks are unaffected).

Browser-facing hardening: when bound to a loopback address, requests must name a loopback host (defeats
DNS rebinding), and a POST carrying an `Origin` must come from this server's own origin (a foreign page
cannot make the browser upload or save); responses forbid framing and sniffing and restrict scripts to
our own.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .app import AnnotateApp, ApiError, upload_too_large

log = logging.getLogger("skipclick.annotate")

MAX_JSON_BODY = 64 * 1024
MAX_DRAIN_BYTES = 256 * 1024 * 1024  # an over-limit body is read and dropped up to this much (or 4× the limit)
DRAIN_TIMEOUT_S = 30.0
STATIC = {  # URL path → (file under static/, content type); nothing else is served from disk
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}
_IMAGE_ROUTE = re.compile(r"^/api/images/(\d{1,9})/([a-z]+(?:\.(?:png|jpg))?)$")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode())


def png_reply(png: bytes, state: dict[str, Any] | None = None) -> Reply:
    headers = {"X-Annotate-State": json.dumps(state, ensure_ascii=True)} if state is not None else {}
    return Reply(200, png, "image/png", headers)


def _static(name: str) -> bytes:
    return resources.files("skipclick_jax.annotate").joinpath("static", name).read_bytes()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AnnotationServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` bound to `host:port` (port 0: any free port) serving `app`."""

    daemon_threads = True  # keep-alive connections from a browser must not block shutdown

    def __init__(self, app: AnnotateApp, host: str = "127.0.0.1", port: int = 8000):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self.loopback_only = _is_loopback(host)
        self.static = {path: (_static(name), ctype) for path, (name, ctype) in STATIC.items()}
        super().__init__((host, port), AnnotateHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def allowed_host(self, host_header: str | None) -> bool:
        """Bound to loopback: the Host header must be a loopback name with our port (DNS rebinding)."""
        if not self.loopback_only or host_header is None:
            return True
        m = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\[\]]+)(?::(\d+))?", host_header.strip())
        if not m:
            return False
        name, port = m.group(1).strip("[]"), m.group(2)
        return _is_loopback(name) and (port is None or int(port) == self.port)

    def start_background(self) -> threading.Thread:
        """Serve on a daemon thread (tests, embedding); stop with `shutdown()` then `server_close()`."""
        thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="annotate-http", daemon=True)
        thread.start()
        return thread

    def server_close(self) -> None:
        super().server_close()
        self.app.close()


class AnnotateHandler(BaseHTTPRequestHandler):
    server: AnnotationServer
    protocol_version = "HTTP/1.1"  # keep-alive: no new TCP connection per click
    # Headers and body go out as two writes; with Nagle on, the body waits for the client's delayed ACK
    # of the headers (~40 ms on Linux) — more than the tiny model's whole click step.
    disable_nagle_algorithm = True
    server_version = "skipclick-annotate"

    # --- plumbing --------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in {**SECURITY_HEADERS, **reply.headers}.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    def _body(self, limit: int, too_large: Callable[[int], str]) -> bytes:
        """The request body, refusing it *before* reading when it is over `limit`."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "chunked bodies are not accepted; send a Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise ApiError(400, "invalid Content-Length")
        if length > limit:
            # Read (and drop) the body before answering: an ordinary client (urllib, requests) sends the
            # whole body before it reads the response, and gets a connection reset instead of the 413 if
            # the server closes first. Bounded, so a huge declared length cannot hold a thread for long.
            self._discard(min(length, max(MAX_DRAIN_BYTES, 4 * limit)))
            self.close_connection = True  # any unread rest must not be parsed as the next request
            raise ApiError(413, too_large(length))
        return self.rfile.read(length) if length else b""

    def _discard(self, n: int) -> None:
        self.connection.settimeout(DRAIN_TIMEOUT_S)
        try:
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 20))
                if not chunk:
                    return
                n -= len(chunk)
        except OSError:  # timeout or reset: the client went away; the 413 is all we can do
            pass

    def _json_body(self) -> dict[str, Any]:
        raw = self._body(MAX_JSON_BODY, lambda n: f"JSON body of {n} bytes is over {MAX_JSON_BODY}")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def _handle(self, method: str) -> None:
        t0 = time.perf_counter()
        try:
            reply = self._route(method)
        except ApiError as e:
            reply = json_reply({"error": e.message}, e.status)
        except Exception as e:  # a bug or device failure: report it, keep serving, keep the session
            log.error("%s %s failed:\n%s", method, self.path, traceback.format_exc())
            self.close_connection = True  # the body may be unread
            reply = json_reply({"error": f"internal error ({type(e).__name__}: {e}); saved masks are not "
                                         "affected, see the server log"}, 500)
        if "X-Annotate-State" in reply.headers:
            state = json.loads(reply.headers["X-Annotate-State"])
            state["server_ms"] = 1e3 * (time.perf_counter() - t0)
            reply.headers["X-Annotate-State"] = json.dumps(state, ensure_ascii=True)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the page went away mid-reply; nothing to clean up

    # --- routing ---------------------------------------------------------------------------------------
    def _route(self, method: str) -> Reply:
        if len(self.headers.get_all("Host") or []) > 1:
            self.close_connection = True
            raise ApiError(400, "more than one Host header")
        if not self.server.allowed_host(self.headers.get("Host")):
            self.close_connection = True
            raise ApiError(403, "unexpected Host header (the server only answers to its loopback address)")
        origin = self.headers.get("Origin")
        if method == "POST" and origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            self.close_connection = True
            raise ApiError(403, f"cross-origin request from {origin!r} refused")
        url = urlsplit(self.path)
        path = url.path  # still percent-encoded: an encoded '/' or '..' simply matches no route
        app = self.server.app

        if method == "GET" and path in self.server.static:
            body, ctype = self.server.static[path]
            return Reply(200, body, ctype)
        if method == "GET" and path == "/favicon.ico":
            return Reply(204)
        if method == "GET" and path == "/api/info":
            return json_reply(app.info())
        if method == "GET" and path == "/api/images":
            return json_reply(app.list_images())
        if method == "POST" and path == "/api/upload":
            names = parse_qs(url.query).get("name", [""])
            data = self._body(app.max_upload_bytes, lambda n: upload_too_large(n, app.max_upload_bytes))
            return json_reply(app.upload(names[0], data), 201)

        m = _IMAGE_ROUTE.match(path)
        if m:
            image_id, action = int(m.group(1)), m.group(2)
            handler = _IMAGE_ACTIONS.get((method, action))
            if handler is not None:
                return handler(self, app, image_id)
        if method == "POST":
            self._body(MAX_JSON_BODY, lambda n: "body too large")  # drain, to keep the connection usable
        raise ApiError(404, f"no such endpoint: {method} {path}")

    def _click(self, app: AnnotateApp, image_id: int) -> Reply:
        body = self._json_body()
        x, y, positive = body.get("x"), body.get("y"), body.get("positive", True)
        for name, v in (("x", x), ("y", y)):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ApiError(400, f"click needs numeric '{name}' (pixel {'column' if name == 'x' else 'row'})")
        if not isinstance(positive, bool):
            raise ApiError(400, "'positive' must be true or false")
        return png_reply(*app.click(image_id, float(y), float(x), positive))


Action = Callable[["AnnotateHandler", AnnotateApp, int], Reply]


def _post(fn: Action) -> Action:
    """A POST action without a meaningful body: drain it (keep-alive) before acting."""

    def run(handler: AnnotateHandler, app: AnnotateApp, image_id: int) -> Reply:
        handler._body(MAX_JSON_BODY, lambda n: f"body of {n} bytes is over {MAX_JSON_BODY}")
        return fn(handler, app, image_id)

    return run


_IMAGE_ACTIONS: dict[tuple[str, str], Action] = {
    ("POST", "open"): _post(lambda h, app, i: json_reply(app.open(i))),
    ("POST", "click"): AnnotateHandler._click,
    ("POST", "undo"): _post(lambda h, app, i: png_reply(*app.undo(i))),
    ("POST", "reset"): _post(lambda h, app, i: png_reply(*app.reset(i))),
    ("POST", "save"): _post(lambda h, app, i: json_reply(app.save(i))),
    ("POST", "next"): _post(lambda h, app, i: json_reply(app.next_object(i))),
    ("GET", "image.jpg"): lambda h, app, i: Reply(200, app.image_jpeg(i), "image/jpeg"),
    ("GET", "overlay.png"): lambda h, app, i: png_reply(*app.overlay(i)),
    ("GET", "mask.png"): lambda h, app, i: png_reply(app.mask_png(i)),
    ("GET", "saved.png"): lambda h, app, i: png_reply(app.saved_overlay(i)),
}
