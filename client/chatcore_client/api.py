"""A small headless client library: connect, hello, register/login, chat, history, files.

The GUI uses ``ChatClient`` for its connection and non-blocking ``send``; scripts and
benchmarks also use the blocking calls (``login``, ``chat``, ``history``, ``upload``,
``download``), which wait for their reply and keep every other event for later.
"""

from __future__ import annotations

import itertools
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from chatcore_client import __version__
from chatcore_client.config import ATTEMPT_TIMEOUT
from chatcore_client.connection import ConnectError, Connection, Disconnected, NotConnected, Received, open_connection
from chatcore_client.connector import Failed, walk
from chatcore_client.credentials import Credentials
from chatcore_client.download import Download
from chatcore_client.pinning import AskTrust, PinStore
from chatcore_client.progress import ProgressFn, TransferFailed
from chatcore_client.servers import Address, list_key
from chatcore_client.transfers import RETRY_MARGIN, Transfers
from chatcore_client.upload import Upload

DEFAULT_TIMEOUT = 10.0
RATE_PAUSE = 0.05  # seconds before retrying a rate_limited chat when the server gives no retry_after
CLIENT_NAME = f"chatcore-client/{__version__}"
_ids = itertools.count(1)
Types = Union[str, Sequence[str]]


class ServerError(Exception):
    """The server answered ``error`` (or a ``*_result`` fail); ``code`` and ``reason`` are its words."""

    def __init__(self, code: str, reason: str, message: Optional[dict[str, Any]] = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.message = code, reason, message or {}


class Closed(ConnectionError):
    """The connection ended while waiting for a reply."""


@dataclass
class HistoryPage:
    """One ``get_history`` reply: messages oldest first, and where the next older page starts."""

    peer: str
    messages: list[dict[str, Any]]
    has_more: bool
    next_before: Optional[int] = None


@dataclass
class ServerInfo:
    """What ``hello`` said about the server: version, TLS, plugins and commands it offers."""

    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def plugins(self) -> list[str]:
        return list(self.raw.get("plugins", []))

    @property
    def commands(self) -> set[str]:
        return set(self.raw.get("commands", []))

    def offers(self, *commands: str) -> bool:
        """Whether every named command is available (a missing plugin hides its features)."""
        return all(name in self.commands for name in commands)


def history_page(message: dict[str, Any]) -> HistoryPage:
    """Normalise a ``get_history`` reply, v2 ``messages`` or legacy ``data`` triples."""
    if "messages" in message:
        items = [dict(item) for item in message["messages"]]
    else:
        items = [{"sender": s, "ts": t, "message": m} for s, t, m in message.get("data", [])]
    return HistoryPage(str(message.get("peer", "")), items, bool(message.get("has_more")), message.get("next_before"))


class ChatClient:
    """One connection to a chatcore server with blocking helpers for scripts.

    Events go to ``events`` (a queue of connection.Received/Disconnected, shared with the GUI
    when it passes its own); the blocking helpers read it themselves, so do not mix them with
    another reader of the same queue.
    """

    def __init__(self, connection: Connection, events: Optional["queue.Queue[Any]"] = None) -> None:
        self.connection = connection
        self.events: "queue.Queue[Any]" = events if events is not None else queue.Queue()
        self.backlog: list[dict[str, Any]] = []
        self.server = ServerInfo()
        self.user: Optional[str] = None
        self.closed_reason: Optional[str] = None
        self.transfers = Transfers(self.send)
        self.rate_limited = 0  # rate_limited refusals seen by ``chat`` (each waits the server's retry_after)
        self._dial: Optional[Callable[[], Connection]] = None
        self._credentials: Optional[Credentials] = None
        self.ended: Optional[str] = None  # why the server ended the session on purpose (session_ended)
        connection.start(self.events)

    @classmethod
    def connect(cls, host: str, port: int, *, pins: Optional[PinStore] = None, ask: Optional[AskTrust] = None,
                tls: str = "auto", ca_context: Optional[ssl.SSLContext] = None, hello: bool = True,
                events: Optional["queue.Queue[Any]"] = None) -> "ChatClient":
        """Open a connection (see ``connection.open_connection``) and say ``hello``."""
        def dial() -> Connection:
            return open_connection(host, port, pins=pins, ask=ask, tls=tls, ca_context=ca_context)
        client = cls(dial(), events)
        client._dial = dial
        if hello:
            client.hello()
        return client

    @classmethod
    def connect_any(cls, servers: Sequence[Address], *, pins: Optional[PinStore] = None,
                    ask: Optional[AskTrust] = None, tls: str = "auto", ca_context: Optional[ssl.SSLContext] = None,
                    timeout: float = ATTEMPT_TIMEOUT, hello: bool = True) -> "ChatClient":
        """Connect to the first of ``servers`` (a cluster's nodes) that answers, as the desktop
        client does: one pin for the list; ``reconnect`` walks them again from the node after
        the one it was on. ConnectError when none answers; PinError when one is refused."""
        pins, after = pins or PinStore(), -1  # the index of the node connected to last

        def dial() -> Connection:
            nonlocal after
            outcome = walk(servers, (after + 1) % max(1, len(servers)), open_connection, pins=pins, ask=ask,
                           tls=tls, ca_context=ca_context, timeout=timeout, pin_key=list_key(servers))
            if isinstance(outcome, Failed):
                raise outcome.error if outcome.refused and outcome.error else ConnectError(outcome.reason)
            after = servers.index((outcome.host, outcome.port))
            return outcome

        client = cls(dial())
        client._dial = dial
        if hello:
            client.hello()
        return client

    @property
    def tls(self) -> bool:
        return self.connection.tls

    # -- raw messages ----------------------------------------------------------------------

    def send(self, command: Optional[dict[str, Any]] = None, /, **fields: Any) -> None:
        """Send one command, a dict or keyword fields, without waiting (thread-safe)."""
        self.connection.send(dict(fields) if command is None else command)

    def _next(self, deadline: float) -> Optional[dict[str, Any]]:
        """The next message from the connection (None for one to skip); Closed or TimeoutError otherwise."""
        if self.closed_reason is not None:
            raise Closed(self.closed_reason)
        try:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("no reply from the server in time") from None
        if event.connection is not self.connection or (isinstance(event, Received) and event.connection.requested):
            return None  # an earlier connection's, or read after we closed it: not to be trusted as complete
        if isinstance(event, Disconnected):
            self.closed_reason = event.reason
            self.transfers.suspend_all()  # kept for reconnect(); abandoned with the client otherwise
            raise Closed(event.reason)
        assert isinstance(event, Received)
        if event.message.get("type") == "session_ended":  # ended on purpose: never log in again with these
            self._credentials = None
            self.ended = str(event.message.get("reason") or event.message.get("code") or "session ended")
        return event.message

    def expect(self, types: Types, timeout: float = DEFAULT_TIMEOUT,
               match: Optional[Callable[[dict[str, Any]], bool]] = None) -> dict[str, Any]:
        """The first message (kept or new) of one of ``types`` that ``match`` accepts."""
        wanted = (types,) if isinstance(types, str) else tuple(types)

        def fits(message: Any) -> bool:
            return isinstance(message, dict) and message.get("type") in wanted and (match is None or match(message))

        for index, kept in enumerate(self.backlog):
            if fits(kept):
                return dict(self.backlog.pop(index))
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline)
            if message is None:
                continue
            if fits(message):
                return message
            self.backlog.append(message)

    def take(self, types: Types) -> list[dict[str, Any]]:
        """Remove and return the kept messages of ``types`` (e.g. offline messages after login)."""
        wanted = (types,) if isinstance(types, str) else tuple(types)
        taken = [m for m in self.backlog if m.get("type") in wanted]
        self.backlog = [m for m in self.backlog if m.get("type") not in wanted]
        return taken

    def request(self, command: str, replies: Iterable[str], timeout: float = DEFAULT_TIMEOUT,
                **fields: Any) -> dict[str, Any]:
        """Send a command, wait for its reply; an ``error`` for it raises ServerError."""
        self.send({"command": command, **fields})
        reply = self.expect((*replies, "error"), timeout,
                            lambda m: m.get("type") != "error" or m.get("command") in (command, None))
        if reply.get("type") == "error":
            raise ServerError(str(reply.get("code")), str(reply.get("reason")), reply)
        return reply

    # -- session and accounts ----------------------------------------------------------------

    def hello(self) -> ServerInfo:
        """Say ``hello`` (protocol 2) and remember what the server offers."""
        self.server = ServerInfo(self.request("hello", ["hello"], client=CLIENT_NAME, protocol=2))
        return self.server

    def _authenticate(self, command: str, username: str, **secret: Any) -> dict[str, Any]:
        result = self.request(command, [f"{command}_result"], username=username, **secret)
        if result.get("response") != "ok":
            raise ServerError("fail", str(result.get("reason") or f"{command} failed"), result)
        return result

    def register(self, username: str, password: str) -> dict[str, Any]:
        """Create an account; ServerError carries the server's reason on failure."""
        return self._authenticate("register", username, password=password)

    def login(self, username: str, password: str, device: Optional[str] = None) -> dict[str, Any]:
        """Log in; ServerError carries the server's reason on failure. With ``device`` the server
        answers a ``token`` for it, which ``reconnect`` then uses instead of the password."""
        extra = {"device": device} if device is not None else {}
        result = self._authenticate("login", username, password=password, **extra)
        self.user = str(result.get("username") or username)
        token = result.get("token")
        self._credentials = (Credentials(self.user, token=token, device=str(result.get("device", "")))
                             if isinstance(token, str) else Credentials(username, password=password))
        return result

    def login_token(self, username: str, token: str, since: Optional[int] = None) -> dict[str, Any]:
        """Log in on a device token (no password); with ``since``, the server sends what was
        missed after that message id, then ``caught_up``."""
        extra = {"since": since} if since is not None else {}
        result = self._authenticate("login", username, token=token, **extra)
        self.user = str(result.get("username") or username)
        self._credentials = Credentials(self.user, token=token, device=str(result.get("device", "")))
        return result

    def reconnect(self) -> None:
        """Connect again to the same server, or the next of a ``connect_any`` list (say hello, log
        in again on the token) and resume paused transfers."""
        if self._dial is None:
            raise Closed("this client was not made by ChatClient.connect and cannot reconnect")
        if self.ended is not None:
            raise Closed(f"the server ended this session ({self.ended}): log in again with the password")
        if not self.connection.closed:
            self.connection.close()
        self.connection = self._dial()
        self.closed_reason = None
        self.connection.start(self.events)
        self.hello()
        credentials = self._credentials
        if credentials is not None and credentials.token is not None:
            self.login_token(credentials.username, credentials.token)
        elif credentials is not None and credentials.password is not None:
            self.login(credentials.username, credentials.password)
        self.transfers.resume_all()

    def users(self) -> list[str]:
        """The users online now, except this one."""
        return list(self.request("get_users", ["get_users"]).get("data", []))

    # -- chat --------------------------------------------------------------------------------

    def chat(self, peer: str, text: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Send a message (``peer`` ``""`` = the global room) and return its ``chat_ack``.

        A ``rate_limited`` refusal is retried after the ``retry_after`` seconds the server names,
        so scripts can send as fast as the server allows.
        """
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        for attempt in itertools.count():
            client_id = f"c{next(_ids)}"
            self.send(command="chat", peer=peer, message=text, client_id=client_id)

            def answers(m: dict[str, Any], client_id: str = client_id) -> bool:
                return m.get("client_id") == client_id or (m.get("type") == "error" and m.get("command") == "chat")

            reply = self.expect(("chat_ack", "error"), max(0.0, deadline - time.monotonic()), answers)
            if reply["type"] == "chat_ack":
                return reply
            retry = reply.get("retry_after")
            wait = float(retry) + RETRY_MARGIN if isinstance(retry, (int, float)) else RATE_PAUSE * (attempt + 1)
            if reply.get("code") != "rate_limited" or time.monotonic() + wait > deadline:
                raise ServerError(str(reply.get("code")), str(reply.get("reason")), reply)
            self.rate_limited += 1
            pause.wait(wait)
        raise AssertionError("unreachable")

    def history(self, peer: str = "", before: Optional[int] = None, limit: Optional[int] = None) -> HistoryPage:
        """One page of history with ``peer``, older than message id ``before`` when given."""
        fields: dict[str, Any] = {"peer": peer}
        if before is not None:
            fields["before"] = before
        if limit is not None:
            fields["limit"] = limit
        return history_page(self.request("get_history", ["get_history"], **fields))

    def messages(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next private or broadcast message (offline ones included)."""
        return self.expect(("private_message", "broadcast_message"), timeout)

    # -- files ---------------------------------------------------------------------------------

    def upload(self, peer: str, path: Path, progress: Optional[ProgressFn] = None,
               timeout: float = 60.0) -> str:
        """Send a file to ``peer`` through the server's spool; returns its ``file_id``."""
        return self.wait_upload(self.start_upload(peer, path, progress), timeout)

    def start_upload(self, peer: str, path: Path, progress: Optional[ProgressFn] = None) -> Upload:
        """Hash and offer a file in a worker thread; ``wait_upload`` drives it to the end."""
        upload = Upload(Path(path), peer, progress)
        self.transfers.start_upload(upload)
        return upload

    def wait_upload(self, upload: Upload, timeout: float = 60.0) -> str:
        """Handle replies until ``upload`` ends; its ``file_id``, TransferFailed, or Closed on a
        disconnect (the upload is paused: ``reconnect`` resumes it, then wait again)."""
        deadline = time.monotonic() + timeout
        while not upload.done.is_set():
            message = self.expect(("file_upload_ready", "file_uploaded", "file_cancel_result", "error"),
                                  max(0.0, deadline - time.monotonic()),
                                  lambda m: m["type"] != "error" or str(m.get("command", "")).startswith("file_"))
            if message["type"] == "file_upload_ready":
                self.transfers.upload_ready(message)
            elif message["type"] == "file_uploaded":
                self.transfers.uploaded(message)
            elif message["type"] == "error":
                self.transfers.error(message)
        if upload.error is not None or upload.file_id is None:
            raise TransferFailed(upload.error or "the upload failed")
        return upload.file_id

    def offers(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next ``file_offer`` (kept or new)."""
        return self.expect("file_offer", timeout)

    def download(self, offer: dict[str, Any], dest: Path, progress: Optional[ProgressFn] = None,
                 timeout: float = 60.0) -> Path:
        """Download an offered file to ``dest``, verified against its SHA-256."""
        return self.wait_download(self.start_download(offer, dest, progress), timeout)

    def start_download(self, offer: dict[str, Any], dest: Path, progress: Optional[ProgressFn] = None) -> Download:
        """Ask for an offered file; ``wait_download`` writes it."""
        download = Download(offer, Path(dest), progress)
        self.transfers.start_download(download)
        return download

    def wait_download(self, download: Download, timeout: float = 60.0) -> Path:
        """Handle ``file_data`` until the verified file is in place; Closed on a disconnect (the
        partial file is kept: ``reconnect`` asks for the rest, then wait again)."""
        deadline = time.monotonic() + timeout
        file_id = download.file_id
        while True:
            message = self.expect(("file_data", "file_data_end", "error"), max(0.0, deadline - time.monotonic()),
                                  lambda m: str(m.get("file_id")) == file_id)
            if message["type"] == "file_data":
                self.transfers.data(message)
            elif message["type"] == "file_data_end":
                _, path = self.transfers.data_end(message)
                assert path is not None
                return path
            else:
                self.transfers.error(message)
                raise TransferFailed(str(message.get("reason", "the download failed")))

    def decline(self, file_id: str) -> None:
        """Refuse an offered file; the server deletes it and tells the sender."""
        self.request("file_decline", ["file_decline_result"], file_id=file_id)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (no logout message: the server logs a closed connection out)."""
        self.connection.close()

    def __enter__(self) -> "ChatClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["ChatClient", "Closed", "HistoryPage", "NotConnected", "ServerError", "ServerInfo", "history_page"]
