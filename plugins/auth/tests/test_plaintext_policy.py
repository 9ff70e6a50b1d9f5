"""CHATCORE_AUTH_PLAINTEXT_LOGIN: where passwords may travel without TLS."""

from __future__ import annotations

import socket
import ssl

import pytest

from chatcore import protocol
from chatcore.testing import PASSWORD
from chatcore_auth.commands import TLS_REQUIRED, plaintext_allowed


class TlsClient:
    """A minimal TLS client for these tests, trusting the server's own certificate."""

    def __init__(self, server) -> None:
        context = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))
        self.sock = context.wrap_socket(socket.create_connection(server.address, timeout=5), server_hostname="127.0.0.1")
        self.reader = protocol.FrameReader(self.sock.recv_into, self.sock.settimeout)

    def request(self, **message) -> dict:
        self.sock.sendall(protocol.encode(message))
        return self.reader.read(idle_timeout=5)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("policy, tls, loopback, allowed", [
    ("never", False, True, False), ("never", True, False, True),
    ("loopback", False, True, True), ("loopback", False, False, False), ("loopback", True, False, True),
    ("always", False, False, True),
])
def test_the_policy_table(policy, tls, loopback, allowed):
    assert plaintext_allowed(policy, tls, loopback) is allowed


def test_loopback_is_the_default_and_allows_this_machine(make_server, connect):
    server = make_server(plugins=["auth"])
    client = connect(server)
    assert client.request(command="register", username="ann", password=PASSWORD)["response"] == "ok"
    assert client.request(command="login", username="ann", password=PASSWORD)["response"] == "ok"


def test_never_refuses_plaintext_with_a_clear_reason_and_tls_still_works(make_server, connect):
    server = make_server(plugins=["auth"], env={"CHATCORE_AUTH_PLAINTEXT_LOGIN": "never"})
    plain = connect(server)
    for command in ("register", "login"):
        reply = plain.request(command=command, username="ann", password=PASSWORD)
        assert (reply["type"], reply["response"], reply["reason"]) == (f"{command}_result", "fail", TLS_REQUIRED)
    secure = TlsClient(server)
    try:
        assert secure.request(command="register", username="ann", password=PASSWORD)["response"] == "ok"
        assert secure.request(command="login", username="ann", password=PASSWORD)["response"] == "ok"
        assert secure.request(command="change_password", old=PASSWORD, new=PASSWORD + "!")["response"] == "ok"
    finally:
        secure.close()


def test_always_accepts_plaintext(make_server, connect):
    server = make_server(plugins=["auth"], env={"CHATCORE_AUTH_PLAINTEXT_LOGIN": "always"})
    assert connect(server).request(command="register", username="ann", password=PASSWORD)["response"] == "ok"


def test_an_unknown_policy_stops_startup(make_server):
    from chatcore.config import ConfigError

    with pytest.raises(ConfigError, match="CHATCORE_AUTH_PLAINTEXT_LOGIN='sometimes'"):
        make_server(plugins=["auth"], env={"CHATCORE_AUTH_PLAINTEXT_LOGIN": "sometimes"})
