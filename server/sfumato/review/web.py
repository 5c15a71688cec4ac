"""The review page's web server: the stdlib's threading HTTP server, a static page and a small
JSON API, with the Sfumato server's rules for who may talk to it.

The rules, as ``sfumato serve`` applies them to its websocket: a token compared in constant
time (here always required: a web page on a shared machine is reachable by every local user
and every page their browser opens); an ``Origin`` header, when a browser sends one, must be
this page's own (no cross-origin reads or writes); binding anything but loopback only when
asked. On loopback the ``Host`` header must name loopback too, which defeats DNS rebinding.
The token travels in the URL's fragment (``#token=…``), which browsers never send or log, and
the page sends it back as ``Authorization: Bearer …``.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import sqlite3
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..service.config import is_loopback
from .catalog import FACETS, Batch
from .decisions import Decisions, ReviewError, parse_change
from .thumbs import Thumbnails

log = logging.getLogger("sfumato.review")

MAX_BODY = 64 * 1024  # a decision is a few hundred bytes
STATIC = {  # path → (package file, content type); the page itself carries no data
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/review.js": ("review.js", "text/javascript; charset=utf-8"),
    "/static/review.css": ("review.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'",
}


class ReviewServer(ThreadingHTTPServer):
    """One batch folder served for review; ``url`` is what to open (it carries the token)."""

    daemon_threads = True

    def __init__(
        self, batch: Batch, decisions: Decisions, token: str, host: str = "127.0.0.1",
        port: int = 0, reviewer: str = "",
    ) -> None:  # fmt: skip
        if not token:
            raise ReviewError(
                "the review page needs a token; pass --token or let it make one", "token"
            )
        self.batch, self.decisions, self.token, self.reviewer = batch, decisions, token, reviewer
        self.thumbs = Thumbnails()
        self.loopback = is_loopback(host)
        if ":" in host:  # an IPv6 address, e.g. ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.port = int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.hosts = {f"{shown}:{self.port}"}
        if self.loopback:
            self.hosts |= {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        if host in ("0.0.0.0", "::", ""):  # every interface: name the machine in the URL
            shown = socket.gethostname()
        self.url = f"http://{shown}:{self.port}/#token={quote(token, safe='')}"


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "sfumato-review"
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes; with Nagle on, the body waited for the client's
    # delayed ACK: 44 ms a request instead of ~1 ms (benchmarks/review.py)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not self._allowed(write=False):
            return
        if path in STATIC:
            name, kind = STATIC[path]
            body = (resources.files(__package__) / "static" / name).read_bytes()
            self._send(HTTPStatus.OK, body, kind)
            return
        if not self._authorised():
            return
        if path == "/api/items":
            batch = self.server.batch
            self._json(HTTPStatus.OK, {
                "plan": batch.plan, "folder": batch.folder.name, "reviewer": self.server.reviewer,
                "facets": list(FACETS), "items": batch.rows(self.server.decisions.all()),
            })  # fmt: skip
        elif path.startswith(("/api/file/", "/api/thumb/")):
            kind, _, key = path[len("/api/") :].partition("/")
            key = unquote(key)
            if key not in self.server.batch.entries:
                self._error(HTTPStatus.NOT_FOUND, "key", f"no output {key!r} in this batch")
                return
            file = self.server.batch.file(key)
            try:
                if kind == "thumb":
                    data, mime = self.server.thumbs.get(file)
                else:
                    data, mime = file.read_bytes(), "image/png"
            except OSError as exc:
                self._error(HTTPStatus.NOT_FOUND, "key",
                            f"{key}.png cannot be read ({exc.strerror}); rerun the batch to make it")  # fmt: skip
                return
            self._send(HTTPStatus.OK, data, mime)
        else:
            self._error(HTTPStatus.NOT_FOUND, "path", f"no page {path!r}; open / instead")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if not self._allowed(write=True) or not self._authorised():
            return
        if path != "/api/decision":
            self._error(HTTPStatus.NOT_FOUND, "path", f"no API {path!r}; POST to /api/decision")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, "body",
                        f"send a JSON body with Content-Length, at most {MAX_BODY} bytes")  # fmt: skip
            return
        body = self.rfile.read(int(length))
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type",
                        "send the change as Content-Type: application/json")  # fmt: skip
            return
        try:
            data = json.loads(body)
            key, decision, star, comment = parse_change(data, set(self.server.batch.entries))
        except json.JSONDecodeError as exc:
            self._error(HTTPStatus.BAD_REQUEST, "body", f"the body is not JSON ({exc.msg})")
            return
        except ReviewError as exc:
            self._error(HTTPStatus.BAD_REQUEST, exc.field or "body", str(exc))
            return
        try:
            review = self.server.decisions.change(
                key, decision=decision, star=star, comment=comment, reviewer=self.server.reviewer
            )
        except sqlite3.Error as exc:  # disk full, read-only folder: say so, keep serving
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "review.sqlite",
                        f"the decision was not saved ({exc}); check that "
                        f"{self.server.decisions.path} is writable and the disk has space")  # fmt: skip
            return
        self._json(HTTPStatus.OK, review.to_json())

    def do_OPTIONS(self) -> None:  # a CORS preflight: only a foreign page sends one
        if self._allowed(write=True):
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method",
                        "this server answers its own page only: GET and POST from the same origin")  # fmt: skip

    def _allowed(self, *, write: bool) -> bool:
        """The Host and Origin rules; a refused request changes nothing."""
        host = self.headers.get("Host", "")
        if self.server.loopback and host not in self.server.hosts:
            self._error(HTTPStatus.FORBIDDEN, "Host",
                        f"Host {host!r} is not this review server; open http://127.0.0.1:"
                        f"{self.server.port}/ with the token `sfumato review` printed")  # fmt: skip
            return False
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            what = "change decisions" if write else "read this batch"
            self._error(HTTPStatus.FORBIDDEN, "Origin",
                        f"a page from {origin} may not {what}; open the review page itself "
                        f"(http://{host}/)")  # fmt: skip
            return False
        return True

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        if hmac.compare_digest(given.encode(), self.server.token.encode()):
            return True
        reason = "the token is wrong" if given else "this request carries no token"
        self._error(HTTPStatus.UNAUTHORIZED, "token",
                    f"{reason}; open the URL `sfumato review` printed (it ends with #token=…), "
                    "or send Authorization: Bearer TOKEN")  # fmt: skip
        return False

    def _error(self, status: HTTPStatus, field: str, message: str) -> None:
        self.close_connection = True  # a refused request's body may be unread
        self._json(status, {"error": status.phrase, "field": field, "message": message})

    def _json(self, status: HTTPStatus, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
