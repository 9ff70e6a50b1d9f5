"""Measure offline backlog delivery: how long a user who logs in takes to receive N waiting messages.

Uses ``bench/chat_relay.py``'s server (``chatcore serve`` in its own process, auth + chat,
history in a fresh temporary directory) and clients. Alice stores N messages of 4,000
characters for offline bob; bob (a v2 client) logs in and reads until ``offline_done``.

Run: ``./dev bench chat_backlog [--messages N] [--control]``
(``--control``: characters JSON escapes six-fold, so the frames are ~6 times the text).
Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_relay import Client, free_port, start_server  # noqa: E402

from chatcore import protocol  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000, help="messages waiting for bob")
    parser.add_argument("--control", action="store_true", help="texts of control characters (\\x01)")
    args = parser.parse_args()
    text = ("\x01" if args.control else "x") * 3990
    os.environ.update(CHATCORE_CHAT_PENDING_MAX_MESSAGES="0", CHATCORE_CHAT_PENDING_MAX_BYTES="0",
                      CHATCORE_CHAT_SENDER_DAILY_MESSAGES="0", CHATCORE_CHAT_SENDER_DAILY_BYTES="0")
    with tempfile.TemporaryDirectory(prefix="chat-backlog-") as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port)
        try:
            bob = Client(port)
            bob.login("bob")
            bob.close()  # offline from here on
            alice = Client(port)
            alice.login("alice")
            alice.start()
            frames = [protocol.encode({"command": "chat", "peer": "bob", "message": f"{n:09d}{text}"})
                      for n in range(args.messages)]
            alice.send_many(frames)
            alice.wait_for("chat_ack", args.messages, timeout=600)
            one = protocol.encode({"type": "private_message", "peer": "alice", "message": f"{0:09d}{text}",
                                   "id": 10**6, "ts": "2026-01-01T00:00:00.000Z", "to": "bob", "offline": True})
            wire = len(one) * args.messages  # every frame is this size, give or take an id digit
            bob = Client(port)
            bob.call("hello", command="hello", client="backlog-bench", protocol=2)
            started = time.perf_counter()
            result = bob.call("login_result", command="login", username="bob", password="benchmark password")
            assert result.get("response") == "ok", result
            bob.start()
            bob.wait_for("offline_done", 1, timeout=600)
            elapsed = time.perf_counter() - started
            got = bob.counts.get("private_message", 0)
            done = bob.last["offline_done"]
            print(f"backlog of {args.messages:,} messages ({'control characters' if args.control else 'plain text'}): "
                  f"{args.messages * 4000 / 1e6:.1f} MB of text, {wire / 1e6:.1f} MB of frames, "
                  f"delivered {got:,} in {elapsed:.2f} s ({wire / 1e6 / elapsed:.1f} MB/s, {got / elapsed:,.0f} msg/s); "
                  f"offline_done {done}")
            bob.close()
            alice.close()
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
