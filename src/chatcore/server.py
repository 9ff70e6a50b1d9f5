"""The threaded server: an accept loop, reactors reading every socket, a worker pool serving
each session's requests in order (and running the reactors' loops), and an ordered shutdown."""

from __future__ import annotations

import importlib.metadata
import logging
import selectors
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

import pluggy

from chatcore import config as settings
from chatcore import protocol
from chatcore.admin import AdminServer, DataDirLock
from chatcore.cluster import open_cluster, relay
from chatcore.cluster.identity import shared_certificate
from chatcore.cluster.migrate import CORE as CORE_SCHEMA
from chatcore.cluster.migrate import migrate_all
from chatcore.config import Config
from chatcore.connection import Connection, Policy
from chatcore.control import handlers as admin_handlers
from chatcore.core_plugin import CorePlugin
from chatcore.dispatch import Dispatcher
from chatcore.errors import CommandError
from chatcore.hooks import FaultBudget, PluginHooks, essential_plugins
from chatcore.limits import ConnectionCounter
from chatcore.metrics import Metrics
from chatcore.plugins import CORE, collect_commands, create_manager, plugin_names
from chatcore.reactor import Reactor
from chatcore.registry import CommandRegistry
from chatcore.session import Flusher, Session, SessionRegistry
from chatcore.tls import certificate_paths, fingerprint, server_context
from chatcore.users import UserControl
from chatcore.workers import WorkerPool, default_minimum

if TYPE_CHECKING:
    from chatcore.cluster.node import Cluster

log = logging.getLogger(__name__)


class ChatServer:
    """A chat server built from a config and the plugins it enables."""

    def __init__(self, config: Config, *,
                 entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None,
                 extra_plugins: Sequence[tuple[str, Any]] = ()) -> None:
        self.config = config
        config.validate(settings.CORE_SETTINGS)
        self.pm: pluggy.PluginManager = create_manager(config, entry_points, extra_plugins, core=CorePlugin())
        self.hook = self.pm.hook
        for declared in self.hook.chat_settings():
            config.validate(declared or ())
        self.plugin_names: list[str] = plugin_names(self.pm)
        self.budget = FaultBudget(config.get(settings.FAULT_LIMIT), config.get(settings.FAULT_WINDOW),
                                  {CORE, *essential_plugins(self.pm)})
        self.plugins = PluginHooks(self.pm, self.budget)
        self.commands = CommandRegistry()  # filled by open(), once the plugins are configured
        self._active_cache: Optional[tuple[Any, tuple[tuple[str, ...], tuple[str, ...]]]] = None
        self.metrics = Metrics(self)  # the registry and counts; the metrics port is served from start()
        self.dispatch = Dispatcher(self)
        self.sessions = SessionRegistry()
        self.data_dir: Path = config.data_dir
        self.flusher = Flusher()
        workers = config.get(settings.WORKERS_MIN) or default_minimum()
        readers = config.get(settings.IO_THREADS)
        self.workers = WorkerPool(workers + readers, config.get(settings.WORKERS_MAX) + readers)
        self._reactors = [Reactor(self.workers) for _ in range(readers)]
        self._next_reactor = 0
        self._listener: Optional[socket.socket] = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread: Optional[threading.Thread] = None
        self._connections_lock = threading.Lock()
        self._live: set[Connection] = set()  # accepted and not yet ended
        self._connection_ended = threading.Condition(self._connections_lock)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self.login_timeout: float = config.get(settings.LOGIN_TIMEOUT)
        self.idle_timeout: Optional[float] = config.get(settings.IDLE_TIMEOUT) or None
        self.rate_limit: float = config.get(settings.RATE_LIMIT)
        self.rate_burst: int = config.get(settings.RATE_BURST)
        self._policy: Optional[Policy] = None  # set once listening (it holds the TLS context)
        self._connections = ConnectionCounter(config.get(settings.MAX_CONNECTIONS), config.get(settings.MAX_PER_ADDRESS))
        self.tls_context: Optional[ssl.SSLContext] = None
        self.tls_fingerprint = ""
        self.users = UserControl(self)
        self.cluster: Optional[Cluster] = None  # cluster mode (chatcore.cluster): set by open()
        self._data_lock = DataDirLock(self.data_dir)
        self._admin: Optional[AdminServer] = None
        self._opened = False
        self.started_at = time.time()  # reset by start(): the uptime ``chatcore status`` shows
        self._configured: list[str] = []  # plugins whose chat_configure succeeded, in call order

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when the config asked for 0."""
        assert self._listener is not None, "server not started"
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def accepting(self) -> bool:
        """True while the server accepts connections: started and not shutting down."""
        return self._accept_thread is not None and self._accept_thread.is_alive() and not self._stopping.is_set()

    def active_plugins(self) -> list[str]:
        """The enabled plugins not disabled by their fault budget (what ``hello`` lists)."""
        return list(self._active()[0])

    def active_commands(self) -> list[str]:
        """The commands of active plugins (and the core's), sorted."""
        return list(self._active()[1])

    def _active(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(active plugins, their commands), worked out again only when a plugin was disabled or
        enabled or the registry changed: every ``hello`` lists both."""
        budget, commands = self.budget, self.commands
        key = (tuple(budget.disabled), commands, len(commands))
        cached = self._active_cache
        if cached is None or cached[0] != key:
            plugins = tuple(name for name in self.plugin_names if not budget.is_disabled(name))
            names = tuple(name for name in commands.names()
                          if not budget.is_disabled(commands.get(name).plugin))  # type: ignore[union-attr]
            self._active_cache = cached = (key, (plugins, names))
        return cached[1]

    def plugin_dir(self, plugin: str) -> Path:
        """``<data dir>/<plugin>``, created private to this user."""
        path = self.data_dir / plugin
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def open(self) -> None:
        """Lock the data directory, configure the plugins (they open storage and build their
        per-server objects), then collect their commands; no listening yet. What ``start`` does
        first, and all the CLI needs to change data offline. Raises DataDirInUse while another
        server runs on the same data; a plugin failing to configure stops the start, after
        the ones configured before it were shut down."""
        if self._opened:
            return
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._data_lock.acquire()
        self._opened = True
        try:
            self.cluster = open_cluster(self.config)
            if self.cluster is not None:
                migrate_all(self.cluster.database, self.hook)
                relay.attach(self)
            for impl in self.plugins.implementations("chat_configure"):
                impl.function(server=self)
                self._configured.append(impl.plugin_name)
            self.commands = collect_commands(self.pm)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Shut down every plugin that was configured (failures logged, the others still closed)
        and unlock the data directory: the end of ``stop``, or of ``open``."""
        if not self._opened:
            return
        try:
            log.info("shutdown: closing plugin storage")
            unconfigured = self._hooked("chat_configure") - set(self._configured)  # failed, or never reached
            for impl in self.plugins.implementations("chat_shutdown", disabled_too=True):  # storage is open
                if impl.plugin_name not in unconfigured:
                    try:
                        impl.function(server=self)
                    except Exception:
                        self.plugins.failed(impl.plugin_name, "chat_shutdown")
        finally:
            self._configured.clear()
            self._opened = False
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None
            self._data_lock.release()

    def _hooked(self, hook: str) -> set[str]:
        """Plugins implementing ``hook``."""
        return {impl.plugin_name for impl in getattr(self.hook, hook).get_hookimpls()}

    def start(self) -> None:
        """Configure plugins, bind and start accepting in a background thread."""
        self.open()
        try:
            self._listen()
            self.metrics.bind()  # CHATCORE_METRICS_ADDRESS in use fails the start too
        except BaseException:
            if self._listener is not None:
                self._listener.close()
            self.close()  # a port in use must not leave plugin threads and databases open
            raise
        self.flusher.start()
        self.workers.start()
        if self.cluster is not None:
            self.cluster.start()  # the bus reads from its current end: subscribers were added in configure
        for reactor in self._reactors:
            reactor.start()
        self.started_at = time.time()
        self._admin = AdminServer(self.data_dir, admin_handlers(self))
        self._admin.start()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="chatcore-accept", daemon=True)
        self._accept_thread.start()
        self.metrics.start()  # chat_metrics, then the metrics port serves
        self.plugins.notify("chat_started", server=self)
        log.info("chatcore listening on %s:%d with plugins: %s (data in %s)",
                 *self.address, ", ".join(self.plugin_names) or "none", self.data_dir)
        if self.tls_context is not None:
            log.info("TLS on the same port; certificate SHA-256 fingerprint %s", self.tls_fingerprint)
        else:
            log.warning("TLS is off (CHATCORE_TLS=false): traffic, passwords included, is readable on the network")

    def _listen(self) -> None:
        """Load the TLS certificate and bind the listening socket."""
        if self.config.get(settings.TLS):
            configured = self.config.get(settings.TLS_CERT) or self.config.get(settings.TLS_KEY)
            if self.cluster is not None and not configured:  # one certificate, so pins hold on every node
                cert, key = shared_certificate(self.cluster.database.schema(CORE_SCHEMA), self.plugin_dir("tls"))
            else:
                cert, key = certificate_paths(self.plugin_dir("tls"), self.config.get(settings.TLS_CERT),
                                              self.config.get(settings.TLS_KEY))
            self.tls_context = server_context(cert, key)
            self.tls_fingerprint = fingerprint(cert.read_bytes())
        config = self.config
        self._policy = Policy(
            tls_context=self.tls_context, send_buffer=config.get(settings.SEND_BUFFER),
            send_timeout=config.get(settings.SEND_TIMEOUT), frame_timeout=config.get(settings.FRAME_TIMEOUT),
            login_timeout=self.login_timeout, idle_timeout=self.idle_timeout, rate_limit=self.rate_limit,
            rate_burst=self.rate_burst, request_queue=config.get(settings.REQUEST_QUEUE),
            login_request_queue=config.get(settings.LOGIN_REQUEST_QUEUE))
        # Only the core's own chat_handle_message (no plugin wraps it): call handlers directly,
        # sparing every request a pluggy hook call.
        self.dispatch.direct = [impl.plugin_name for impl in self.hook.chat_handle_message.get_hookimpls()] == ["core"]
        host, port = self.config.get(settings.HOST), self.config.get(settings.PORT)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError:
            listener.close()
            raise
        listener.listen(self.config.get(settings.LISTEN_BACKLOG))
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)

    def __enter__(self) -> "ChatServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until ``stop`` has finished; True if it has."""
        return self._stopped.wait(timeout)

    @property
    def stopping(self) -> bool:
        """True once ``stop`` began: new sessions are closed at once."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Shut down in a fixed order: stop accepting, tell and disconnect clients, let their
        sessions end, stop the reactors and workers, close plugin storage. Safe to call more
        than once."""
        if self._stopping.is_set():
            self._stopped.wait()
            return
        self._stopping.set()
        log.info("shutdown: no longer accepting connections")
        self._wake_w.send(b"\0")
        if self._accept_thread is not None:
            self._accept_thread.join()
        if self._listener is not None:
            self._listener.close()
        with self._connections_lock:
            connections = list(self._live)
        for conn in connections:
            if conn.session is None:  # still choosing plaintext or TLS: its reactor sees the end
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        sessions = self.sessions.all()
        log.info("shutdown: disconnecting %d client(s)", len(sessions))
        notice = protocol.encode({"type": "shutdown", "reason": "The server is shutting down."})
        for session in sessions:
            session.send_frame(notice)
            session.close()
        ended = self.wait_connections(0, self.config.get(settings.SHUTDOWN_TIMEOUT))
        if ended:
            log.info("shutdown: all %d connection(s) ended", len(connections))
        else:
            log.warning("shutdown: %d connection(s) did not end in time", len(self.connections()))
        self.metrics.stop()  # before plugin storage closes: no scrape reads a closed store
        for reactor in self._reactors:
            if reactor.is_alive():
                reactor.stop()
        busy = self.workers.stop(self.config.get(settings.SHUTDOWN_TIMEOUT))
        if busy:
            log.warning("shutdown: %d worker(s) still busy: %s", len(busy), ", ".join(busy))
        self.flusher.stop()
        if self._admin is not None:
            self._admin.stop()
        if self.cluster is not None:
            self.cluster.leave()  # the outbox written, heartbeat gone: before plugin storage closes
        self.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        log.info("shutdown complete")
        self._stopped.set()

    def connections(self) -> list[Connection]:
        """The connections accepted and not yet ended (for tests and diagnostics)."""
        with self._connections_lock:
            return list(self._live)

    def wait_connections(self, count: int, timeout: float) -> bool:
        """Block until at most ``count`` connections are live (their sessions ended and
        forgotten); False if ``timeout`` passed first."""
        with self._connection_ended:
            return self._connection_ended.wait_for(lambda: len(self._live) <= count, timeout)

    # -- accepting ---------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_r:
                    return
                self._accept_ready()

    def _accept_ready(self) -> None:
        assert self._listener is not None and self._policy is not None
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: log, keep serving those already connected
                log.error("accept failed: %s", exc)
                return
            refusal = self._connections.admit(address[0])
            if refusal:
                log.warning("refused a connection from %s: %s", address[0], refusal)
                sock.close()
                continue
            reactor = self._reactors[self._next_reactor]
            self._next_reactor = (self._next_reactor + 1) % len(self._reactors)
            conn = Connection(self, sock, address[:2], reactor, self._policy)
            with self._connections_lock:
                self._live.add(conn)
            reactor.add(conn)

    # -- the end of a connection, called by it ----------------------------------------------

    def end_session(self, session: Session) -> None:
        """Log the session out, tell plugins it closed, and close its socket (a worker, in
        order after the session's last request)."""
        try:
            if session.user is not None:
                self.logout(session)
            self.plugins.notify("chat_session_closed", session=session)
        except Exception:
            log.exception("closing %r failed", session)
        finally:
            self.sessions.remove(session)
            session.close()
            session.transport.close()
            log.debug("connection %r closed", session)

    def connection_ended(self, conn: Connection) -> None:
        """Forget a connection whose socket is done with (closing it if no session did)."""
        if conn.session is None:
            conn.sock.close()
        self._connections.release(conn.address[0])
        with self._connection_ended:
            self._live.discard(conn)
            self._connection_ended.notify_all()

    # -- authentication, for the accounts plugin ---------------------------------------------

    def login(self, session: Session, username: str, request: Optional[dict[str, Any]] = None) -> bool:
        """Bind ``session`` to ``username`` and tell plugins (with the login ``request``, its
        credentials removed, for options such as ``since``); True if the user just came online."""
        if session.user is not None:
            raise CommandError("already_authenticated", f"this connection is already logged in as {session.user}")
        self.users.check_login(username)
        first = self.sessions.bind(session, username)
        log.info("%s logged in from %s (%s)", username, session.address[0], "first session" if first else "another session")
        self.plugins.notify("chat_authenticated", session=session, first=first, request=request or {})
        return first

    def logout(self, session: Session) -> bool:
        """Unbind ``session`` from its user after telling plugins; True if it was the last session."""
        if session.user is None:
            return False
        last = self.sessions.unbind(session)
        self.plugins.notify("chat_logging_out", session=session, last=last)
        log.info("%s logged out from %s", session.user, session.address[0])
        session.user, session.device, session.admin = None, "", False
        return last

    def lookup_user(self, username: str) -> Optional[str]:
        """The registered display name for ``username`` (any case), or None."""
        name = self.hook.chat_lookup_user(username=username)
        return name if isinstance(name, str) else None
