"""A recording HTTP server for tests: the far end of a redirect, where no credential may ever arrive."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Request = tuple[str, str, dict[str, str], bytes]
"""``(method, path, headers, body)``: the path with its query string, as sent."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self) -> None:
        body = self._read_body()
        with self.server.lock:
            self.server.requests.append((self.command, self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _record


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class Recorder:
    """An HTTP server on ``127.0.0.1`` (a free port) that answers 200 ``{}`` to everything and keeps every request.

    Use it as the target of :meth:`simulator.Simulator.redirect` or of a
    foreign ``links.next`` to prove that no credential ever reaches it::

        with Recorder() as recorder:
            sim.redirect("/v3/auth/tokens", recorder.url + "/stolen")
            ...
        assert not recorder.requests

    Attributes:
        url: ``http://127.0.0.1:PORT``.
    """

    def __init__(self) -> None:
        self._server = _Server()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="recorder", daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, in order: ``(method, path, headers, body)``."""
        with self._server.lock:
            return list(self._server.requests)

    def received(self, secret: str) -> bool:
        """Tell whether ``secret`` appears anywhere in a received request (path, header or body)."""
        needle = secret.encode("utf-8")
        for method, path, headers, body in self.requests:
            text = "\n".join([method, path, *(f"{k}: {v}" for k, v in headers.items())]).encode("utf-8", "replace")
            if needle in text or needle in body:
                return True
        return False
