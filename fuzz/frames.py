"""Coverage-guided fuzzing of the frame reader and decoder with atheris (libFuzzer).

    .venv/bin/python fuzz/frames.py fuzz/corpus -runs=200000    (bounded; without -runs it goes on;
                                                                 libFuzzer adds what it finds to the corpus)

The first input byte picks how the stream is cut into reads; the rest is the byte stream.
``fuzz/corpus`` holds valid frames to start from (``--make-corpus`` writes them).

Any input may only end as frames, a clean EOF, ProtocolError or MessageError; anything else
(an unexpected exception, a hang) is a finding.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from chatcore import protocol


SEEDS = [{"command": "login", "username": "ann", "password": "pw"}, {"command": "chat", "peer": "", "message": "hi ✓"},
         {"command": "get_history", "peer": "bob", "before": 10, "limit": 50}, [1, 2], {"nested": [[{"a": None}]]}]


class StreamSource:
    """Serves a byte string to FrameReader in reads of a fixed size."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.pos = data, size, 0

    def recv_into(self, view: memoryview) -> int:
        chunk = self.data[self.pos:self.pos + min(self.size, len(view))]
        view[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    source = StreamSource(data[1:], 1 + data[0] * 37)
    reader = protocol.FrameReader(source.recv_into, lambda timeout: None, frame_timeout=60, buffer_size=64)
    for _ in range(1000):
        try:
            if reader.read() is None:
                return
        except protocol.MessageError:
            continue
        except protocol.ProtocolError:
            return


def make_corpus(directory: Path) -> None:
    directory.mkdir(exist_ok=True)
    for number, seed in enumerate(SEEDS):
        (directory / f"seed-{number}").write_bytes(bytes([number * 50]) + protocol.encode(seed) * 2)


def main() -> None:
    if "--make-corpus" in sys.argv:
        make_corpus(Path(__file__).with_name("corpus"))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
