"""The throttles of ``throttle`` counted in the cluster's Redis, so an attacker spreading
attempts over the nodes meets one limit: the same rules, the same interface.

Each update is one Lua script (atomic however many nodes call it at once). Times are the
caller's clock, passed in (the wall clock in a cluster: every node's agrees closely enough
for windows of seconds), and stored in the entries; Redis expiry only reclaims an entry once
its window has passed. Keys go under ``<prefix>auth:limit:``, the counted name or address
hashed (any text a client sends stays a short key). When Redis cannot be reached the
throttles let the attempt through and log it: an outage must not lock everyone out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from typing import Any, Callable, Hashable

import redis

from chatcore_auth.accounts import Limits, Policy
from chatcore_auth.throttle import Clock

log = logging.getLogger(__name__)

KeyFunction = Callable[..., str]  # cluster.key: the parts joined under the cluster's prefix
WARN_EVERY = 30.0  # seconds between two warnings that Redis is away

_FAILURE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local free, base, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local record = redis.call('HMGET', KEYS[1], 'count', 'last', 'until')
local count, last, blocked = tonumber(record[1]), tonumber(record[2]), tonumber(record[3])
if count == nil or now - last >= window then count = 0; blocked = now end
count = count + 1
if count >= free then blocked = now + math.min(base * 2 ^ math.min(count - free, 32), cap) end
redis.call('HSET', KEYS[1], 'count', count, 'last', ARGV[1], 'until', string.format('%.17g', blocked))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return count
"""
_ACQUIRE = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now - window))
if redis.call('ZCARD', KEYS[1]) >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return string.format('%.17g', tonumber(first[2]) + window - now)
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""
_REMEMBER = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[4]) then
  local all = redis.call('HGETALL', KEYS[1])
  local oldest, at = nil, nil
  for i = 1, #all, 2 do
    local expires = tonumber(all[i + 1])
    if at == nil or expires < at then oldest, at = all[i], expires end
  end
  redis.call('HDEL', KEYS[1], oldest)
end
return 1
"""


def hashed(key: Hashable) -> str:
    """A short, key-safe stand-in for whatever was counted."""
    return hashlib.blake2b(str(key).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class _Shared:
    """Redis access that gives way (logged, at most every WARN_EVERY s) when Redis is away."""

    def __init__(self, client: Any, key: KeyFunction, kind: str, clock: Clock) -> None:
        self._redis, self._key, self._kind, self._clock = client, key, kind, clock
        self._warned = 0.0

    def key(self, counted: Hashable) -> str:
        return self._key("auth", "limit", self._kind, hashed(counted))

    def unavailable(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("auth: Redis unreachable, %s throttling is off meanwhile: %s", self._kind, error)


class SharedFailureThrottle(_Shared):
    """``throttle.FailureThrottle`` with its counts in Redis, shared by every node."""

    def __init__(self, client: Any, key: KeyFunction, kind: str, clock: Clock, free: int = 5,
                 window: float = 900.0, base: float = 1.0, max_delay: float = 300.0) -> None:
        super().__init__(client, key, kind, clock)
        self.free, self.window, self.base, self.max_delay = max(1, free), window, base, max_delay
        self._failure = client.register_script(_FAILURE)

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        now = self._clock()
        try:
            last, until = self._redis.hmget(self.key(key), "last", "until")
        except redis.RedisError as error:
            self.unavailable(error)
            return 0.0
        if last is None or until is None or now - float(last) >= self.window:
            return 0.0
        return max(0.0, float(until) - now)

    def failure(self, key: Hashable) -> None:
        try:
            self._failure(keys=[self.key(key)], args=[repr(self._clock()), repr(float(self.window)), self.free,
                                                      repr(float(self.base)), repr(float(self.max_delay))])
        except redis.RedisError as error:
            self.unavailable(error)

    def clear(self, key: Hashable) -> None:
        try:
            self._redis.delete(self.key(key))
        except redis.RedisError as error:
            self.unavailable(error)


class SharedRateLimit(_Shared):
    """``throttle.RateLimit`` as a sorted set of event times in Redis, shared by every node."""

    def __init__(self, client: Any, key: KeyFunction, kind: str, clock: Clock, limit: int, window: float) -> None:
        super().__init__(client, key, kind, clock)
        self.limit, self.window = limit, window
        self._acquire = client.register_script(_ACQUIRE)

    def acquire(self, key: Hashable) -> float:
        """Take one event for ``key``: 0 if allowed (and counted), else seconds until allowed."""
        if self.limit <= 0:
            return 0.0
        now = self._clock()
        try:
            wait = self._acquire(keys=[self.key(key)], args=[repr(now), repr(float(self.window)), self.limit,
                                                            f"{now!r}:{secrets.token_hex(4)}"])
        except redis.RedisError as error:
            self.unavailable(error)
            return 0.0
        return max(0.0, float(wait))


class SharedKnownAddresses(_Shared):
    """``throttle.KnownAddresses`` as one Redis hash per user (address -> expiry), at most
    ``per_user`` addresses each (the oldest goes first)."""

    def __init__(self, client: Any, key: KeyFunction, clock: Clock, ttl: float = 30 * 86400.0,
                 per_user: int = 64) -> None:
        super().__init__(client, key, "known", clock)
        self.ttl, self.per_user = ttl, per_user
        self._remember = client.register_script(_REMEMBER)

    def remember(self, user_key: str, address: str) -> None:
        try:
            self._remember(keys=[self.key(user_key)], args=[address, repr(self._clock() + self.ttl),
                                                            math.ceil(self.ttl * 1000), self.per_user])
        except redis.RedisError as error:
            self.unavailable(error)

    def knows(self, user_key: str, address: str) -> bool:
        try:
            expires = self._redis.hget(self.key(user_key), address)
        except redis.RedisError as error:
            self.unavailable(error)
            return False
        return expires is not None and float(expires) > self._clock()

    def forget(self, user_key: str) -> None:
        try:
            self._redis.delete(self.key(user_key))
        except redis.RedisError as error:
            self.unavailable(error)


def redis_limits(client: Any, key: KeyFunction, policy: Policy, clock: Clock = time.time) -> Limits:
    """The account throttles of ``policy`` counted in Redis for every node of the cluster."""
    return Limits(
        SharedFailureThrottle(client, key, "user", clock, policy.user_failures, policy.failure_window,
                              max_delay=policy.max_delay),
        SharedFailureThrottle(client, key, "address", clock, policy.address_failures, policy.failure_window,
                              max_delay=policy.max_delay),
        SharedKnownAddresses(client, key, clock),
        SharedRateLimit(client, key, "register", clock, policy.register_limit, policy.register_window))
