"""Frame codec throughput: encode+decode MB/s for 1 KiB and 48 KB (near the 49,113-byte maximum) payloads, against a naive
per-byte XOR codec, in the same run. Not a test: it prints numbers.

    ./dev bench codec            (or: .venv/bin/python bench/codec.py [--seconds 2])
"""

from __future__ import annotations

import argparse
import binascii
import json
import os
import struct
import time
from typing import Any, Callable

from chatcore import protocol


def naive_encode(obj: Any) -> bytes:
    """The original system's shape: a Python loop over every byte."""
    data = json.dumps(obj).encode()
    key, iv = os.urandom(32), os.urandom(16)
    masked = bytes(b ^ key[i % 32] ^ iv[i % 16] for i, b in enumerate(data))
    text = binascii.b2a_base64(masked, newline=False)
    return struct.pack(">H", 48 + len(text)) + key + iv + text


def naive_decode(frame: bytes) -> Any:
    key, iv, text = frame[2:34], frame[34:50], frame[50:]
    masked = binascii.a2b_base64(text)
    return json.loads(bytes(b ^ key[i % 32] ^ iv[i % 16] for i, b in enumerate(masked)))


def rate(encode: Callable[[Any], bytes], decode: Callable[[bytes], Any], obj: Any, payload: int, seconds: float) -> float:
    """Payload MB per second through encode then decode."""
    rounds, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        assert decode(encode(obj)) == obj
        rounds += 1
    return rounds * payload / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    print(f"{'payload':>8} {'chatcore MB/s':>14} {'naive MB/s':>11} {'ratio':>6}")
    for label, size in (("1 KiB", 1024), ("48 KB", 48_000)):
        obj = {"type": "file_data", "data": "x" * (size - 29)}
        payload = len(protocol.dumps(obj))
        fast = rate(protocol.encode, protocol.decode, obj, payload, args.seconds)
        slow = rate(naive_encode, naive_decode, obj, payload, args.seconds)
        print(f"{label:>8} {fast:>14.1f} {slow:>11.1f} {fast / slow:>5.1f}x")
    data = os.urandom(48 * 1024)
    key, iv = os.urandom(32), os.urandom(16)
    rounds, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < args.seconds:
        protocol.xor_mask(data, key, iv)
        rounds += 1
    print(f"XOR alone on 48 KiB: {rounds * len(data) / elapsed / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
