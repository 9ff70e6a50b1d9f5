"""The auth plugin's metrics (through ``chat_metrics``): logins and refused logins, counted
where the login handler decides, and the password-hash queue, read from the hasher when
scraped. Logic only: the hook implementation is in plugin.py."""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from chatcore_auth.passwords import PasswordHasher

METHODS = ("password", "token")
# credentials: unknown user, wrong password or a token that does not work; throttled: too many
# failures; tls_required: a password sent without TLS against CHATCORE_AUTH_PLAINTEXT_LOGIN
FAILURES = ("credentials", "throttled", "tls_required")


class HashQueue:
    """Password hashes waiting for a slot, being computed, and done, read from the hasher."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher

    def collect(self) -> Iterator[Metric]:
        hasher = self.hasher
        yield GaugeMetricFamily("chatcore_auth_hash_waiting", "Password hashes (logins, registrations) waiting "
                                "for one of the CHATCORE_AUTH_HASH_CONCURRENCY slots.", value=hasher.waiting)
        yield GaugeMetricFamily("chatcore_auth_hash_running", "Password hashes being computed now.",
                                value=hasher.running)
        yield GaugeMetricFamily("chatcore_auth_hash_slots", "Password hashes computed at once at most.",
                                value=hasher.concurrency)
        yield CounterMetricFamily("chatcore_auth_hashes", "Password hashes computed (Argon2id).",
                                  value=hasher.computed)


class AuthMetrics:
    """One server's auth counters; ``collectors()`` is what the plugin registers."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.logins = Counter("chatcore_auth_logins", "Logins, by method (password or device token).",
                              ["method"], registry=None)
        self.failures = Counter("chatcore_auth_login_failures", "Refused logins, by method and reason "
                                "(credentials, throttled, tls_required).", ["method", "reason"], registry=None)
        for method in METHODS:  # every series from 0, so a rate over the first failure is right
            self.logins.labels(method)
            for reason in FAILURES:
                self.failures.labels(method, reason)
        self.queue = HashQueue(hasher)

    def login(self, method: str) -> None:
        self.logins.labels(method).inc()

    def failed(self, method: str, reason: str) -> None:
        self.failures.labels(method, reason).inc()

    def collectors(self) -> list[Any]:
        return [self.logins, self.failures, self.queue]
