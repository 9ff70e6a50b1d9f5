"""Accounts across the nodes of a cluster (PostgreSQL and Redis, nodes in this process): an
account or device token made on one node works on another, two nodes racing for one name
leave one winner, a removal or password change ends the user's sessions on every node, and
the throttles count attempts on every node together."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from chatcore.testing import PASSWORD
from chatcore_auth.pg_store import PgAccountStore
from chatcore_auth.plugin import AuthPlugin
from chatcore_auth.store import DuplicateUser

TAKEN = "Username already exists!"
BAD = "Incorrect username or password!"


@pytest.fixture
def nodes(make_server, cluster_env, tmp_path):
    """Two nodes of one cluster, each with its own data directory."""
    return [make_server(plugins=["auth"], env=cluster_env, data_dir=tmp_path / name) for name in ("a", "b")]


def ended(client, code):
    finals = [m for m in client.expect_closed() if m.get("type") == "session_ended"]
    assert finals and finals[-1]["code"] == code, finals


def test_registered_on_one_node_logs_in_on_another(nodes, connect):
    a, b = nodes
    assert connect(a).request(command="register", username="Alice", password=PASSWORD)["response"] == "ok"
    reply = connect(b).request(command="login", username="alice", password=PASSWORD)
    assert (reply["response"], reply["username"]) == ("ok", "Alice")
    assert b.lookup_user("ALICE") == "Alice"
    again = connect(b).request(command="register", username="ALICE", password=PASSWORD)
    assert (again["response"], again["reason"]) == ("fail", TAKEN)


def test_a_device_token_from_one_node_is_accepted_on_another(nodes, connect):
    a, b = nodes
    laptop = connect(a)
    laptop.login("bob", PASSWORD, register=True)
    laptop.request(command="logout")
    token = laptop.request(command="login", username="bob", password=PASSWORD, device="laptop")["token"]
    reply = connect(b).request(command="login", username="bob", token=token)
    assert (reply["response"], reply["device"]) == ("ok", "laptop")
    listed = connect(b)
    listed.login("bob", PASSWORD)
    assert [d["device"] for d in listed.request(command="devices")["devices"]] == ["laptop"]


def test_two_nodes_registering_one_name_at_once_leave_exactly_one_winner(nodes, connect):
    clients = [connect(node) for node in nodes for _ in range(3)]
    start = threading.Barrier(len(clients))
    replies: list[dict] = []

    def register(client, index):
        start.wait()
        replies.append(client.request(command="register", username="Carol" if index % 2 else "carol",
                                      password=PASSWORD))

    threads = [threading.Thread(target=register, args=(c, i)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["response"] for r in replies) == ["fail"] * 5 + ["ok"]
    assert {r["reason"] for r in replies if r["response"] == "fail"} == {TAKEN}


def test_the_store_gives_one_insert_of_a_name_to_one_caller(nodes):
    stores = [PgAccountStore(node.cluster.database.schema("auth")) for node in nodes]
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def add(index):
        start.wait()
        try:
            stores[index % 2].add("Dora" if index % 3 else "DORA", "hash")
            outcomes.append("won")
        except DuplicateUser:
            outcomes.append("taken")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["taken"] * 7 + ["won"]


def test_removing_a_user_ends_their_sessions_on_every_node(nodes, login_as, connect):
    a, b = nodes
    on_a, on_b = login_as(a, "erin"), login_as(b, "erin", register=False)
    result = a.users.remove_account("erin")
    assert result["ok"], result
    ended(on_a, "account_removed")
    ended(on_b, "account_removed")
    assert connect(b).request(command="login", username="erin", password=PASSWORD)["response"] == "fail"


def test_a_name_resolved_on_one_node_is_forgotten_there_when_another_removes_the_account(nodes, login_as):
    a, b = nodes
    login_as(a, "Frida").close()
    assert b.lookup_user("frida") == "Frida"  # found, and remembered on b
    assert b.lookup_user("FRIDA") == "Frida"
    assert a.users.remove_account("frida")["ok"]
    deadline = time.monotonic() + 10  # the event arrives in milliseconds; the name cache keeps names 30 s
    while b.lookup_user("frida") is not None:
        assert time.monotonic() < deadline, "b still resolves the removed name"
        time.sleep(0.02)
    assert a.lookup_user("frida") is None
    login_as(b, "frida").close()  # the name is free again, on any node
    assert a.lookup_user("frida") == "frida"


def test_a_password_change_on_one_node_ends_the_other_sessions_on_every_node(nodes, login_as):
    a, b = nodes
    here, elsewhere = login_as(a, "finn"), login_as(b, "finn", register=False)
    assert here.request(command="change_password", old=PASSWORD, new="another password")["response"] == "ok"
    ended(elsewhere, "password_changed")
    assert here.request(command="ping")["type"] == "pong"


def chatcore(tmp_path, cluster_env, *args, stdin=""):
    """The real ``chatcore`` command in cluster mode, from a data directory no node uses."""
    env = {**os.environ, **cluster_env, "STORAGE_DIR": str(tmp_path / "cli"), "CHATCORE_PLUGINS": "auth",
           "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "chatcore", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)


def test_the_user_command_works_on_the_cluster_and_its_removal_reaches_every_node(nodes, login_as, connect,
                                                                                 tmp_path, cluster_env):
    a, b = nodes
    added = chatcore(tmp_path, cluster_env, "user", "add", "Gail", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    on_a, on_b = login_as(a, "gail", register=False), login_as(b, "gail", register=False)
    flagged = chatcore(tmp_path, cluster_env, "user", "admin", "gail")
    assert flagged.returncode == 0 and "every node told" in flagged.stdout, flagged.stderr
    assert on_b.expect("admin_changed") == {"type": "admin_changed", "admin": True}
    assert on_a.expect("admin_changed") == {"type": "admin_changed", "admin": True}
    assert chatcore(tmp_path, cluster_env, "user", "list").stdout.split() == ["Gail", added_on(a, "gail"), "admin"]
    removed = chatcore(tmp_path, cluster_env, "user", "remove", "GAIL")
    assert removed.returncode == 0 and "removed user Gail" in removed.stdout, removed.stderr
    ended(on_a, "account_removed")
    ended(on_b, "account_removed")
    assert connect(b).request(command="login", username="gail", password=PASSWORD)["response"] == "fail"


def added_on(node, name):
    account = node.pm.get_plugin("auth").store.get(name)
    return account.created


def test_import_sqlite_copies_accounts_and_tokens_and_refuses_a_second_time(make_server, connect, tmp_path,
                                                                            cluster_env):
    single = make_server(plugins=["auth"], data_dir=tmp_path / "cli")  # where ``chatcore`` below looks
    client = connect(single)
    client.login("Hana", PASSWORD, register=True)
    client.request(command="logout")
    token = client.request(command="login", username="hana", password=PASSWORD, device="phone")["token"]
    single.pm.get_plugin("auth").store.set_admin("hana", True)
    created = single.pm.get_plugin("auth").store.get("hana").created
    single.stop()

    imported = chatcore(tmp_path, cluster_env, "import-sqlite")
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 account(s) and 1 device token(s)" in imported.stdout
    node = make_server(plugins=["auth"], env=cluster_env, data_dir=tmp_path / "a")
    by_token = connect(node).request(command="login", username="HANA", token=token)
    assert (by_token["response"], by_token["username"], by_token["device"], by_token["admin"]) == \
        ("ok", "Hana", "phone", True)
    assert connect(node).request(command="login", username="hana", password=PASSWORD)["response"] == "ok"
    assert node.pm.get_plugin("auth").store.get("hana").created == created

    again = chatcore(tmp_path, cluster_env, "import-sqlite")
    assert again.returncode != 0 and "already holds" in again.stderr


def test_login_failures_and_registrations_are_counted_across_nodes(make_server, connect, clock, cluster_env,
                                                                   tmp_path):
    env = {**cluster_env, "CHATCORE_AUTH_REGISTER_LIMIT": "3", "CHATCORE_AUTH_REGISTER_EXEMPT": "none"}
    a, b = (make_server(plugins=[], entry_points=[], extra=[("auth", AuthPlugin(clock=clock))], env=env,
                        data_dir=tmp_path / name) for name in ("a", "b"))
    on_a, on_b = connect(a), connect(b)
    assert on_a.request(command="register", username="ivy", password=PASSWORD)["response"] == "ok"
    for client in (on_a, on_b, on_a, on_b, on_a):  # five failures, spread over both nodes
        assert client.request(command="login", username="ivy", password="wrong!")["reason"] == BAD
    for client in (on_a, on_b):
        throttled = client.request(command="login", username="ivy", password=PASSWORD)
        assert throttled["response"] == "fail" and throttled["retry_after"] == 1
    clock.advance(1)
    assert on_b.request(command="login", username="ivy", password=PASSWORD)["response"] == "ok"

    assert connect(b).request(command="register", username="jay", password=PASSWORD)["response"] == "ok"
    assert connect(a).request(command="register", username="kim", password=PASSWORD)["response"] == "ok"
    refused = connect(b).request(command="register", username="lee", password=PASSWORD)
    assert refused["response"] == "fail" and "Too many registrations" in refused["reason"]


def test_while_postgresql_is_away_logins_get_a_clear_error_and_work_again_after(make_server, connect, cluster_env,
                                                                                private_postgres, tmp_path):
    env = {**cluster_env, "CHATCORE_DATABASE_URL": private_postgres.url, "CHATCORE_DATABASE_TIMEOUT": "1"}
    node = make_server(plugins=["auth"], env=env, data_dir=tmp_path / "a")
    client = connect(node)
    assert client.request(command="register", username="kai", password=PASSWORD)["response"] == "ok"
    private_postgres.stop()
    refused = client.request(command="login", username="kai", password=PASSWORD)
    assert (refused["type"], refused["code"], refused["retry_after"]) == ("error", "unavailable", 5)
    assert "try again" in refused["reason"]
    private_postgres.start()
    # psycopg's pool retries with a growing backoff (1 s, 2 s, 4 s, ...): a 1 s wait can fall
    # between two attempts on a slow machine, so the first login after waits as long as needed
    node.cluster.database.timeout = 20.0
    assert client.request(command="login", username="kai", password=PASSWORD)["response"] == "ok"
