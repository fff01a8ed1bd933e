"""The simulator's HTTP layer: a server that tracks its connections and has a handler answer each request.

The server reads a :class:`Request`, passes it to the handler it was given (a
function, :class:`Request` -> :class:`Response`) and sends the answer: at
once, slowly (one byte at a time), never, or by dropping the connection.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .faults import BOMB_HEAD, BOMB_TAIL, DRIP_KINDS
from .signing import Headers

LOGGER = logging.getLogger("workspace_images.simulator")

MAX_BODY = 8 * 1024 * 1024
"""Largest request body read."""
POLL_INTERVAL = 0.05
"""Seconds between two looks at a connection that is held without an answer."""
IDLE_TIMEOUT = 60
"""Seconds an idle keep-alive connection is kept."""
BOMB_BLOCK = b"0" * (1024 * 1024)
"""Bytes of a ``gzip_bomb`` body compressed at a time."""


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered.

    Attributes:
        method: HTTP method.
        path: Path without the query string.
        query: Query parameters (first value of each).
        status: HTTP status sent; None when the connection was dropped or
            the request is never answered (``silent``).
        project_id: The project of an images request; None for other paths.
    """

    method: str
    path: str
    query: dict[str, str]
    status: int | None
    project_id: str | None


@dataclass(frozen=True)
class Request:
    """A request as received.

    Attributes:
        method: HTTP method.
        target: The request target as sent: path and query.
        headers: The received headers.
        body: The received body.
        base_url: The server's own URL, ``http://HOST:PORT``.
    """

    method: str
    target: str
    headers: Headers
    body: bytes
    base_url: str


@dataclass
class Response:
    """An answer to send.

    Attributes:
        status: HTTP status; None sends nothing (see ``delivery``).
        body: The body.
        headers: Headers besides ``Content-Length``, ``Server`` and ``Date``.
        delivery: None sends the answer at once; ``drip``, ``drip_headers``,
            ``silent`` or ``gzip_bomb`` (see ``Simulator.fail_project``). A
            None status without ``silent`` drops the connection.
        interval: Seconds between two slow bytes (``drip``, ``drip_headers``).
        inflated: Bytes a ``gzip_bomb`` body inflates to; compressed as it is sent.
    """

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delivery: str | None = None
    interval: float = 0.0
    inflated: int = 0


Handler = Callable[[Request], Response]
"""What answers each request."""


def pause(stopping: threading.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``stopping`` is set first; return False when it is set."""
    if seconds <= 0:
        return not stopping.is_set()
    return not stopping.wait(seconds)


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that has ``handler`` answer every request and tracks its connections.

    Args:
        address: Host and port to listen on.
        handler: Answers each request.
        stopping: Set when the server stops: answers being held or sent slowly end then.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: Handler, stopping: threading.Event) -> None:
        self.handler = handler
        self.stopping = stopping
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.server_name}:{self.server_port}"

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def connection_count(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOGGER.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "api-gateway"
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True
    server: HttpServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOGGER.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return b""
        if length > MAX_BODY:
            self.close_connection = True
            return b""
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                self.close_connection = True
                return b""
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                return b""
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _dispatch(self) -> None:
        body = self._read_body()
        response = self.server.handler(Request(self.command, self.path, self.headers, body, self.server.url))
        if response.status is None:
            self.close_connection = True
            if response.delivery == "silent":
                self._hold()
                return
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if response.delivery in DRIP_KINDS:
            self._drip(response)
            return
        if response.delivery == "gzip_bomb":
            self._send_bomb(response)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def _hold(self) -> None:
        """Answer nothing; return once the client closes the connection or the simulator stops.

        Whatever the client sends meanwhile is read and ignored.
        """
        stopping = self.server.stopping
        try:
            self.connection.settimeout(POLL_INTERVAL)
        except OSError:
            return
        while not stopping.is_set():
            try:
                data = self.connection.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return

    def _drip(self, response: Response) -> None:
        """Send an answer slowly: the body (``drip``) or the head (``drip_headers``) one byte at a time.

        Each slow byte goes ``response.interval`` seconds after the one before
        it (the first one that long after the part sent at once); the rest is
        sent at once. Stops early, closing the connection, when the client goes
        away or the simulator stops.
        """
        assert response.status is not None
        self.log_request(response.status)
        phrase = self.responses.get(response.status, ("",))[0]
        lines = [f"{self.protocol_version} {response.status} {phrase}",
                 f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                 *(f"{name}: {value}" for name, value in response.headers.items()),
                 f"Content-Length: {len(response.body)}"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict")
        body = response.body if self.command != "HEAD" else b""
        slow, fast = (head, body) if response.delivery == "drip_headers" else (body, head)
        try:
            if response.delivery == "drip":
                self.wfile.write(fast)
            complete = self._trickle(slow, response.interval)
            if complete and response.delivery == "drip_headers":
                self.wfile.write(fast)
        except OSError:
            complete = False
        if not complete:
            self.close_connection = True

    def _trickle(self, data: bytes, interval: float) -> bool:
        for index in range(len(data)):
            if not pause(self.server.stopping, interval):
                return False
            self.wfile.write(data[index:index + 1])
        return True

    def _send_bomb(self, response: Response) -> None:
        """Send a ``gzip_bomb``: its head, then its body gzip-compressed as it goes, in chunks
        (``Transfer-Encoding: chunked``, the compressed size being known only at the end).

        The ``response.inflated`` bytes are made a block at a time and never held whole. Stops,
        closing the connection, when the client goes away or the simulator stops.
        """
        assert response.status is not None
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        stopping = self.server.stopping
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip wrapper
        zeros = response.inflated - len(BOMB_HEAD) - len(BOMB_TAIL)
        try:
            self._send_chunk(compressor.compress(BOMB_HEAD))
            while zeros > 0 and not stopping.is_set():
                block = BOMB_BLOCK if zeros >= len(BOMB_BLOCK) else BOMB_BLOCK[:zeros]
                zeros -= len(block)
                self._send_chunk(compressor.compress(block))
            if zeros > 0:
                self.close_connection = True
                return
            self._send_chunk(compressor.compress(BOMB_TAIL) + compressor.flush())
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _send_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
