"""Session backlog bookkeeping with a scripted transport: what the flusher is asked to watch."""

from __future__ import annotations

import threading

from chatcore.session import Session, corked


class ScriptedTransport:
    """Takes as many bytes per send as the test allows next."""

    tls = False

    def __init__(self) -> None:
        self.allow: list[int] = []
        self.written = bytearray()

    def attach(self, lock: threading.Lock, emit) -> None:
        pass

    def fileno(self) -> int:
        return 99

    def seal(self, data: bytes) -> bytes:
        return data

    def send_nowait(self, data) -> int:
        taken = min(len(data), self.allow.pop(0) if self.allow else 0)
        self.written += bytes(data[:taken])
        return taken

    def shutdown(self) -> None:
        pass


class RecordingFlusher:
    def __init__(self) -> None:
        self.watched: set[int] = set()

    def watch(self, session: Session) -> None:
        self.watched.add(session.id)

    def forget(self, session: Session) -> None:
        self.watched.discard(session.id)


def test_a_backlog_emptied_by_a_corked_push_is_watched_again_when_it_refills():
    transport, flusher = ScriptedTransport(), RecordingFlusher()
    session = Session(transport, ("127.0.0.1", 1), flusher)  # type: ignore[arg-type]
    transport.allow = [2]
    session.send_frame(b"abcd")  # the kernel takes 2: the rest waits, watched
    assert session.pending == 2 and session.id in flusher.watched
    transport.allow = [10]
    with corked():
        session.send_frame(b"ef")
    assert session.pending == 0 and session.stalled_for(10**9) == 0  # the push wrote everything
    session.flush()  # the flusher's turn finds nothing left and stops watching
    assert session.id not in flusher.watched
    transport.allow = [1]
    session.send_frame(b"gh")  # the kernel takes 1 byte: the rest must be watched again
    assert session.pending == 1 and session.id in flusher.watched
    transport.allow = [10]
    session.flush()
    assert bytes(transport.written) == b"abcdefgh" and session.id not in flusher.watched
