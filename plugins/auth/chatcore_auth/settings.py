"""The auth plugin's settings (``CHATCORE_AUTH_*``) and how they become a policy and a hasher."""

from __future__ import annotations

import os

from chatcore.config import Config, Setting
from chatcore_auth.accounts import Policy
from chatcore_auth.passwords import HashParams, PasswordHasher

MIN_PASSWORD = Setting("CHATCORE_AUTH_MIN_PASSWORD", 8, "Shortest password a new account or password change may use.", int, minimum=1)
MAX_PASSWORD = Setting("CHATCORE_AUTH_MAX_PASSWORD", 1024, "Longest password accepted (bounds the work one request can cause).", int, minimum=8)
ARGON2_TIME = Setting("CHATCORE_AUTH_ARGON2_TIME_COST", 2, "Argon2id passes; raise it and old hashes upgrade at the next login.", int, minimum=1)
ARGON2_MEMORY = Setting("CHATCORE_AUTH_ARGON2_MEMORY_KIB", 19456, "Argon2id memory per hash in KiB (19456 = 19 MiB, OWASP's minimum).", int, minimum=1024)
ARGON2_PARALLELISM = Setting("CHATCORE_AUTH_ARGON2_PARALLELISM", 1, "Argon2id lanes per hash.", int, minimum=1)
HASH_CONCURRENCY = Setting("CHATCORE_AUTH_HASH_CONCURRENCY", 0, "Password hashes computed at once (each uses the Argon2 memory); 0 = number of CPUs.", int, minimum=0)
USER_FAILURES = Setting("CHATCORE_AUTH_USER_FAILURES", 5, "Failed logins for one username (within the window) before each further one adds a growing delay.", int, minimum=1)
ADDRESS_FAILURES = Setting("CHATCORE_AUTH_ADDRESS_FAILURES", 20, "Failed logins from one client address (within the window) before each further one adds a growing delay.", int, minimum=1)
FAILURE_WINDOW = Setting("CHATCORE_AUTH_FAILURE_WINDOW", 900.0, "Seconds after the last failure when a username's or address's failures are forgotten.", float, minimum=1)
MAX_DELAY = Setting("CHATCORE_AUTH_MAX_DELAY", 300.0, "Longest delay (seconds) throttling imposes; delays double from 1 s up to this.", float, minimum=1)
REGISTER_LIMIT = Setting("CHATCORE_AUTH_REGISTER_LIMIT", 10, "Registrations one client address may attempt per window; 0 = unlimited.", int, minimum=0)
REGISTER_WINDOW = Setting("CHATCORE_AUTH_REGISTER_WINDOW", 3600.0, "The registration rate limit's window in seconds.", float, minimum=1)
REGISTER_EXEMPT = Setting("CHATCORE_AUTH_REGISTER_EXEMPT", ["127.0.0.1", "::1"], "Client addresses the registration limit does not apply to (loopback, for local tests and benchmarks); `none` exempts no one (use it behind a TCP proxy).", list)
PLAINTEXT_POLICIES = ("never", "loopback", "always")


def parse_plaintext_policy(text: str) -> str:
    """One of PLAINTEXT_POLICIES, any case."""
    value = text.strip().lower()
    if value not in PLAINTEXT_POLICIES:
        raise ValueError(f"expected one of {', '.join(PLAINTEXT_POLICIES)}")
    return value


PLAINTEXT_LOGIN = Setting("CHATCORE_AUTH_PLAINTEXT_LOGIN", "loopback",
                          "Where login, register and change_password are accepted without TLS: never, loopback (this machine only) or always.",
                          str, parse_plaintext_policy)
TOKEN_TTL = Setting("CHATCORE_AUTH_TOKEN_TTL", 30 * 86400.0,
                    "Seconds a device token may go unused before it expires (the device logs in with its password again).",
                    float, minimum=60)

PRESENCE_DELAY = Setting("CHATCORE_AUTH_PRESENCE_DELAY", 0.05, "Seconds presence changes are gathered into one batch before they go out (0: at once); a login storm then costs each client a few batches instead of one per login.", float, minimum=0)
SETTINGS: tuple[Setting, ...] = (
    MIN_PASSWORD, MAX_PASSWORD, ARGON2_TIME, ARGON2_MEMORY, ARGON2_PARALLELISM, HASH_CONCURRENCY,
    USER_FAILURES, ADDRESS_FAILURES, FAILURE_WINDOW, MAX_DELAY,
    REGISTER_LIMIT, REGISTER_WINDOW, REGISTER_EXEMPT, PLAINTEXT_LOGIN, TOKEN_TTL, PRESENCE_DELAY,
)


def policy_from(config: Config) -> Policy:
    """The account policy the settings describe."""
    return Policy(
        min_password=config.get(MIN_PASSWORD), max_password=max(config.get(MAX_PASSWORD), config.get(MIN_PASSWORD)),
        user_failures=config.get(USER_FAILURES), address_failures=config.get(ADDRESS_FAILURES),
        failure_window=config.get(FAILURE_WINDOW), max_delay=config.get(MAX_DELAY),
        register_limit=config.get(REGISTER_LIMIT), register_window=config.get(REGISTER_WINDOW),
        register_exempt=frozenset(a for a in config.get(REGISTER_EXEMPT) if a.lower() != "none"),
    )


def hasher_from(config: Config) -> PasswordHasher:
    """A password hasher with the configured Argon2id parameters and concurrency."""
    params = HashParams(config.get(ARGON2_TIME), config.get(ARGON2_MEMORY), config.get(ARGON2_PARALLELISM))
    return PasswordHasher(params, config.get(HASH_CONCURRENCY) or os.cpu_count() or 2)
