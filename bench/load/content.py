"""The deterministic file content both file benchmarks send: a seeded 1 MiB block, repeated."""

from __future__ import annotations

import functools
import hashlib
import random

from chatcore.protocol import CHUNK_SIZE

CHUNK = CHUNK_SIZE  # raw bytes per file_chunk / file_data
BLOCK = 1 << 20


@functools.lru_cache(maxsize=1)
def block() -> bytes:
    """1 MiB of seeded pseudo-random bytes (incompressible, identical in every process)."""
    return random.Random(20240608).randbytes(BLOCK)


def chunk_at(offset: int, length: int) -> bytes:
    """``length`` bytes of the content at ``offset`` (CHUNK divides BLOCK, so no wrap inside a chunk)."""
    start = offset % BLOCK
    return block()[start:start + length]


def sha256_of(size: int) -> str:
    """Hex SHA-256 of the first ``size`` bytes of the content."""
    digest = hashlib.sha256()
    whole, rest = divmod(size, BLOCK)
    for _ in range(whole):
        digest.update(block())
    digest.update(block()[:rest])
    return digest.hexdigest()
