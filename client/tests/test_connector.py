"""The connector, without Tk: connecting off the calling thread against a real server, the
trust question's wait, and reconnect delays through an injected timer."""

from __future__ import annotations

import queue
import socket
import threading
from typing import Any, Callable

import pytest

from chatcore_client.api import ChatClient
from chatcore_client.backoff import Backoff
from chatcore_client.connection import Connection
from chatcore_client.connector import Connector, Failed
from chatcore_client.pinning import CertificateChanged


class Ui:
    """Stands in for the UI thread: posted callables queue up until the test runs them."""

    def __init__(self) -> None:
        self.posted: "queue.Queue[Callable[[], None]]" = queue.Queue()
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.closing = False

    def run_next(self, timeout: float = 10) -> None:
        self.posted.get(timeout=timeout)()

    def connector(self) -> Connector:
        return Connector(self.posted.put, lambda seconds, action: self.timers.append((seconds, action)),
                         lambda: self.closing)


def test_connects_in_a_worker_and_reports_on_the_ui_thread(make_server, pins):
    server = make_server(plugins=["auth"])
    ui = Ui()
    outcome: list[Any] = []
    worker = ui.connector().open([server.address], outcome.append, lambda failure: outcome.append(failure.reason),
                                 pins=pins, ask=lambda *_: True)
    assert worker is not threading.current_thread()
    ui.run_next()
    [connection] = outcome
    assert isinstance(connection, Connection) and connection.tls
    connection.close()


def test_a_refused_connection_is_reported_as_a_reason():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    ui = Ui()
    reasons: list[str] = []
    ui.connector().open([("127.0.0.1", port)], lambda conn: reasons.append("connected?"),
                        lambda failure: reasons.append(failure.reason))
    ui.run_next()
    assert reasons and "127.0.0.1" in reasons[0]


def test_the_trust_question_waits_for_the_ui_and_ends_when_the_app_quits():
    ui = Ui()
    connector = ui.connector()
    answers: list[bool] = []
    asking = threading.Thread(target=lambda: answers.append(connector.ask(lambda reply: reply(True))))
    asking.start()
    ui.run_next()  # the UI shows the question and the user says yes
    asking.join(5)
    assert answers == [True]
    unanswered = threading.Thread(target=lambda: answers.append(connector.ask(lambda reply: None)))
    unanswered.start()
    ui.closing = True  # quitting before the question was even shown
    unanswered.join(5)
    assert not unanswered.is_alive() and answers == [True, False]


def test_reconnect_delays_grow_and_start_over_after_a_success():
    ui = Ui()
    connector = ui.connector()
    connector.backoff = Backoff(base=1, cap=4)
    delays = [connector.retry_later(lambda: None) for _ in range(4)]
    assert delays == [1, 2, 4, 4] and [seconds for seconds, _ in ui.timers] == delays
    assert connector.reconnecting
    connector.succeeded()
    assert not connector.reconnecting and connector.retry_later(lambda: None) == 1


# -- walking a server list (a cluster's nodes) -------------------------------------------------


def dead_address() -> tuple[str, int]:
    """A loopback port nothing listens on (its socket is closed again): connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return "127.0.0.1", int(probe.getsockname()[1])


def same_certificate(server: Any) -> dict[str, str]:
    """Settings for another node serving ``server``'s certificate, as every node of a cluster does."""
    tls = server.data_dir / "tls"
    return {"CHATCORE_TLS_CERT": str(tls / "cert.pem"), "CHATCORE_TLS_KEY": str(tls / "key.pem")}


class Walk:
    """One ``Connector.open`` over a list: which servers it tried, and how it ended."""

    def __init__(self, ui: Ui, servers: list[tuple[str, int]], start: int = 0, **options: Any) -> None:
        self.tried: list[int] = []
        self.outcome: list[Any] = []
        ui.connector().open(servers, self.outcome.append, self.outcome.append, start=start,
                            trying=self.tried.append, **options)
        while not self.outcome:
            ui.run_next()

    @property
    def connection(self) -> Connection:
        [connection] = self.outcome
        assert isinstance(connection, Connection), connection
        return connection

    @property
    def failure(self) -> Failed:
        [failure] = self.outcome
        assert isinstance(failure, Failed), failure
        return failure


def test_a_walk_skips_dead_servers_in_order_and_wraps_around(make_server, pins):
    server = make_server(plugins=["auth"])
    servers = [dead_address(), server.address, dead_address()]
    first = Walk(Ui(), servers, pins=pins, ask=lambda *_: True, timeout=2)
    assert first.tried == [0, 1] and (first.connection.host, first.connection.port) == server.address
    first.connection.close()
    wrapped = Walk(Ui(), servers, start=2, pins=pins, ask=lambda *_: True, timeout=2)
    assert wrapped.tried == [2, 0, 1] and wrapped.connection.port == server.address[1]
    wrapped.connection.close()


def test_a_walk_where_no_server_answers_names_each_and_the_last_tried():
    servers = [dead_address(), dead_address()]
    walk = Walk(Ui(), servers, start=1, timeout=2)
    assert walk.tried == [1, 0] and walk.failure.last_tried == 0 and not walk.failure.refused
    lines = walk.failure.reason.splitlines()
    assert lines[0] == "No server answered:" and len(lines) == 3
    assert f":{servers[1][1]}" in lines[1] and f":{servers[0][1]}" in lines[2] and "refused" in lines[1]


def test_the_nodes_of_a_cluster_share_one_pin_and_a_node_with_another_certificate_ends_the_walk(
        make_server, pins, tmp_path):
    first = make_server(plugins=["auth"], data_dir=tmp_path / "a")
    second = make_server(plugins=["auth"], data_dir=tmp_path / "b", env=same_certificate(first))
    impostor = make_server(plugins=["auth"], data_dir=tmp_path / "c")  # a certificate of its own
    cluster = [first.address, second.address, impostor.address]
    key = ",".join(sorted(f"127.0.0.1:{port}" for _, port in cluster))
    asked: list[tuple[str, int]] = []

    def ask(host: str, port: int, presented: str) -> bool:
        asked.append((host, port))
        return True

    Walk(Ui(), cluster, pins=pins, pin_key=key, ask=ask).connection.close()
    assert asked == [first.address] and pins.get("", 0, key) is not None  # one question for the cluster
    other = Walk(Ui(), cluster, start=1, pins=pins, pin_key=key, ask=ask).connection
    assert other.port == second.address[1] and asked == [first.address]  # the same certificate: silent
    other.close()
    refused = Walk(Ui(), cluster, start=2, pins=pins, pin_key=key, ask=ask)
    assert refused.tried == [2] and refused.failure.refused and refused.failure.last_tried == 2
    assert "CERTIFICATE HAS CHANGED" in refused.failure.reason and f"entry for {key} from" in refused.failure.reason
    assert asked == [first.address]  # refused as a single pinned server is: no question, no connection


def test_the_headless_client_walks_a_list_too_and_reconnects_to_the_next_node(make_server, pins, tmp_path):
    first = make_server(plugins=["auth"], data_dir=tmp_path / "a")
    second = make_server(plugins=["auth"], data_dir=tmp_path / "b", env=same_certificate(first))
    impostor = make_server(plugins=["auth"], data_dir=tmp_path / "c")
    _, on_first, on_second = addresses = [dead_address(), first.address, second.address]
    asked: list[int] = []
    client = ChatClient.connect_any(addresses, pins=pins, ask=lambda host, port, fp: asked.append(port) or True,
                                    timeout=2)
    assert client.connection.port == on_first[1] and client.server.plugins == ["auth"]
    first.stop()
    client.reconnect()  # from the node after the one it was on
    assert client.connection.port == on_second[1] and client.server.plugins == ["auth"]
    assert asked == [on_first[1]]  # one question for the list
    client.close()
    cluster = [on_second, impostor.address]
    ChatClient.connect_any(cluster, pins=pins, ask=lambda *_: True).close()  # pins the list on second
    second.stop()
    with pytest.raises(CertificateChanged, match="CERTIFICATE HAS CHANGED"):
        ChatClient.connect_any(cluster, pins=pins, ask=lambda *_: True)  # second is gone: the impostor
