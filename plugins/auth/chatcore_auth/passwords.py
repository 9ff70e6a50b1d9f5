"""Argon2id password hashing with bounded concurrency and a dummy hash for unknown users."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from dataclasses import dataclass
from typing import Iterator, Optional

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from chatcore import memory
from chatcore_auth import argon

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HashParams:
    """Argon2id cost parameters; defaults are OWASP's minimum (19 MiB, t=2, p=1)."""

    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1


@dataclass(frozen=True)
class Verdict:
    """What checking a password found: ``ok`` it matches; ``stale`` it does, but the stored
    hash is weaker than the current parameters and should be replaced."""

    ok: bool
    stale: bool


class PasswordHasher:
    """Hash and verify passwords; at most ``concurrency`` hashes run at once (each takes ~20 ms
    and ``memory_kib`` of RAM, so an unbounded burst of logins could exhaust memory). ``waiting``
    and ``running`` say how many hashes wait for a slot and run now (the metrics read them).
    Each hash's memory is a mapping kept for the next one (``argon.HashMemory``); once no hash
    has run for ``trim_after`` seconds, those mappings and what malloc freed go back to the
    system, so a storm of logins leaves nothing of its hashing behind."""

    def __init__(self, params: HashParams = HashParams(), concurrency: int = 2, trim_after: float = 2.0) -> None:
        self.params = params
        self.concurrency = max(1, concurrency)
        self.memory = argon.HashMemory(keep=self.concurrency)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._queue_lock = threading.Lock()
        self.waiting = 0  # hashes waiting for a slot
        self.running = 0  # hashes being computed
        self.computed = 0  # hashes finished since the start
        self._dummy: Optional[str] = None
        self._dummy_lock = threading.Lock()
        self.trimmer = memory.IdleTrim(lambda: self.running + self.waiting > 0, trim_after, self._give_back)

    def hash(self, password: str) -> str:
        """A fresh salted Argon2id hash of ``password`` (PHC string, safe to store)."""
        params = self.params
        fresh = argon.Encoded(argon2.Type.ID, argon.VERSION, params.time_cost, params.memory_kib,
                              params.parallelism, os.urandom(16), b"")
        with self._slot():
            digest = argon.compute(self.memory, password.encode(), fresh, 32)
        return argon.encode(dataclasses.replace(fresh, digest=digest))

    def verify(self, stored: str, password: str) -> bool:
        """True when ``password`` matches ``stored``; False on mismatch or an unreadable hash."""
        return self.check(stored, password).ok

    def check(self, stored: str, password: str) -> "Verdict":
        """Whether ``password`` matches ``stored``, and whether a match should be hashed again
        with the current parameters; ``stored`` is parsed once for both."""
        try:
            encoded = argon.decode(stored)
        except InvalidHashError:
            log.warning("an account has a password hash that is not Argon2; it cannot log in")
            return Verdict(False, False)
        try:
            with self._slot():
                ok = argon.matches(self.memory, encoded, password.encode())
        except VerificationError as exc:
            log.warning("a stored password hash could not be checked: %s", exc)
            return Verdict(False, False)
        return Verdict(ok, ok and self._weaker(encoded))

    def _give_back(self) -> bool:
        """Unmap the idle hash memory and trim malloc's free memory (after a quiet spell);
        True when either gave something back (the mappings go back even without glibc)."""
        unmapped = self.memory.release()
        trimmed = memory.trim()
        return trimmed or unmapped > 0

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """Hold one of the ``concurrency`` slots, counted as waiting, then running."""
        with self._queue_lock:
            self.waiting += 1
        try:
            self._slots.acquire()
        finally:
            with self._queue_lock:
                self.waiting -= 1
        with self._queue_lock:
            self.running += 1
        try:
            yield
        finally:
            with self._queue_lock:
                self.running -= 1
                self.computed += 1
                idle = self.running + self.waiting == 0
            self._slots.release()
            if idle:
                self.trimmer.quiet()

    def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real verify, so an unknown user looks like a wrong password."""
        self.verify(self.dummy_hash(), password)

    def dummy_hash(self) -> str:
        """A hash of no one's password with the current parameters (made once, on first use)."""
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self.hash("chatcore-auth dummy password, never valid")
            return self._dummy

    def _weaker(self, old: argon.Encoded) -> bool:
        """True when ``old`` was made with weaker parameters than the current ones."""
        return (old.type is not argon2.Type.ID or old.time_cost < self.params.time_cost
                or old.memory_kib < self.params.memory_kib or old.parallelism < self.params.parallelism
                or len(old.digest) < 32 or len(old.salt) < 16)
