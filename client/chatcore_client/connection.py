"""The network layer: connect (TLS with pinning, or plaintext with a warning), read frames on
one thread onto a ``queue.Queue``, send under a lock. No Tk here: the GUI drains the queue.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Optional, Union

from chatcore import protocol
from chatcore_client.pinning import AskTrust, PinError, PinStore, Verdict, fingerprint, server_key
from chatcore_client.transport import PlainPipe, TlsPipe, tls_handshake

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds for the TCP connect and for each TLS handshake
PLAINTEXT_WARNING = ("Unencrypted connection: this server does not offer TLS, so your password and "
                     "messages can be read by anyone on the network path.")


class ConnectError(Exception):
    """Connecting failed; the message is a sentence for the user."""


class DowngradeRefused(ConnectError):
    """TLS was required (by setting, or because the server was pinned) but the server did not offer it."""


class NotConnected(ConnectionError):
    """A send on a connection that is closed."""


@dataclass(frozen=True)
class Received:
    """One decoded message from ``connection``."""

    connection: "Connection"
    message: Any


@dataclass(frozen=True)
class Disconnected:
    """``connection`` ended; ``requested`` is True when this side closed it."""

    connection: "Connection"
    reason: str
    requested: bool


Event = Union[Received, Disconnected]


class Connection:
    """One open connection: a reader thread feeding a queue, and a lock-protected ``send``."""

    def __init__(self, pipe: PlainPipe, host: str, port: int, *,
                 fingerprint: Optional[str] = None, ca_verified: bool = False) -> None:
        self.pipe = pipe
        self.host, self.port = host, port
        self.tls = pipe.tls
        self.fingerprint = fingerprint
        self.ca_verified = ca_verified
        self.warning: Optional[str] = None if self.tls else PLAINTEXT_WARNING
        self._send_lock = threading.Lock()
        self._closing = threading.Event()
        self.requested = False  # close() was called: what is read afterwards is not to be trusted as complete
        self._reader: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return f"<Connection {server_key(self.host, self.port)} {'tls' if self.tls else 'plaintext'}>"

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    def start(self, events: "queue.Queue[Any]") -> None:
        """Start the reader thread; every message and the final Disconnected go to ``events``."""
        self._reader = threading.Thread(target=self._read_loop, args=(events,), daemon=True,
                                        name=f"chatcore-client-reader-{self.host}:{self.port}")
        self._reader.start()

    def _read_loop(self, events: "queue.Queue[Any]") -> None:
        reader = protocol.FrameReader(self.pipe.recv_into, self.pipe.settimeout)
        reason = "The server closed the connection."
        try:
            while True:
                try:
                    body = reader.read_frame_body()
                    if body is None:
                        break
                    events.put(Received(self, protocol.decode_body(body)))
                except protocol.MessageError as exc:
                    log.warning("ignoring an undecodable message from the server: %s", exc)
        except protocol.ProtocolError as exc:
            reason = f"The connection broke: {exc}."
        except (OSError, ValueError) as exc:  # reset, TLS error, or our own shutdown
            reason = f"The connection was lost: {exc}." if not self._closing.is_set() else "Disconnected."
        finally:
            requested = self._closing.is_set()
            self._closing.set()
            try:
                self.pipe.close()
            except OSError:
                pass
            events.put(Disconnected(self, "Disconnected." if requested else reason, requested))

    def send(self, message: dict[str, Any]) -> None:
        """Encode and send one message; safe from any thread. Raises NotConnected once closed."""
        frame = protocol.encode(message)
        with self._send_lock:
            if self._closing.is_set():
                raise NotConnected("not connected")
            try:
                self.pipe.sendall(frame)
            except (OSError, ValueError) as exc:
                self._shutdown()
                raise NotConnected(f"sending failed: {exc}") from None

    def _shutdown(self) -> None:
        """Wake the reader (a blocked recv does not wake on close) without freeing the socket under it."""
        self.pipe.shutdown()

    def close(self, wait: float = 5.0) -> None:
        """Close from this side; the reader reports Disconnected(requested=True) and frees the socket."""
        self.requested = True
        self._closing.set()
        self._shutdown()
        if self._reader is None:
            self.pipe.close()
        elif self._reader is not threading.current_thread():
            self._reader.join(wait)


# -- opening a connection ------------------------------------------------------------------


class _NoTLS(Exception):
    """The server answered a TLS ClientHello with something that is not TLS."""


def _tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket, or a ConnectError that says what went wrong in words."""
    where = server_key(host, port)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise ConnectError(f"Could not connect to {where}: the connection was refused. "
                           "Is the server running, and are the address and port right?") from None
    except socket.gaierror as exc:
        raise ConnectError(f"Could not find the server {host!r}: {exc.strerror or exc}.") from None
    except TimeoutError:
        raise ConnectError(f"Could not connect to {where}: no answer within {timeout:g} s.") from None
    except OSError as exc:
        raise ConnectError(f"Could not connect to {where}: {exc.strerror or exc}.") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _pinning_context() -> ssl.SSLContext:
    """TLS 1.2+ without CA checks: the certificate is judged by its pinned fingerprint instead."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def system_context() -> ssl.SSLContext:
    """TLS 1.2+ verified against the system CAs and the host name."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _handshake(host: str, port: int, context: ssl.SSLContext, timeout: float) -> TlsPipe:
    """TCP connect and TLS handshake; _NoTLS when the server does not speak TLS."""
    raw = _tcp(host, port, timeout)
    try:
        return tls_handshake(raw, context, host, timeout)
    except ssl.SSLCertVerificationError:
        raw.close()
        raise
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise _NoTLS(str(exc)) from None


def _peer_fingerprint(pipe: TlsPipe) -> str:
    der = pipe.peer_certificate()
    if not der:
        pipe.close()
        raise ConnectError("The server sent no TLS certificate.")
    return fingerprint(der)


def _verified_by_cas(host: str, port: int, context: ssl.SSLContext, timeout: float) -> Optional[TlsPipe]:
    """A pipe whose certificate verifies for ``host`` against ``context``'s CAs, or None."""
    try:
        return _handshake(host, port, context, timeout)
    except (ssl.SSLCertVerificationError, _NoTLS):
        return None


def open_connection(host: str, port: int, *, pins: Optional[PinStore] = None, ask: Optional[AskTrust] = None,
                    tls: str = "auto", ca_context: Optional[ssl.SSLContext] = None,
                    timeout: float = CONNECT_TIMEOUT, pin_key: Optional[str] = None) -> Connection:
    """Connect to a chatcore server, preferring TLS.

    A certificate that verifies against the system CAs (``ca_context``) for ``host`` is
    accepted; otherwise the pin store decides (first contact calls ``ask``; a changed
    certificate raises CertificateChanged). A server that does not speak TLS gets a
    plaintext connection with ``warning`` set, unless ``tls="require"`` or the server was
    pinned before (a downgrade an attacker could force), which raise DowngradeRefused.
    ``pin_key`` names the pin entry when it is not ``host:port``: a cluster's, shared by its nodes.
    """
    pins = pins or PinStore()
    try:
        pipe = _handshake(host, port, _pinning_context(), timeout)
    except _NoTLS as exc:
        log.info("%s does not speak TLS (%s)", server_key(host, port), exc)
        if tls == "require":
            raise DowngradeRefused(f"{server_key(host, port)} does not offer an encrypted (TLS) connection, "
                                   "and this client requires one.") from None
        if pins.get(host, port, pin_key) is not None:
            raise DowngradeRefused(f"{server_key(host, port)} used TLS before but now offers only an "
                                   "unencrypted connection. Someone may be tampering with the connection; "
                                   "refusing to connect.") from None
        sock = _tcp(host, port, timeout)
        sock.settimeout(None)
        return Connection(PlainPipe(sock), host, port)
    presented = _peer_fingerprint(pipe)
    if pins.check(host, port, presented, pin_key) is Verdict.MATCH:
        return Connection(pipe, host, port, fingerprint=presented)
    verified = _verified_by_cas(host, port, ca_context or system_context(), timeout)
    if verified is not None:
        pipe.close()
        return Connection(verified, host, port, fingerprint=_peer_fingerprint(verified), ca_verified=True)
    pipe.close()  # the user may take a while to decide; do not hold a connection open meanwhile
    pins.trust(host, port, presented, ask, pin_key)  # asks on first contact; raises when refused or changed
    pipe = _handshake(host, port, _pinning_context(), timeout)
    again = _peer_fingerprint(pipe)
    if again != presented:
        pipe.close()
        pins.trust(host, port, again, None, pin_key)  # raises CertificateChanged
    return Connection(pipe, host, port, fingerprint=presented)


__all__ = ["Connection", "ConnectError", "DowngradeRefused", "Disconnected", "Event", "NotConnected",
           "PinError", "Received", "open_connection", "PLAINTEXT_WARNING"]
