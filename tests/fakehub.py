"""A local HTTP server speaking the part of the Hugging Face Hub API that ``sfumato models pull``
uses through huggingface_hub: the model info with file metadata, and file downloads with Range.

What huggingface_hub 2.x sends (read from its hf_api.py / file_download.py):
``GET /api/models/<repo>/revision/<rev>?blobs=true`` → ``{"id", "sha", "siblings": [{"rfilename",
"size", "blobId", "lfs": {"size", "sha256", "pointerSize"}}]}``; ``GET /<repo>/resolve/<commit>/<path>``
with an optional ``Range: bytes=N-`` → 200 or 206 with ``Content-Length`` (and ``Content-Range``),
``ETag`` and ``X-Repo-Commit``. Every request is recorded, so tests can assert what crossed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from sfumato.registry.digest import is_weight


@dataclass
class Seen:
    method: str
    path: str
    range: str | None


@dataclass
class Stall:
    """Send the first ``after`` bytes of ``repo``/``path``, then hold the line until released."""

    repo: str
    path: str
    after: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.seen: list[Seen] = []
        self.sent: dict[str, int] = {}  # "repo/path" → body bytes sent
        self.stall: Stall | None = None
        self.url = ""

    def put(self, repo: str, files: dict[str, bytes]) -> str:
        """Publish ``files`` as the repo's new commit; returns the commit id."""
        self.repos[repo] = dict(files)
        return self.commit(repo)

    def put_folder(self, repo: str, folder: Path, extra: dict[str, bytes] | None = None) -> str:
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        return self.put(repo, {**files, **(extra or {})})

    def commit(self, repo: str) -> str:
        digest = hashlib.sha1()
        for path, data in sorted(self.repos[repo].items()):
            digest.update(path.encode() + b"\0" + hashlib.sha1(data).digest())
        return digest.hexdigest()

    def info(self, repo: str) -> dict[str, object]:
        siblings = []
        for path, data in self.repos[repo].items():
            sib: dict[str, object] = {
                "rfilename": path,
                "size": len(data),
                "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
            }
            if is_weight(path):
                sha = hashlib.sha256(data).hexdigest()
                sib["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
            siblings.append(sib)
        return {"id": repo, "sha": self.commit(repo), "siblings": siblings}

    def downloads(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path.endswith("/" + path)]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            url = urlparse(self.path)
            path = unquote(url.path)
            hub.seen.append(Seen(self.command, path, self.headers.get("Range")))
            if path.startswith("/api/models/"):
                repo, _, _rev = path[len("/api/models/") :].partition("/revision/")
                if repo not in hub.repos:
                    return self._error(404, "Repository not found")
                return self._send(200, json.dumps(hub.info(repo)).encode(), {}, body)
            repo, sep, rest = path.lstrip("/").partition("/resolve/")
            commit, _, file = rest.partition("/")
            if not sep or repo not in hub.repos or file not in hub.repos[repo]:
                return self._error(404, "Entry not found")
            if commit not in ("main", hub.commit(repo)):
                return self._error(404, "Revision not found")
            data = hub.repos[repo][file]
            start = 0
            ranged = self.headers.get("Range")
            if ranged and ranged.startswith("bytes="):
                start = int(ranged[len("bytes=") :].split("-")[0])
            headers = {
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "X-Repo-Commit": hub.commit(repo),
                "Accept-Ranges": "bytes",
            }
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._send(206 if start else 200, data[start:], headers, body, f"{repo}/{file}")

        def _send(
            self, status: int, data: bytes, headers: dict[str, str], body: bool, key: str = ""
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not body:
                return
            stall = hub.stall
            if stall and key == f"{stall.repo}/{stall.path}" and not self.headers.get("Range"):
                self.wfile.write(data[: stall.after])
                self.wfile.flush()
                hub.sent[key] = hub.sent.get(key, 0) + stall.after
                stall.reached.set()
                stall.release.wait(60)
                self.close_connection = True
                return
            self.wfile.write(data)
            if key:
                hub.sent[key] = hub.sent.get(key, 0) + len(data)

        def _error(self, status: int, message: str) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


@contextmanager
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        if hub.stall is not None:
            hub.stall.release.set()
        server.shutdown()
        server.server_close()
