"""A single node (no cluster configured) never loads cluster mode's client libraries: psycopg
and redis cost ~19 MiB of RSS at start, which every small server would carry for nothing."""

from __future__ import annotations

import subprocess
import sys

CLUSTER_LIBRARIES = ("psycopg", "psycopg_pool", "redis")


def test_the_server_and_the_built_in_plugins_load_without_the_cluster_libraries():
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys, chatcore.cli, chatcore.server, chatcore_auth.plugin, chatcore_chat.plugin, "
         "chatcore_filexfer.plugin, chatcore_rooms.plugin\n"
         f"print(' '.join(name for name in {CLUSTER_LIBRARIES!r} if name in sys.modules))"],
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert loaded == []


def test_cluster_names_still_resolve_on_first_use():
    found = subprocess.run(
        [sys.executable, "-c", "from chatcore.cluster import Database, Cluster, DatabaseUnavailable\n"
                               "import sys; print(Database.__name__, Cluster.__name__, 'psycopg' in sys.modules)"],
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert found == ["Database", "Cluster", "True"]
