"""Logging: the queue-backed root logger, and no secrets or payloads in the records."""

from __future__ import annotations

import logging
import logging.handlers

from chatcore.logging import configure_logger, redact, stop_logger

PASSWORD = "s3cret-Pa55word"
MESSAGE = "a private remark"


def test_configure_logger_routes_the_root_through_a_queue():
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        listener = configure_logger("WARNING")
        assert root.level == logging.WARNING
        assert any(isinstance(h, logging.handlers.QueueHandler) for h in root.handlers)
        assert isinstance(listener.handlers[0], logging.StreamHandler)
        assert configure_logger("INFO") is listener  # once per process; a second call only sets the level
    finally:
        stop_logger()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_redact_hides_secrets_and_cuts_long_text():
    safe = redact({"command": "login", "username": PASSWORD, "password": PASSWORD})
    assert PASSWORD not in repr(safe)
    assert redact({"command": "change_password", "old": "a", "new": "b"}) == {"command": "change_password", "old": "***", "new": "***"}
    assert len(redact({"command": "chat", "message": "x" * 5000})["message"]) < 300


def test_no_password_or_message_text_in_any_log_record(make_server, connect, caplog):
    caplog.set_level(logging.DEBUG)
    server = make_server(plugins=["auth", "chat"])
    alice, bob = connect(server), connect(server)
    for client, name in ((alice, "alice"), (bob, "bob")):
        client.login(name, PASSWORD, register=True)
    alice.request(command="login", username=PASSWORD, password=PASSWORD)  # a password typed as the name
    alice.request(command="change_password", old=PASSWORD, new=PASSWORD + "2")
    alice.send(command="chat", peer="bob", message=MESSAGE)
    bob.expect("private_message")
    assert caplog.records
    everything = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in everything
    info_and_up = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert MESSAGE not in info_and_up
