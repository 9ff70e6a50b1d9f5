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


def test_the_json_format_writes_one_object_per_line_with_the_exception_apart(tmp_path):
    import json
    import subprocess
    import sys

    program = (
        "import logging\n"
        "from chatcore.logging import configure_logger\n"
        "configure_logger('INFO', 'json')\n"
        "log = logging.getLogger('chatcore.test')\n"
        "log.info('hello %s', 'there')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    log.exception('it failed: %d', 42)\n"
    )
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stderr.splitlines()
    assert len(lines) == 2, lines  # the traceback stays inside its record's line
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "hello there" and first["level"] == "INFO" and first["logger"] == "chatcore.test"
    assert first["exception"] is None and first["time"].endswith("Z") and "T" in first["time"]
    assert second["message"] == "it failed: 42" and second["level"] == "ERROR"
    assert second["exception"].startswith("Traceback") and "ZeroDivisionError" in second["exception"]


def test_a_served_server_logs_json_when_asked(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "CHATCORE_LOG_FORMAT": "JSON", "STORAGE_DIR": str(tmp_path / "data"), "SERVER_PORT": "0",
           "CHATCORE_HOST": "127.0.0.1", "CHATCORE_DISABLE_PLUGINS": "auth,chat,filexfer,rooms", "LOG_LEVEL": "INFO"}
    server = subprocess.Popen([sys.executable, "-m", "chatcore", "serve"], stderr=subprocess.PIPE, text=True,
                              env=env, cwd=tmp_path)
    try:
        records = []
        assert server.stderr is not None
        for line in server.stderr:
            records.append(json.loads(line))  # every line is one JSON object
            if "listening on" in records[-1]["message"]:
                break
        assert {"time", "level", "logger", "message", "thread", "exception"} <= set(records[-1])
        assert records[-1]["logger"] == "chatcore.server" and records[-1]["level"] == "INFO"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    bad = subprocess.run([sys.executable, "-m", "chatcore", "serve"], capture_output=True, text=True, timeout=60,
                         env={**env, "CHATCORE_LOG_FORMAT": "xml"}, cwd=tmp_path)
    assert bad.returncode == 2 and "CHATCORE_LOG_FORMAT='xml' is not a valid str" in bad.stderr
