"""Settings from the environment and ``.env`` (python-dotenv), with defaults for every one.

The environment wins over ``.env``. Each setting is declared once as a ``Setting``; the core's
are below and each plugin declares its own through the ``chat_settings`` hook, so
``chatcore config`` and ``.env.example`` can list them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from dotenv import dotenv_values


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_size(text: str) -> int:
    """Bytes from ``123``, ``64K``, ``100M`` or ``2G`` (binary multiples)."""
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(cleaned[-1:], 1)
    number = cleaned[:-1] if factor > 1 else cleaned
    return int(float(number) * factor)


def parse_choice(text: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, any case."""
    value = text.strip().lower()
    if value not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}")
    return value


PARSERS: dict[type, Callable[[str], Any]] = {str: str, int: int, float: float, bool: parse_bool, list: parse_list}


@dataclass(frozen=True)
class Setting:
    """One configuration variable: its name, type, default and a line of help."""

    name: str
    default: Any
    help: str
    type: type = str
    parse: Optional[Callable[[str], Any]] = None
    minimum: Optional[float] = None

    def convert(self, raw: str) -> Any:
        parser = self.parse or PARSERS[self.type]
        try:
            value = parser(raw)
        except (ValueError, IndexError):
            raise ConfigError(f"{self.name}={raw!r} is not a valid {self.type.__name__}") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{self.name}={raw!r} is below the minimum {self.minimum:g}")
        return value

    @staticmethod
    def format(value: Any) -> str:
        """A value as it would be written in ``.env``."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(value)
        return "" if value is None else str(value)

    def default_text(self) -> str:
        return self.format(self.default)


HOST = Setting("CHATCORE_HOST", "0.0.0.0", "Address the server listens on.")
PORT = Setting("SERVER_PORT", 8888, "TCP port the server listens on (0 picks a free one).", int, minimum=0)
STORAGE_DIR = Setting("STORAGE_DIR", "data", "Data directory; each plugin keeps its files in a subfolder. Relative to the working directory.")
LOG_LEVEL = Setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.")
LOG_FORMAT = Setting("CHATCORE_LOG_FORMAT", "text", "Log lines as text, or json: one JSON object per line (time, level, logger, message, thread, exception) for log shippers.", str, lambda text: parse_choice(text, ("text", "json")))
SERVER_IP = Setting("SERVER_IP", "127.0.0.1", "The client's default server address.")
PLUGINS = Setting("CHATCORE_PLUGINS", None, "Comma-separated plugin names to enable; unset enables every installed plugin.", list)
DISABLE_PLUGINS = Setting("CHATCORE_DISABLE_PLUGINS", [], "Comma-separated plugin names to disable (wins over CHATCORE_PLUGINS).", list)
SEND_BUFFER = Setting("CHATCORE_SEND_BUFFER", 1 << 20, "Bytes queued for one client that is not reading before it is disconnected (accepts K/M suffixes).", int, parse_size, minimum=65536)
SEND_TIMEOUT = Setting("CHATCORE_SEND_TIMEOUT", 10.0, "Seconds a client may leave queued data unread before it is disconnected.", float, minimum=0.1)
FRAME_TIMEOUT = Setting("CHATCORE_FRAME_TIMEOUT", 5.0, "Seconds a started frame may take to arrive in full (the protocol's 5).", float, minimum=0.1)
LISTEN_BACKLOG = Setting("CHATCORE_LISTEN_BACKLOG", 1024, "Pending connections the kernel queues before accept.", int, minimum=1)
SHUTDOWN_TIMEOUT = Setting("CHATCORE_SHUTDOWN_TIMEOUT", 5.0, "Seconds shutdown waits for the sessions to end.", float, minimum=0)

TLS = Setting("CHATCORE_TLS", True, "Accept TLS on the server port (beside plaintext, told apart by the first byte).", bool)
TLS_CERT = Setting("CHATCORE_TLS_CERT", "", "PEM certificate (chain) to serve; empty: a self-signed one made in <STORAGE_DIR>/tls/.")
TLS_KEY = Setting("CHATCORE_TLS_KEY", "", "PEM private key for CHATCORE_TLS_CERT.")
LOGIN_TIMEOUT = Setting("CHATCORE_LOGIN_TIMEOUT", 60.0, "Seconds a connection may take to log in (TLS handshake included) before it is closed.", float, minimum=1)
IDLE_TIMEOUT = Setting("CHATCORE_IDLE_TIMEOUT", 300.0, "Seconds a logged-in client may send nothing (not even ping) before it is closed; 0: never.", float, minimum=0)
MAX_CONNECTIONS = Setting("CHATCORE_MAX_CONNECTIONS", 10000, "Connections the server holds at once; more are refused.", int, minimum=1)
MAX_PER_ADDRESS = Setting("CHATCORE_MAX_CONNECTIONS_PER_ADDRESS", 100, "Connections one client address may hold at once.", int, minimum=1)
RATE_LIMIT = Setting("CHATCORE_RATE_LIMIT", 30.0, "Requests per second one session may make on average (file chunks excepted); more get rate_limited.", float, minimum=0.1)
RATE_BURST = Setting("CHATCORE_RATE_BURST", 100, "Requests one session may make at once before CHATCORE_RATE_LIMIT applies.", int, minimum=1)
FAULT_LIMIT = Setting("CHATCORE_FAULT_LIMIT", 20, "Failures (handler or hook exceptions) one plugin may have within CHATCORE_FAULT_WINDOW before it is disabled until the server restarts; 0: never disable.", int, minimum=0)
FAULT_WINDOW = Setting("CHATCORE_FAULT_WINDOW", 60.0, "Seconds over which a plugin's failures are counted for CHATCORE_FAULT_LIMIT.", float, minimum=1)
IO_THREADS = Setting("CHATCORE_IO_THREADS", 1, "Reactors reading the clients' sockets (each one selector over its share of the connections, its loop run by one worker thread at a time, one more thread in the pool for each).", int, minimum=1)
WORKERS_MIN = Setting("CHATCORE_WORKERS_MIN", 0, "Worker threads always kept for serving requests (one more per reactor runs its loop); 0 = twice the number of CPUs, at least 4.", int, minimum=0)
WORKERS_MAX = Setting("CHATCORE_WORKERS_MAX", 128, "Worker threads at most, for requests that block (password hashes, backlogs); more requests wait their turn.", int, minimum=1)
REQUEST_QUEUE = Setting("CHATCORE_REQUEST_QUEUE", 256 << 10, "Bytes of one client's received requests waiting for a worker before its socket is no longer read (TCP then holds it back; accepts K/M suffixes).", int, parse_size, minimum=65536)
LOGIN_REQUEST_QUEUE = Setting("CHATCORE_LOGIN_REQUEST_QUEUE", 16 << 10, "The same for a connection not logged in yet (a hello and a login need a few hundred bytes).", int, parse_size, minimum=4096)

# The metrics port (chatcore.monitor): /metrics, /healthz, /readyz and the status page.
METRICS_ADDRESS = Setting("CHATCORE_METRICS_ADDRESS", "", "HOST:PORT for Prometheus metrics, /healthz, /readyz and the status page (e.g. 127.0.0.1:9464; port 0 picks a free one); empty: off.")
METRICS_MAX_CLIENTS = Setting("CHATCORE_METRICS_MAX_CLIENTS", 8, "HTTP requests the metrics port serves at once; more are refused.", int, minimum=1)
METRICS_TIMEOUT = Setting("CHATCORE_METRICS_TIMEOUT", 10.0, "Seconds one metrics-port client may take to send its request before it is dropped.", float, minimum=0.1)

# Cluster mode (chatcore.cluster): on when both URLs are set.
DATABASE_URL = Setting("CHATCORE_DATABASE_URL", "", "PostgreSQL URL (postgresql://user@host:port/db) every node shares; set with CHATCORE_REDIS_URL for cluster mode, empty: SQLite under STORAGE_DIR.")
REDIS_URL = Setting("CHATCORE_REDIS_URL", "", "Redis URL (redis://host:port/db) the nodes share for events, presence and counters; set with CHATCORE_DATABASE_URL.")
REDIS_PREFIX = Setting("CHATCORE_REDIS_PREFIX", "chatcore:", "Prefix of every Redis key the cluster uses, so several clusters (or test runs) can share one Redis.")
NODE_ID = Setting("CHATCORE_NODE_ID", "", "This node's name in the cluster; empty: host name, process id and a random suffix (a restarted node is a new node).")
DATABASE_POOL_MIN = Setting("CHATCORE_DATABASE_POOL_MIN", 2, "PostgreSQL connections each node keeps open.", int, minimum=1)
DATABASE_POOL_MAX = Setting("CHATCORE_DATABASE_POOL_MAX", 16, "PostgreSQL connections each node opens at most; more callers wait for one.", int, minimum=1)
DATABASE_TIMEOUT = Setting("CHATCORE_DATABASE_TIMEOUT", 10.0, "Seconds a caller waits for a PostgreSQL connection (also while the database restarts) before its request fails.", float, minimum=0.1)
BUS_STREAM_LENGTH = Setting("CHATCORE_BUS_STREAM_LENGTH", 100000, "Events the Redis stream between nodes keeps (approximately); a node away longer than that catches up from PostgreSQL.", int, minimum=1000)
BUS_OUTBOX = Setting("CHATCORE_BUS_OUTBOX", 100000, "Events a node holds for the stream while Redis is unreachable; past that the oldest are dropped and every node resynchronises from PostgreSQL.", int, minimum=100)
NODE_TTL = Setting("CHATCORE_NODE_TTL", 10.0, "Seconds after a node's last heartbeat before the other nodes treat it as dead (its users go offline).", float, minimum=1)

CORE_SETTINGS: tuple[Setting, ...] = (
    HOST, PORT, STORAGE_DIR, LOG_LEVEL, LOG_FORMAT, SERVER_IP, PLUGINS, DISABLE_PLUGINS,
    SEND_BUFFER, SEND_TIMEOUT, FRAME_TIMEOUT, LISTEN_BACKLOG, SHUTDOWN_TIMEOUT,
    TLS, TLS_CERT, TLS_KEY, LOGIN_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_PER_ADDRESS,
    RATE_LIMIT, RATE_BURST, FAULT_LIMIT, FAULT_WINDOW, IO_THREADS, WORKERS_MIN, WORKERS_MAX, REQUEST_QUEUE, LOGIN_REQUEST_QUEUE,
    METRICS_ADDRESS, METRICS_MAX_CLIENTS, METRICS_TIMEOUT,
    DATABASE_URL, REDIS_URL, REDIS_PREFIX, NODE_ID, DATABASE_POOL_MIN, DATABASE_POOL_MAX, DATABASE_TIMEOUT,
    BUS_STREAM_LENGTH, BUS_OUTBOX, NODE_TTL,
)


class Config:
    """The merged raw variables plus typed access through ``Setting`` declarations."""

    def __init__(self, values: Mapping[str, str], base_dir: Optional[Path] = None) -> None:
        self._values = dict(values)
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()

    @classmethod
    def load(cls, env_file: Optional[os.PathLike[str] | str] = ".env",
             environ: Optional[Mapping[str, str]] = None) -> "Config":
        """Read ``env_file`` (if it exists) and overlay the environment on it."""
        merged: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(os.environ if environ is None else environ)
        return cls(merged)

    def with_overrides(self, **values: Any) -> "Config":
        """A copy with some variables replaced (values are written as in ``.env``)."""
        merged = dict(self._values)
        for name, value in values.items():
            merged[name] = Setting.format(value)
        return Config(merged, self.base_dir)

    def raw(self, name: str) -> Optional[str]:
        return self._values.get(name)

    def get(self, setting: Setting) -> Any:
        """The typed value of ``setting``; its default when unset or blank."""
        raw = self._values.get(setting.name)
        if raw is None or raw.strip() == "":
            return setting.default
        return setting.convert(raw)

    def path(self, setting: Setting) -> Path:
        """A path setting resolved against the working directory the config was loaded in."""
        return (self.base_dir / str(self.get(setting))).resolve()

    @property
    def data_dir(self) -> Path:
        return self.path(STORAGE_DIR)

    def validate(self, settings: Iterable[Setting]) -> None:
        """Convert every declared setting once so a bad value fails at startup, not later."""
        for setting in settings:
            self.get(setting)
