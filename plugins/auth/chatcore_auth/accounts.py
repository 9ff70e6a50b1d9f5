"""Account operations with their policy: rules, legacy reason strings, throttling, rehashing.

No sockets and no plugin machinery here: callers pass the username, password and client
address, and get an ``Outcome`` to turn into a reply.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Optional

from chatcore_auth.devices import TokenStore
from chatcore_auth.namecache import NameCache
from chatcore_auth.names import is_valid_username, name_key, password_problem, username_problem
from chatcore_auth.passwords import PasswordHasher
from chatcore_auth.store import AccountStorage, DuplicateUser
from chatcore_auth.throttle import (
    Clock,
    Events,
    Failures,
    FailureThrottle,
    Familiar,
    KnownAddresses,
    RateLimit,
    seconds_text,
)

log = logging.getLogger(__name__)

USERNAME_TAKEN = "Username already exists!"  # docs/protocol.md §4: exact legacy text
BAD_CREDENTIALS = "Incorrect username or password!"  # docs/protocol.md §4: exact legacy text
WRONG_OLD_PASSWORD = "The current password is incorrect."


@dataclass(frozen=True)
class Policy:
    """The knobs of the account rules and throttles (see the README for each)."""

    min_password: int = 8
    max_password: int = 1024
    user_failures: int = 5
    address_failures: int = 20
    failure_window: float = 900.0
    max_delay: float = 300.0
    register_limit: int = 10
    register_window: float = 3600.0
    register_exempt: frozenset[str] = field(default_factory=lambda: frozenset({"127.0.0.1", "::1"}))


@dataclass(frozen=True)
class Outcome:
    """The result of an account operation: ok, or why not (and when to retry, if throttled)."""

    ok: bool
    reason: str = ""
    username: str = ""
    retry_after: int = 0
    device: str = ""  # the device a token logged in as

    @classmethod
    def throttled(cls, what: str, seconds: float) -> "Outcome":
        return cls(False, f"{what}; try again in {seconds_text(seconds)}.", retry_after=max(1, math.ceil(seconds)))


@dataclass(frozen=True)
class Limits:
    """The throttles one ``Accounts`` counts with: per node in memory (``memory_limits``) or
    shared by a cluster's nodes in Redis (``shared_limits.redis_limits``)."""

    users: Failures  # failed logins per username
    addresses: Failures  # failed logins per client address
    known: Familiar  # where each user logged in from
    registrations: Events  # registrations per client address


def memory_limits(policy: Policy, clock: Clock = time.monotonic) -> Limits:
    """This node's throttles, in memory."""
    return Limits(FailureThrottle(clock, policy.user_failures, policy.failure_window, max_delay=policy.max_delay),
                  FailureThrottle(clock, policy.address_failures, policy.failure_window, max_delay=policy.max_delay),
                  KnownAddresses(clock), RateLimit(clock, policy.register_limit, policy.register_window))


class Accounts:
    """Register, authenticate, change passwords; thread-safe."""

    def __init__(self, store: AccountStorage, hasher: PasswordHasher, policy: Policy = Policy(),
                 clock: Clock = time.monotonic, limits: Optional[Limits] = None,
                 names: Optional[NameCache] = None) -> None:
        self.store = store
        self.names = names  # cluster mode: display names found, remembered a while
        self.hasher = hasher
        self.policy = policy
        limits = limits or memory_limits(policy, clock)
        self.user_throttle, self.address_throttle = limits.users, limits.addresses
        self.known, self.registrations = limits.known, limits.registrations

    def lookup(self, username: str) -> Optional[str]:
        """The registered display name for ``username`` in any case, or None (names found are
        remembered a while when ``names`` is set: cluster mode)."""
        if not is_valid_username(username):
            return None
        if self.names is not None:
            known = self.names.get(name_key(username))
            if known is not None:
                return known
        account = self.store.get(username)
        if account is None:
            return None
        if self.names is not None:
            self.names.put(name_key(username), account.username)
        return account.username

    def forget_name(self, username: str) -> None:
        """Stop trusting a remembered display name (the account is being removed)."""
        if self.names is not None:
            self.names.forget(name_key(username))

    def register(self, username: str, password: str, address: str) -> Outcome:
        """Create an account, or say exactly why not."""
        problem = username_problem(username) or password_problem(password, self.policy.min_password,
                                                                 self.policy.max_password)
        if problem is not None:
            return Outcome(False, problem[0].upper() + problem[1:] + ".")
        if address not in self.policy.register_exempt:
            wait = self.registrations.acquire(address)
            if wait > 0:
                return Outcome.throttled("Too many registrations from your address", wait)
        if self.store.exists(username):
            return Outcome(False, USERNAME_TAKEN)
        try:
            self.store.add(username, self.hasher.hash(password))
        except DuplicateUser:
            return Outcome(False, USERNAME_TAKEN)
        log.info("registered account %s from %s", username, address)
        return Outcome(True, username=username)

    def _failed(self, key: str, address: str) -> None:
        self.user_throttle.failure(key)
        self.address_throttle.failure(address)

    def _check(self, username: str, password: str) -> Optional[str]:
        """The stored display name if the credentials are right, else None; the same work either way."""
        if not is_valid_username(username) or len(password) > self.policy.max_password:
            return None  # no such account can exist: nothing to learn from timing
        account = self.store.get(username)
        if account is None:
            self.hasher.verify_dummy(password)
            return None
        verdict = self.hasher.check(account.password_hash, password)
        if not verdict.ok:
            return None
        if verdict.stale:
            self.store.set_hash(account.username, self.hasher.hash(password))
            log.info("upgraded the password hash of %s to the current parameters", account.username)
        return account.username

    def authenticate(self, username: str, password: str, address: str) -> Outcome:
        """Check a login; unknown user and wrong password give the same reply."""
        key = name_key(username)
        familiar = self.known.knows(key, address)  # familiar addresses skip the per-user throttle
        wait = self.address_throttle.retry_after(address)
        if not familiar:
            wait = max(wait, self.user_throttle.retry_after(key))
        if wait > 0:
            return Outcome.throttled("Too many failed login attempts", wait)
        display = self._check(username, password)
        if display is None:
            self._failed(key, address)
            # Only a registered name is logged: an unknown one may be a password typed in the wrong field.
            shown = self.lookup(username) or "an unknown user"
            log.info("failed login for %s from %s", shown, address)
            return Outcome(False, BAD_CREDENTIALS)
        if not familiar:  # failures seen by a familiar address are likely someone else's: keep them
            self.user_throttle.clear(key)
        self.known.remember(key, address)
        return Outcome(True, username=display)

    def remove(self, username: str) -> bool:
        """Delete the account and what the throttles remember of its name; False if there was none.
        A later account of the same name starts with a clean slate."""
        key = name_key(username)
        self.forget_name(username)
        removed = self.store.remove(username)
        self.user_throttle.clear(key)
        self.known.forget(key)
        if removed:
            log.info("removed account %s", username)
        return removed

    def authenticate_token(self, username: str, token: str, address: str, tokens: TokenStore) -> Outcome:
        """Check a login by device token: no password hash, the same throttles (a bad token is a
        failed login), and a reason that says why a known token no longer works."""
        key = name_key(username)
        familiar = self.known.knows(key, address)
        wait = self.address_throttle.retry_after(address)
        if not familiar:
            wait = max(wait, self.user_throttle.retry_after(key))
        if wait > 0:
            return Outcome.throttled("Too many failed login attempts", wait)
        display = self.lookup(username)
        checked = tokens.check(username, token, address) if display is not None and len(token) <= 256 else None
        if checked is None or checked.device is None:
            self._failed(key, address)
            log.info("failed token login for %s from %s", display or "an unknown user", address)
            return Outcome(False, checked.refusal if checked is not None else BAD_CREDENTIALS)
        self.known.remember(key, address)
        return Outcome(True, username=display or username, device=checked.device)

    def change_password(self, username: str, old: str, new: str, address: str) -> Outcome:
        """Replace a logged-in user's password after checking the current one (throttled like login)."""
        key = name_key(username)
        wait = self.address_throttle.retry_after(address)
        if not self.known.knows(key, address):  # as at login: strangers' failures do not block the owner
            wait = max(wait, self.user_throttle.retry_after(key))
        if wait > 0:
            return Outcome.throttled("Too many failed password checks", wait)
        problem = password_problem(new, self.policy.min_password, self.policy.max_password)
        if problem is not None:
            return Outcome(False, "New " + problem + ".")
        if self._check(username, old) is None:
            self._failed(key, address)
            return Outcome(False, WRONG_OLD_PASSWORD)
        if not self.store.set_hash(username, self.hasher.hash(new)):
            return Outcome(False, "This account no longer exists.")
        log.info("%s changed their password", username)
        return Outcome(True, username=username)
