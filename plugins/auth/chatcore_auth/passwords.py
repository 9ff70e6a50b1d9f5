"""Argon2id password hashing with bounded concurrency and a dummy hash for unknown users."""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Iterator, Optional

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from chatcore.memory import IdleTrim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HashParams:
    """Argon2id cost parameters; defaults are OWASP's minimum (19 MiB, t=2, p=1)."""

    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1


class PasswordHasher:
    """Hash and verify passwords; at most ``concurrency`` hashes run at once (each takes ~20 ms
    and ``memory_kib`` of RAM, so an unbounded burst of logins could exhaust memory). ``waiting``
    and ``running`` say how many hashes wait for a slot and run now (the metrics read them).
    Once no hash has run for ``trim_after`` seconds, the memory they used goes back to the
    system (``chatcore.memory``), so a storm of logins leaves less behind."""

    def __init__(self, params: HashParams = HashParams(), concurrency: int = 2, trim_after: float = 2.0) -> None:
        self.params = params
        self._argon = argon2.PasswordHasher(time_cost=params.time_cost, memory_cost=params.memory_kib,
                                            parallelism=params.parallelism, hash_len=32, salt_len=16,
                                            type=argon2.Type.ID)
        self.concurrency = max(1, concurrency)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._queue_lock = threading.Lock()
        self.waiting = 0  # hashes waiting for a slot
        self.running = 0  # hashes being computed
        self.computed = 0  # hashes finished since the start
        self._dummy: Optional[str] = None
        self._dummy_lock = threading.Lock()
        self.trimmer = IdleTrim(lambda: self.running + self.waiting > 0, trim_after)

    def hash(self, password: str) -> str:
        """A fresh salted Argon2id hash of ``password`` (PHC string, safe to store)."""
        with self._slot():
            return self._argon.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        """True when ``password`` matches ``stored``; False on mismatch or an unreadable hash."""
        try:
            with self._slot():
                return self._argon.verify(stored, password)
        except VerificationError:
            return False
        except InvalidHashError:
            log.warning("an account has a password hash that is not Argon2; it cannot log in")
            return False

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

    def needs_rehash(self, stored: str) -> bool:
        """True when ``stored`` was made with weaker parameters than the current ones."""
        try:
            old = argon2.extract_parameters(stored)
        except InvalidHashError:
            return True
        return (old.type is not argon2.Type.ID or old.time_cost < self.params.time_cost
                or old.memory_cost < self.params.memory_kib or old.parallelism < self.params.parallelism
                or old.hash_len < 32 or old.salt_len < 16)
