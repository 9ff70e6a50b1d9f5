"""Downloads: each one streams from disk in its own thread, a chunk at a time, with backpressure.

The worker serving the recipient's request only starts a stream and goes on, so chat
keeps flowing while a file downloads. A stream keeps at most ``window`` bytes queued for its
client, so memory stays flat whatever the file size, and other messages to that client wait
behind at most one window.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Union

from chatcore_filexfer.index import Entry
from chatcore_filexfer.spool import Spool

if TYPE_CHECKING:
    from chatcore_filexfer.largeobjects import LargeObjectSpool

Store = Union[Spool, "LargeObjectSpool"]

log = logging.getLogger(__name__)

_POLL = 1.0  # seconds between checks for cancellation while a client is slow to read


class Sink(Protocol):
    """What a stream needs of a session: non-blocking sends and a way to wait for the socket."""

    id: int

    @property
    def closed(self) -> bool: ...

    @property
    def pending(self) -> int: ...

    def send(self, message: dict[str, Any]) -> bool: ...

    def wait_drained(self, below: int = 0, timeout: Optional[float] = None) -> bool: ...


Finished = Callable[[Entry, Sink], None]


class Stream:
    """One file streaming to one session; ``cancel`` guarantees no frame is sent after it returns."""

    def __init__(self, spool: Store, sink: Sink, entry: Entry, offset: int, chunk: int, window: int,
                 finished: Finished, done: Callable[["Stream"], None]) -> None:
        self.spool, self.sink, self.entry, self.offset = spool, sink, entry, offset
        self.chunk, self.window = chunk, window
        self._finished, self._done = finished, done
        self._cancelled = False
        self._send_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"filexfer-download-{sink.id}-{entry.file_id}")

    @property
    def key(self) -> tuple[int, str]:
        return self.sink.id, str(self.entry.file_id)

    def cancel(self) -> None:
        """Stop sending; after this returns the stream sends nothing more."""
        with self._send_lock:
            self._cancelled = True

    def _send(self, message: dict[str, Any]) -> bool:
        with self._send_lock:
            return not self._cancelled and self.sink.send(message)

    def _wait(self, below: int) -> bool:
        """Wait until the client has read down to ``below`` queued bytes; False if it went away."""
        while not self.sink.wait_drained(below=below, timeout=_POLL):
            if self.sink.closed or self._cancelled:
                return False
        return not self._cancelled

    def _run(self) -> None:
        try:
            self._stream()
        except FileNotFoundError:  # a shared store: removed (declined, cancelled, expired) on another node
            self._send({"type": "error", "command": "file_download", "code": "unknown_file",
                        "reason": "the file is no longer on the server", "file_id": self.entry.file_id})
        except Exception:
            log.exception("filexfer: download of %s failed", self.entry.file_id)
            self._send({"type": "error", "command": "file_download", "code": "internal_error",
                        "reason": "the download failed", "file_id": self.entry.file_id})
        finally:
            self._done(self)

    def _stream(self) -> None:
        entry, position = self.entry, self.offset
        try:
            source = self.spool.open(entry.spool_name)
        except FileNotFoundError:
            self._send({"type": "error", "command": "file_download", "code": "unknown_file",
                        "reason": "the file is no longer on the server", "file_id": entry.file_id})
            return
        with source:
            source.seek(position)
            while position < entry.size:
                if self.sink.pending > self.window and not self._wait(self.window // 2):
                    return
                data = source.read(min(self.chunk, entry.size - position))
                if not data:
                    raise OSError(f"spool file {entry.spool_name} ended at {position} of {entry.size} bytes")
                if not self._send({"type": "file_data", "file_id": entry.file_id, "offset": position,
                                   "data": base64.b64encode(data).decode("ascii")}):
                    return
                position += len(data)
        if not self._wait(0):  # every byte is with the client's kernel: the file was delivered
            return
        with self._send_lock:
            if self._cancelled:
                return
        self._finished(entry, self.sink)
        self._send({"type": "file_data_end", "file_id": entry.file_id, "size": entry.size, "sha256": entry.sha256})


class Streams:
    """The running downloads, at most a few per session, each in its own thread."""

    def __init__(self, spool: Store, chunk: int, window: int, finished: Finished, per_session: int = 4) -> None:
        self._spool, self._chunk, self._window, self._finished = spool, chunk, window, finished
        self.per_session = per_session
        self._lock = threading.Lock()
        self._running: dict[tuple[int, str], Stream] = {}

    def start(self, sink: Sink, entry: Entry, offset: int) -> bool:
        """Stream ``entry`` from ``offset``, replacing this session's stream of the same file;
        False when the session already runs the maximum number of streams."""
        stream = Stream(self._spool, sink, entry, offset, self._chunk, self._window, self._finished, self._forget)
        with self._lock:
            previous = self._running.pop(stream.key, None)
            if previous is not None:
                previous.cancel()
            if sum(1 for key in self._running if key[0] == sink.id) >= self.per_session:
                return False
            self._running[stream.key] = stream
        stream.thread.start()
        return True

    def _forget(self, stream: Stream) -> None:
        with self._lock:
            if self._running.get(stream.key) is stream:
                del self._running[stream.key]

    def cancel(self, session_id: int, file_id: str) -> bool:
        """Stop one session's stream of one file (the client cancelled it); when this returns it
        sends nothing more. False when that session was not streaming that file."""
        with self._lock:
            stream = self._running.pop((session_id, file_id), None)  # its slot is free at once
        if stream is None:
            return False
        stream.cancel()
        return True

    def cancel_file(self, file_id: str) -> None:
        """Stop every stream of a file (declined or cancelled meanwhile)."""
        with self._lock:
            streams = [s for key, s in self._running.items() if key[1] == file_id]
        for stream in streams:
            stream.cancel()

    def cancel_session(self, session_id: int) -> None:
        """Stop a closed session's streams."""
        with self._lock:
            streams = [s for key, s in self._running.items() if key[0] == session_id]
        for stream in streams:
            stream.cancel()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every stream and wait for its thread (at shutdown)."""
        with self._lock:
            streams = list(self._running.values())
        for stream in streams:
            stream.cancel()
        for stream in streams:
            stream.thread.join(timeout)
