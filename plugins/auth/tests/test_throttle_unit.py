"""The throttle building blocks on their own (pure logic on a hand-moved clock)."""

from __future__ import annotations

from chatcore_auth.names import password_problem, username_problem
from chatcore_auth.throttle import FailureThrottle, KnownAddresses, RateLimit, seconds_text


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_failure_throttle_doubles_then_caps_then_forgets():
    clock = Clock()
    throttle = FailureThrottle(clock, free=3, window=100, base=1, max_delay=10)
    delays = []
    for _ in range(8):
        throttle.failure("k")
        delays.append(throttle.retry_after("k"))
    assert delays == [0, 0, 1, 2, 4, 8, 10, 10]
    clock.now += 100
    assert throttle.retry_after("k") == 0
    throttle.failure("k")
    assert throttle.retry_after("k") == 0  # the count started over


def test_failure_throttle_clear_and_independent_keys():
    clock = Clock()
    throttle = FailureThrottle(clock, free=1)
    throttle.failure("a")
    assert throttle.retry_after("a") == 1 and throttle.retry_after("b") == 0
    throttle.clear("a")
    assert throttle.retry_after("a") == 0


def test_failure_throttle_memory_is_bounded():
    throttle = FailureThrottle(Clock(), free=1, max_keys=10)
    for index in range(100):
        throttle.failure(index)
    assert len(throttle._keys) == 10


def test_rate_limit_sliding_window():
    clock = Clock()
    limit = RateLimit(clock, limit=2, window=10)
    assert limit.acquire("a") == 0
    clock.now = 4
    assert limit.acquire("a") == 0
    assert limit.acquire("a") == 6
    clock.now = 10
    assert limit.acquire("a") == 0
    assert RateLimit(clock, limit=0, window=10).acquire("a") == 0  # 0 = unlimited


def test_known_addresses_expire():
    clock = Clock()
    known = KnownAddresses(clock, ttl=5)
    known.remember("alice", "10.0.0.1")
    assert known.knows("alice", "10.0.0.1") and not known.knows("alice", "10.0.0.2")
    clock.now = 5
    assert not known.knows("alice", "10.0.0.1")


def test_texts():
    assert seconds_text(0.2) == "1 second" and seconds_text(1.5) == "2 seconds"
    assert username_problem(None) == "username must be a string"
    assert username_problem("a\nb") is not None and username_problem("ok.name") is None
    assert password_problem("x" * 8, 8, 8) is None
