"""The metrics port over real HTTP: its paths, counters that move as real clients act, plugin
metrics through ``chat_metrics``, storage sizes, the hash queue and the port's own limits."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily

from chatcore import CommandError, hookimpl, protocol
from chatcore.config import ConfigError
from chatcore.monitor import readiness
from chatcore.server import ChatServer
from chatcore.testing import PASSWORD, http_get, read_only, scrape, server_config

METRICS = {"CHATCORE_METRICS_ADDRESS": "127.0.0.1:0"}
ACK = ("chat_ack", "error")


def until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Wait for something another thread does (a login blocked on the hash queue) by checking
    it again and again; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            assert result, "the condition did not become true in time"
            return result
        time.sleep(0.01)


def test_the_port_is_off_unless_configured_and_every_server_has_its_own_registry(make_server, tmp_path):
    first, second = make_server(plugins=["auth"]), make_server(plugins=["auth"], data_dir=tmp_path / "second")
    assert first.metrics.address is None and second.metrics.address is None
    assert first.metrics.registry is not second.metrics.registry
    assert first.metrics.registry.get_sample_value("chatcore_connections", {"transport": "plain"}) == 0
    assert REGISTRY.get_sample_value("chatcore_connections", {"transport": "plain"}) is None  # never the global one


@pytest.mark.parametrize("address", ["9464", "localhost", "127.0.0.1:http", "127.0.0.1:70000", ":9464"])
def test_a_bad_address_is_refused_naming_the_setting(tmp_path, address):
    config = server_config(tmp_path / "data", [], {"CHATCORE_METRICS_ADDRESS": address})
    with pytest.raises(ConfigError, match="CHATCORE_METRICS_ADDRESS=.* must be HOST:PORT"):
        ChatServer(config)


def test_an_address_in_use_fails_the_start_and_leaves_nothing_open(make_server, tmp_path):
    taken = make_server(plugins=[], env=METRICS)
    host, port = taken.metrics.address
    config = server_config(tmp_path / "other", ["auth"], {"CHATCORE_METRICS_ADDRESS": f"{host}:{port}"})
    server = ChatServer(config)
    with pytest.raises(OSError):
        server.start()
    restarted = ChatServer(server_config(tmp_path / "other", ["auth"]))  # the data directory was unlocked
    restarted.start()
    restarted.stop()


def test_the_port_serves_metrics_health_and_readiness_and_logs_its_address(make_server, caplog):
    caplog.set_level(logging.INFO, logger="chatcore.metrics")
    server = make_server(plugins=["auth", "chat"], env=METRICS)
    host, port = server.metrics.address
    assert host == "127.0.0.1" and port > 0
    assert f"http://127.0.0.1:{port}/" in caplog.text
    status, headers, body = http_get(server, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b'chatcore_info{version="' in body and b"chatcore_auth_logins_total" in body
    status, headers, body = http_get(server, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert http_get(server, "/healthz")[::2] == (200, b"ok\n")
    assert http_get(server, "/readyz")[::2] == (200, b"ready\n")
    assert http_get(server, "/nowhere")[0] == 404


def test_the_port_binds_ipv6_addresses_in_brackets(make_server):
    try:
        socket.socket(socket.AF_INET6).close()
        socket.getaddrinfo("::1", 0, socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    server = make_server(plugins=[], env={"CHATCORE_METRICS_ADDRESS": "[::1]:0"})
    host, port = server.metrics.address
    assert host == "::1" and port > 0
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert sock.makefile("rb").read().endswith(b"\r\n\r\nok\n")


def test_counters_move_as_clients_log_in_fail_and_chat(make_server, connect, login_as):
    server = make_server(plugins=["auth", "chat"], env=METRICS)
    before = scrape(server)
    assert before.value("chatcore_auth_logins_total", method="password") == 0
    assert before.value("chatcore_users_online") == 0
    assert before.value("chatcore_disconnects_total", reason="send_buffer_full") == 0  # every reason from 0

    alice = login_as(server, "alice", v2=True)
    bob = login_as(server, "bob", v2=True)
    intruder = connect(server)
    assert intruder.request(command="login", username="alice", password="wrong password")["response"] == "fail"
    assert intruder.request(command="chat", peer="bob", message="hi")["code"] == "not_authenticated"
    assert intruder.request(command="no_such_thing")["code"] == "unknown_command"
    assert alice.request(command="chat", peer="bob", message="hello bob", reply=ACK)["type"] == "chat_ack"
    assert alice.request(command="chat", peer="", message="hello room", reply=ACK)["type"] == "chat_ack"
    bob.expect("private_message", message="hello bob")
    bob.expect("broadcast_message", message="hello room")
    for client in (alice, bob, intruder):
        client.sync()  # a request is counted once handled: each earlier one is, by the pong

    after = scrape(server)
    assert after.value("chatcore_auth_logins_total", method="password") == 2
    assert after.value("chatcore_auth_login_failures_total", method="password", reason="credentials") == 1
    assert after.value("chatcore_requests_total", command="login", result="ok") == 3  # a refused login is answered, not an error
    assert after.value("chatcore_requests_total", command="register", result="ok") == 2
    assert after.value("chatcore_requests_total", command="chat", result="ok") == 2
    assert after.value("chatcore_requests_total", command="chat", result="not_authenticated") == 1
    assert after.value("chatcore_requests_total", command="(unknown)", result="unknown_command") == 1
    assert after.value("chatcore_chat_messages_total", kind="private") == 1
    assert after.value("chatcore_chat_messages_total", kind="broadcast") == 1
    assert after.value("chatcore_chat_deliveries_total", how="live") == 2  # to bob; the broadcast to bob
    assert after.value("chatcore_users_online") == 2 and after.value("chatcore_sessions_logged_in") == 2
    assert after.value("chatcore_workers") >= 1 and after.value("chatcore_workers_queued") >= 0
    assert after.value("chatcore_connections_accepted") >= 2
    assert after.value("chatcore_connections", transport="plain") == 3
    assert after.value("chatcore_connections_opened_total", transport="plain") == 3
    assert after.value("chatcore_auth_hashes_total") >= 5  # two registrations, three checked logins
    assert after.value("chatcore_auth_hash_waiting") == 0 and after.value("chatcore_auth_hash_running") == 0

    intruder.close()
    bob.send(command="close")
    bob.expect_closed()
    until(lambda: scrape(server).value("chatcore_disconnects_total", reason="client_close") == 1)
    ended = until(lambda: (s := scrape(server)).value("chatcore_disconnects_total", reason="closed") == 1 and s)
    assert ended.value("chatcore_users_online") == 1
    assert ended.value("chatcore_connections", transport="plain") == 1


def test_connections_are_counted_by_transport(make_server, connect):
    server = make_server(plugins=[], env=METRICS)
    context = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))
    with context.wrap_socket(socket.create_connection(server.address, timeout=5), server_hostname="127.0.0.1") as tls:
        tls.sendall(protocol.encode({"command": "ping"}))
        assert protocol.FrameReader(tls.recv_into, tls.settimeout).read(idle_timeout=5) == {"type": "pong"}
        assert connect(server).request(command="ping")["type"] == "pong"
        samples = scrape(server)
        assert samples.value("chatcore_connections", transport="tls") == 1
        assert samples.value("chatcore_connections", transport="plain") == 1
        assert samples.value("chatcore_connections_opened_total", transport="tls") == 1


def test_offline_and_catch_up_deliveries_are_counted(make_server, connect, login_as, register):
    server = make_server(plugins=["auth", "chat"], env=METRICS)
    alice = login_as(server, "alice", v2=True)
    register(server, "bob")
    ids = [alice.request(command="chat", peer="bob", message=f"while away {n}", reply=ACK)["id"] for n in range(3)]
    bob = login_as(server, "bob", register=False, v2=True)
    bob.expect("offline_done", delivered=3)
    assert scrape(server).value("chatcore_chat_deliveries_total", how="offline") == 3
    again = connect(server)
    assert again.request(command="hello", client="tests", protocol=2)["protocol"] == 2
    assert again.request(command="login", username="bob", password=PASSWORD, since=ids[0])["response"] == "ok"
    again.expect("caught_up", delivered=2)
    assert scrape(server).value("chatcore_chat_deliveries_total", how="catch_up") == 2


def test_rate_limit_refusals_are_counted(make_server, connect):
    server = make_server(plugins=[], env={**METRICS, "CHATCORE_RATE_LIMIT": "0.1", "CHATCORE_RATE_BURST": "3"})
    client = connect(server)
    for _ in range(5):
        client.send(command="ping")
    replies = [client.expect(("pong", "error")) for _ in range(5)]
    assert [r["type"] for r in replies] == ["pong"] * 3 + ["error"] * 2
    samples = scrape(server)  # each refusal is counted before it is answered
    assert samples.value("chatcore_rate_limited_total") == 2
    assert samples.value("chatcore_requests_total", command="ping", result="rate_limited") == 2


def test_a_client_that_stops_reading_is_counted_as_a_send_buffer_disconnect(make_server, connect, probe):
    server = make_server(plugins=[], extra=[("probe", probe)], env={**METRICS, "CHATCORE_SEND_BUFFER": "256K"})
    stalled = connect(server)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.request(command="ping")
    stalled_session = probe.opened.get(timeout=5)
    sender = connect(server)
    sender.request(command="blast", count=400, size=40000)
    assert probe.closed.get(timeout=5) is stalled_session  # the core counted it before the probe heard
    samples = scrape(server)
    assert samples.value("chatcore_disconnects_total", reason="send_buffer_full") == 1
    assert samples.value("chatcore_connections", transport="plain") == 1


class FailingPlugin:
    """A command that always fails, and metrics of its own (one of them broken on purpose)."""

    def __init__(self, broken_collector: bool = False) -> None:
        self.calls = Counter("chatcore_flaky_calls", "Calls of flaky.", registry=None)
        self.broken_collector = broken_collector

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        register("flaky", self.flaky, auth=False)

    @hookimpl
    def chat_metrics(self, register: Callable[[Any], None]) -> None:
        register(self.calls)
        register(self)
        with pytest.raises(ValueError):
            register(Counter("chatcore_connections", "A name the core has.", registry=None))

    def collect(self) -> Any:
        if self.broken_collector:
            raise RuntimeError("collector bug")
        yield GaugeMetricFamily("chatcore_flaky_mood", "How flaky feels.", value=0.5)

    def flaky(self, session: Any, message: dict[str, Any]) -> None:
        self.calls.inc()
        if message.get("refuse"):
            raise CommandError("no_way", "refused on purpose")
        raise RuntimeError("handler bug")


def test_plugin_failures_fault_budget_state_and_plugin_metrics(make_server, connect):
    flaky = FailingPlugin()
    server = make_server(plugins=[], extra=[("flaky", flaky)], env={**METRICS, "CHATCORE_FAULT_LIMIT": "2"})
    client = connect(server)
    assert client.request(command="flaky", refuse=True)["code"] == "no_way"  # a refusal is no failure
    for _ in range(2):
        assert client.request(command="flaky")["code"] == "internal_error"
    samples = scrape(server)
    assert samples.value("chatcore_flaky_calls_total") == 3 and samples.value("chatcore_flaky_mood") == 0.5
    assert samples.value("chatcore_plugin_failures_total", plugin="flaky") == 2
    assert samples.value("chatcore_plugin_recent_failures", plugin="flaky") == 2
    assert samples.value("chatcore_plugin_disabled", plugin="flaky") == 0
    assert samples.value("chatcore_plugin_fault_limit") == 2
    assert samples.value("chatcore_requests_total", command="flaky", result="no_way") == 1
    assert client.request(command="flaky")["code"] == "internal_error"  # the third: over the budget
    assert client.request(command="flaky")["code"] == "plugin_disabled"
    samples = scrape(server)
    assert samples.value("chatcore_plugin_disabled", plugin="flaky") == 1
    assert samples.value("chatcore_plugin_failures_total", plugin="flaky") == 3
    assert samples.value("chatcore_requests_total", command="flaky", result="internal_error") == 3
    assert samples.value("chatcore_requests_total", command="flaky", result="plugin_disabled") == 1
    assert samples.value("chatcore_flaky_mood") is None  # a disabled plugin's collectors are not asked


def test_a_broken_plugin_collector_costs_only_its_own_metrics(make_server, caplog):
    flaky = FailingPlugin()
    server = make_server(plugins=["auth"], extra=[("flaky", flaky)], env=METRICS)
    assert scrape(server).value("chatcore_flaky_mood") == 0.5
    flaky.broken_collector = True
    samples = scrape(server)
    assert samples.value("chatcore_flaky_mood") is None
    assert samples.value("chatcore_flaky_calls_total") == 0 and samples.value("chatcore_auth_hash_slots") >= 1
    assert "plugin flaky failed in metrics collection" in caplog.text
    # counted in the plugin's budget: the next scrape shows the one before (the core's numbers come first)
    assert scrape(server).value("chatcore_plugin_failures_total", plugin="flaky") == 1


def test_storage_sizes_are_read_from_the_data_directory(make_server, login_as):
    server = make_server(plugins=["auth", "chat", "filexfer"], env=METRICS)
    alice = login_as(server, "alice")
    for n in range(20):
        assert alice.request(command="chat", peer="", message=f"message {n} " + "x" * 500, reply=ACK)["type"] == "chat_ack"
    spool = server.data_dir / "filexfer" / "spool"
    (spool / ("ab" * 16)).write_bytes(b"z" * 12345)  # a stored file, as far as sizes go
    history = server.data_dir / "chat" / "messages.sqlite3"
    wal = history.with_name(history.name + "-wal")
    for _ in range(20):  # a scrape with no checkpoint copying pages into the file meanwhile
        size = history.stat().st_size
        samples = scrape(server)
        if history.stat().st_size == size:
            break
    assert samples.value("chatcore_storage_bytes", plugin="chat", path="messages.sqlite3") == size
    assert samples.value("chatcore_storage_bytes", plugin="chat", path="messages.sqlite3-wal") > 10000
    assert wal.exists()
    assert samples.value("chatcore_storage_bytes", plugin="filexfer", path="spool") == 12345
    assert samples.value("chatcore_storage_bytes", plugin="auth", path="accounts.db") > 0
    assert samples.value("chatcore_storage_free_bytes") > 0


def test_the_hash_queue_shows_logins_waiting_for_a_slot(make_server, connect, register):
    server = make_server(plugins=["auth"], env={**METRICS, "CHATCORE_AUTH_HASH_CONCURRENCY": "1"})
    register(server, "alice")
    hasher = server.pm.get_plugin("auth").accounts.hasher
    client = connect(server)
    with hasher._slot():  # the one slot is busy: the next hash has to wait
        client.send(command="login", username="alice", password=PASSWORD)
        waiting = until(lambda: (s := scrape(server)).value("chatcore_auth_hash_waiting") == 1 and s)
        assert waiting.value("chatcore_auth_hash_running") == 1 and waiting.value("chatcore_auth_hash_slots") == 1
    assert client.expect("login_result")["response"] == "ok"
    samples = scrape(server)
    assert samples.value("chatcore_auth_hash_waiting") == 0 and samples.value("chatcore_auth_logins_total", method="password") == 1


def test_the_port_serves_a_bounded_number_of_clients_and_drops_silent_ones(make_server):
    server = make_server(plugins=[], env={**METRICS, "CHATCORE_METRICS_MAX_CLIENTS": "2",
                                          "CHATCORE_METRICS_TIMEOUT": "1"})
    silent = [socket.create_connection(server.metrics.address, timeout=5) for _ in range(2)]
    with socket.create_connection(server.metrics.address, timeout=5) as refused:
        assert refused.recv(100) == b""  # dropped at accept: both slots are held
    for sock in silent:
        assert sock.recv(100) == b""  # dropped once they had been silent past the timeout
        sock.close()
    until(lambda: healthy(server))  # the slots come free as the server's handlers finish


def healthy(server) -> bool:
    """``/healthz`` answers 200; False while the port still drops new clients (slots held)."""
    try:
        return http_get(server, "/healthz")[0] == 200
    except OSError:  # dropped at accept, as a full port does
        return False


def test_only_get_is_served(make_server):
    server = make_server(plugins=[], env=METRICS)
    with socket.create_connection(server.metrics.address, timeout=5) as sock:
        sock.sendall(b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        assert sock.makefile("rb").readline().startswith(b"HTTP/1.0 405")


def test_readiness_needs_a_writable_data_directory(make_server):
    server = make_server(plugins=["auth", "chat"], env=METRICS)
    assert http_get(server, "/readyz")[0] == 200
    with read_only(server.data_dir):
        status, _, body = http_get(server, "/readyz")
        assert status == 503 and body.startswith(b"not ready: storage not writable: ")
        assert b"Read-only file system" in body
        assert http_get(server, "/healthz")[0] == 200  # alive all the same
    assert http_get(server, "/readyz")[::2] == (200, b"ready\n")


def test_readiness_is_false_on_a_full_disk_and_while_not_accepting(tmpfs, make_server):
    disk: Path = tmpfs("8m", name="data")
    server = make_server(plugins=["auth"], env=METRICS, data_dir=disk)
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:  # unbuffered: nothing left to fail at close
        try:
            while True:
                out.write(b"\0" * (1 << 16))
        except OSError:
            pass
    status, _, body = http_get(server, "/readyz")
    assert status == 503 and b"No space left on device" in body
    filler.unlink()
    assert http_get(server, "/readyz")[0] == 200
    server.stop()
    assert readiness(server).startswith("not accepting connections")
