"""The connector, without Tk: connecting off the calling thread against a real server, the
trust question's wait, and reconnect delays through an injected timer."""

from __future__ import annotations

import queue
import socket
import threading
from typing import Any, Callable

from chatcore_client.backoff import Backoff
from chatcore_client.connection import Connection
from chatcore_client.connector import Connector


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
