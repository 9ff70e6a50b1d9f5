"""Start the two servers under test: chatcore (``python -m chatcore serve``) and the baseline relay."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from load.proc import REPO, ServerProcess, python

# Load-run settings: limits meant for hostile clients raised so the load itself is measured.
LOAD_ENV = {
    "CHATCORE_HOST": "127.0.0.1",
    "SERVER_PORT": "0",
    "LOG_LEVEL": "WARNING",
    "CHATCORE_PLUGINS": "auth,chat,filexfer",
    "CHATCORE_TLS": "false",
    "CHATCORE_MAX_CONNECTIONS": "30000",
    "CHATCORE_MAX_CONNECTIONS_PER_ADDRESS": "30000",
    "CHATCORE_RATE_LIMIT": "1000000",
    "CHATCORE_RATE_BURST": "1000000",
    "CHATCORE_LOGIN_TIMEOUT": "600",
    "CHATCORE_IDLE_TIMEOUT": "0",
    "CHATCORE_FILEXFER_MAX_SIZE": "4G",
    "CHATCORE_FILEXFER_USER_QUOTA": "8G",
    "CHATCORE_FILEXFER_SPOOL_LIMIT": "16G",
    "CHATCORE_FILEXFER_OFFER_BYTES": "8G",  # the 1 GiB run (`--set file_mib=1024`) declares it up front
}
# Cheap password hashing so 10,000 logins measure the server, not Argon2 (the cost at the
# default parameters is measured separately by the connections scenario).
FAST_HASH_ENV = {"CHATCORE_AUTH_ARGON2_MEMORY_KIB": "1024", "CHATCORE_AUTH_ARGON2_TIME_COST": "1"}


def clean_env() -> dict[str, str]:
    """The harness's environment without chatcore settings (a developer's .env must not leak in)."""
    prefixes = ("CHATCORE_", "SERVER_", "STORAGE_DIR", "LOG_LEVEL")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def chatcore(data_dir: Path, extra: Optional[dict[str, str]] = None, fast_hash: bool = True,
             pythonpath: Optional[str] = None) -> ServerProcess:
    """A chatcore server with every built-in plugin and history on, data in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    env.update(LOAD_ENV)
    if fast_hash:
        env.update(FAST_HASH_ENV)
    env["STORAGE_DIR"] = str(data_dir)
    env.update(extra or {})
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return ServerProcess([python(), "-m", "chatcore", "serve"], env, data_dir, "chatcore").start()


def baseline() -> ServerProcess:
    """The minimal threaded relay of ``load/baseline.py`` (no plugins, no storage)."""
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cwd = Path(tempfile.gettempdir())
    return ServerProcess([python(), "-m", "load.baseline", "--port", "0"], env, cwd, "baseline").start()
