"""The web demo's server: one page and a small JSON API on `http.server`.

The standard library serves it, so the demo installs nothing beyond the
package; the page (`demo_page.html`) is one self-contained file whose
script sends the photo's bytes as the body of a `fetch()`, so no multipart
form needs parsing and no upload is spooled to a temporary file:

- `GET /`: the page.
- `GET /api/info`: the model, the classes and their colours, the upload
  limit, and whether Grad-CAM maps can be drawn (and why not).
- `POST /api/predict`, body: a photo -> the annotated photo and each face's
  box, label and seven probabilities (`DemoAnalyzer.predict`).
- `POST /api/gradcam`, body: the same photo -> each face's Grad-CAM map.

Errors a user can fix (not an image, too large, no Content-Length) answer
4xx with `{"error": message}`; anything else answers 500 with its message
and a traceback in the terminal. Either way the server goes on serving.
"""

import ipaddress
import json
import socket
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from fer_keras.demo_analysis import DemoAnalyzer
from fer_keras.media import ImageFileError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
# An upload over the limit is read and dropped up to this size, so that the
# client, still sending, gets the 413 answer rather than a reset connection;
# past it the connection is simply closed.
_DISCARD_LIMIT = 256 * 2**20
_CHUNK = 2**16


class DemoServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the analyzer and the upload limit.

    Each request runs in its own thread, so the page still loads while a
    Grad-CAM map is being computed; `DemoAnalyzer` serialises model work.
    """

    daemon_threads = True

    def __init__(self, analyzer: DemoAnalyzer, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES):
        if int(max_upload_bytes) < 1:
            raise ValueError(
                f"`max_upload_bytes` must be at least 1. Received: {max_upload_bytes}")
        self.analyzer = analyzer
        self.max_upload_bytes = int(max_upload_bytes)
        self.page = resources.files("fer_keras").joinpath("demo_page.html").read_bytes()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        """The page's address, as a browser on this machine reaches it."""
        host, port = self.server_address[:2]
        if ipaddress.ip_address(host).is_unspecified:  # 0.0.0.0 or ::, all interfaces
            host = "::1" if ":" in host else "127.0.0.1"
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_public(host: str) -> bool:
    """Whether serving on `host` lets other machines reach the demo: any
    address but the loopback ones (127.0.0.0/8, ::1, "localhost")."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: whoever resolves it to this machine


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "fer-keras-demo"
    # A client that stops sending mid-upload frees its thread after this.
    timeout = 60

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif self.path == "/api/info":
            self._send_json(HTTPStatus.OK, {
                **self.server.analyzer.info(), "max_upload_bytes": self.server.max_upload_bytes,
            })
        elif self.path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"No page at {self.path}: the demo is at /.")

    def do_POST(self) -> None:
        analyzer = self.server.analyzer
        answer = {"/api/predict": analyzer.predict, "/api/gradcam": analyzer.gradcam}.get(
            self.path)
        if answer is None:
            self._refuse(HTTPStatus.NOT_FOUND, f"No API at {self.path}: POST a photo to "
                         "/api/predict or /api/gradcam.")
            return
        if self.path == "/api/gradcam" and analyzer.gradcam_note:
            self._refuse(HTTPStatus.CONFLICT, analyzer.gradcam_note)
            return
        data = self._read_upload()
        if data is None:
            return
        try:
            result = answer(data)
        except ImageFileError as err:
            self._send_error(HTTPStatus.BAD_REQUEST, str(err))
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR,
                             f"The demo failed on this photo ({type(err).__name__}: {err}). "
                             "It goes on serving; its terminal shows the traceback.")
        else:
            self._send_json(HTTPStatus.OK, result)

    def _content_length(self) -> int | None:
        try:
            length = int(self.headers.get("Content-Length"))
        except (TypeError, ValueError):
            return None
        return length if length >= 0 else None

    def _read_upload(self) -> bytes | None:
        """The request's body, or None after answering why it was refused."""
        length = self._content_length()
        if length is None:
            self._send_error(HTTPStatus.LENGTH_REQUIRED,
                             "Send the photo as the request body, with its Content-Length "
                             "(as the page and `curl --data-binary @photo.jpg` do). Received: "
                             f"Content-Length={self.headers.get('Content-Length')!r}")
            return None
        limit = self.server.max_upload_bytes
        if length > limit:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"The photo is {megabytes(length)}; this demo takes photos up to "
                         f"{megabytes(limit)}. Choose a smaller photo, or start the demo "
                         f"with a larger --max-upload-mb. Received: {length:,} bytes")
            return None
        return self.rfile.read(length)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answers an error without reading the upload: it is read and
        dropped first, so that a client still sending gets the answer rather
        than a reset connection."""
        self._discard(self._content_length() or 0)
        self._send_error(status, message)

    def _discard(self, length: int) -> None:
        if length > _DISCARD_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(_CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send_json(status, {"error": message})

    def _send_json(self, status: HTTPStatus, value: dict) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Answers hold the user's photo: no cache keeps a copy of them.
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            self.wfile.write(body)


def megabytes(size: int) -> str:
    """A byte count as users read upload limits: "10 MB" (2**20 bytes)."""
    return f"{size / 2**20:.1f} MB".replace(".0 MB", " MB")
