"""TLS on the plaintext port, certificate handling, and the connection and request limits."""

from __future__ import annotations

import socket
import ssl
import stat

import pytest

from chatcore import hookimpl, protocol
from chatcore.tls import create_self_signed, fingerprint


def tls_client(server, cafile, **context_options) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(cafile))
    for name, value in context_options.items():
        setattr(context, name, value)
    raw = socket.create_connection(server.address, timeout=5)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def tls_request(sock: ssl.SSLSocket, message: dict) -> dict:
    sock.sendall(protocol.encode(message))
    return protocol.FrameReader(sock.recv_into, sock.settimeout).read(idle_timeout=5)


def test_tls_and_plaintext_share_the_port(probe_server, connect):
    cert = probe_server.data_dir / "tls" / "cert.pem"
    with tls_client(probe_server, cert) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        reply = tls_request(sock, {"command": "hello", "protocol": 2})
        assert reply["tls"] is True
        assert tls_request(sock, {"command": "ping", "nonce": "tls"}) == {"type": "pong", "nonce": "tls"}
    assert connect(probe_server).request(command="hello", protocol=2)["tls"] is False


def test_large_frames_and_many_frames_over_tls(probe_server, connect):
    cert = probe_server.data_dir / "tls" / "cert.pem"
    watcher = connect(probe_server)
    watcher.request(command="ping")
    with tls_client(probe_server, cert) as sock:
        reader = protocol.FrameReader(sock.recv_into, sock.settimeout)
        sock.sendall(b"".join(protocol.encode({"command": "ping", "nonce": n}) for n in range(90)))
        assert [reader.read(idle_timeout=5)["nonce"] for _ in range(90)] == list(range(90))
        sock.sendall(protocol.encode({"command": "blast", "count": 20, "size": 40000}))
        assert reader.read(idle_timeout=5) == {"type": "blast", "sessions": 1}
    for _ in range(20):
        assert len(watcher.expect("blast")["data"]) == 40000


def test_tls_client_receives_broadcasts_queued_by_other_threads(probe_server, connect):
    cert = probe_server.data_dir / "tls" / "cert.pem"
    with tls_client(probe_server, cert) as sock:
        reader = protocol.FrameReader(sock.recv_into, sock.settimeout)
        sock.sendall(protocol.encode({"command": "ping"}))
        assert reader.read(idle_timeout=5)["type"] == "pong"
        sender = connect(probe_server)
        assert sender.request(command="blast", count=50, size=30000)["sessions"] == 1
        assert all(len(reader.read(idle_timeout=5)["data"]) == 30000 for _ in range(50))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_old_tls_versions_are_refused(probe_server):
    cert = probe_server.data_dir / "tls" / "cert.pem"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_client(probe_server, cert, minimum_version=ssl.TLSVersion.TLSv1,
                        maximum_version=ssl.TLSVersion.TLSv1_1) as sock:
            tls_request(sock, {"command": "ping"})


def test_the_certificate_is_made_once_with_a_private_key(make_server, probe):
    server = make_server(plugins=[], extra=[("probe", probe)])
    tls_dir = server.data_dir / "tls"
    assert stat.S_IMODE((tls_dir / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    first = server.tls_fingerprint
    assert first == fingerprint((tls_dir / "cert.pem").read_bytes())
    server.stop()
    assert make_server(plugins=[]).tls_fingerprint == first  # reused, not regenerated


def test_an_operator_certificate_is_served(make_server, tmp_path):
    cert, key = create_self_signed(tmp_path / "operator")
    server = make_server(plugins=[], env={"CHATCORE_TLS_CERT": str(cert), "CHATCORE_TLS_KEY": str(key)})
    with tls_client(server, cert) as sock:
        assert fingerprint(ssl.DER_cert_to_PEM_cert(sock.getpeercert(binary_form=True)).encode()) == \
            fingerprint(cert.read_bytes())
    assert not (server.data_dir / "tls" / "cert.pem").exists()


def test_tls_can_be_switched_off(make_server, connect):
    server = make_server(plugins=[], env={"CHATCORE_TLS": "false"})
    raw = socket.create_connection(server.address, timeout=5)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert connect(server).request(command="ping")["type"] == "pong"


def test_connections_per_address_are_limited(make_server, connect):
    server = make_server(plugins=[], env={"CHATCORE_MAX_CONNECTIONS_PER_ADDRESS": "2"})
    first, second = connect(server), connect(server)
    assert first.request(command="ping")["type"] == second.request(command="ping")["type"] == "pong"
    third = connect(server)
    assert third.expect_closed() == []
    assert second.request(command="ping")["type"] == "pong"


def test_total_connections_are_limited(make_server, connect):
    server = make_server(plugins=[], env={"CHATCORE_MAX_CONNECTIONS": "1"})
    assert connect(server).request(command="ping")["type"] == "pong"
    assert connect(server).expect_closed() == []


class LoginCommand:
    """Stands in for an accounts plugin: a ``login`` command makes the login deadline apply."""

    def __init__(self):
        self.server = None

    @hookimpl
    def chat_configure(self, server):
        self.server = server

    @hookimpl
    def chat_register_commands(self, register):
        register("sign_in", self.login, auth=False, fields={"username": str}, logs_in=True)  # any name will do
        register("bulk", lambda s, m: {"type": "bulk"}, auth=False, limited=False)

    def login(self, session, message):
        self.server.login(session, message["username"])
        return {"type": "login_result", "response": "ok"}


def test_a_connection_that_does_not_log_in_in_time_is_closed(make_server, connect):
    server = make_server(plugins=[], extra=[("login", LoginCommand())], env={"CHATCORE_LOGIN_TIMEOUT": "1"})
    client = connect(server)
    assert client.request(command="ping")["type"] == "pong"
    arrived = client.expect_closed()
    assert arrived[0]["code"] == "login_timeout"


def test_without_a_way_to_log_in_there_is_no_login_deadline(make_server, connect, probe):
    server = make_server(plugins=[], extra=[("probe", probe)], env={"CHATCORE_LOGIN_TIMEOUT": "1"})
    assert not server.commands.login_required
    client = connect(server)
    assert client.request(command="ping")["type"] == "pong"
    with pytest.raises(AssertionError, match="still open"):
        client.expect_closed(timeout=2)  # past the 1 s deadline, nobody hangs up


def test_a_connection_that_sends_nothing_is_closed_after_the_login_timeout(make_server, connect):
    server = make_server(plugins=[], env={"CHATCORE_LOGIN_TIMEOUT": "1"})
    assert connect(server).expect_closed() == []


def test_an_idle_logged_in_client_is_closed(make_server, connect):
    server = make_server(plugins=[], extra=[("login", LoginCommand())], env={"CHATCORE_IDLE_TIMEOUT": "0.5"})
    client = connect(server)
    assert client.request(command="sign_in", username="ann", reply="login_result")["response"] == "ok"
    hello = client.request(command="hello", protocol=2)
    assert hello["idle_timeout"] == 0.5
    arrived = client.expect_closed()
    assert arrived[0]["code"] == "idle_timeout"


def test_requests_beyond_the_rate_limit_get_rate_limited(make_server, connect):
    server = make_server(plugins=[], extra=[("login", LoginCommand())],
                         env={"CHATCORE_RATE_LIMIT": "0.1", "CHATCORE_RATE_BURST": "3"})
    client = connect(server)
    for nonce in range(5):
        client.send(command="ping", nonce=nonce)
    assert [client.expect("pong")["nonce"] for _ in range(3)] == [0, 1, 2]
    errors = [client.expect("error") for _ in range(2)]
    assert {e["code"] for e in errors} == {"rate_limited"}
    assert "at most 0.1 per second" in errors[0]["reason"]
    assert 0 < errors[0]["retry_after"] <= 10  # seconds until the next request is allowed
    for _ in range(10):  # bulk data commands are bounded by bytes, not by this rate
        assert client.request(command="bulk") == {"type": "bulk"}
