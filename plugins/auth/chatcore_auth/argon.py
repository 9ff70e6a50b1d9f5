"""Argon2 through argon2-cffi's ``argon2_ctx``, with the hash's working memory from a pool we own.

argon2-cffi's ``hash`` and ``verify`` take each hash's memory (19 MiB by default) from malloc,
and glibc keeps the top of its secondary arena once it is free: ~45 MiB stayed after a storm of
1,000 logins, which ``malloc_trim`` cannot give back. Here that memory is an anonymous mapping
from ``HashMemory``: reused by the next hash while logins keep coming (no fresh pages to fault
in, as with malloc's reuse) and unmapped by ``release()`` once they are quiet. The PHC strings
read and written are argon2-cffi's, byte for byte, so stored hashes work either way.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import mmap
import threading
from dataclasses import dataclass
from typing import Any

import argon2
from argon2.exceptions import HashingError, InvalidHashError, VerificationError
from argon2.low_level import error_to_str, ffi, lib

log = logging.getLogger(__name__)

VERSION = lib.ARGON2_VERSION_13  # what "v=19" says
UNVERSIONED = lib.ARGON2_VERSION_10  # a PHC string without "v=" is Argon2 1.0
_MEMORY_ERROR = lib.ARGON2_MEMORY_ALLOCATION_ERROR


@dataclass(frozen=True)
class Encoded:
    """A PHC string's parts: what to hash with, and the digest to compare."""

    type: argon2.Type
    version: int
    time_cost: int
    memory_kib: int
    parallelism: int
    salt: bytes
    digest: bytes


class HashMemory:
    """Anonymous mappings lent to Argon2 as its memory; up to ``keep`` idle ones wait for reuse.

    ``allocate`` and ``free`` are the C callbacks an ``argon2_context`` takes. Argon2 wipes the
    memory before it frees it, so a reused mapping holds nothing of the last password."""

    def __init__(self, keep: int) -> None:
        self.keep = max(0, keep)
        self._lock = threading.Lock()
        self._idle: list[tuple[mmap.mmap, Any]] = []  # (mapping, the cdata pointer into it)
        self._lent: dict[int, tuple[mmap.mmap, Any]] = {}  # by address, while a hash runs
        self.allocate = ffi.callback("int(uint8_t **, size_t)", self._allocate)
        self.free = ffi.callback("void(uint8_t *, size_t)", self._free)

    @property
    def idle_bytes(self) -> int:
        """Bytes mapped and kept for the next hash (what ``release`` would give back)."""
        with self._lock:
            return sum(len(mapping) for mapping, _ in self._idle)

    def release(self) -> int:
        """Unmap every idle mapping now; returns the bytes given back to the system."""
        with self._lock:
            idle, self._idle = self._idle, []
        released = sum(len(mapping) for mapping, _ in idle)
        for entry in idle:
            _unmap(entry)
        return released

    def _allocate(self, memory: Any, size: int) -> int:
        try:
            entry = self._take(size)
        except (OSError, ValueError, OverflowError, MemoryError) as exc:  # leaves *memory NULL
            log.warning("could not map %d bytes for a password hash: %s", size, exc)
            return _MEMORY_ERROR
        pointer = entry[1]
        with self._lock:
            self._lent[int(ffi.cast("uintptr_t", pointer))] = entry
        memory[0] = pointer
        return 0

    def _take(self, size: int) -> tuple[mmap.mmap, Any]:
        with self._lock:
            for index, (mapping, _) in enumerate(self._idle):
                if len(mapping) == size:
                    return self._idle.pop(index)
        mapping = mmap.mmap(-1, size)
        return mapping, ffi.from_buffer("uint8_t[]", mapping, require_writable=True)

    def _free(self, memory: Any, size: int) -> None:
        with self._lock:
            entry = self._lent.pop(int(ffi.cast("uintptr_t", memory)))
            if len(self._idle) < self.keep:
                self._idle.append(entry)
                return
        _unmap(entry)


def _unmap(entry: tuple[mmap.mmap, Any]) -> None:
    mapping, pointer = entry
    ffi.release(pointer)
    mapping.close()


def compute(memory: HashMemory, password: bytes, params: Encoded, hash_len: int) -> bytes:
    """The raw Argon2 digest of ``password`` with ``params``' type, costs and salt."""
    out = ffi.new("uint8_t[]", hash_len)
    secret = ffi.new("uint8_t[]", password)
    salt = ffi.new("uint8_t[]", params.salt)
    context = ffi.new("argon2_context *", {
        "out": out, "outlen": hash_len, "pwd": secret, "pwdlen": len(password),
        "salt": salt, "saltlen": len(params.salt), "secret": ffi.NULL, "secretlen": 0,
        "ad": ffi.NULL, "adlen": 0, "t_cost": params.time_cost, "m_cost": params.memory_kib,
        "lanes": params.parallelism, "threads": params.parallelism, "version": params.version,
        "allocate_cbk": memory.allocate, "free_cbk": memory.free,
        "flags": lib.ARGON2_FLAG_CLEAR_PASSWORD})  # wipes our C copy of the password
    code = lib.argon2_ctx(context, params.type.value)
    if code != lib.ARGON2_OK:
        raise HashingError(error_to_str(code))
    return bytes(ffi.buffer(out, hash_len))


def encode(params: Encoded) -> str:
    """The PHC string argon2-cffi writes: ``$argon2id$v=19$m=…,t=…,p=…$salt$digest``."""
    name = "argon2" + params.type.name.lower()  # Type.ID -> argon2id
    return (f"${name}$v={params.version}$m={params.memory_kib},t={params.time_cost},p={params.parallelism}"
            f"${_b64(params.salt)}${_b64(params.digest)}")


def decode(stored: str) -> Encoded:
    """A PHC string's parts; ``InvalidHashError`` when it is not one Argon2 can check."""
    found = argon2.extract_parameters(stored)  # raises InvalidHashError on a malformed string
    parts = stored.split("$")
    version = found.version if len(parts) == 6 else UNVERSIONED
    try:
        salt, digest = _unb64(parts[-2]), _unb64(parts[-1])
    except (binascii.Error, ValueError):
        raise InvalidHashError from None
    if min(found.time_cost, found.memory_cost, found.parallelism) < 1 or not digest:
        raise InvalidHashError
    return Encoded(found.type, version, found.time_cost, found.memory_cost, found.parallelism, salt, digest)


def matches(memory: HashMemory, stored: Encoded, password: bytes) -> bool:
    """True when ``password`` hashes to ``stored``'s digest (compared in constant time)."""
    try:
        digest = compute(memory, password, stored, len(stored.digest))
    except (HashingError, OverflowError) as exc:  # a cost out of range, or no memory for it
        raise VerificationError(str(exc)) from None
    return hmac.compare_digest(digest, stored.digest)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
