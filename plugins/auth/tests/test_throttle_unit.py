"""The throttle building blocks on their own, on a hand-moved clock: in memory (one node) and
in Redis (a cluster), which must answer alike."""

from __future__ import annotations

import pytest
import redis

from chatcore_auth.names import password_problem, username_problem
from chatcore_auth.shared_limits import SharedFailureThrottle, SharedKnownAddresses, SharedRateLimit
from chatcore_auth.throttle import FailureThrottle, KnownAddresses, RateLimit, seconds_text


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Kinds:
    """Makes each throttle in memory or, given a Redis client and key prefix, in Redis."""

    def __init__(self, client=None, prefix: str = "") -> None:
        self.client, self.prefix = client, prefix

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def failures(self, clock, **options):
        if self.client is None:
            return FailureThrottle(clock, **options)
        return SharedFailureThrottle(self.client, self.key, "test", clock, **options)

    def rate(self, clock, limit, window):
        if self.client is None:
            return RateLimit(clock, limit, window)
        return SharedRateLimit(self.client, self.key, "test", clock, limit, window)

    def known(self, clock, ttl):
        if self.client is None:
            return KnownAddresses(clock, ttl=ttl)
        return SharedKnownAddresses(self.client, self.key, clock, ttl=ttl, per_user=3)


@pytest.fixture(params=["memory", "redis"])
def kinds(request):
    if request.param == "memory":
        yield Kinds()
        return
    env = request.getfixturevalue("cluster_env")
    client = redis.Redis.from_url(env["CHATCORE_REDIS_URL"])
    yield Kinds(client, env["CHATCORE_REDIS_PREFIX"])
    client.close()


def test_failure_throttle_doubles_then_caps_then_forgets(kinds):
    clock = Clock()
    throttle = kinds.failures(clock, free=3, window=100, base=1, max_delay=10)
    delays = []
    for _ in range(8):
        throttle.failure("k")
        delays.append(throttle.retry_after("k"))
    assert delays == [0, 0, 1, 2, 4, 8, 10, 10]
    clock.now += 100
    assert throttle.retry_after("k") == 0
    throttle.failure("k")
    assert throttle.retry_after("k") == 0  # the count started over


def test_failure_throttle_clear_and_independent_keys(kinds):
    clock = Clock()
    throttle = kinds.failures(clock, free=1)
    throttle.failure("a")
    assert throttle.retry_after("a") == 1 and throttle.retry_after("b") == 0
    throttle.clear("a")
    assert throttle.retry_after("a") == 0


def test_failure_throttle_memory_is_bounded():
    throttle = FailureThrottle(Clock(), free=1, max_keys=10)
    for index in range(100):
        throttle.failure(index)
    assert len(throttle._keys) == 10


def test_rate_limit_sliding_window(kinds):
    clock = Clock()
    limit = kinds.rate(clock, limit=2, window=10)
    assert limit.acquire("a") == 0
    clock.now = 4
    assert limit.acquire("a") == 0
    assert limit.acquire("a") == 6
    clock.now = 10
    assert limit.acquire("a") == 0
    assert kinds.rate(clock, limit=0, window=10).acquire("b") == 0  # 0 = unlimited


def test_known_addresses_expire(kinds):
    clock = Clock()
    known = kinds.known(clock, ttl=5)
    known.remember("alice", "10.0.0.1")
    assert known.knows("alice", "10.0.0.1") and not known.knows("alice", "10.0.0.2")
    clock.now = 5
    assert not known.knows("alice", "10.0.0.1")
    known.remember("alice", "10.0.0.2")
    known.forget("alice")
    assert not known.knows("alice", "10.0.0.2")


def test_shared_known_addresses_keep_the_newest_few_per_user(cluster_env):
    client = redis.Redis.from_url(cluster_env["CHATCORE_REDIS_URL"])
    clock = Clock()
    known = Kinds(client, cluster_env["CHATCORE_REDIS_PREFIX"]).known(clock, ttl=100)
    for index in range(5):
        clock.now = index
        known.remember("bob", f"10.0.0.{index}")
    assert [known.knows("bob", f"10.0.0.{index}") for index in range(5)] == [False, False, True, True, True]
    client.close()


def test_texts():
    assert seconds_text(0.2) == "1 second" and seconds_text(1.5) == "2 seconds"
    assert username_problem(None) == "username must be a string"
    assert username_problem("a\nb") is not None and username_problem("ok.name") is None
    assert password_problem("x" * 8, 8, 8) is None
