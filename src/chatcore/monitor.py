"""The metrics port: Prometheus metrics, health, readiness and the status page over HTTP.

A tiny WSGI router in front of prometheus_client's own WSGI app, served by wsgiref's
threading server from one daemon thread, bound to CHATCORE_METRICS_ADDRESS (off when unset):

- ``/metrics``: the server's registry (OpenMetrics when the scraper asks for it, gzip if accepted);
- ``/healthz``: 200 while the process serves HTTP at all (alive);
- ``/readyz``: 200 while the server accepts connections and its storage takes writes, else 503
  with the reason (a read-only or full data directory, shutting down);
- ``/`` and ``/status.json``: the status page (``chatcore.status_page``) and its numbers.

The port is for operators and their scrapers: it serves at most CHATCORE_METRICS_MAX_CLIENTS
requests at once (more are dropped at accept), each client gets CHATCORE_METRICS_TIMEOUT
seconds to send its request, and nothing it serves depends on what a client sends beyond
the path. Bind it to loopback or a management network.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import make_wsgi_app

from chatcore import status_page

if TYPE_CHECKING:
    from chatcore.metrics import Metrics
    from chatcore.server import ChatServer

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2  # seconds between the HTTP thread's checks for stop (and rate samples)
SAMPLE_EVERY = 1.0  # seconds between samples of the message counter for the status page's rate
REFUSAL_LOG_EVERY = 60.0  # seconds between warnings about refused metrics-port clients
StartResponse = Callable[..., Any]
TEXT = (("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store"))  # copied per response:
# wsgiref adds Content-Length to the very list it is given


def write_problem(directory: Path) -> str:
    """Why ``directory`` does not take a small write now ('' when it does): a probe file is
    created, written and removed, as a plugin's storage would."""
    try:
        fd, name = tempfile.mkstemp(prefix=".readyz-", dir=directory)
    except OSError as exc:
        return f"{directory}: {exc.strerror or exc}"
    try:
        os.write(fd, b"ready\n")
        return ""
    except OSError as exc:
        return f"{directory}: {exc.strerror or exc}"
    finally:
        os.close(fd)
        try:
            os.unlink(name)
        except OSError:
            pass


def readiness(server: "ChatServer") -> str:
    """Why the server is not ready ('' when it is): not accepting, storage refusing writes, or
    in cluster mode PostgreSQL or the bus unreachable. The data directory and every active
    plugin's folder in it are probed."""
    if not server.accepting:
        return "not accepting connections (starting or shutting down)"
    folders = [server.data_dir, *(server.data_dir / name for name in server.active_plugins())]
    for folder in folders:
        if folder.is_dir():
            problem = write_problem(folder)
            if problem:
                return f"storage not writable: {problem}"
    return server.cluster.problem() if server.cluster is not None else ""


class _Handler(WSGIRequestHandler):
    """wsgiref's handler with a read deadline and its request log sent to ``logging`` (DEBUG)."""

    server: "_HTTPServer"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # a client must send its request in time

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics port: %s %s", self.address_string(), format % args)


class _HTTPServer(socketserver.ThreadingMixIn, WSGIServer):
    """A thread per request, at most ``max_clients`` at once; a tick for periodic work."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], max_clients: int, request_timeout: float,
                 tick: Callable[[], None]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.request_timeout = request_timeout
        self.max_clients = max_clients
        self._slots = threading.BoundedSemaphore(max_clients)
        self._refused, self._refusal_logged = 0, -REFUSAL_LOG_EVERY  # the accept thread's own
        self._tick = tick
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (it can take seconds)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refused += 1
            now = time.monotonic()
            if now >= self._refusal_logged + REFUSAL_LOG_EVERY:  # a flood is one line a minute, not one each
                self._refusal_logged = now
                log.warning("metrics port: refused %s (%d refused so far): %d requests already being served",
                            client_address[0], self._refused, self.max_clients)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def service_actions(self) -> None:
        self._tick()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics port: request from %s failed", client_address[0], exc_info=True)


class Monitor:
    """The metrics port of one server: bound on creation, served by ``start`` until ``stop``."""

    def __init__(self, server: "ChatServer", metrics: "Metrics", address: tuple[str, int],
                 max_clients: int = 8, request_timeout: float = 10.0) -> None:
        self._server, self._metrics = server, metrics
        self._prometheus = make_wsgi_app(metrics.registry)
        self.rate = status_page.RateMeter()
        self._next_sample = 0.0
        self._httpd = _HTTPServer(address, max_clients, request_timeout, self._tick)
        self._httpd.set_app(self.app)
        self._thread: Optional[threading.Thread] = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.sample()  # the rate's first point: the server's start
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": POLL_INTERVAL},
                                        name="chatcore-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (requests under way finish on their own threads) and close the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    # -- the status page's message rate -------------------------------------------------------

    def sample(self) -> None:
        """Record how many messages have been relayed by now (the chat plugin's counter)."""
        total = self._metrics.total(status_page.MESSAGES_COUNTER)
        self.rate.sample(time.monotonic(), total)

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_EVERY
            try:
                self.sample()
            except Exception:
                log.exception("metrics port: sampling the message rate failed")

    # -- requests ------------------------------------------------------------------------------

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Route one request; a failure answers 500 and is logged, it never ends the thread."""
        try:
            return self._route(environ, start_response)
        except Exception:
            log.exception("metrics port: %s failed", environ.get("PATH_INFO"))
            start_response("500 Internal Server Error", list(TEXT))
            return [b"internal error; the server log says why\n"]

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if method != "GET":
            start_response("405 Method Not Allowed", [*TEXT, ("Allow", "GET")])
            return [b"only GET\n"]
        if path == "/metrics":
            return self._prometheus(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            start_response("200 OK", list(TEXT))
            return [b"ok\n"]
        if path == "/readyz":
            problem = readiness(self._server)
            start_response("503 Service Unavailable" if problem else "200 OK", list(TEXT))
            return [f"not ready: {problem}\n".encode() if problem else b"ready\n"]
        if path in ("/", "/status.json"):
            self.sample()
            status = status_page.snapshot(self._server, self._metrics, self.rate, readiness(self._server))
            if path == "/status.json":
                start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
                return [json.dumps(status).encode()]
            start_response("200 OK", list(status_page.HEADERS))
            return [status_page.render(status).encode()]
        start_response("404 Not Found", list(TEXT))
        return [b"not found; try /, /metrics, /healthz, /readyz or /status.json\n"]
